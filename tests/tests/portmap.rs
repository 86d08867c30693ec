//! The portmap plugin, chained after our bridge (+ host-local) as podman and containerd
//! write it, with real TCP and UDP traffic: from the sandbox host through 127.0.0.1 and its
//! own address, from another namespace, from the container itself and from a sibling
//! (hairpin). Servers and clients are threads of this test that enter the namespaces.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use cni_tests::{PluginCall, Sandbox, TestNetns, plugin_bin};
use libcni::{CniConfig, NetworkConfigList, RuntimeConf};
use serde_json::{Value, json};

unsafe extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}
const CLONE_NEWNET: i32 = 0x4000_0000;

/// Runs `f` on a fresh thread inside the network namespace at `path`.
fn in_netns<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = path.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this short-lived thread only, with an fd we hold open.
        let rc = unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// A TCP server in `ns` on `port` answering every connection with "`name` `peer-ip`".
fn serve_tcp(ns: &TestNetns, port: u16, name: &str) {
    let listener = in_netns(ns.path_str(), move || {
        TcpListener::bind(("::", port))
            .unwrap_or_else(|_| TcpListener::bind(("0.0.0.0", port)).unwrap())
    });
    let name = name.to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let peer = conn
                .peer_addr()
                .map(|a| canonical(a.ip()))
                .unwrap_or_default();
            let _ = conn.write_all(format!("{name} {peer}\n").as_bytes());
        }
    });
}

/// A UDP server in `ns` on `port` answering every datagram with "`name` `peer-ip`".
fn serve_udp(ns: &TestNetns, port: u16, name: &str) {
    let sock = in_netns(ns.path_str(), move || {
        UdpSocket::bind(("::", port))
            .unwrap_or_else(|_| UdpSocket::bind(("0.0.0.0", port)).unwrap())
    });
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = sock.recv_from(&mut buf) {
            let reply = format!("{name} {}\n", canonical(peer.ip()));
            let _ = sock.send_to(reply.as_bytes(), peer);
        }
    });
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

/// What a TCP server at `addr:port` answers a client in `ns`; `None` when nothing does.
fn fetch(ns: &str, addr: &str, port: u16) -> Option<String> {
    let target = SocketAddr::new(addr.parse().unwrap(), port);
    in_netns(ns, move || {
        let mut conn = TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        Some(answer.trim().to_string()).filter(|a| !a.is_empty())
    })
}

/// What a UDP server at `addr:port` answers a datagram from `ns` (sent from `src_port`).
fn ask_udp(ns: &str, addr: &str, port: u16, src_port: u16) -> Option<String> {
    let target = SocketAddr::new(addr.parse().unwrap(), port);
    in_netns(ns, move || {
        let bind: SocketAddr = if target.is_ipv6() {
            SocketAddr::new("::".parse().unwrap(), src_port)
        } else {
            SocketAddr::new("0.0.0.0".parse().unwrap(), src_port)
        };
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        for _ in 0..2 {
            let _ = sock.send_to(b"hello", target);
            let mut buf = [0u8; 512];
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).trim().to_string());
            }
        }
        None
    })
}

/// A sandbox host with an "outside" namespace behind `up0`: the host is 10.200.0.1 and
/// fd20::1, the outside 10.200.0.2 and fd20::2.
struct Host {
    sb: Sandbox,
    outside: TestNetns,
}

const HOST_IP: &str = "10.200.0.1";
const OUTSIDE_IP: &str = "10.200.0.2";

impl Host {
    fn new() -> Host {
        let sb = Sandbox::new();
        let outside = TestNetns::new();
        outside.lo_up();
        sb.host_run(&[
            "ip",
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.name(),
        ]);
        sb.host_run(&["ip", "addr", "add", "10.200.0.1/24", "dev", "up0"]);
        sb.host_run(&["ip", "addr", "add", "fd20::1/64", "dev", "up0", "nodad"]);
        sb.host_run(&["ip", "link", "set", "up0", "up"]);
        sb.host_run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sb.host_run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        outside.run(&["ip", "addr", "add", "10.200.0.2/24", "dev", "eth0"]);
        outside.run(&["ip", "addr", "add", "fd20::2/64", "dev", "eth0", "nodad"]);
        outside.run(&["ip", "link", "set", "eth0", "up"]);
        Host { sb, outside }
    }

    fn cni(&self) -> CniConfig {
        self.sb.ours()
    }

    fn data(&self) -> PathBuf {
        self.sb.data_dir()
    }

    /// bridge (hairpin on, + host-local) → portmap, as podman writes it.
    fn list(&self, name: &str, bridge: &str, ranges: Value, portmap: Value) -> NetworkConfigList {
        let data = self.data();
        let mut pm = json!({"type": "portmap", "capabilities": {"portMappings": true},
                            "dataDir": data.join("portmap")});
        for (k, v) in portmap.as_object().unwrap() {
            pm[k] = v.clone();
        }
        self.sb.conflist(&json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "hairpinMode": true,
                 "isolate": false, "dataDir": data.join("bridge"),
                 "ipam": {"type": "host-local", "dataDir": data.join("ipam"), "ranges": ranges,
                          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
                pm
            ]
        }))
    }

    fn v4_list(&self, portmap: Value) -> NetworkConfigList {
        self.list(
            "pmnet",
            "pm0",
            json!([[{"subnet": "10.92.0.0/24"}]]),
            portmap,
        )
    }

    fn ruleset(&self) -> String {
        self.sb.host_run(&["nft", "list", "ruleset"])
    }

    fn host(&self) -> &str {
        self.sb.host.path_str()
    }
}

fn rt(id: &str, ctr: &TestNetns, mappings: Value) -> RuntimeConf {
    let mut rt = RuntimeConf::new(id, ctr.path_str(), "eth0");
    rt.capability_args.insert("portMappings".into(), mappings);
    rt
}

fn ip_of(result: &cni::CniResult, v6: bool) -> String {
    result
        .ips
        .iter()
        .find(|ip| ip.address.is_ipv6() == v6)
        .unwrap()
        .address
        .ip()
        .to_string()
}

fn container(host: &Host) -> TestNetns {
    let ctr = host.sb.container();
    ctr.lo_up();
    ctr
}

#[test]
fn tcp_reaches_the_container_from_everywhere_and_del_leaves_nothing() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    let b = container(&host);
    let rt_a = rt(
        "ctr-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let rt_b = RuntimeConf::new("ctr-b", b.path_str(), "eth0");
    let ra = cni.add_network_list(&list, &rt_a).unwrap();
    cni.add_network_list(&list, &rt_b).unwrap();
    let ip_a = ip_of(&ra, false);
    serve_tcp(&a, 80, "A");
    serve_tcp(&b, 80, "B");

    // From the host, through 127.0.0.1 and through its own address.
    let local = fetch(host.host(), "127.0.0.1", 8080).expect("127.0.0.1:8080");
    assert!(local.starts_with("A "), "{local}");
    assert_eq!(
        fetch(host.host(), HOST_IP, 8080).unwrap(),
        format!("A {HOST_IP}")
    );
    // From another namespace: the client's own address arrives.
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    // From the container itself and from a sibling (hairpin): masqueraded to the bridge.
    assert_eq!(fetch(a.path_str(), HOST_IP, 8080).unwrap(), "A 10.92.0.1");
    assert_eq!(fetch(b.path_str(), HOST_IP, 8080).unwrap(), "A 10.92.0.1");
    assert_eq!(
        fetch(b.path_str(), "10.92.0.1", 8080).unwrap(),
        "A 10.92.0.1"
    );
    // Another port is not forwarded.
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8081), None);
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.check_network_list(&list, &rt_b).unwrap();

    let ruleset = host.ruleset();
    assert!(
        ruleset.contains(&ip_a) && ruleset.contains("ctr-a"),
        "{ruleset}"
    );
    cni.del_network_list(&list, &rt_a).unwrap();
    let ruleset = host.ruleset();
    assert!(!ruleset.contains(&ip_a), "{ruleset}");
    assert!(!ruleset.contains("ctr-a"), "{ruleset}");
    assert!(!ruleset.contains("8080"), "{ruleset}");
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);
    assert!(!host.data().join("portmap/pmnet/ctr-a@eth0").exists());
    // DEL again, and without netns: still success.
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &RuntimeConf::new("ctr-a", "", "eth0"))
        .unwrap();
    cni.del_network_list(&list, &rt_b).unwrap();
}

#[test]
fn udp_is_forwarded_and_a_stale_flow_is_flushed_on_add() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    // A first container with a TCP mapping: the host now tracks connections.
    let z = container(&host);
    let rt_z = rt(
        "udp-z",
        &z,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_z).unwrap();
    let a = container(&host);
    serve_udp(&a, 53, "A");
    let rt_a = rt(
        "udp-a",
        &a,
        json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
               {"hostPort": 5354, "containerPort": 53, "protocol": "udp"}]),
    );
    // A client keeps sending to the host ports before the mapping exists: conntrack
    // remembers those flows as going to the host itself.
    assert_eq!(ask_udp(host.outside.path_str(), HOST_IP, 5353, 40000), None);
    assert_eq!(ask_udp(host.outside.path_str(), HOST_IP, 5354, 40002), None);
    let listed = host.sb.host_exec(&["conntrack", "-L", "-p", "udp"]);
    if listed.status.success() {
        let flows = String::from_utf8_lossy(&listed.stdout);
        assert!(
            flows.contains("dport=5353"),
            "no stale flow to test with: {flows}"
        );
    }
    cni.add_network_list(&list, &rt_a).unwrap();
    // The same flows (same source ports) now reach the container.
    for (port, src) in [(5353, 40000), (5354, 40002)] {
        assert_eq!(
            ask_udp(host.outside.path_str(), HOST_IP, port, src).unwrap(),
            format!("A {OUTSIDE_IP}")
        );
    }
    let local = ask_udp(host.host(), "127.0.0.1", 5353, 0).unwrap();
    assert!(local.starts_with("A "), "{local}");
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
    assert_eq!(ask_udp(host.outside.path_str(), HOST_IP, 5353, 40001), None);
    cni.del_network_list(&list, &rt_z).unwrap();
}

#[test]
fn host_ip_restricts_the_mapping_to_that_address() {
    let host = Host::new();
    host.sb
        .host_run(&["ip", "addr", "add", "10.201.0.1/32", "dev", "lo"]);
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "hostip-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": HOST_IP}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    assert_eq!(
        fetch(host.host(), HOST_IP, 8080).unwrap(),
        format!("A {HOST_IP}")
    );
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    // Other local addresses are not forwarded.
    assert_eq!(fetch(host.host(), "10.201.0.1", 8080), None);
    assert_eq!(fetch(host.host(), "127.0.0.1", 8080), None);
    cni.check_network_list(&list, &rt_a).unwrap();

    // A second container may take the same port on another address.
    let b = container(&host);
    serve_tcp(&b, 80, "B");
    let rt_b = rt(
        "hostip-b",
        &b,
        json!([{"hostPort": 8080, "containerPort": 80, "hostIP": "127.0.0.1"}]),
    );
    cni.add_network_list(&list, &rt_b).unwrap();
    assert!(
        fetch(host.host(), "127.0.0.1", 8080)
            .unwrap()
            .starts_with("B ")
    );
    assert!(fetch(host.host(), HOST_IP, 8080).unwrap().starts_with("A "));
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_b).unwrap();
    assert!(!host.ruleset().contains("8080"), "{}", host.ruleset());
}

#[test]
fn a_range_of_ports_in_pascal_case_as_containerd_sends_it() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    for port in [9000, 9011, 9019] {
        serve_tcp(&a, port, &format!("A{port}"));
    }
    let mappings: Vec<Value> = (9000..9020)
        .map(|p| json!({"HostPort": p + 1000, "ContainerPort": p, "Protocol": "TCP", "HostIP": ""}))
        .collect();
    let rt_a = rt("range-a", &a, Value::Array(mappings));
    cni.add_network_list(&list, &rt_a).unwrap();
    for port in [9000, 9011, 9019] {
        assert_eq!(
            fetch(host.outside.path_str(), HOST_IP, port + 1000).unwrap(),
            format!("A{port} {OUTSIDE_IP}")
        );
    }
    let map = host
        .sb
        .host_run(&["nft", "list", "map", "inet", "cni_portmap", "dnat4_any"]);
    assert_eq!(map.matches("tcp . 10").count(), 20, "{map}");
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
    let map = host
        .sb
        .host_run(&["nft", "list", "map", "inet", "cni_portmap", "dnat4_any"]);
    assert!(!map.contains("tcp . 10"), "{map}");
}

#[test]
fn del_without_runtime_config_or_prev_result_removes_the_rules() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "norc-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    let r = cni.add_network_list(&list, &rt_a).unwrap();
    let ip = ip_of(&r, false);
    assert!(fetch(host.outside.path_str(), HOST_IP, 8080).is_some());
    // The runtime does not pass the mappings again (the reference then deletes nothing).
    cni.del_network_list(&list, &RuntimeConf::new("norc-a", a.path_str(), "eth0"))
        .unwrap();
    assert!(!host.ruleset().contains(&ip), "{}", host.ruleset());
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);

    // The same with the plugin alone: no prevResult, no runtimeConfig, no netns.
    let b = container(&host);
    serve_tcp(&b, 80, "B");
    let rt_b = rt(
        "norc-b",
        &b,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_b).unwrap();
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("B ")
    );
    host.sb
        .call(plugin_bin("portmap"), "DEL")
        .container("norc-b", "", "eth0")
        .stdin_json(
            &json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
                            "dataDir": host.data().join("portmap")}),
        )
        .run()
        .assert_ok_empty();
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);
    assert!(!host.ruleset().contains("norc-b"), "{}", host.ruleset());
    cni.del_network_list(&list, &rt_b).unwrap();
}

#[test]
fn check_fails_after_a_rule_is_deleted_by_hand() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    let rt_a = rt(
        "chk-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    cni.check_network_list(&list, &rt_a).unwrap();
    host.sb.host_run(&[
        "nft",
        "delete",
        "element",
        "inet",
        "cni_portmap",
        "dnat4_any",
        "{ tcp . 8080 }",
    ]);
    let err = cni
        .check_network_list(&list, &rt_a)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    // ADD again puts it back; deleting a rule of the structure is noticed too.
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.add_network_list(&list, &rt_a).unwrap();
    cni.check_network_list(&list, &rt_a).unwrap();
    let chain = host.sb.host_run(&[
        "nft",
        "-a",
        "list",
        "chain",
        "inet",
        "cni_portmap",
        "prerouting",
    ]);
    let handle = chain
        .lines()
        .find(|l| l.contains("jump hostports"))
        .and_then(|l| l.rsplit("handle ").next())
        .unwrap()
        .trim()
        .to_string();
    host.sb.host_run(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "cni_portmap",
        "prerouting",
        "handle",
        &handle,
    ]);
    let err = cni
        .check_network_list(&list, &rt_a)
        .unwrap_err()
        .to_string();
    assert!(err.contains("portmap prerouting"), "{err}");
    // CHECK with other mappings than ADD's fails as well.
    host.sb
        .host_run(&["nft", "delete", "table", "inet", "cni_portmap"]);
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.add_network_list(&list, &rt_a).unwrap();
    let other = rt(
        "chk-a",
        &a,
        json!([{"hostPort": 8081, "containerPort": 80}]),
    );
    let err = cni
        .check_network_list(&list, &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("differ"), "{err}");
    cni.del_network_list(&list, &rt_a).unwrap();
}

#[test]
fn a_second_container_on_the_same_host_port_is_refused_and_the_first_keeps_it() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    let b = container(&host);
    serve_tcp(&a, 80, "A");
    serve_tcp(&b, 80, "B");
    let rt_a = rt(
        "first-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    let rt_b = rt(
        "second-b",
        &b,
        json!([{"hostPort": 9999, "containerPort": 80}, {"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    let err = cni.add_network_list(&list, &rt_b).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("already mapped") && msg.contains("first-a"),
        "{msg}"
    );
    assert!(msg.contains("tcp/8080"), "{msg}");
    // The runtime DELs the failed attachment (without prevResult): the first keeps its port.
    cni.del_network_list(&list, &rt_b).unwrap();
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    // Nothing of the second is left, not even its other port.
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 9999), None);
    assert!(!host.ruleset().contains("second-b"), "{}", host.ruleset());
    cni.check_network_list(&list, &rt_a).unwrap();

    // Called directly, the error has the plugin's code.
    let out = host
        .sb
        .call(plugin_bin("portmap"), "ADD")
        .container("second-c", b.path_str(), "eth0")
        .stdin_json(&json!({
            "cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
            "dataDir": host.data().join("portmap"),
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
            "prevResult": {"cniVersion": "1.0.0",
                           "ips": [{"address": "10.92.0.99/24"}]}
        }))
        .run();
    out.assert_error_containing(104, "already mapped");

    // Once the first is gone, the port is free.
    cni.del_network_list(&list, &rt_a).unwrap();
    let rt_b = rt(
        "second-b",
        &b,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_b).unwrap();
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("B ")
    );
    cni.del_network_list(&list, &rt_b).unwrap();
}

#[test]
fn a_port_held_by_a_container_whose_netns_is_gone_is_taken_over() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    let rt_a = rt(
        "gone-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    // The container dies and its DEL never comes.
    drop(a);
    let b = container(&host);
    serve_tcp(&b, 80, "B");
    let rt_b = rt(
        "gone-b",
        &b,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_b).unwrap();
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("B ")
    );
    // The late DEL of the first leaves the second alone.
    cni.del_network_list(&list, &RuntimeConf::new("gone-a", "", "eth0"))
        .unwrap();
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("B ")
    );
    cni.del_network_list(&list, &rt_b).unwrap();
}

fn portmap_call(host: &Host, command: &str, id: &str, ctr: &TestNetns, conf: Value) -> PluginCall {
    let mut full = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
                          "dataDir": host.data().join("portmap"),
                          "prevResult": {"cniVersion": "1.0.0",
                                         "interfaces": [{"name": "eth0", "sandbox": ctr.path_str()}],
                                         "ips": [{"address": "10.92.0.50/24", "interface": 0}]}});
    for (k, v) in conf.as_object().unwrap() {
        full[k] = v.clone();
    }
    host.sb
        .call(plugin_bin("portmap"), command)
        .container(id, ctr.path_str(), "eth0")
        .stdin_json(&full)
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let host = Host::new();
    let ctr = container(&host);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"hostPort": 0, "containerPort": 80}]),
            "hostPort: 0 is not a port",
        ),
        (
            json!([{"hostPort": 8080, "containerPort": 65536}]),
            "containerPort: 65536 is not a port",
        ),
        (
            json!([{"hostPort": 70000, "containerPort": 80}]),
            "hostPort: 70000 is not a port",
        ),
        (
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]),
            "unknown protocol",
        ),
        (
            json!([{"hostPort": 8080, "containerPort": 80, "hostIP": "::1"}]),
            "no IPv6 address",
        ),
        (
            json!([{"hostPort": 8080, "containerPort": 80, "hostIP": "localhost"}]),
            "not an IP address",
        ),
    ];
    for (mappings, needle) in cases {
        portmap_call(
            &host,
            "ADD",
            "bad",
            &ctr,
            json!({"runtimeConfig": {"portMappings": mappings}}),
        )
        .run()
        .assert_error_containing(7, needle);
    }
    // Conditions nft cannot parse.
    for cond in [
        json!(["ip saddr 10.0.0.0/33"]),
        json!(["no such expression"]),
    ] {
        portmap_call(
            &host,
            "ADD",
            "bad",
            &ctr,
            json!({"conditionsV4": cond,
                   "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}),
        )
        .run()
        .assert_error_containing(7, "not valid nft expressions");
    }
    for cond in [
        json!(["ip saddr 1.2.3.4; flush ruleset"]),
        json!(["ip saddr { 1.2.3.4"]),
    ] {
        portmap_call(&host, "ADD", "bad", &ctr, json!({"conditionsV4": cond}))
            .run()
            .assert_error_containing(7, "not a valid nft expression");
    }
    // Not chained.
    host.sb
        .call(plugin_bin("portmap"), "ADD")
        .container("bad", ctr.path_str(), "eth0")
        .stdin_json(&json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap"}))
        .run()
        .assert_error_containing(7, "chained");
    // Nothing was written: no state, no mapping.
    assert!(!host.data().join("portmap/pmnet/bad@eth0").exists());
    let ruleset = host.ruleset();
    assert!(!ruleset.contains("8080"), "{ruleset}");
}

#[test]
fn without_mappings_the_result_passes_through_and_nothing_is_created() {
    let host = Host::new();
    let ctr = container(&host);
    let out = portmap_call(&host, "ADD", "none", &ctr, json!({})).run();
    let v = out.assert_ok();
    assert_eq!(v["ips"][0]["address"], "10.92.0.50/24");
    assert!(host.ruleset().trim().is_empty(), "{}", host.ruleset());
    portmap_call(&host, "DEL", "none", &ctr, json!({}))
        .run()
        .assert_ok_empty();
    portmap_call(&host, "CHECK", "none", &ctr, json!({}))
        .run()
        .assert_ok_empty();
}

#[test]
fn gc_removes_the_mappings_of_attachments_no_longer_valid() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.list(
        "gcnet",
        "gc0",
        json!([[{"subnet": "10.93.0.0/24"}]]),
        json!({}),
    );
    let a = container(&host);
    let b = container(&host);
    serve_tcp(&a, 80, "A");
    serve_tcp(&b, 80, "B");
    let rt_a = rt("gc-a", &a, json!([{"hostPort": 8081, "containerPort": 80}]));
    let rt_b = rt("gc-b", &b, json!([{"hostPort": 8082, "containerPort": 80}]));
    cni.add_network_list(&list, &rt_a).unwrap();
    cni.add_network_list(&list, &rt_b).unwrap();
    // GC straight to the plugin (libcni would DEL the cached attachment first).
    host.sb
        .call(plugin_bin("portmap"), "GC")
        .stdin_json(&json!({
            "cniVersion": "1.1.0", "name": "gcnet", "type": "portmap",
            "dataDir": host.data().join("portmap"),
            "cni.dev/valid-attachments": [{"containerID": "gc-b", "ifname": "eth0"}]
        }))
        .run()
        .assert_ok_empty();
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8081), None);
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8082)
            .unwrap()
            .starts_with("B ")
    );
    assert!(!host.ruleset().contains("gc-a"), "{}", host.ruleset());
    assert!(host.ruleset().contains("gc-b"));
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_b).unwrap();
}

#[test]
fn ipv6_and_dual_stack() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.list(
        "dualnet",
        "dual0",
        json!([[{"subnet": "10.94.0.0/24"}], [{"subnet": "fd94::/64"}]]),
        json!({}),
    );
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "dual-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80},
               {"hostPort": 8086, "containerPort": 80, "hostIP": "fd20::1"}]),
    );
    let r = cni.add_network_list(&list, &rt_a).unwrap();
    let ip6 = ip_of(&r, true);
    // Wait for the container's IPv6 address to be usable.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fetch(host.outside.path_str(), "fd20::1", 8080).unwrap(),
        "A fd20::2"
    );
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    assert_eq!(
        fetch(host.outside.path_str(), "fd20::1", 8086).unwrap(),
        "A fd20::2"
    );
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8086), None);
    // Hairpin over IPv6.
    let own = fetch(a.path_str(), "fd20::1", 8080).unwrap();
    assert!(own.starts_with("A fd94::"), "{own}");
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
    assert!(!host.ruleset().contains(&ip6), "{}", host.ruleset());
}

#[test]
fn masq_all_and_conditions() {
    let host = Host::new();
    let cni = host.cni();
    // Only the outside may use the mapping; everything is masqueraded.
    let list = host.v4_list(json!({"masqAll": true,
                                   "conditionsV4": [format!("ip saddr {OUTSIDE_IP}")]}));
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "cond-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        "A 10.92.0.1"
    );
    assert_eq!(fetch(host.host(), HOST_IP, 8080), None);
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);
    assert!(!host.ruleset().contains("cond-a"), "{}", host.ruleset());
}

#[test]
fn snat_false_keeps_the_client_address_and_no_localhost() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({"snat": false}));
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "nosnat-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    assert_eq!(fetch(host.host(), "127.0.0.1", 8080), None);
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
}

fn nat_table(host: &Host) -> String {
    host.sb.host_run(&["iptables-save", "-t", "nat"])
}

/// The chain holding the DNAT rule to `target` (`10.92.0.2:80`).
fn chain_of(nat: &str, target: &str) -> String {
    nat.lines()
        .find(|l| l.ends_with(&format!("--to-destination {target}")))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no DNAT to {target} in\n{nat}"))
        .to_string()
}

/// A 221-character container ID: with a 6-character network name the escaped comment used
/// to be cut right after the backslash of its last `\"`, and iptables-restore took the rest
/// of the line (the match and the jump) for the comment; with a 15-character one the
/// comment runs past the kernel's 255 bytes. Either way the port is forwarded, CHECK finds
/// the rules and DEL takes them out.
#[test]
fn iptables_backend_takes_comments_cut_at_the_kernels_limit() {
    let host = Host::new();
    let cni = host.cni();
    let id = "c".repeat(221);
    for network in ["pm-net", "portmap-network"] {
        let list = host.list(
            network,
            "pm0",
            json!([[{"subnet": "10.92.0.0/24"}]]),
            json!({"backend": "iptables"}),
        );
        let a = container(&host);
        serve_tcp(&a, 80, "A");
        let rt_a = rt(&id, &a, json!([{"hostPort": 8080, "containerPort": 80}]));
        let ra = cni.add_network_list(&list, &rt_a).unwrap();
        let ip_a = ip_of(&ra, false);
        let nat = nat_table(&host);
        let start = format!("dnat name: \\\"{network}\\\" id: \\\"ccc");
        assert!(nat.contains(&start), "{nat}");
        assert!(
            fetch(host.outside.path_str(), HOST_IP, 8080)
                .unwrap()
                .starts_with("A ")
        );
        cni.check_network_list(&list, &rt_a).unwrap();
        cni.del_network_list(&list, &rt_a).unwrap();
        let nat = nat_table(&host);
        assert!(!nat.contains(&ip_a) && !nat.contains("ccc"), "{nat}");
    }
}

#[test]
fn iptables_backend_reaches_the_container_from_everywhere() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({"backend": "iptables"}));
    let a = container(&host);
    let b = container(&host);
    let rt_a = rt(
        "ipt-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    let rt_b = RuntimeConf::new("ipt-b", b.path_str(), "eth0");
    let ra = cni.add_network_list(&list, &rt_a).unwrap();
    cni.add_network_list(&list, &rt_b).unwrap();
    let ip_a = ip_of(&ra, false);
    serve_tcp(&a, 80, "A");
    serve_tcp(&b, 80, "B");
    assert!(
        fetch(host.host(), "127.0.0.1", 8080)
            .unwrap()
            .starts_with("A ")
    );
    assert_eq!(
        fetch(host.host(), HOST_IP, 8080).unwrap(),
        format!("A {HOST_IP}")
    );
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    assert_eq!(fetch(a.path_str(), HOST_IP, 8080).unwrap(), "A 10.92.0.1");
    assert_eq!(fetch(b.path_str(), HOST_IP, 8080).unwrap(), "A 10.92.0.1");
    // The reference's layout, and nothing in nftables' own table.
    let nat = nat_table(&host);
    for needle in [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-j MARK --set-xmark 0x2000/0x2000",
        "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
        "dnat name: \\\"pmnet\\\" id: \\\"ipt-a\\\"",
    ] {
        assert!(nat.contains(needle), "{needle} not in\n{nat}");
    }
    assert!(!host.ruleset().contains("cni_portmap"));
    cni.check_network_list(&list, &rt_a).unwrap();

    // A rule deleted by hand fails CHECK.
    let chain = chain_of(&nat, &format!("{ip_a}:80"));
    host.sb.host_run(&["iptables", "-t", "nat", "-F", &chain]);
    let err = cni
        .check_network_list(&list, &rt_a)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&chain), "{err}");
    cni.del_network_list(&list, &rt_a).unwrap();
    let ra = cni.add_network_list(&list, &rt_a).unwrap();
    let ip_a = ip_of(&ra, false);
    cni.check_network_list(&list, &rt_a).unwrap();
    let nat = nat_table(&host);
    assert_eq!(nat.matches("-j DNAT").count(), 1, "{nat}");
    let chain = chain_of(&nat, &format!("{ip_a}:80"));
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("A ")
    );

    // A second container on the same port is refused; the first keeps it.
    let c = container(&host);
    let rt_c = rt(
        "ipt-c",
        &c,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    let before = nat_table(&host);
    let msg = match cni.add_network_list(&list, &rt_c) {
        Ok(_) => panic!(
            "second ADD succeeded:\nbefore:\n{before}\nafter:\n{}",
            nat_table(&host)
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("already mapped") && msg.contains("ipt-a"),
        "{msg}"
    );
    cni.del_network_list(&list, &rt_c).unwrap();
    assert!(
        fetch(host.outside.path_str(), HOST_IP, 8080)
            .unwrap()
            .starts_with("A ")
    );

    // DEL without runtimeConfig leaves no rule of the container.
    cni.del_network_list(&list, &RuntimeConf::new("ipt-a", a.path_str(), "eth0"))
        .unwrap();
    let nat = nat_table(&host);
    assert!(!nat.contains(&ip_a), "{nat}");
    assert!(!nat.contains("ipt-a") && !nat.contains(&chain), "{nat}");
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);
    cni.del_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_b).unwrap();
}

#[test]
fn iptables_conditions_select_the_backend_and_restrict_the_sources() {
    let host = Host::new();
    let cni = host.cni();
    let list = host.v4_list(json!({"conditionsV4": ["-s", OUTSIDE_IP],
                                   "externalSetMarkChain": "KUBE-MARK-MASQ"}));
    // The external chain is the cluster's; here a stand-in that marks for nothing.
    host.sb
        .host_run(&["iptables", "-t", "nat", "-N", "KUBE-MARK-MASQ"]);
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "iptc-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80},
                                        {"hostPort": 8081, "containerPort": 80, "protocol": "udp"}]),
    );
    cni.add_network_list(&list, &rt_a).unwrap();
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    assert_eq!(fetch(host.host(), HOST_IP, 8080), None);
    let nat = nat_table(&host);
    assert!(
        nat.contains("-A CNI-HOSTPORT-DNAT -s 10.200.0.2/32 -p tcp"),
        "{nat}"
    );
    assert!(nat.contains("-j KUBE-MARK-MASQ"), "{nat}");
    assert!(!nat.contains("CNI-HOSTPORT-SETMARK"), "{nat}");
    cni.check_network_list(&list, &rt_a).unwrap();
    cni.del_network_list(&list, &rt_a).unwrap();
    assert!(
        !nat_table(&host).contains("CNI-DN-"),
        "{}",
        nat_table(&host)
    );
}

#[test]
fn a_node_switching_from_the_reference_plugin_cleans_up_its_rules() {
    if !cni_tests::require_reference_plugins() {
        return;
    }
    let host = Host::new();
    let list = host.v4_list(json!({}));
    let a = container(&host);
    serve_tcp(&a, 80, "A");
    let rt_a = rt(
        "ref-a",
        &a,
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    // ADD with the reference portmap (after our bridge).
    let mixed = host.sb.cni_config(vec![
        host.sb.plugin_dir(&["bridge", "host-local"], &["portmap"]),
    ]);
    let r = mixed.add_network_list(&list, &rt_a).unwrap();
    let ip = ip_of(&r, false);
    assert_eq!(
        fetch(host.outside.path_str(), HOST_IP, 8080).unwrap(),
        format!("A {OUTSIDE_IP}")
    );
    assert!(nat_table(&host).contains(&ip));
    // The node now runs ours: DEL (with the cached mappings, as a runtime sends them)
    // removes the reference's chain.
    host.cni().del_network_list(&list, &rt_a).unwrap();
    let nat = nat_table(&host);
    assert!(!nat.contains(&ip) && !nat.contains("CNI-DN-"), "{nat}");
    assert_eq!(fetch(host.outside.path_str(), HOST_IP, 8080), None);
}

#[test]
fn concurrent_adds_on_a_fresh_node_create_the_structure_once() {
    let host = Host::new();
    let ctrs: Vec<TestNetns> = (0..12).map(|_| container(&host)).collect();
    let data = host.data().join("portmap");
    let handles: Vec<_> = ctrs
        .iter()
        .enumerate()
        .map(|(i, ctr)| {
            let call = host
                .sb
                .call(plugin_bin("portmap"), "ADD")
                .container(&format!("conc-{i}"), ctr.path_str(), "eth0")
                .stdin_json(&json!({
                    "cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
                    "dataDir": data,
                    "runtimeConfig": {"portMappings": [
                        {"hostPort": 9000 + i, "containerPort": 80},
                        {"hostPort": 9000 + i, "containerPort": 80, "protocol": "udp"}]},
                    "prevResult": {"cniVersion": "1.0.0",
                                   "ips": [{"address": format!("10.95.0.{}/24", i + 2)},
                                           {"address": format!("fd95::{}/64", i + 2)}]}
                }));
            std::thread::spawn(move || call.run())
        })
        .collect();
    for h in handles {
        h.join().unwrap().assert_ok();
    }
    let chain = |name: &str| {
        host.sb
            .host_run(&["nft", "list", "chain", "inet", "cni_portmap", name])
    };
    assert_eq!(chain("prerouting").matches("jump hostports").count(), 1);
    assert_eq!(chain("hostports").matches("dnat ip").count(), 4);
    // One hairpin and one localhost rule for the IPv4 subnet, one hairpin for IPv6.
    assert_eq!(
        chain("hairpin").matches("masquerade").count(),
        3,
        "{}",
        chain("hairpin")
    );
    let any4 = host
        .sb
        .host_run(&["nft", "list", "map", "inet", "cni_portmap", "dnat4_any"]);
    assert_eq!(any4.matches(" : 10.95.0.").count(), 24, "{any4}");
    for (i, ctr) in ctrs.iter().enumerate() {
        host.sb
            .call(plugin_bin("portmap"), "DEL")
            .container(&format!("conc-{i}"), ctr.path_str(), "eth0")
            .stdin_json(
                &json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "portmap",
                                "dataDir": data}),
            )
            .run()
            .assert_ok_empty();
    }
    let ruleset = host.ruleset();
    for i in 2..14 {
        assert!(!ruleset.contains(&format!("10.95.0.{i}")), "{ruleset}");
    }
    assert!(!ruleset.contains("conc-"), "{ruleset}");
}

#[test]
fn older_versions_status_and_version() {
    let host = Host::new();
    let ctr = container(&host);
    let data = host.data().join("portmap");
    // 0.3.1: prevResult with ips[].version, passed through in the same shape.
    let conf = json!({
        "cniVersion": "0.3.1", "name": "pmnet", "type": "portmap", "dataDir": data,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        "prevResult": {"cniVersion": "0.3.1",
                       "interfaces": [{"name": "eth0", "sandbox": ctr.path_str()}],
                       "ips": [{"version": "4", "address": "10.96.0.2/24", "interface": 0}]}
    });
    let out = host
        .sb
        .call(plugin_bin("portmap"), "ADD")
        .container("old", ctr.path_str(), "eth0")
        .stdin_json(&conf)
        .run()
        .assert_ok();
    assert_eq!(out["cniVersion"], "0.3.1");
    assert_eq!(out["ips"][0]["version"], "4");
    assert!(host.ruleset().contains("10.96.0.2"));
    // CHECK needs 0.4.0.
    host.sb
        .call(plugin_bin("portmap"), "CHECK")
        .container("old", ctr.path_str(), "eth0")
        .stdin_json(&conf)
        .run()
        .assert_error(1);
    host.sb
        .call(plugin_bin("portmap"), "DEL")
        .container("old", ctr.path_str(), "eth0")
        .stdin_json(&conf)
        .run()
        .assert_ok_empty();
    assert!(!host.ruleset().contains("10.96.0.2"));
    for backend in ["nftables", "iptables"] {
        host.sb
            .call(plugin_bin("portmap"), "STATUS")
            .stdin_json(
                &json!({"cniVersion": "1.1.0", "name": "pmnet", "type": "portmap",
                                "backend": backend}),
            )
            .run()
            .assert_ok_empty();
    }
    let v = host
        .sb
        .call(plugin_bin("portmap"), "VERSION")
        .stdin_json(&json!({"cniVersion": "1.1.0"}))
        .run()
        .assert_ok();
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("0.3.1"))
    );
}
