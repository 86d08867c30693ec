//! Writes the fuzz targets' seed inputs: what podman (CNI backend), containerd's CRI,
//! nerdctl, kind (kindnet's ptp + portmap) and cnitool send each plugin, built by libcni's
//! own `build_request` (the bytes Go's libcni writes), for every command, with `prevResult`
//! in every version that has one, and what the dnsname plugin sends the DNS sidecar.
//!
//!   cargo run -p cni-fuzz-entries --example seeds -- fuzz/corpus
//!
//! Each file is `<dir>/<target>/seed-<what>`; `cargo fuzz cmin` later renames what it keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cni::{CniResult, Dns, Interface, IpConfig, Route, Version};
use cni_dns::store::Attachment;
use serde_json::{Map, Value, json};

/// How a runtime calls plugins: the variables it sets and the capability arguments it has.
struct Runtime {
    name: &'static str,
    container_id: &'static str,
    netns: &'static str,
    ifname: &'static str,
    args: &'static str,
    path: &'static str,
    caps: Value,
}

/// A network configuration list and the result its first plugin produces.
struct List {
    name: &'static str,
    conf: Value,
    result: CniResult,
}

struct Seeds {
    dir: PathBuf,
    written: BTreeMap<String, usize>,
}

impl Seeds {
    fn write(&mut self, target: &str, what: &str, data: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        let name: String = what
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
        *self.written.entry(target.to_string()).or_default() += 1;
    }

    /// One invocation in the entries' format (see `split_invocation`).
    fn invocation(&mut self, target: &str, what: &str, command: &str, rt: &Runtime, stdin: &[u8]) {
        let mut data = format!("{command}\n");
        let mut var = |name: &str, value: &str| {
            if !value.is_empty() {
                data.push_str(&format!("{name}={value}\n"));
            }
        };
        var("CNI_CONTAINERID", rt.container_id);
        // libcni sets no netns for DEL when the runtime has none; GC and STATUS have none.
        if !matches!(command, "GC" | "STATUS") {
            var("CNI_NETNS", rt.netns);
        }
        if !matches!(command, "GC" | "STATUS") {
            var("CNI_IFNAME", rt.ifname);
            var("CNI_ARGS", rt.args);
        }
        var("CNI_PATH", rt.path);
        data.push('\n');
        let mut bytes = data.into_bytes();
        bytes.extend_from_slice(stdin);
        self.write(target, what, &bytes);
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    let mut seeds = Seeds {
        dir,
        written: BTreeMap::new(),
    };
    let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf");
    for (list, rt) in lists(&conf_dir) {
        chain(&mut seeds, &list, &rt);
    }
    singles(&mut seeds);
    control(&mut seeds);
    for (target, n) in &seeds.written {
        println!("{target}: {n} seeds");
    }
}

fn podman() -> Runtime {
    Runtime {
        name: "podman",
        container_id: "3f2a9c1e7b4d8f60a1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4d5e6f7081",
        netns: "/run/netns/netns-6d0c5e2a-4f1b-3c8d-9e7a-1b2c3d4e5f60",
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_INFRA_CONTAINER_ID=3f2a9c1e7b4d8f60a1b2c3d4e5f60718293a4b5c6d7e8f901a2b3c4d5e6f7081;K8S_POD_NAME=web",
        path: "/usr/libexec/cni:/usr/lib/cni:/usr/local/lib/cni:/opt/cni/bin",
        caps: json!({
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
            ],
            "aliases": {"podman": ["web", "web-1"], "dnsnet": ["web"]},
            "mac": "92:d0:c6:0a:29:33",
            "ips": ["10.88.0.42"]
        }),
    }
}

fn containerd() -> Runtime {
    Runtime {
        name: "containerd",
        container_id: "b7e1c0d2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0",
        netns: "/var/run/netns/cni-0b5c2e4d-7a1f-6c3e-2d8b-9f0a1e2d3c4b",
        ifname: "eth0",
        args: "K8S_POD_INFRA_CONTAINER_ID=b7e1c0d2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0;K8S_POD_UID=1f2e3d4c-5b6a-7988-a1b2-c3d4e5f60718;IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx-6799fc88d8-x7k2p",
        path: "/opt/cni/bin",
        caps: json!({
            "portMappings": [
                {"hostPort": 30080, "containerPort": 80, "protocol": "tcp", "hostIP": "0.0.0.0"},
                {"hostPort": 30443, "containerPort": 443, "protocol": "sctp", "hostIP": "::"}
            ],
            "bandwidth": {"ingressRate": 1000000, "ingressBurst": 4294967295u64,
                          "egressRate": 2000000, "egressBurst": 4294967295u64},
            "io.kubernetes.cri.pod-annotations": {"kubernetes.io/ingress-bandwidth": "1M"},
            "cgroupPath": "/kubepods/besteffort/pod1f2e3d4c"
        }),
    }
}

fn nerdctl() -> Runtime {
    Runtime {
        name: "nerdctl",
        container_id: "default-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d",
        netns: "/proc/4242/ns/net",
        ifname: "eth0",
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
        path: "/usr/local/libexec/cni",
        caps: json!({
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "0.0.0.0"}
            ]
        }),
    }
}

fn kind() -> Runtime {
    Runtime {
        name: "kind",
        container_id: "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
        netns: "/var/run/netns/cni-3c4d5e6f-7a8b-9c0d-1e2f-3a4b5c6d7e8f",
        ifname: "eth0",
        args: "K8S_POD_INFRA_CONTAINER_ID=9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b;K8S_POD_UID=aa11bb22-cc33-dd44-ee55-ff6677889900;IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-abcde",
        path: "/opt/cni/bin",
        caps: json!({
            "portMappings": [
                {"hostPort": 80, "containerPort": 8080, "protocol": "tcp", "hostIP": ""},
                {"hostPort": 53, "containerPort": 5353, "protocol": "UDP"}
            ]
        }),
    }
}

fn cnitool() -> Runtime {
    Runtime {
        name: "cnitool",
        container_id: "cnitool-77383ca0a0715733ca6f",
        netns: "/var/run/netns/testing",
        ifname: "eth0",
        args: "IgnoreUnknown=1;IP=10.99.0.50,fd99::50",
        path: "/opt/cni/bin",
        caps: json!({"ips": ["10.99.0.50/16"], "ipRanges": [[{"subnet": "10.100.0.0/24"}]]}),
    }
}

fn ip(address: &str, gateway: Option<&str>, interface: Option<usize>) -> IpConfig {
    IpConfig {
        address: address.parse().expect("a seed address"),
        gateway: gateway.map(|g| g.parse().expect("a seed gateway")),
        interface,
    }
}

fn iface(name: &str, mac: &str, sandbox: &str) -> Interface {
    Interface {
        name: name.into(),
        mac: mac.into(),
        sandbox: sandbox.into(),
        ..Interface::default()
    }
}

fn route(dst: &str) -> Route {
    Route::new(dst.parse().expect("a seed route"), None)
}

/// A bridge plugin's result: the bridge, the host end, the container end with its address.
fn bridge_result(bridge: &str, netns: &str, ips: &[(&str, &str)], routes: &[&str]) -> CniResult {
    CniResult {
        interfaces: vec![
            iface(bridge, "de:ad:be:ef:00:01", ""),
            iface("veth2c4e6a8b", "8e:1f:2a:3b:4c:5d", ""),
            iface("eth0", "92:d0:c6:0a:29:33", netns),
        ],
        ips: ips.iter().map(|(a, g)| ip(a, Some(g), Some(2))).collect(),
        routes: routes.iter().map(|r| route(r)).collect(),
        dns: Dns::default(),
    }
}

/// A ptp plugin's result: the host end, the container end.
fn ptp_result(netns: &str, ips: &[(&str, &str)], routes: &[&str]) -> CniResult {
    CniResult {
        interfaces: vec![
            iface("veth9f3a1b2c", "7a:4b:3c:2d:1e:0f", ""),
            iface("eth0", "0a:58:0a:f4:01:05", netns),
        ],
        ips: ips.iter().map(|(a, g)| ip(a, Some(g), Some(1))).collect(),
        routes: routes.iter().map(|r| route(r)).collect(),
        dns: Dns::default(),
    }
}

fn read_conf(dir: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(file)).expect("read a conflist of conf/");
    serde_json::from_str(&text).expect("a conflist of conf/ is JSON")
}

/// The lists runtimes write, with the runtime that runs each.
fn lists(conf: &Path) -> Vec<(List, Runtime)> {
    let p = podman();
    let podman_default = json!({
        "cniVersion": "0.4.0", "name": "podman",
        "plugins": [
            {"type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
            {"type": "tuning"}
        ]
    });
    // `podman network create --ipv6 dnsnet`.
    let podman_dns = json!({
        "cniVersion": "0.4.0", "name": "dnsnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni-podman1", "isGateway": true, "ipMasq": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local",
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                      "ranges": [[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}],
                                 [{"subnet": "fd08:8b3c:1b4e:2d6f::/64",
                                   "gateway": "fd08:8b3c:1b4e:2d6f::1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"},
            {"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}}
        ]
    });
    let podman_result = bridge_result(
        "cni-podman0",
        p.netns,
        &[("10.88.0.42/16", "10.88.0.1")],
        &["0.0.0.0/0"],
    );
    let dns_result = bridge_result(
        "cni-podman1",
        p.netns,
        &[
            ("10.89.0.5/24", "10.89.0.1"),
            ("fd08:8b3c:1b4e:2d6f::5/64", "fd08:8b3c:1b4e:2d6f::1"),
        ],
        &["0.0.0.0/0", "::/0"],
    );
    let c = containerd();
    let containerd_result = bridge_result(
        "cni0",
        c.netns,
        &[("10.22.0.7/16", "10.22.0.1"), ("fd22::7/64", "fd22::1")],
        &["0.0.0.0/0", "::/0"],
    );
    let n = nerdctl();
    let nerdctl_result = bridge_result(
        "nerdctl0",
        n.netns,
        &[("10.4.0.2/24", "10.4.0.1")],
        &["0.0.0.0/0"],
    );
    let k = kind();
    let kind_result = ptp_result(k.netns, &[("10.244.1.5/24", "10.244.1.1")], &["0.0.0.0/0"]);
    let kind_dual = ptp_result(
        k.netns,
        &[
            ("10.244.1.5/24", "10.244.1.1"),
            ("fd00:10:244:1::5/64", "fd00:10:244:1::1"),
        ],
        &["0.0.0.0/0", "::/0"],
    );
    let kind_v6 = ptp_result(
        k.netns,
        &[("fd00:10:244:1::5/64", "fd00:10:244:1::1")],
        &["::/0"],
    );
    let t = cnitool();
    let hl_result = CniResult {
        ips: vec![
            ip("10.99.0.50/16", Some("10.99.0.1"), None),
            ip("fd99::50/64", Some("fd99::1"), None),
        ],
        routes: vec![route("0.0.0.0/0"), route("::/0")],
        ..CniResult::default()
    };
    let loopback_result = CniResult {
        interfaces: vec![iface("lo", "00:00:00:00:00:00", t.netns)],
        ips: vec![
            ip("127.0.0.1/8", None, Some(0)),
            ip("::1/128", None, Some(0)),
        ],
        ..CniResult::default()
    };
    let macvlan_list = json!({
        "cniVersion": "1.1.0", "name": "macnet",
        "plugins": [
            {"type": "macvlan", "master": "eth0", "mode": "bridge", "mtu": 1400,
             "capabilities": {"mac": true},
             "ipam": {"type": "host-local",
                      "ranges": [[{"subnet": "192.168.50.0/24", "rangeStart": "192.168.50.100",
                                   "rangeEnd": "192.168.50.200", "gateway": "192.168.50.1"}]],
                      "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.50.1"}]}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}
        ]
    });
    let macvlan_result = CniResult {
        interfaces: vec![iface("eth0", "92:d0:c6:0a:29:34", t.netns)],
        ips: vec![ip("192.168.50.100/24", Some("192.168.50.1"), Some(0))],
        routes: vec![Route::new(
            "0.0.0.0/0".parse().expect("a seed route"),
            "192.168.50.1".parse().ok(),
        )],
        ..CniResult::default()
    };
    let ipvlan_list = json!({
        "cniVersion": "1.0.0", "name": "ipvnet",
        "plugins": [
            {"type": "ipvlan", "master": "eth0", "mode": "l3s", "linkInContainer": false,
             "ipam": {"type": "host-local", "subnet": "10.1.2.0/24",
                      "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.50",
                      "gateway": "10.1.2.1", "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "loopback"}
        ]
    });
    let ipvlan_result = CniResult {
        interfaces: vec![iface("eth0", "", t.netns)],
        ips: vec![ip("10.1.2.10/24", Some("10.1.2.1"), Some(0))],
        routes: vec![route("0.0.0.0/0")],
        ..CniResult::default()
    };
    vec![
        (
            List {
                name: "podman-default",
                conf: podman_default,
                result: podman_result,
            },
            podman(),
        ),
        (
            List {
                name: "podman-dnsname",
                conf: podman_dns,
                result: dns_result,
            },
            podman(),
        ),
        (
            List {
                name: "containerd",
                conf: read_conf(conf, "10-containerd-net.conflist"),
                result: containerd_result,
            },
            containerd(),
        ),
        (
            List {
                name: "nerdctl",
                conf: read_conf(conf, "nerdctl-bridge.conflist"),
                result: nerdctl_result,
            },
            nerdctl(),
        ),
        (
            List {
                name: "kindnet",
                conf: read_conf(conf, "10-kindnet.conflist"),
                result: kind_result,
            },
            kind(),
        ),
        (
            List {
                name: "kindnet-dual",
                conf: read_conf(conf, "10-kindnet-dual-stack.conflist"),
                result: kind_dual,
            },
            kind(),
        ),
        (
            List {
                name: "kindnet-ipv6",
                conf: read_conf(conf, "10-kindnet-ipv6.conflist"),
                result: kind_v6,
            },
            kind(),
        ),
        (
            List {
                name: "cnitool-host-local",
                conf: read_conf(conf, "host-local-dual-stack.conflist"),
                result: hl_result,
            },
            cnitool(),
        ),
        (
            List {
                name: "cnitool-loopback",
                conf: read_conf(conf, "loopback.conflist"),
                result: loopback_result,
            },
            cnitool(),
        ),
        (
            List {
                name: "cnitool-macvlan",
                conf: macvlan_list,
                result: macvlan_result,
            },
            cnitool(),
        ),
        (
            List {
                name: "cnitool-ipvlan",
                conf: ipvlan_list,
                result: ipvlan_result,
            },
            cnitool(),
        ),
    ]
}

/// What a chained plugin adds to the result: bandwidth its ifb, dnsname the nameservers.
fn after(plugin: &str, result: &CniResult) -> CniResult {
    let mut r = result.clone();
    match plugin {
        "bandwidth" => r
            .interfaces
            .push(iface("bwp0c1d2e3f4a5b", "5e:6f:7a:8b:9c:0d", "")),
        "dnsname" => {
            r.dns.nameservers = r
                .ips
                .iter()
                .filter_map(|i| i.gateway)
                .map(|g| g.to_string())
                .collect();
            r.dns.search = vec!["dns.podman".into()];
        }
        _ => {}
    }
    r
}

/// Every plugin of `list` as `rt` calls it: ADD with the result so far, CHECK and DEL with
/// the final one (0.4.0 on), STATUS and GC (1.1.0), VERSION; chained plugins also in every
/// version with a prevResult. An IPAM of the list's plugins gets its parent's config.
fn chain(seeds: &mut Seeds, list: &List, rt: &Runtime) {
    let version = list.conf["cniVersion"]
        .as_str()
        .and_then(Version::parse)
        .expect("a seed list's version");
    let plugins = list.conf["plugins"]
        .as_array()
        .expect("a seed list's plugins");
    let rconf = libcni::RuntimeConf {
        capability_args: rt.caps.as_object().cloned().unwrap_or_default(),
        ..libcni::RuntimeConf::new(rt.container_id, rt.netns, rt.ifname)
    };
    let mut versions = vec![version];
    // The chained plugins' prevResult in each version that has one, and GC and STATUS.
    for v in [
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ] {
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    let name = list.conf["name"].as_str().unwrap_or("net");
    let mut finals = list.result.clone();
    for p in plugins {
        finals = after(libcni::conf::plugin_type(p), &finals);
    }
    for (i, v) in versions.iter().enumerate() {
        let mut so_far = list.result.clone();
        for (n, plugin) in plugins.iter().enumerate() {
            let ty = libcni::conf::plugin_type(plugin);
            let chained = n > 0;
            // The list's own version for everything; the others only for chained plugins
            // (their prevResult) and for what 1.1.0 adds.
            if i > 0 && !chained && *v != Version::V1_1_0 {
                continue;
            }
            let prev = chained.then(|| so_far.to_value(*v).expect("a seed result converts"));
            let fin = finals.to_value(*v).expect("a seed result converts");
            let what = |cmd: &str| format!("{}-{}-{}-{cmd}", rt.name, list.name, v.as_str());
            let req = |prev: Option<&Value>| {
                libcni::build_request(name, *v, plugin, prev, Some(&rconf))
                    .expect("libcni builds the request")
            };
            let mut targets = vec![ty.to_string()];
            if let Some(ipam) = plugin["ipam"]["type"].as_str() {
                targets.push(ipam.to_string());
            }
            for target in &targets {
                seeds.invocation(target, &what("ADD"), "ADD", rt, &req(prev.as_ref()));
                if v.has_check() {
                    seeds.invocation(target, &what("CHECK"), "CHECK", rt, &req(Some(&fin)));
                    seeds.invocation(target, &what("DEL"), "DEL", rt, &req(Some(&fin)));
                } else if i == 0 {
                    seeds.invocation(target, &what("DEL"), "DEL", rt, &req(None));
                }
                if v.has_status_and_gc() {
                    let status = libcni::build_request(name, *v, plugin, None, None)
                        .expect("libcni builds the request");
                    seeds.invocation(target, &what("STATUS"), "STATUS", rt, &status);
                    let mut gc: Map<String, Value> =
                        serde_json::from_slice(&status).expect("a request is JSON");
                    gc.insert(
                        "cni.dev/valid-attachments".into(),
                        json!([{"containerID": rt.container_id, "ifname": rt.ifname},
                               {"containerID": "0f1e2d3c4b5a", "ifname": "eth1"}]),
                    );
                    let gc = serde_json::to_vec(&gc).expect("encode GC");
                    seeds.invocation(target, &what("GC"), "GC", rt, &gc);
                }
                if i == 0 {
                    let asked = format!("{{\"cniVersion\":\"{}\"}}", v.as_str());
                    seeds.invocation(target, &what("VERSION"), "VERSION", rt, asked.as_bytes());
                }
            }
            so_far = after(ty, &so_far);
        }
    }
}

/// One plugin's config alone, ADD (chained after `prev` when given) and CHECK, with the
/// keys the lists above leave out.
fn single(seeds: &mut Seeds, what: &str, plugin: Value, prev: Option<&CniResult>, rt: &Runtime) {
    let ty = libcni::conf::plugin_type(&plugin).to_string();
    let rconf = libcni::RuntimeConf {
        capability_args: rt.caps.as_object().cloned().unwrap_or_default(),
        ..libcni::RuntimeConf::new(rt.container_id, rt.netns, rt.ifname)
    };
    let v = Version::V1_0_0;
    let prev = prev.map(|p| p.to_value(v).expect("a seed result converts"));
    let req = libcni::build_request("net1", v, &plugin, prev.as_ref(), Some(&rconf))
        .expect("libcni builds the request");
    seeds.invocation(&ty, &format!("{}-{what}-ADD", rt.name), "ADD", rt, &req);
    if prev.is_some() {
        seeds.invocation(&ty, &format!("{}-{what}-CHECK", rt.name), "CHECK", rt, &req);
    }
    if let Some(ipam) = plugin["ipam"]["type"].as_str() {
        seeds.invocation(ipam, &format!("{}-{what}-ADD", rt.name), "ADD", rt, &req);
    }
}

fn singles(seeds: &mut Seeds) {
    let t = cnitool();
    let p = podman();
    let prev = bridge_result(
        "cni0",
        t.netns,
        &[("10.22.0.7/16", "10.22.0.1"), ("fd22::7/64", "fd22::1")],
        &["0.0.0.0/0", "::/0"],
    );
    let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/16"}]]});
    // Chained ipvlan hangs off the one interface an earlier plugin made in the container.
    let in_container = CniResult {
        interfaces: vec![iface("net1", "02:42:0a:01:02:0a", t.netns)],
        ips: vec![ip("10.1.2.10/24", Some("10.1.2.1"), Some(0))],
        ..CniResult::default()
    };
    let all = [
        (
            "bridge-vlan-trunk",
            json!({"type": "bridge", "bridge": "br-trunk", "vlanTrunk": [{"id": 10},
                   {"minID": 100, "maxID": 110}], "preserveDefaultVlan": false,
                   "macspoofchk": true, "enabledad": true, "ipam": ipam}),
            None,
        ),
        (
            "bridge-vlan-gateway",
            json!({"type": "bridge", "bridge": "br0", "vlan": 100, "isDefaultGateway": true,
                   "forceAddress": true, "mtu": 9000, "portIsolation": "true",
                   "ipMasq": true, "ipMasqBackend": "iptables", "isolate": false,
                   "dataDir": "/run/cni/bridge-test", "args": {"cni": {"mac": "02:00:00:00:00:02"}},
                   "ipam": ipam}),
            None,
        ),
        (
            "bridge-no-interface",
            json!({"type": "bridge", "bridge": "br1", "disableContainerInterface": true,
                   "promiscMode": true}),
            None,
        ),
        (
            "ptp-masq",
            json!({"type": "ptp", "ipMasq": true, "ipMasqBackend": "nftables", "mtu": 1450,
                   "dataDir": "/run/cni/ptp", "dns": {"nameservers": ["10.96.0.10"],
                   "search": ["svc.cluster.local"], "options": ["ndots:5"]}, "ipam": ipam}),
            None,
        ),
        (
            "macvlan-passthru",
            json!({"type": "macvlan", "master": "enp1s0", "mode": "passthru",
                   "linkInContainer": true, "ipam": {}}),
            None,
        ),
        (
            "macvlan-mac",
            json!({"type": "macvlan", "master": "eth0", "mode": "vepa",
                   "mac": "02:42:ac:11:00:02", "bcqueuelen": 1000, "ipam": ipam}),
            None,
        ),
        (
            "ipvlan-chained",
            json!({"type": "ipvlan", "mode": "l2"}),
            Some(&in_container),
        ),
        (
            "host-local-legacy",
            json!({"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.10.0.0/16",
                   "rangeStart": "10.10.1.20", "rangeEnd": "10.10.3.50", "gateway": "10.10.0.254",
                   "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}],
                   "dataDir": "/run/my-orchestrator/container-ipam-state",
                   "resolvConf": "/etc/resolv.conf"}, "args": {"cni": {"ips": ["10.10.1.25/16"]}}}),
            None,
        ),
        (
            "bandwidth-top-level",
            json!({"type": "bandwidth", "ingressRate": 123, "ingressBurst": 456,
                   "egressRate": 123, "egressBurst": 456,
                   "runtimeConfig": {"bandwidth": {"IngressRate": 1000, "IngressBurst": 100}}}),
            Some(&prev),
        ),
        (
            "portmap-iptables",
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true,
                   "backend": "iptables", "markMasqBit": 13,
                   "conditionsV4": ["-s", "10.0.0.0/8", "!", "-d", "10.0.0.1"],
                   "conditionsV6": ["!", "-s", "fd00::/8"]}),
            Some(&prev),
        ),
        (
            "portmap-kube",
            json!({"type": "portmap", "capabilities": {"portMappings": true},
                   "externalSetMarkChain": "KUBE-MARK-MASQ", "masqAll": true}),
            Some(&prev),
        ),
        (
            "portmap-nft-conditions",
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "SNAT": false,
                   "conditionsV4": ["ip saddr { 10.0.0.0/8, 192.168.0.0/16 }"],
                   "conditionsV6": ["ip6 saddr != fd00::/8"]}),
            Some(&prev),
        ),
        (
            "firewall-iptables",
            json!({"type": "firewall", "backend": "iptables", "iptablesAdminChainName": "CNI-ADMIN-2",
                   "ingressPolicy": "isolated", "dataDir": "/run/cni/firewall"}),
            Some(&prev),
        ),
        (
            "firewall-firewalld",
            json!({"type": "firewall", "backend": "firewalld", "firewalldZone": "trusted"}),
            Some(&prev),
        ),
        (
            "tuning-all",
            json!({"type": "tuning", "mac": "c2:b0:57:49:47:f1", "mtu": 1454, "promisc": true,
                   "allmulti": true, "txQLen": 20000,
                   "sysctl": {"net.core.somaxconn": "500", "net/ipv4/conf/IFNAME/arp_filter": "1"},
                   "args": {"cni": {"mtu": 1400, "sysctl": {"net.ipv4.ip_forward": "1"}}}}),
            Some(&prev),
        ),
        (
            "dnsname-list-aliases",
            json!({"type": "dnsname", "domainName": "example.test.", "dataDir": "/run/cni-dns",
                   "sidecar": "/usr/libexec/cni/cni-dns",
                   "upstreamResolvConf": "/run/systemd/resolve/resolv.conf",
                   "runtimeConfig": {"aliases": ["cache", "cache-1"]}}),
            Some(&prev),
        ),
        ("loopback-chained", json!({"type": "loopback"}), Some(&prev)),
    ];
    for (what, plugin, prev) in all {
        single(
            seeds,
            what,
            plugin,
            prev,
            if what.starts_with("dnsname") { &p } else { &t },
        );
    }
    // A 0.2.0 result, the legacy shape NetConf still reads as a prevResult.
    let legacy = json!({"cniVersion": "0.2.0", "name": "old", "type": "loopback",
        "prevResult": {"ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                               "routes": [{"dst": "0.0.0.0/0"}]},
                       "ip6": {"ip": "fd01::5/64"}, "dns": {"nameservers": ["10.1.0.1"]}}});
    let bytes = serde_json::to_vec(&legacy).expect("encode");
    seeds.invocation("loopback", "cnitool-legacy-0.2.0-ADD", "ADD", &t, &bytes);
}

/// What dnsname sends the sidecar: control lines, and for `update` the record it names.
fn control(seeds: &mut Seeds) {
    seeds.write("control", "ping", b"ping\n");
    seeds.write("control", "reload", b"reload\n");
    let records = [
        Attachment {
            container_id: podman().container_id.into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some("web".into()),
            aliases: vec!["web-1".into(), "db".into()],
            ips: vec![
                "10.89.0.5/24".parse().expect("seed"),
                "fd08:8b3c:1b4e:2d6f::5/64".parse().expect("seed"),
            ],
            gateways: vec![
                "10.89.0.1".parse().expect("seed"),
                "fd08:8b3c:1b4e:2d6f::1".parse().expect("seed"),
            ],
        },
        Attachment {
            container_id: "0123456789abcdef".into(),
            ifname: "eth1".into(),
            domain: String::new(),
            name: None,
            aliases: Vec::new(),
            ips: vec!["192.168.7.9/24".parse().expect("seed")],
            gateways: vec!["192.168.7.1".parse().expect("seed")],
        },
    ];
    for (i, a) in records.iter().enumerate() {
        let mut data = format!("update dnsnet {}\n", a.key()).into_bytes();
        data.extend_from_slice(a.to_text().as_bytes());
        seeds.write("control", &format!("update-{i}"), &data);
        // DEL's update: the file is gone.
        seeds.write(
            "control",
            &format!("update-removed-{i}"),
            format!("update dnsnet {}\n", a.key()).as_bytes(),
        );
    }
}
