//! dnsname and the cni-dns sidecar, black box: the plugin run as a runtime runs it (env,
//! stdin with a prevResult as bridge + host-local produce it) inside a private "host" netns
//! with bridges standing in for networks, containers on veths, and `dig` asking from the
//! containers. Upstream servers are a fake one started in a namespace of the test; the
//! sidecar reads a resolv.conf of the test's, never the machine's.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cni_tests::{PluginCall, RawOutcome, Sandbox, TestNetns, plugin_bin};
use serde_json::{Value, json};

static VETH: AtomicUsize = AtomicUsize::new(0);

struct Env {
    sb: Sandbox,
}

impl Env {
    fn new() -> Env {
        let env = Env { sb: Sandbox::new() };
        std::fs::write(env.resolv_conf(), "# no upstream\n").unwrap();
        env
    }

    fn store(&self) -> PathBuf {
        self.sb.dir().join("dns")
    }

    fn resolv_conf(&self) -> PathBuf {
        self.sb.dir().join("resolv.conf")
    }

    /// A bridge in the host with the network's gateway address.
    fn bridge(&self, name: &str, gateway_cidr: &str) {
        self.sb
            .host_run(&["ip", "link", "add", name, "type", "bridge"]);
        self.sb
            .host_run(&["ip", "addr", "add", gateway_cidr, "dev", name]);
        self.sb.host_run(&["ip", "link", "set", name, "up"]);
    }

    /// Plugs `ctr` into `bridge` as `ifname` with `addr_cidr`.
    fn plug(&self, ctr: &TestNetns, bridge: &str, ifname: &str, addr_cidr: &str) {
        let host_end = format!("dv{}", VETH.fetch_add(1, Ordering::SeqCst));
        self.sb.host_run(&[
            "ip",
            "link",
            "add",
            &host_end,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            ctr.path_str(),
        ]);
        self.sb
            .host_run(&["ip", "link", "set", &host_end, "master", bridge, "up"]);
        ctr.run(&["ip", "addr", "add", addr_cidr, "dev", ifname]);
        ctr.run(&["ip", "link", "set", ifname, "up"]);
    }

    fn container(&self, bridge: &str, addr_cidr: &str) -> TestNetns {
        let ctr = self.sb.container();
        ctr.lo_up();
        self.plug(&ctr, bridge, "eth0", addr_cidr);
        ctr
    }

    fn conf(&self, network: &str, version: &str, prev: Option<Value>) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": network,
            "type": "dnsname",
            "domainName": "dns.podman",
            "capabilities": {"aliases": true},
            "dataDir": self.store(),
            "upstreamResolvConf": self.resolv_conf(),
        });
        if let Some(prev) = prev {
            conf["prevResult"] = prev;
        }
        conf
    }

    fn call(&self, command: &str, id: &str, ctr: &str, ifname: &str, conf: &Value) -> PluginCall {
        self.sb
            .call(plugin_bin("dnsname"), command)
            .container(id, ctr, ifname)
            .stdin_json(conf)
    }

    /// ADD as podman sends it: the name in CNI_ARGS, aliases in runtimeConfig.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        network: &str,
        id: &str,
        name: &str,
        aliases: &[&str],
        ctr: &TestNetns,
        ifname: &str,
        addr_cidr: &str,
        gateway: &str,
    ) -> Value {
        let mut conf = self.conf(
            network,
            "1.0.0",
            Some(prev_result(ctr, ifname, addr_cidr, gateway)),
        );
        conf["runtimeConfig"] = json!({"aliases": {network: aliases}});
        self.call("ADD", id, ctr.path_str(), ifname, &conf)
            .cni_args(&format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME={name}"
            ))
            .run()
            .assert_ok()
    }

    fn del(&self, network: &str, id: &str, netns: &str, ifname: &str) -> RawOutcome {
        self.call("DEL", id, netns, ifname, &self.conf(network, "1.0.0", None))
            .run()
    }

    fn sidecar_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.store().join("cni-dns.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        std::path::Path::new(&format!("/proc/{pid}"))
            .exists()
            .then_some(pid)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.store().join("cni-dns.log")).unwrap_or_default()
    }
}

/// What bridge with host-local returns: the host's bridge and veth end, the container's
/// interface, one address with its gateway, a default route.
fn prev_result(ctr: &TestNetns, ifname: &str, addr_cidr: &str, gateway: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni-podman0", "mac": "7a:3c:1e:00:00:01"},
            {"name": "veth1234", "mac": "7a:3c:1e:00:00:02"},
            {"name": ifname, "mac": "7a:3c:1e:00:00:03", "sandbox": ctr.path_str()},
        ],
        "ips": [{"address": addr_cidr, "gateway": gateway, "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
    })
}

/// `dig +short` from inside `ctr`: the answer lines.
fn dig(ctr: &TestNetns, server: &str, args: &[&str]) -> Vec<String> {
    let at = format!("@{server}");
    let mut all = vec!["dig", "+short", "+time=2", "+tries=1", at.as_str()];
    all.extend_from_slice(args);
    let out = ctr.exec(&all);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.starts_with(";;"))
        .collect()
}

/// The status word dig prints (NOERROR, NXDOMAIN, SERVFAIL, REFUSED).
fn status(ctr: &TestNetns, server: &str, args: &[&str]) -> String {
    let at = format!("@{server}");
    let mut all = vec!["dig", "+time=2", "+tries=1", at.as_str()];
    all.extend_from_slice(args);
    let out = String::from_utf8_lossy(&ctr.exec(&all).stdout).into_owned();
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

const ID1: &str = "1111aaaa2222bbbb3333cccc4444dddd";
const ID2: &str = "5555eeee6666ffff77770000888899990";
const ID3: &str = "abcabcabcabcabcabcabc";

#[test]
fn names_aliases_fqdn_ptr_round_robin_and_del() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    let c2 = env.container("br-a", "10.91.0.3/24");
    let r = env.add(
        "neta",
        ID1,
        "web",
        &["db", "lb"],
        &c1,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    assert_eq!(r["dns"]["nameservers"], json!(["10.91.0.1"]));
    assert_eq!(r["dns"]["search"], json!(["dns.podman"]));
    assert_eq!(r["ips"][0]["address"], "10.91.0.2/24");
    assert_eq!(r["interfaces"][2]["sandbox"], c1.path_str());
    env.add(
        "neta",
        ID2,
        "api",
        &["lb"],
        &c2,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );

    let gw = "10.91.0.1";
    assert_eq!(dig(&c2, gw, &["web"]), vec!["10.91.0.2"]);
    assert_eq!(dig(&c2, gw, &["WEB.DNS.podman"]), vec!["10.91.0.2"]);
    assert_eq!(dig(&c2, gw, &["db.dns.podman."]), vec!["10.91.0.2"]);
    assert_eq!(dig(&c2, gw, &[&ID1[..12]]), vec!["10.91.0.2"]);
    assert_eq!(dig(&c1, gw, &["+tcp", "api"]), vec!["10.91.0.3"]);
    assert_eq!(dig(&c1, gw, &["-x", "10.91.0.3"]), vec!["api.dns.podman."]);
    assert!(dig(&c1, gw, &["web", "AAAA"]).is_empty());
    assert_eq!(status(&c1, gw, &["web", "AAAA"]), "NOERROR");
    assert_eq!(status(&c1, gw, &["nope.dns.podman"]), "NXDOMAIN");
    assert_eq!(status(&c1, gw, &["-x", "10.91.0.77"]), "NXDOMAIN");

    // One alias on two containers: both addresses, in both orders over a few queries.
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..24 {
        let mut got = dig(&c1, gw, &["lb"]);
        firsts.insert(got[0].clone());
        got.sort();
        assert_eq!(got, vec!["10.91.0.2", "10.91.0.3"]);
    }
    assert_eq!(firsts.len(), 2, "answers are never shuffled");

    // CHECK (0.4.0 and 1.x), then DEL: the names go, DEL again and without netns succeed.
    for version in ["0.4.0", "1.1.0"] {
        let mut conf = env.conf(
            "neta",
            version,
            Some(prev_result(&c1, "eth0", "10.91.0.2/24", gw)),
        );
        conf["runtimeConfig"] = json!({"aliases": {"neta": ["db", "lb"]}});
        env.call("CHECK", ID1, c1.path_str(), "eth0", &conf)
            .cni_args("IgnoreUnknown=1;K8S_POD_NAME=web")
            .run()
            .assert_ok_empty();
    }
    env.del("neta", ID1, c1.path_str(), "eth0")
        .assert_ok_empty();
    assert_eq!(status(&c2, gw, &["web.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig(&c2, gw, &["lb"]), vec!["10.91.0.3"]);
    env.del("neta", ID1, c1.path_str(), "eth0")
        .assert_ok_empty();
    env.del("neta", ID1, "", "eth0").assert_ok_empty();
    env.del("never-seen", ID1, "", "eth0").assert_ok_empty();
}

#[test]
fn networks_are_isolated_and_a_container_on_two_resolves_both() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    env.bridge("br-b", "10.92.0.1/24");
    let a = env.container("br-a", "10.91.0.2/24");
    let b = env.container("br-b", "10.92.0.2/24");
    let both = env.container("br-a", "10.91.0.3/24");
    env.plug(&both, "br-b", "eth1", "10.92.0.3/24");
    env.add(
        "neta",
        ID1,
        "alpha",
        &[],
        &a,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    env.add(
        "netb",
        ID2,
        "beta",
        &[],
        &b,
        "eth0",
        "10.92.0.2/24",
        "10.92.0.1",
    );
    env.add(
        "neta",
        ID3,
        "gamma",
        &[],
        &both,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );
    env.add(
        "netb",
        ID3,
        "gamma",
        &["g2"],
        &both,
        "eth1",
        "10.92.0.3/24",
        "10.92.0.1",
    );

    // b cannot see a's names, by either gateway; a cannot see b's.
    assert!(dig(&b, "10.92.0.1", &["alpha"]).is_empty());
    assert_eq!(status(&b, "10.92.0.1", &["alpha.dns.podman"]), "NXDOMAIN");
    assert!(dig(&a, "10.91.0.1", &["beta"]).is_empty());
    assert_eq!(status(&a, "10.91.0.1", &["-x", "10.92.0.2"]), "SERVFAIL");
    // The container on both networks resolves both, whichever gateway it asks.
    assert_eq!(dig(&both, "10.91.0.1", &["alpha"]), vec!["10.91.0.2"]);
    assert_eq!(
        dig(&both, "10.91.0.1", &["beta.dns.podman"]),
        vec!["10.92.0.2"]
    );
    assert_eq!(dig(&both, "10.92.0.1", &["alpha"]), vec!["10.91.0.2"]);
    // Its own name gives the address of each network the asker shares with it.
    assert_eq!(dig(&a, "10.91.0.1", &["gamma"]), vec!["10.91.0.3"]);
    assert_eq!(dig(&b, "10.92.0.1", &["g2"]), vec!["10.92.0.3"]);
    assert!(dig(&a, "10.91.0.1", &["g2"]).is_empty());

    // Someone outside every network is refused (no open resolver).
    env.sb
        .host_run(&["ip", "addr", "add", "172.31.9.1/24", "dev", "br-a"]);
    let stranger = env.container("br-a", "172.31.9.9/24");
    assert_eq!(status(&stranger, "10.91.0.1", &["alpha"]), "no answer");
    stranger.run(&["ip", "route", "add", "10.91.0.0/24", "dev", "eth0"]);
    assert_eq!(status(&stranger, "10.91.0.1", &["alpha"]), "REFUSED");
}

/// A fake upstream: answers `<anything>.test` A with 198.51.100.<last octet of the address it
/// was asked on>, everything else NXDOMAIN.
const FAKE_UPSTREAM: &str = r#"
import socket, sys, threading
def serve(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    last = int(addr.split('.')[-1])
    while True:
        q, src = s.recvfrom(4096)
        i, labels = 12, []
        while i < len(q) and q[i] != 0:
            labels.append(q[i+1:i+1+q[i]].decode('ascii', 'replace').lower()); i += 1 + q[i]
        qend = i + 5
        ok = labels and labels[-1] == 'test'
        head = q[:2] + bytes([0x80 | (q[2] & 0x01), 0x80 | (0 if ok else 3)]) + b'\x00\x01' + (b'\x00\x01' if ok else b'\x00\x00') + b'\x00\x00\x00\x00'
        answer = b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + bytes([198, 51, 100, last]) if ok else b''
        s.sendto(head + q[12:qend] + answer, src)
for a in sys.argv[1:]:
    threading.Thread(target=serve, args=(a,), daemon=True).start()
threading.Event().wait()
"#;

struct Upstream {
    child: Child,
    _ns: TestNetns,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A namespace joined to the host by a veth (host end 192.0.2.1/24) running the fake
/// upstream on 192.0.2.53 and 192.0.2.54.
fn upstream(env: &Env) -> Upstream {
    let ns = TestNetns::new();
    ns.lo_up();
    env.sb.host_run(&[
        "ip",
        "link",
        "add",
        "vup",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.path_str(),
    ]);
    env.sb
        .host_run(&["ip", "addr", "add", "192.0.2.1/24", "dev", "vup"]);
    env.sb.host_run(&["ip", "link", "set", "vup", "up"]);
    for a in ["192.0.2.53/24", "192.0.2.54/24"] {
        ns.run(&["ip", "addr", "add", a, "dev", "eth0"]);
    }
    ns.run(&["ip", "link", "set", "eth0", "up"]);
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "python3", "-c", FAKE_UPSTREAM])
        .args(["192.0.2.53", "192.0.2.54"])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    // Ready when it answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env
        .sb
        .host_exec(&[
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            "@192.0.2.53",
            "ready.test",
        ])
        .stdout
        .starts_with(b"198.51.100.53")
    {
        assert!(Instant::now() < deadline, "the fake upstream did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Upstream { child, _ns: ns }
}

#[test]
fn forwards_other_names_to_the_resolv_conf_servers_and_follows_changes() {
    let env = Env::new();
    let _up = upstream(&env);
    // The first server is dead: the next one answers well within a client's 5 s.
    std::fs::write(
        env.resolv_conf(),
        "search example.com\nnameserver 192.0.2.99\nnameserver 192.0.2.53\n",
    )
    .unwrap();
    env.bridge("br-a", "10.91.0.1/24");
    let c = env.container("br-a", "10.91.0.2/24");
    env.add(
        "neta",
        ID1,
        "web",
        &[],
        &c,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    // A container named as an outside name does not take it over: it answers under the
    // network's domain only.
    let impostor = env.container("br-a", "10.91.0.3/24");
    env.add(
        "neta",
        ID2,
        "www.example.test",
        &["api.example.test", "db"],
        &impostor,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );
    // dig gives up after 4 s: the dead first server leaves time for the second.
    let at = "@10.91.0.1";
    let out = c.run(&[
        "dig",
        "+short",
        "+time=4",
        "+tries=1",
        at,
        "www.example.test",
    ]);
    assert_eq!(out.trim(), "198.51.100.53");
    assert_eq!(
        dig(&c, "10.91.0.1", &["+time=4", "api.example.test"]),
        vec!["198.51.100.53"]
    );
    assert_eq!(
        dig(&c, "10.91.0.1", &["www.example.test.dns.podman"]),
        vec!["10.91.0.3"]
    );
    assert_eq!(dig(&c, "10.91.0.1", &["db"]), vec!["10.91.0.3"]);
    assert_eq!(
        status(&c, "10.91.0.1", &["+time=5", "unknown.invalid"]),
        "NXDOMAIN"
    );
    assert_eq!(
        dig(&c, "10.91.0.1", &["+tcp", "+time=5", "tcp.test"]),
        vec!["198.51.100.53"]
    );
    // Our own names never go upstream, even when the upstream knows them.
    assert_eq!(status(&c, "10.91.0.1", &["nope.dns.podman"]), "NXDOMAIN");

    // A new resolv.conf is picked up without a restart.
    std::fs::write(env.resolv_conf(), "nameserver 192.0.2.54\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if dig(&c, "10.91.0.1", &["again.test"]) == vec!["198.51.100.54"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resolv.conf change not picked up:\n{}",
            env.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_sidecar_comes_back_with_its_records_on_the_next_add() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    let c2 = env.container("br-a", "10.91.0.3/24");
    env.add(
        "neta",
        ID1,
        "one",
        &[],
        &c1,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    let pid = env.sidecar_pid().expect("sidecar running");
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dig(&c2, "10.91.0.1", &["one"]).is_empty());
    env.add(
        "neta",
        ID2,
        "two",
        &[],
        &c2,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );
    let again = env.sidecar_pid().expect("sidecar restarted");
    assert_ne!(again, pid);
    assert_eq!(dig(&c2, "10.91.0.1", &["one"]), vec!["10.91.0.2"]);
    assert_eq!(dig(&c1, "10.91.0.1", &["two"]), vec!["10.91.0.3"]);
}

#[test]
fn gc_removes_stale_records_and_the_sidecar_exits_with_the_last_network() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    let c2 = env.container("br-a", "10.91.0.3/24");
    env.add(
        "neta",
        ID1,
        "one",
        &[],
        &c1,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    env.add(
        "neta",
        ID2,
        "two",
        &[],
        &c2,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );
    let mut gc = env.conf("neta", "1.1.0", None);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": ID2, "ifname": "eth0"}]);
    // GC reads only where the records are: a config broken since the ADDs still collects.
    gc["domainName"] = json!("not a domain!");
    env.sb
        .call(plugin_bin("dnsname"), "GC")
        .stdin_json(&gc)
        .run()
        .assert_ok_empty();
    assert_eq!(status(&c2, "10.91.0.1", &["one.dns.podman"]), "NXDOMAIN");
    assert_eq!(dig(&c1, "10.91.0.1", &["two"]), vec!["10.91.0.3"]);
    // STATUS while it runs.
    env.sb
        .call(plugin_bin("dnsname"), "STATUS")
        .stdin_json(&env.conf("neta", "1.1.0", None))
        .run()
        .assert_ok_empty();
    let pid = env.sidecar_pid().unwrap();
    env.del("neta", ID2, c2.path_str(), "eth0")
        .assert_ok_empty();
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.sidecar_pid() == Some(pid) {
        assert!(
            Instant::now() < deadline,
            "sidecar still running:\n{}",
            env.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(env.log().contains("no network left"), "{}", env.log());
    // STATUS when it is not running: it can be started.
    env.sb
        .call(plugin_bin("dnsname"), "STATUS")
        .stdin_json(&env.conf("neta", "1.1.0", None))
        .run()
        .assert_ok_empty();
}

#[test]
fn changes_lose_no_query() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    let c2 = env.container("br-a", "10.91.0.3/24");
    env.add(
        "neta",
        ID1,
        "stable",
        &[],
        &c1,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    let batch = env.sb.dir().join("batch");
    std::fs::write(&batch, "stable\n".repeat(400)).unwrap();
    let querier = Command::new("ip")
        .args([
            "netns",
            "exec",
            c2.name(),
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
        ])
        .arg("@10.91.0.1")
        .arg("-f")
        .arg(&batch)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile, names come and go.
    for i in 0..30 {
        let id = format!("churn{i:04}");
        env.add(
            "neta",
            &id,
            &format!("churn{i}"),
            &[],
            &c2,
            "eth0",
            "10.91.0.3/24",
            "10.91.0.1",
        );
        env.del("neta", &id, c2.path_str(), "eth0")
            .assert_ok_empty();
    }
    let out = querier.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 400, "{lines:?}");
    assert!(lines.iter().all(|l| l == "10.91.0.2"), "{lines:?}");
}

/// Network `neta` on br-a with `web` (10.91.0.2) and a second container (10.91.0.3).
fn web_and_a_client() -> (Env, TestNetns, TestNetns) {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let web = env.container("br-a", "10.91.0.2/24");
    let client = env.container("br-a", "10.91.0.3/24");
    env.add(
        "neta",
        ID1,
        "web",
        &[],
        &web,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    (env, web, client)
}

/// Holds TCP connections idle or half-sent and sends garbage over UDP and TCP.
const ABUSER: &str = r#"
import socket, sys, time
gw = sys.argv[1]
held = []
for i in range(20):
    s = socket.create_connection((gw, 53)); held.append(s)
for i in range(5):
    s = socket.create_connection((gw, 53)); s.send(b'\x01\x00' + b'\x00' * 10); held.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in range(0, 600, 7):
    u.sendto(bytes((n * 31 + k) % 256 for k in range(n)), (gw, 53))
u.sendto(b'\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ab', (gw, 53))
u.settimeout(2)
verdict = 'no reply'
try:
    while True:
        reply = u.recvfrom(512)[0]
        if reply[:2] == b'\x12\x34':
            verdict = 'formerr' if reply[3] & 0x0f == 1 else 'other'
            break
except socket.timeout:
    pass
print(verdict, flush=True)
time.sleep(4)
"#;

#[test]
fn slow_and_malformed_clients_do_not_block_others() {
    let (env, c1, c2) = web_and_a_client();
    let mut abuser = Command::new("ip")
        .args([
            "netns",
            "exec",
            c2.name(),
            "python3",
            "-c",
            ABUSER,
            "10.91.0.1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(dig(&c1, "10.91.0.1", &["+tcp", "web"]), vec!["10.91.0.2"]);
        assert_eq!(dig(&c2, "10.91.0.1", &["web"]), vec!["10.91.0.2"]);
    }
    let status = abuser.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut abuser.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success());
    assert_eq!(out.trim(), "formerr");
    // Still alive and well.
    assert_eq!(dig(&c2, "10.91.0.1", &["+tcp", "web"]), vec!["10.91.0.2"]);
    assert!(env.sidecar_pid().is_some());
}

#[test]
fn bad_input_and_check_failures() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    // No prevResult, no address, no gateway, a bad alias: config errors, nothing recorded.
    let no_prev = env.conf("neta", "1.0.0", None);
    env.call("ADD", ID1, c1.path_str(), "eth0", &no_prev)
        .run()
        .assert_error(7);
    let mut no_gw = env.conf(
        "neta",
        "1.0.0",
        Some(prev_result(&c1, "eth0", "10.91.0.2/24", "10.91.0.1")),
    );
    no_gw["prevResult"]["ips"][0]
        .as_object_mut()
        .unwrap()
        .remove("gateway");
    env.call("ADD", ID1, c1.path_str(), "eth0", &no_gw)
        .run()
        .assert_error_containing(7, "gateway");
    let mut bad_alias = env.conf(
        "neta",
        "1.0.0",
        Some(prev_result(&c1, "eth0", "10.91.0.2/24", "10.91.0.1")),
    );
    bad_alias["runtimeConfig"] = json!({"aliases": ["ok", "not ok"]});
    env.call("ADD", ID1, c1.path_str(), "eth0", &bad_alias)
        .run()
        .assert_error_containing(7, "alias");
    assert!(env.sidecar_pid().is_none());

    // The list form of aliases, at 0.4.0.
    let mut conf = env.conf(
        "neta",
        "0.4.0",
        Some(prev_result(&c1, "eth0", "10.91.0.2/24", "10.91.0.1")),
    );
    conf["prevResult"]["cniVersion"] = json!("0.4.0");
    conf["runtimeConfig"] = json!({"aliases": ["listed"]});
    let r = env
        .call("ADD", ID1, c1.path_str(), "eth0", &conf)
        .run()
        .assert_ok();
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["dns"]["nameservers"], json!(["10.91.0.1"]));
    assert_eq!(dig(&c1, "10.91.0.1", &["listed"]), vec!["10.91.0.2"]);
    env.call("CHECK", ID1, c1.path_str(), "eth0", &conf)
        .run()
        .assert_ok_empty();
    // CHECK notices a record that differs or is gone.
    let mut other = conf.clone();
    other["runtimeConfig"] = json!({"aliases": ["renamed"]});
    env.call("CHECK", ID1, c1.path_str(), "eth0", &other)
        .run()
        .assert_error(103);
    env.del("neta", ID1, c1.path_str(), "eth0")
        .assert_ok_empty();
    env.call("CHECK", ID1, c1.path_str(), "eth0", &conf)
        .run()
        .assert_error(103);
    let bad: IpAddr = "10.91.0.2".parse().unwrap();
    assert!(dig(&c1, "10.91.0.1", &["listed"]).is_empty(), "{bad}");
}

#[test]
fn del_succeeds_with_an_invalid_config_and_a_hung_sidecar() {
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let c1 = env.container("br-a", "10.91.0.2/24");
    let c2 = env.container("br-a", "10.91.0.3/24");
    let prev = prev_result(&c1, "eth0", "10.91.0.2/24", "10.91.0.1");
    // An ADD rejected for its domainName or dataDir records nothing; the DEL that follows
    // succeeds with the same config.
    let mut bad_domain = env.conf("neta", "1.0.0", Some(prev.clone()));
    bad_domain["domainName"] = json!("not a name!");
    env.call("ADD", ID1, c1.path_str(), "eth0", &bad_domain)
        .run()
        .assert_error_containing(7, "domainName");
    let mut relative = env.conf("neta", "1.0.0", Some(prev.clone()));
    relative["dataDir"] = json!("relative/dns");
    env.call("ADD", ID1, c1.path_str(), "eth0", &relative)
        .run()
        .assert_error_containing(7, "dataDir");
    for conf in [&bad_domain, &relative] {
        let mut del = conf.clone();
        del.as_object_mut().unwrap().remove("prevResult");
        env.call("DEL", ID1, c1.path_str(), "eth0", &del)
            .run()
            .assert_ok_empty();
    }
    assert!(env.sidecar_pid().is_none());

    // A recorded attachment goes with a DEL whose domainName is invalid: DEL reads only
    // dataDir and the network name.
    env.add(
        "neta",
        ID1,
        "one",
        &[],
        &c1,
        "eth0",
        "10.91.0.2/24",
        "10.91.0.1",
    );
    env.add(
        "neta",
        ID2,
        "two",
        &[],
        &c2,
        "eth0",
        "10.91.0.3/24",
        "10.91.0.1",
    );
    assert_eq!(dig(&c2, "10.91.0.1", &["one"]), vec!["10.91.0.2"]);
    let mut del = bad_domain.clone();
    del.as_object_mut().unwrap().remove("prevResult");
    env.call("DEL", ID1, c1.path_str(), "eth0", &del)
        .run()
        .assert_ok_empty();
    let record = |id: &str| env.store().join("networks/neta").join(format!("{id}@eth0"));
    assert!(!record(ID1).exists());
    assert_eq!(status(&c2, "10.91.0.1", &["one.dns.podman"]), "NXDOMAIN");

    // A sidecar that does not answer (stopped) does not fail the DEL once the record is gone;
    // it drops the name when it runs again.
    let pid = env.sidecar_pid().expect("sidecar running");
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP");
    let started = Instant::now();
    let outcome = env.del("neta", ID2, c2.path_str(), "eth0");
    signal("-CONT");
    outcome.assert_ok_empty();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(!record(ID2).exists());
}

/// The sidecars of `store` that hold a lock (the pid file's: the one serving; a starter
/// waiting for an exiting one holds none).
fn serving_sidecars(store: &std::path::Path) -> Vec<u32> {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let store = store.to_string_lossy().into_owned();
    let mut pids: Vec<u32> = locks
        .lines()
        .filter(|l| l.contains("FLOCK") && l.contains("WRITE") && !l.contains("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("cni-dns") && cmdline.contains(&store)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Many single-container networks coming and going, 8 at a time: the sidecar exits with the
/// last network while plugins start new ones. There is never more than one serving, and
/// every ADD succeeds.
#[test]
fn one_sidecar_per_data_dir_under_churn() {
    const WORKERS: usize = 8;
    const ROUNDS: usize = 12;
    let env = Env::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let most = std::sync::atomic::AtomicUsize::new(0);
    /// Stops the monitor however the workers end (a worker's panic included).
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    std::thread::scope(|scope| {
        let monitor = scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let serving = serving_sidecars(&env.store());
                most.fetch_max(serving.len(), Ordering::SeqCst);
                assert!(serving.len() <= 1, "two sidecars serve: {serving:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let stopper = StopOnDrop(&stop);
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let env = &env;
                scope.spawn(move || {
                    let bridge = format!("brc{w}");
                    env.bridge(&bridge, &format!("10.93.{w}.1/24"));
                    let addr = format!("10.93.{w}.2/24");
                    let ctr = env.container(&bridge, &addr);
                    for r in 0..ROUNDS {
                        let (network, id) = (format!("churn{w}"), format!("churn{w}x{r}"));
                        env.add(
                            &network,
                            &id,
                            &format!("c{w}"),
                            &[],
                            &ctr,
                            "eth0",
                            &addr,
                            &format!("10.93.{w}.1"),
                        );
                        env.del(&network, &id, ctr.path_str(), "eth0")
                            .assert_ok_empty();
                    }
                })
            })
            .collect();
        let ended: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        drop(stopper);
        monitor.join().unwrap();
        for worker in ended {
            worker.unwrap();
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 1, "no sidecar was ever seen");
}

/// The cgroup v2 hierarchy's mount point (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` in a
/// hybrid setup).
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2")
            .then(|| mount.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// A cgroup standing in for the runtime's (podman's unit, containerd's service); removed on
/// drop.
struct RuntimeCgroup(PathBuf);

impl Drop for RuntimeCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// podman's unit or containerd's service runs the plugin in its cgroup, with its environment
/// (`NOTIFY_SOCKET` under systemd): the sidecar the plugin starts keeps neither, so stopping
/// the runtime does not stop DNS. Its control socket is its owner's alone and its open file
/// limit fits its connection limits.
#[test]
fn a_started_sidecar_leaves_the_runtimes_cgroup_and_environment() {
    let mount = cgroup2_mount();
    if !test_requires::require(
        mount.is_some(),
        "a cgroup2 hierarchy",
        "mount -t cgroup2 none /sys/fs/cgroup",
    ) {
        return;
    }
    let Some(mount) = mount else { return };
    let env = Env::new();
    env.bridge("br-a", "10.91.0.1/24");
    let ctr = env.container("br-a", "10.91.0.2/24");
    let name = format!("cni-test-runtime-{}", std::process::id());
    let runtime = RuntimeCgroup(mount.join(&name));
    std::fs::create_dir(&runtime.0).unwrap();
    // The sandbox runs plugins with a /sys of their own, where no cgroup hierarchy is
    // mounted: mount it where a host has it, then join the runtime's cgroup.
    let wrapper = env.sb.dir().join("runtime-dnsname");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             grep -q ' - cgroup2 ' /proc/self/mountinfo || mount -t cgroup2 none /sys/fs/cgroup || exit 1\n\
             cg=$(awk '/ - cgroup2 / {{print $5; exit}}' /proc/self/mountinfo)\n\
             echo $$ > \"$cg/{name}/cgroup.procs\" || exit 1\n\
             exec '{}' \"$@\"\n",
            plugin_bin("dnsname").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut conf = env.conf(
        "neta",
        "1.0.0",
        Some(prev_result(&ctr, "eth0", "10.91.0.2/24", "10.91.0.1")),
    );
    conf["runtimeConfig"] = json!({"aliases": {"neta": []}});
    env.sb
        .call(&wrapper, "ADD")
        .container(ID1, ctr.path_str(), "eth0")
        .cni_args("IgnoreUnknown=1;K8S_POD_NAME=web")
        .env("NOTIFY_SOCKET", "/run/cni-test-notify")
        .stdin_json(&conf)
        .run()
        .assert_ok();
    let pid = env.sidecar_pid().expect("sidecar running");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unified = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default();
    assert!(unified.ends_with("/cni-dns"), "{cgroups}");
    let left_in_runtime = std::fs::read_to_string(runtime.0.join("cgroup.procs")).unwrap();
    assert!(left_in_runtime.trim().is_empty(), "{left_in_runtime}");

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        vars.iter().all(|v| v.starts_with("PATH=")),
        "the runtime's environment leaked: {vars:?}"
    );

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.store().join("control.sock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "control socket mode {mode:o}");

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<u64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (open_files[0], open_files[1]);
    assert!(soft >= hard.min(1024 + 128 + 256), "{limits}");

    env.del("neta", ID1, ctr.path_str(), "eth0")
        .assert_ok_empty();
    // The sidecar exits with its last network; its cgroup, empty then, goes too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.sidecar_pid() == Some(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir(mount.join("cni-dns"));
}

/// Opens 200 TCP connections to the server and holds them, then says so.
const HOARDER: &str = r#"
import socket, sys, time
held = [socket.create_connection((sys.argv[1], 53)) for _ in range(200)]
print('holding', flush=True)
time.sleep(2)
"#;

/// One client cannot take every TCP slot: it gets its share (an eighth) and others still get
/// answered over TCP.
#[test]
fn one_client_cannot_take_every_tcp_slot() {
    let (_env, c1, c2) = web_and_a_client();
    let mut hoarder = Command::new("ip")
        .args(["netns", "exec", c2.name(), "python3", "-c", HOARDER])
        .arg("10.91.0.1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(hoarder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "holding");
    assert_eq!(dig(&c1, "10.91.0.1", &["+tcp", "web"]), vec!["10.91.0.2"]);
    assert!(hoarder.wait().unwrap().success());
}
