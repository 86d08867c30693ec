//! The firewall plugin, chained after our bridge as podman and nerdctl write it, with real
//! traffic through a sandbox host whose forward path drops: iptables' FORWARD policy DROP
//! (a Docker host) and an nftables forward chain with policy drop (a hand-written or
//! firewalld-like ruleset), for both backends, plus the ingress policies and cleanup.

#![allow(clippy::unwrap_used)]

use cni_tests::fixtures::ping_once;
use cni_tests::{PluginCall, Sandbox, TestNetns, plugin_bin, reference_bin};
use libcni::{CniConfig, NetworkConfigList, RuntimeConf};
use serde_json::{Value, json};

/// A sandbox host with an "outside" namespace behind `up0` (10.200.0.0/24) and forwarding on.
struct Host {
    sandbox: Sandbox,
    outside: TestNetns,
}

impl Host {
    fn new() -> Host {
        let sandbox = Sandbox::new();
        let outside = TestNetns::new();
        outside.lo_up();
        sandbox.host_run(&[
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
        sandbox.host_run(&["ip", "addr", "add", "10.200.0.1/24", "dev", "up0"]);
        sandbox.host_run(&["ip", "link", "set", "up0", "up"]);
        sandbox.host_run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        outside.run(&["ip", "addr", "add", "10.200.0.2/24", "dev", "eth0"]);
        outside.run(&["ip", "link", "set", "eth0", "up"]);
        outside.run(&["ip", "route", "add", "10.0.0.0/8", "via", "10.200.0.1"]);
        Host { sandbox, outside }
    }

    fn cni(&self) -> CniConfig {
        self.sandbox.ours()
    }

    /// bridge (+ host-local) → firewall, as a runtime writes it.
    fn list(&self, name: &str, bridge: &str, subnet: &str, firewall: Value) -> NetworkConfigList {
        let data = self.sandbox.data_dir();
        let mut fw = json!({"type": "firewall", "dataDir": data.join("firewall")});
        for (k, v) in firewall.as_object().unwrap() {
            fw[k] = v.clone();
        }
        self.sandbox.conflist(&json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "isolate": false,
                 "dataDir": data.join("bridge"),
                 "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": subnet}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                fw
            ]
        }))
    }

    fn nft(&self) -> String {
        self.sandbox.host_run(&["nft", "list", "ruleset"])
    }

    fn iptables(&self) -> String {
        self.sandbox.host_run(&["iptables-save"])
    }
}

fn ip_of(result: &cni::CniResult) -> String {
    result.ips[0].address.ip().to_string()
}

/// Forwarded traffic of the container passes a dropping forward path only with the plugin.
fn lets_traffic_through(backend: &str, host_drops: impl Fn(&Host)) {
    let host = Host::new();
    host_drops(&host);
    let cni = host.cni();
    let without = host.sandbox.conflist(&json!({
        "cniVersion": "1.0.0", "name": "plain",
        "plugins": [{"type": "bridge", "bridge": "plain0", "isGateway": true, "isolate": false,
                     "dataDir": host.sandbox.data_dir().join("bridge"),
                     "ipam": {"type": "host-local", "dataDir": host.sandbox.data_dir(),
                              "ranges": [[{"subnet": "10.90.0.0/24"}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}}]
    }));
    let bare = host.sandbox.container();
    let rt_bare = RuntimeConf::new("bare", bare.path_str(), "eth0");
    cni.add_network_list(&without, &rt_bare).unwrap();
    assert!(
        !ping_once(&bare, "10.200.0.2"),
        "the host was meant to drop forwarded traffic"
    );

    let list = host.list("fwnet", "fw0", "10.91.0.0/24", json!({"backend": backend}));
    let ctr = host.sandbox.container();
    let rt = RuntimeConf::new("ctr1", ctr.path_str(), "eth0");
    let result = cni.add_network_list(&list, &rt).unwrap();
    let ip = ip_of(&result);
    assert!(ping_once(&ctr, "10.200.0.2"), "container cannot get out");
    // The reference's rules: replies come back in, new connections from outside do not.
    assert!(
        !ping_once(&host.outside, &ip),
        "outside reached the container"
    );
    assert!(
        !ping_once(&bare, "10.200.0.2"),
        "another container got through"
    );
    cni.check_network_list(&list, &rt).unwrap();

    cni.del_network_list(&list, &rt).unwrap();
    // Nothing of the container is left in either packet filter.
    assert!(!host.nft().contains(&ip), "{}", host.nft());
    assert!(!host.iptables().contains(&ip), "{}", host.iptables());
    // DEL again, and without prevResult or netns: still success.
    cni.del_network_list(&list, &rt).unwrap();
    cni.del_network_list(&list, &RuntimeConf::new("ctr1", "", "eth0"))
        .unwrap();
    cni.del_network_list(&without, &rt_bare).unwrap();
}

fn iptables_forward_drop(host: &Host) {
    host.sandbox
        .host_run(&["iptables", "-P", "FORWARD", "DROP"]);
}

fn nft_forward_drop(host: &Host) {
    host.sandbox.host_run(&[
        "nft",
        "add table inet filter; add chain inet filter forward { type filter hook forward priority 0; policy drop; }",
    ]);
}

#[test]
fn iptables_backend_passes_an_iptables_forward_drop_policy() {
    lets_traffic_through("iptables", iptables_forward_drop);
}

#[test]
fn nftables_backend_passes_an_iptables_forward_drop_policy() {
    lets_traffic_through("nftables", iptables_forward_drop);
}

#[test]
fn default_backend_passes_an_nftables_forward_chain_with_policy_drop() {
    lets_traffic_through("", |host| {
        nft_forward_drop(host);
        // The firewalld backend falls back to the same (with a logged reason).
    });
}

#[test]
fn firewalld_backend_falls_back_and_passes_an_nftables_drop_chain() {
    lets_traffic_through("firewalld", nft_forward_drop);
}

#[test]
fn the_foreign_chain_gets_one_accept_rule_and_our_table_one_element_per_address() {
    let host = Host::new();
    nft_forward_drop(&host);
    let cni = host.cni();
    let list = host.list("fwnet", "fw0", "10.91.0.0/24", json!({}));
    let ctrs: Vec<TestNetns> = (0..3).map(|_| host.sandbox.container()).collect();
    let rts: Vec<RuntimeConf> = ctrs
        .iter()
        .enumerate()
        .map(|(i, c)| RuntimeConf::new(format!("c{i}"), c.path_str(), "eth0"))
        .collect();
    for rt in &rts {
        cni.add_network_list(&list, rt).unwrap();
    }
    let filter = host
        .sandbox
        .host_run(&["nft", "list", "chain", "inet", "filter", "forward"]);
    assert_eq!(filter.matches("cni-firewall").count(), 1, "{filter}");
    let set = host
        .sandbox
        .host_run(&["nft", "list", "set", "inet", "cni_firewall", "allow4"]);
    for ip in ["10.91.0.2", "10.91.0.3", "10.91.0.4"] {
        assert!(set.contains(ip), "{set}");
    }
    assert!(ping_once(&ctrs[2], "10.200.0.2"));
    // CHECK notices the accept rule gone from the foreign chain; the next ADD puts it back.
    host.sandbox
        .host_run(&["nft", "flush", "chain", "inet", "filter", "forward"]);
    let err = cni.check_network_list(&list, &rts[0]).unwrap_err();
    assert!(err.to_string().contains("inet filter forward"), "{err}");
    assert!(!ping_once(&ctrs[2], "10.200.0.2"));
    let extra = host.sandbox.container();
    let rt_extra = RuntimeConf::new("extra", extra.path_str(), "eth0");
    cni.add_network_list(&list, &rt_extra).unwrap();
    cni.check_network_list(&list, &rts[0]).unwrap();
    assert!(ping_once(&ctrs[2], "10.200.0.2"));
    cni.del_network_list(&list, &rt_extra).unwrap();
    for rt in &rts {
        cni.del_network_list(&list, rt).unwrap();
    }
    let set = host
        .sandbox
        .host_run(&["nft", "list", "set", "inet", "cni_firewall", "allow4"]);
    assert!(!set.contains("10.91.0."), "{set}");
}

/// Two bridges, two containers on the first and one on the second.
fn ingress(backend: &str, policy: &str) -> (bool, bool, bool) {
    let host = Host::new();
    let cni = host.cni();
    let fw = json!({"backend": backend, "ingressPolicy": policy});
    let a = host.list("neta", "fwa0", "10.95.0.0/24", fw.clone());
    let b = host.list("netb", "fwb0", "10.96.0.0/24", fw);
    let (a1, a2, b1) = (
        host.sandbox.container(),
        host.sandbox.container(),
        host.sandbox.container(),
    );
    let rts = [
        RuntimeConf::new("a1", a1.path_str(), "eth0"),
        RuntimeConf::new("a2", a2.path_str(), "eth0"),
        RuntimeConf::new("b1", b1.path_str(), "eth0"),
    ];
    let ra2 = cni.add_network_list(&a, &rts[1]).unwrap();
    cni.add_network_list(&a, &rts[0]).unwrap();
    let rb1 = cni.add_network_list(&b, &rts[2]).unwrap();
    cni.check_network_list(&a, &rts[0]).unwrap();
    let same_bridge = ping_once(&a1, &ip_of(&ra2));
    let other_bridge = ping_once(&a1, &ip_of(&rb1));
    let out = ping_once(&a1, "10.200.0.2");
    cni.del_network_list(&a, &rts[0]).unwrap();
    cni.del_network_list(&a, &rts[1]).unwrap();
    cni.del_network_list(&b, &rts[2]).unwrap();
    // The bridges' isolation goes with their last container.
    for bridge in ["fwa0", "fwb0"] {
        assert!(!host.nft().contains(bridge), "{}", host.nft());
        assert!(!host.iptables().contains(bridge), "{}", host.iptables());
    }
    (same_bridge, other_bridge, out)
}

#[test]
fn ingress_policies_with_nftables() {
    assert_eq!(ingress("nftables", "open"), (true, true, true));
    assert_eq!(ingress("nftables", "same-bridge"), (true, false, true));
    assert_eq!(ingress("nftables", "isolated"), (false, false, true));
}

#[test]
fn ingress_policies_with_iptables() {
    assert_eq!(ingress("iptables", "same-bridge"), (true, false, true));
    assert_eq!(ingress("iptables", "isolated"), (false, false, true));
}

fn chained_conf(host: &Host, extra: Value) -> Value {
    let mut conf = json!({
        "cniVersion": "1.0.0", "name": "fwnet", "type": "firewall",
        "dataDir": host.sandbox.data_dir().join("firewall"),
        "prevResult": {"cniVersion": "1.0.0",
                       "interfaces": [{"name": "fw0"}],
                       "ips": [{"address": "10.91.0.7/24", "interface": 0}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    conf
}

#[test]
fn check_and_gc_find_and_remove_what_add_added() {
    let host = Host::new();
    let ctr = host.sandbox.container();
    for backend in ["nftables", "iptables"] {
        let conf = chained_conf(&host, json!({"backend": backend}));
        let call = |cmd: &str, conf: &Value| {
            host.sandbox
                .call(plugin_bin("firewall"), cmd)
                .container("c7", ctr.path_str(), "eth0")
                .stdin_json(conf)
                .run()
        };
        let out = call("ADD", &conf).assert_ok();
        assert_eq!(out["ips"][0]["address"], "10.91.0.7/24");
        call("CHECK", &conf).assert_ok_empty();
        if backend == "nftables" {
            host.sandbox.host_run(&[
                "nft",
                "delete",
                "element",
                "inet",
                "cni_firewall",
                "allow4",
                "{ 10.91.0.7 }",
            ]);
        } else {
            host.sandbox.host_run(&[
                "iptables",
                "-D",
                "CNI-FORWARD",
                "-s",
                "10.91.0.7/32",
                "-j",
                "ACCEPT",
            ]);
        }
        call("CHECK", &conf).assert_error(103);
        call("ADD", &conf).assert_ok();
        // GC with the attachment listed keeps it; with an empty list removes it.
        let mut gc = conf.clone();
        gc["cniVersion"] = json!("1.1.0");
        gc["prevResult"]["cniVersion"] = json!("1.1.0");
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "c7", "ifname": "eth0"}]);
        call("GC", &gc).assert_ok_empty();
        assert!(host.nft().contains("10.91.0.7") || host.iptables().contains("10.91.0.7"));
        gc["cni.dev/valid-attachments"] = json!([]);
        call("GC", &gc).assert_ok_empty();
        assert!(!host.nft().contains("10.91.0.7"), "{}", host.nft());
        assert!(
            !host.iptables().contains("10.91.0.7"),
            "{}",
            host.iptables()
        );
        call("DEL", &conf).assert_ok_empty();
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let host = Host::new();
    let ctr = host.sandbox.container();
    let call = |conf: &Value| {
        host.sandbox
            .call(plugin_bin("firewall"), "ADD")
            .container("c1", ctr.path_str(), "eth0")
            .stdin_json(conf)
            .run()
    };
    call(&chained_conf(&host, json!({"backend": "ebtables"})))
        .assert_error_containing(7, "backend");
    call(&chained_conf(&host, json!({"ingressPolicy": "closed"})))
        .assert_error_containing(7, "ingressPolicy");
    call(&chained_conf(
        &host,
        json!({"iptablesAdminChainName": "A B"}),
    ))
    .assert_error_containing(7, "iptablesAdminChainName");
    let mut unchained = chained_conf(&host, json!({}));
    unchained.as_object_mut().unwrap().remove("prevResult");
    call(&unchained).assert_error_containing(7, "prevResult");
    // ingressPolicy needs the bridge in prevResult.
    let mut no_bridge = chained_conf(&host, json!({"ingressPolicy": "same-bridge"}));
    no_bridge["prevResult"]["interfaces"] = json!([]);
    call(&no_bridge).assert_error_containing(7, "bridge");
    // The bridge's name becomes a file name: a path in its place is refused, nothing written.
    let mut escaping = chained_conf(&host, json!({"ingressPolicy": "same-bridge"}));
    escaping["prevResult"]["interfaces"] = json!([{"name": "../../escape"}]);
    call(&escaping).assert_error_containing(7, "no interface name");
    let data_dir = host.sandbox.data_dir();
    assert!(!data_dir.join("escape.same-bridge").exists());
    assert!(!data_dir.join("firewall/escape.same-bridge").exists());
    // Nothing was added by any of these.
    assert!(!host.nft().contains("10.91.0.7"));
    // Unlike the reference (0.4.0 and later), 0.3.x configs work: DEL needs no prevResult.
    let mut old = chained_conf(&host, json!({}));
    old["cniVersion"] = json!("0.3.1");
    old["prevResult"]["cniVersion"] = json!("0.3.1");
    let out = call(&old).assert_ok();
    assert_eq!(out["ips"][0]["version"], "4");
    old.as_object_mut().unwrap().remove("prevResult");
    host.sandbox
        .call(plugin_bin("firewall"), "DEL")
        .container("c1", ctr.path_str(), "eth0")
        .stdin_json(&old)
        .run()
        .assert_ok_empty();
    assert!(!host.nft().contains("10.91.0.7"), "{}", host.nft());
}

#[test]
fn our_del_removes_the_reference_plugins_rules() {
    if !cni_tests::require_reference_plugins() {
        return;
    }
    let host = Host::new();
    let ctr = host.sandbox.container();
    let conf = chained_conf(&host, json!({"backend": "iptables"}));
    let call = |bin, cmd: &str| {
        PluginCall::new(bin, cmd)
            .in_netns(host.sandbox.host_path())
            .container("ref1", ctr.path_str(), "eth0")
            .cni_path("/usr/lib/cni")
            .stdin_json(&conf)
            .run()
    };
    call(reference_bin("firewall"), "ADD").assert_ok();
    assert!(host.iptables().contains("10.91.0.7/32"));
    call(plugin_bin("firewall"), "CHECK").assert_ok_empty();
    call(plugin_bin("firewall"), "DEL").assert_ok_empty();
    assert!(
        !host.iptables().contains("10.91.0.7"),
        "{}",
        host.iptables()
    );
}
