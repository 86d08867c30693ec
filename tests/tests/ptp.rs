//! Black-box tests of the ptp plugin: a sandbox host per test, containers routed through it
//! as on a kind node.

#![allow(clippy::unwrap_used)]

use cni_tests::fixtures::{allocations, assert_only_lo, ip_of, link_names, merge, pings};
use cni_tests::{
    PluginCall, RawOutcome, Sandbox, TestNetns, bin_dir, plugin_bin, reference_bin,
    require_reference_plugins,
};
use serde_json::{Value, json};

const NETWORK: &str = "kindnet";

/// A sandbox host and the config of one ptp network, as kindnetd writes it.
struct Net {
    sb: Sandbox,
    conf: Value,
}

impl Net {
    /// `ranges` is host-local's list of range sets; `extra` top-level keys.
    fn new(version: &str, ranges: Value, routes: Value, extra: Value) -> Net {
        let sb = Sandbox::new();
        let mut conf = json!({
            "cniVersion": version,
            "name": NETWORK,
            "type": "ptp",
            "ipMasq": false,
            "dataDir": sb.data_dir().join("ptp"),
            "ipam": {"type": "host-local", "dataDir": sb.data_dir().join("ipam"),
                     "routes": routes, "ranges": ranges},
        });
        merge(&mut conf, extra);
        Net { sb, conf }
    }

    fn v4(version: &str, extra: Value) -> Net {
        Net::new(
            version,
            json!([[{"subnet": "10.244.1.0/24"}]]),
            json!([{"dst": "0.0.0.0/0"}]),
            extra,
        )
    }

    fn call_with(
        &self,
        bin: std::path::PathBuf,
        command: &str,
        id: &str,
        netns: &str,
    ) -> PluginCall {
        self.sb
            .call(bin, command)
            .container(id, netns, "eth0")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&self.conf)
    }

    fn call(&self, command: &str, id: &str, ctr: &TestNetns) -> RawOutcome {
        self.call_with(plugin_bin("ptp"), command, id, ctr.path_str())
            .run()
    }

    fn add(&self, id: &str, ctr: &TestNetns) -> Value {
        self.call("ADD", id, ctr).assert_ok()
    }

    fn with_prev(&self, command: &str, id: &str, ctr: &TestNetns, prev: &Value) -> RawOutcome {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.sb
            .call(plugin_bin("ptp"), command)
            .container(id, ctr.path_str(), "eth0")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&conf)
            .run()
    }

    fn allocations(&self) -> Vec<String> {
        allocations(&self.sb.data_dir().join("ipam").join(NETWORK))
    }

    fn state_files(&self) -> usize {
        std::fs::read_dir(self.sb.data_dir().join("ptp").join(NETWORK))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The host's routes and addresses, as `ip -j` prints them, for "nothing left" checks.
    fn host_text(&self) -> String {
        let h = &self.sb.host;
        format!(
            "{}{}{}",
            h.run(&["ip", "-j", "addr"]),
            h.run(&["ip", "-j", "route"]),
            h.run(&["ip", "-6", "-j", "route"])
        )
    }

    fn nft(&self) -> String {
        self.sb.host_run(&["nft", "list", "ruleset"])
    }
}

fn routes(ns: &TestNetns, v6: bool) -> Vec<Value> {
    let fam = if v6 { "-6" } else { "-4" };
    let out = ns.run(&["ip", fam, "-j", "route", "show", "table", "main"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["dst"].as_str().unwrap_or("").starts_with("fe80"))
        .filter(|r| r["dst"] != "multicast" && r["type"] != "multicast")
        .cloned()
        .collect()
}

/// (dst, gateway, scope) of each route, sorted.
fn route_shape(routes: &[Value]) -> Vec<(String, String, String)> {
    let mut shape: Vec<_> = routes
        .iter()
        .map(|r| {
            (
                r["dst"].as_str().unwrap_or("").to_string(),
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["scope"].as_str().unwrap_or("global").to_string(),
            )
        })
        .collect();
    shape.sort();
    shape
}

/// The addresses (with prefix) of a link.
fn addresses(ns: &TestNetns, ifname: &str) -> Vec<String> {
    let out = ns.run(&["ip", "-j", "addr", "show", "dev", ifname]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn pods_reach_each_other_and_the_node_through_the_host_end() {
    let net = Net::v4("0.3.1", json!({"mtu": 1400}));
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    let rb = net.add("b", &b);
    assert_eq!(ip_of(&ra, 0), "10.244.1.2");
    assert_eq!(ip_of(&rb, 0), "10.244.1.3");
    // The reference's result: host end first, then the container end; IPs on index 1.
    let ifaces = ra["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2, "{ra}");
    assert_eq!(ifaces[0]["sandbox"], Value::Null, "{ra}");
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(ifaces[1]["sandbox"], a.path_str());
    assert_eq!(ra["ips"][0]["interface"], 1);
    assert_eq!(ra["ips"][0]["gateway"], "10.244.1.1");

    // Container: the real prefix, no connected route; the gateway on the link, the subnet
    // and the default route via the gateway.
    assert_eq!(addresses(&a, "eth0"), vec!["10.244.1.2/24"]);
    assert_eq!(
        route_shape(&routes(&a, false)),
        vec![
            ("10.244.1.0/24".into(), "10.244.1.1".into(), "global".into()),
            ("10.244.1.1".into(), "".into(), "link".into()),
            ("default".into(), "10.244.1.1".into(), "global".into()),
        ]
    );
    let link: Value = serde_json::from_str(&a.run(&["ip", "-j", "link", "show", "eth0"])).unwrap();
    assert_eq!(link[0]["mtu"], 1400);
    // Host: the gateway as /32 on every host end, a host route to each pod.
    let host = &net.sb.host;
    for (r, ip) in [(&ra, "10.244.1.2"), (&rb, "10.244.1.3")] {
        let veth = host_veth(r);
        assert_eq!(addresses(host, &veth), vec!["10.244.1.1/32"]);
        let out = host.run(&["ip", "route", "show", ip]);
        assert!(out.contains(&format!("dev {veth}")), "{out}");
    }
    assert_eq!(
        host.run(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );
    // No proxy ARP: the host answers for the gateway because it owns it.
    let veth = host_veth(&ra);
    assert_eq!(
        host.run(&["sysctl", "-n", &format!("net.ipv4.conf.{veth}.proxy_arp")])
            .trim(),
        "0"
    );
    assert!(pings(&a, "10.244.1.3"));
    assert!(pings(&b, "10.244.1.2"));
    assert!(pings(host, "10.244.1.2"));
    assert!(pings(&a, "10.244.1.1"));

    // DEL as kind sends it (0.3.1: libcni passes no prevResult), twice.
    for (id, ctr) in [("a", &a), ("b", &b)] {
        net.call("DEL", id, ctr).assert_ok_empty();
        assert_only_lo(ctr);
        net.call("DEL", id, ctr).assert_ok_empty();
    }
    assert!(net.allocations().is_empty());
    assert_eq!(net.state_files(), 0);
    assert_eq!(link_names(host), vec!["lo"]);
    assert!(!net.host_text().contains("10.244.1"), "{}", net.host_text());
}

#[test]
fn dual_stack_pods_get_both_families_through_the_gateways() {
    let net = Net::new(
        "1.0.0",
        json!([[{"subnet": "10.244.2.0/24"}], [{"subnet": "fd00:10:244:2::/64"}]]),
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]),
        json!({}),
    );
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    net.add("b", &b);
    assert_eq!(ip_of(&ra, 0), "10.244.2.2");
    assert_eq!(ip_of(&ra, 1), "fd00:10:244:2::2");
    assert_eq!(
        addresses(&a, "eth0"),
        vec!["10.244.2.2/24", "fd00:10:244:2::2/64"]
    );
    assert_eq!(
        route_shape(&routes(&a, true)),
        vec![
            ("default".into(), "fd00:10:244:2::1".into(), "global".into()),
            (
                "fd00:10:244:2::/64".into(),
                "fd00:10:244:2::1".into(),
                "global".into()
            ),
            // IPv6 routes have no scope: the kernel keeps them all global.
            ("fd00:10:244:2::1".into(), "".into(), "global".into()),
        ]
    );
    let veth = host_veth(&ra);
    assert_eq!(
        addresses(&net.sb.host, &veth),
        vec!["10.244.2.1/32", "fd00:10:244:2::1/128"]
    );
    assert!(pings(&a, "fd00:10:244:2::3"));
    assert!(pings(&a, "10.244.2.3"));
    assert!(pings(&net.sb.host, "fd00:10:244:2::2"));
    net.with_prev("CHECK", "a", &a, &ra).assert_ok_empty();
    net.with_prev("DEL", "a", &a, &ra).assert_ok_empty();
    net.call("DEL", "b", &b).assert_ok_empty();
    assert!(net.allocations().is_empty());
    assert!(!net.host_text().contains("10.244.2"));
    assert!(!net.host_text().contains("fd00:10:244:2"));
}

#[test]
fn del_with_the_netns_gone_or_empty_still_releases_everything() {
    let net = Net::v4("0.3.1", json!({"ipMasq": true}));
    let a = net.sb.container();
    let ra = net.add("a", &a);
    assert!(net.nft().contains("10.244.1.2"), "{}", net.nft());
    let path = a.path_str().to_string();
    drop(a);
    // containerd's second DEL: no netns at all; then the one with the (gone) path.
    net.call_with(plugin_bin("ptp"), "DEL", "a", "")
        .run()
        .assert_ok_empty();
    net.call_with(plugin_bin("ptp"), "DEL", "a", &path)
        .run()
        .assert_ok_empty();
    assert!(net.allocations().is_empty());
    assert!(!net.nft().contains("10.244.1.2"), "{}", net.nft());
    assert_eq!(link_names(&net.sb.host), vec!["lo"]);
    assert_eq!(net.state_files(), 0);
    let _ = ra;
}

#[test]
fn masquerade_by_nftables_or_iptables_and_gone_after_del() {
    for backend in ["nftables", "iptables"] {
        let net = Net::v4("1.1.0", json!({"ipMasq": true, "ipMasqBackend": backend}));
        let a = net.sb.container();
        let ra = net.add("a", &a);
        let rules = match backend {
            "nftables" => net.nft(),
            _ => net.sb.host_run(&["iptables-save", "-t", "nat"]),
        };
        assert!(rules.contains("10.244.1.2"), "{backend}: {rules}");
        assert!(rules.to_lowercase().contains("masquerade"), "{rules}");
        net.with_prev("CHECK", "a", &a, &ra).assert_ok_empty();
        // Without prevResult and without state, DEL still finds what to remove.
        std::fs::remove_dir_all(net.sb.data_dir().join("ptp")).unwrap();
        net.call("DEL", "a", &a).assert_ok_empty();
        let rules = format!(
            "{}{}",
            net.nft(),
            net.sb.host_run(&["iptables-save", "-t", "nat"])
        );
        assert!(!rules.contains("10.244.1.2"), "{backend}: {rules}");
        assert!(!rules.contains("CNI-"), "{backend}: {rules}");
    }
}

#[test]
fn check_finds_what_is_missing() {
    let net = Net::v4("1.0.0", json!({}));
    let a = net.sb.container();
    let ra = net.add("a", &a);
    net.with_prev("CHECK", "a", &a, &ra).assert_ok_empty();
    net.sb.host_run(&["ip", "route", "del", "10.244.1.2/32"]);
    let out = net.with_prev("CHECK", "a", &a, &ra);
    assert_eq!(out.code(), Some(103), "{}", out.describe());
    assert!(
        out.msg().unwrap().contains("host route"),
        "{}",
        out.describe()
    );
    // CHECK needs prevResult.
    assert_eq!(net.call("CHECK", "a", &a).code(), Some(7));
    net.with_prev("DEL", "a", &a, &ra).assert_ok_empty();
}

#[test]
fn gc_removes_stale_attachments_and_keeps_live_ones() {
    // Two addresses only, so the one GC frees is the next one handed out.
    let net = Net::new(
        "1.1.0",
        json!([[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.2", "rangeEnd": "10.244.1.3"}]]),
        json!([{"dst": "0.0.0.0/0"}]),
        json!({"ipMasq": true}),
    );
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    let rb = net.add("b", &b);
    let mut gc = net.conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "b", "ifname": "eth0"}]);
    net.sb
        .call(plugin_bin("ptp"), "GC")
        .cni_path(bin_dir().to_str().unwrap())
        .stdin_json(&gc)
        .run()
        .assert_ok_empty();
    assert_eq!(net.allocations(), vec!["10.244.1.3"]);
    let host_links = link_names(&net.sb.host);
    assert!(!host_links.contains(&host_veth(&ra)), "{host_links:?}");
    assert!(host_links.contains(&host_veth(&rb)), "{host_links:?}");
    assert!(!net.nft().contains("10.244.1.2"));
    assert!(net.nft().contains("10.244.1.3"));
    assert!(pings(&net.sb.host, "10.244.1.3"));
    // The released address goes to the next pod, and its host route follows it.
    let c = net.sb.container();
    let rc = net.add("c", &c);
    assert_eq!(ip_of(&rc, 0), "10.244.1.2");
    assert!(pings(&net.sb.host, "10.244.1.2"));
    for (id, ctr) in [("b", &b), ("c", &c)] {
        net.call("DEL", id, ctr).assert_ok_empty();
    }
    net.call("DEL", "a", &a).assert_ok_empty();
    assert!(net.allocations().is_empty());
}

#[test]
fn status_and_every_version() {
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let net = Net::v4(version, json!({}));
        let a = net.sb.container();
        let r = net.add("a", &a);
        assert_eq!(r["cniVersion"], version);
        if version != "0.3.0" && version != "0.3.1" {
            net.with_prev("CHECK", "a", &a, &r).assert_ok_empty();
        }
        if version == "1.1.0" {
            net.call("STATUS", "a", &a).assert_ok_empty();
        }
        net.with_prev("DEL", "a", &a, &r).assert_ok_empty();
        assert_only_lo(&a);
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_made() {
    let cases = [
        (json!({"mtu": 10}), 7, "mtu"),
        (json!({"mtu": "x"}), 6, "mtu"),
        (
            json!({"ipMasq": true, "ipMasqBackend": "ebtables"}),
            7,
            "ipMasqBackend",
        ),
        (json!({"ipam": {}}), 7, "ipam"),
        (
            json!({"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.5/24"}]]}}),
            7,
            "",
        ),
    ];
    for (extra, code, needle) in cases {
        let net = Net::v4("1.0.0", extra.clone());
        let a = net.sb.container();
        let out = net.call("ADD", "a", &a);
        assert_eq!(out.code(), Some(code), "{extra}: {}", out.describe());
        assert!(
            out.msg().unwrap().contains(needle),
            "{extra}: {}",
            out.describe()
        );
        assert_eq!(link_names(&a), vec!["lo"], "{extra}");
        assert_eq!(link_names(&net.sb.host), vec!["lo"], "{extra}");
        assert!(net.allocations().is_empty(), "{extra}");
        assert_eq!(net.state_files(), 0, "{extra}");
    }
    // A config without ipam at all.
    let mut net = Net::v4("1.0.0", json!({}));
    net.conf.as_object_mut().unwrap().remove("ipam");
    let a = net.sb.container();
    assert_eq!(net.call("ADD", "a", &a).code(), Some(7));
    // DEL of that config has nothing to do and succeeds.
    net.call("DEL", "a", &a).assert_ok_empty();
}

/// An ADD right after a DEL in the same netns may find CNI_IFNAME still held by the DEL's
/// link, whose deletion comes once that plugin has exited (tagged with this alias,
/// `cni_netlink::DYING_ALIAS`): it takes the name. Held by anything else, the name stays
/// the runtime's error.
#[test]
fn an_add_takes_its_name_from_a_link_on_its_way_out() {
    const DYING_ALIAS: &str = "cni-rs: deleted after its plugin exits";
    let net = Net::v4("1.0.0", json!({}));
    let (a, b) = (net.sb.container(), net.sb.container());
    for ctr in [&a, &b] {
        ctr.run(&[
            "ip", "link", "add", "name", "eth0", "type", "veth", "peer", "name", "left0",
        ]);
    }
    a.run(&["ip", "link", "set", "eth0", "alias", DYING_ALIAS]);
    net.add("a", &a);
    assert_eq!(link_names(&a), vec!["lo", "eth0"]);
    assert_eq!(addresses(&a, "eth0"), vec!["10.244.1.2/24"]);
    net.call("ADD", "b", &b)
        .assert_error_containing(4, "already exists");
    for (id, ctr) in [("a", &a), ("b", &b)] {
        net.call("DEL", id, ctr).assert_ok_empty();
    }
    assert!(net.allocations().is_empty());
}

/// The reference ptp on the same config builds the same routes and addresses.
#[test]
fn reference_parity_of_routes_and_addresses() {
    if !require_reference_plugins() {
        return;
    }
    let mut shapes = Vec::new();
    for bin in [plugin_bin("ptp"), reference_bin("ptp")] {
        let net = Net::v4("0.4.0", json!({}));
        let a = net.sb.container();
        let out = net
            .sb
            .call(bin.clone(), "ADD")
            .container("a", a.path_str(), "eth0")
            .cni_path("/usr/lib/cni")
            .stdin_json(&net.conf)
            .run();
        let r = out.assert_ok();
        shapes.push((
            route_shape(&routes(&a, false)),
            addresses(&a, "eth0"),
            addresses(&net.sb.host, &host_veth(&r)),
            r["ips"].clone(),
        ));
        let mut del = net.conf.clone();
        del["prevResult"] = r;
        net.sb
            .call(bin, "DEL")
            .container("a", a.path_str(), "eth0")
            .cni_path("/usr/lib/cni")
            .stdin_json(&del)
            .run()
            .assert_ok_empty();
    }
    assert_eq!(shapes[0], shapes[1]);
}

/// A node switching to ours: a pod the reference made (with its iptables masquerade chain) is
/// deleted by our DEL with nothing but what kind sends (0.3.1, no prevResult, no state).
#[test]
fn our_del_removes_what_the_reference_made() {
    if !require_reference_plugins() {
        return;
    }
    let net = Net::v4("0.3.1", json!({"ipMasq": true}));
    let a = net.sb.container();
    let r = net
        .sb
        .call(reference_bin("ptp"), "ADD")
        .container("a", a.path_str(), "eth0")
        .cni_path("/usr/lib/cni")
        .stdin_json(&net.conf)
        .run()
        .assert_ok();
    let nat = net.sb.host_run(&["iptables-save", "-t", "nat"]);
    assert!(nat.contains("10.244.1.2"), "{nat}");
    net.call("DEL", "a", &a).assert_ok_empty();
    assert_only_lo(&a);
    let nat = net.sb.host_run(&["iptables-save", "-t", "nat"]);
    assert!(
        !nat.contains("10.244.1.2") && !nat.contains("CNI-"),
        "{nat}"
    );
    assert!(net.allocations().is_empty());
    assert_eq!(link_names(&net.sb.host), vec!["lo"]);
    let _ = r;
}
