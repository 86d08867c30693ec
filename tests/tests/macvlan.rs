//! Black-box tests of the macvlan plugin (and of what the ipvlan plugin does on a kernel
//! without ipvlan; its real tests run in the VM, tests/vm/ipvlan). Each test has its own
//! sandbox host whose master is one end of a veth pair (this kernel has no dummy links).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cni_tests::fixtures::{allocations, assert_only_lo, ip_of, link_names, merge, ping_once};
use cni_tests::{PluginCall, RawOutcome, Sandbox, TestNetns, bin_dir, plugin_bin};
use serde_json::{Value, json};

const NETWORK: &str = "mvnet";

/// A sandbox host with a master `m0` (its veth peer `m0p` stays in the host too, both up),
/// and the calls of one macvlan network.
/// The alias DEL tags a link with whose deletion comes once the plugin has exited
/// (`cni_netlink::DYING_ALIAS`).
const DYING_ALIAS: &str = "cni-rs: deleted after its plugin exits";

struct Net {
    sb: Sandbox,
    conf: Value,
    plugin: &'static str,
}

impl Net {
    /// A host-local network on master `m0` in `subnet` with extra config keys.
    fn new(subnet: &str, extra: Value) -> Net {
        let sb = Sandbox::new();
        add_veth(&sb.host, "m0");
        let mut conf = json!({
            "cniVersion": "1.1.0",
            "name": NETWORK,
            "type": "macvlan",
            "master": "m0",
            "ipam": {"type": "host-local", "dataDir": sb.data_dir(),
                     "ranges": [[{"subnet": subnet}]]},
        });
        merge(&mut conf, extra);
        Net {
            sb,
            conf,
            plugin: "macvlan",
        }
    }

    fn call(&self, command: &str, id: &str, ctr: &TestNetns) -> PluginCall {
        self.call_conf(command, id, ctr, &self.conf)
    }

    fn call_conf(&self, command: &str, id: &str, ctr: &TestNetns, conf: &Value) -> PluginCall {
        self.sb
            .call(plugin_bin(self.plugin), command)
            .container(id, ctr.path_str(), "eth0")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(conf)
    }

    fn add(&self, id: &str, ctr: &TestNetns) -> Value {
        self.call("ADD", id, ctr).run().assert_ok()
    }

    fn with_prev(&self, command: &str, id: &str, ctr: &TestNetns, prev: &Value) -> RawOutcome {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.call_conf(command, id, ctr, &conf).run()
    }

    fn allocations(&self) -> Vec<String> {
        allocations(&self.sb.data_dir().join(NETWORK))
    }

    /// Host links whose name a child link has while being created or deleted.
    fn host_leftovers(&self) -> Vec<String> {
        link_names(&self.sb.host)
            .into_iter()
            .filter(|n| n.starts_with("tmp") || n.starts_with("del"))
            .collect()
    }
}

/// `ip link add NAME type veth peer name NAMEp`, both ends up.
fn add_veth(ns: &TestNetns, name: &str) {
    let peer = format!("{name}p");
    ns.run(&[
        "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
    ]);
    ns.run(&["ip", "link", "set", name, "up"]);
    ns.run(&["ip", "link", "set", &peer, "up"]);
}

/// `ip -d -j link show dev IFNAME` in `ns`.
fn details(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.run(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn two_containers_on_one_master_reach_each_other_but_not_the_master() {
    let net = Net::new("10.61.0.0/24", json!({}));
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    let rb = net.add("b", &b);
    for (r, ctr) in [(&ra, &a), (&rb, &b)] {
        let ifaces = r["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 1, "{r}");
        assert_eq!(ifaces[0]["name"], "eth0");
        assert_eq!(ifaces[0]["sandbox"], ctr.path_str());
        assert_eq!(r["ips"][0]["interface"], 0);
        let link = details(ctr, "eth0");
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge", "{link}");
        assert_eq!(link["address"], ifaces[0]["mac"]);
        assert_eq!(link["operstate"], "UP", "{link}");
    }
    assert_eq!(ip_of(&ra, 0), "10.61.0.2");
    assert_eq!(ip_of(&rb, 0), "10.61.0.3");
    assert!(ping_once(&a, "10.61.0.3"));
    assert!(ping_once(&b, "10.61.0.2"));
    // The link never had its final name on the host.
    assert!(net.host_leftovers().is_empty());

    // The kernel does not pass traffic between a macvlan and its own master: the host,
    // with an address on the master, cannot reach the containers.
    net.sb
        .host_run(&["ip", "addr", "add", "10.61.0.1/24", "dev", "m0"]);
    assert!(!ping_once(&net.sb.host, "10.61.0.2"));
    // The usual workaround (README): a macvlan of the master on the host, holding the
    // host's address, with the containers' subnet routed through it.
    let host = &net.sb.host;
    host.run(&["ip", "addr", "del", "10.61.0.1/24", "dev", "m0"]);
    host.run(&[
        "ip", "link", "add", "mv-host", "link", "m0", "type", "macvlan", "mode", "bridge",
    ]);
    host.run(&["ip", "addr", "add", "10.61.0.254/32", "dev", "mv-host"]);
    host.run(&["ip", "link", "set", "mv-host", "up"]);
    host.run(&["ip", "route", "add", "10.61.0.0/24", "dev", "mv-host"]);
    assert!(ping_once(host, "10.61.0.2"));
    assert!(ping_once(&b, "10.61.0.254"));

    for (id, ctr, r) in [("a", &a, &ra), ("b", &b, &rb)] {
        net.with_prev("DEL", id, ctr, r).assert_ok_empty();
        assert_only_lo(ctr);
    }
    assert!(net.allocations().is_empty());
}

/// Two containers in `mode`; whether they reach each other without and then with a switch
/// that reflects frames back to the port they came from (hairpin), as a VEPA switch does.
fn reach_in_mode(mode: &str, subnet_octet: u8) -> (bool, bool) {
    let subnet = format!("10.{subnet_octet}.0.0/24");
    let net = Net::new(&subnet, json!({"mode": mode}));
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    net.add("b", &b);
    for ctr in [&a, &b] {
        let link = details(ctr, "eth0");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], mode, "{link}");
    }
    net.with_prev("CHECK", "a", &a, &ra).assert_ok_empty();
    let to = format!("10.{subnet_octet}.0.3");
    let direct = ping_once(&a, &to);
    let host = &net.sb.host;
    host.run(&["ip", "link", "add", "sw0", "type", "bridge"]);
    host.run(&["ip", "link", "set", "m0p", "master", "sw0"]);
    host.run(&["ip", "link", "set", "sw0", "up"]);
    host.run(&["bridge", "link", "set", "dev", "m0p", "hairpin", "on"]);
    // Let the port reach forwarding state (no STP: immediately, but the link settles).
    std::thread::sleep(Duration::from_millis(100));
    let reflected = ping_once(&a, &to);
    (direct, reflected)
}

#[test]
fn modes_bridge_private_and_vepa_behave_as_the_kernel_defines_them() {
    // bridge: macvlans of one master talk directly.
    assert_eq!(reach_in_mode("bridge", 62), (true, true));
    // vepa: everything goes out to the switch; only a hairpin switch brings it back.
    assert_eq!(reach_in_mode("vepa", 63), (false, true));
    // private: never, even through a hairpin switch.
    assert_eq!(reach_in_mode("private", 64), (false, false));
}

#[test]
fn passthru_takes_the_master_and_its_address_and_allows_no_second_link() {
    let net = Net::new("10.65.0.0/24", json!({"mode": "passthru"}));
    let (a, b) = (net.sb.container(), net.sb.container());
    let ra = net.add("a", &a);
    let master = details(&net.sb.host, "m0");
    let link = details(&a, "eth0");
    assert_eq!(link["linkinfo"]["info_data"]["mode"], "passthru", "{link}");
    assert_eq!(link["address"], master["address"]);
    assert_eq!(ra["interfaces"][0]["mac"], master["address"]);
    net.with_prev("CHECK", "a", &a, &ra).assert_ok_empty();
    // A second macvlan on the same master: refused with the reason, nothing left.
    let err = net.call("ADD", "b", &b).run();
    err.assert_error(999);
    assert!(
        err.msg().unwrap().contains("passthru"),
        "{}",
        err.describe()
    );
    assert_eq!(link_names(&b), ["lo"]);
    assert_eq!(net.allocations(), vec!["10.65.0.2"]);
    // Nor a macvlan stacked on the passthru one, on the host: a config error up front.
    net.sb.host_run(&[
        "ip", "link", "add", "mvpt", "link", "m0p", "type", "macvlan", "mode", "passthru",
    ]);
    let mut conf = net.conf.clone();
    conf["master"] = json!("mvpt");
    conf["mode"] = json!("bridge");
    net.call_conf("ADD", "b", &b, &conf)
        .run()
        .assert_error_containing(7, "passthru");
    assert_eq!(link_names(&b), ["lo"]);
    assert_eq!(net.allocations(), vec!["10.65.0.2"]);
    net.with_prev("DEL", "a", &a, &ra).assert_ok_empty();
    assert_only_lo(&a);
    assert!(net.allocations().is_empty());
}

#[test]
fn mac_mtu_bcqueuelen_and_l2_only() {
    let net = Net::new(
        "10.66.0.0/24",
        json!({"mtu": 1400, "bcqueuelen": 321, "mac": "02:00:00:00:00:01"}),
    );
    let a = net.sb.container();
    let r = net.add("a", &a);
    let link = details(&a, "eth0");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(link["address"], "02:00:00:00:00:01");
    assert_eq!(link["linkinfo"]["info_data"]["bcqueuelen"], 321, "{link}");
    assert_eq!(r["interfaces"][0]["mtu"], 1400);
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:00:01");

    // CNI_ARGS MAC= beats the key; runtimeConfig.mac beats both.
    let b = net.sb.container();
    let r = net
        .call("ADD", "b", &b)
        .cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .run()
        .assert_ok();
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:00:02");
    let c = net.sb.container();
    let mut conf = net.conf.clone();
    conf["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
    let r = net
        .call_conf("ADD", "c", &c, &conf)
        .cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .run()
        .assert_ok();
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:00:03");
    assert_eq!(details(&c, "eth0")["address"], "02:00:00:00:00:03");

    // `ipam: {}`: L2 only, the link is up without addresses.
    let l2 = net.sb.container();
    let mut conf = net.conf.clone();
    conf["ipam"] = json!({});
    conf.as_object_mut().unwrap().remove("mac");
    let r = net.call_conf("ADD", "l2", &l2, &conf).run().assert_ok();
    assert!(r.get("ips").is_none(), "{r}");
    let link = l2.link("eth0").unwrap();
    assert!(
        link["flags"].as_array().unwrap().contains(&json!("UP")),
        "{link}"
    );
    assert!(
        link["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["family"] == "inet6"),
        "{link}"
    );
    let mut prev_conf = conf.clone();
    prev_conf["prevResult"] = r;
    net.call_conf("CHECK", "l2", &l2, &prev_conf)
        .run()
        .assert_ok_empty();
    net.call_conf("DEL", "l2", &l2, &conf)
        .run()
        .assert_ok_empty();
    assert_only_lo(&l2);
}

#[test]
fn the_default_master_is_the_link_of_the_default_route() {
    let net = Net::new("10.67.0.0/24", json!({}));
    net.conf_without_master_uses_default_route();
}

impl Net {
    fn conf_without_master_uses_default_route(&self) {
        let mut conf = self.conf.clone();
        conf.as_object_mut().unwrap().remove("master");
        let a = self.sb.container();
        // No default route in the sandbox host: a clear error, nothing left.
        self.call_conf("ADD", "a", &a, &conf)
            .run()
            .assert_error_containing(7, "no default route");
        assert_eq!(link_names(&a), ["lo"]);
        assert!(self.allocations().is_empty());
        add_veth(&self.sb.host, "up0");
        let host = &self.sb.host;
        host.run(&["ip", "addr", "add", "192.0.2.2/24", "dev", "up0"]);
        host.run(&["ip", "route", "add", "default", "via", "192.0.2.1"]);
        let r = self.call_conf("ADD", "a", &a, &conf).run().assert_ok();
        let link = details(&a, "eth0");
        let up0 = details(host, "up0");
        assert_eq!(link["link_index"], up0["ifindex"], "{link}");
        let mut prev_conf = conf.clone();
        prev_conf["prevResult"] = r;
        self.call_conf("CHECK", "a", &a, &prev_conf)
            .run()
            .assert_ok_empty();
        // STATUS sees the master too.
        self.sb
            .call(plugin_bin("macvlan"), "STATUS")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&conf)
            .run()
            .assert_ok_empty();
    }
}

#[test]
fn link_in_container_takes_the_master_from_the_container() {
    let net = Net::new(
        "10.68.0.0/24",
        json!({"linkInContainer": true, "master": "data0"}),
    );
    let a = net.sb.container();
    // The master is missing from the container: the host's m0 does not count.
    net.call("ADD", "a", &a)
        .run()
        .assert_error_containing(7, "container's network namespace");
    add_veth(&a, "data0");
    let r = net.add("a", &a);
    let link = details(&a, "eth0");
    // The parent is in the same netns: `ip` names it.
    assert_eq!(link["link"], "data0", "{link}");
    assert!(link.get("link_netnsid").is_none(), "{link}");
    net.with_prev("CHECK", "a", &a, &r).assert_ok_empty();
    net.with_prev("DEL", "a", &a, &r).assert_ok_empty();
    let deadline = Instant::now() + Duration::from_secs(3);
    while a.link("eth0").is_some() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(net.allocations().is_empty());
}

#[test]
fn check_notices_what_changed() {
    let net = Net::new("10.69.0.0/24", json!({"mode": "private"}));
    let a = net.sb.container();
    let r = net.add("a", &a);
    net.with_prev("CHECK", "a", &a, &r).assert_ok_empty();
    // Another mode in the config than the link has.
    let mut conf = net.conf.clone();
    conf["mode"] = json!("bridge");
    conf["prevResult"] = r.clone();
    net.call_conf("CHECK", "a", &a, &conf)
        .run()
        .assert_error_containing(103, "mode");
    // Another master.
    add_veth(&net.sb.host, "m1");
    conf["mode"] = json!("private");
    conf["master"] = json!("m1");
    net.call_conf("CHECK", "a", &a, &conf)
        .run()
        .assert_error_containing(103, "not a child of master m1");
    // A MAC that differs from prevResult's.
    let mut other = r.clone();
    other["interfaces"][0]["mac"] = json!("02:00:00:00:00:99");
    net.with_prev("CHECK", "a", &a, &other)
        .assert_error_containing(103, "MAC");
    // prevResult for another netns.
    let mut other = r.clone();
    other["interfaces"][0]["sandbox"] = json!("/run/netns/elsewhere");
    net.with_prev("CHECK", "a", &a, &other).assert_error(103);
    // No prevResult at all.
    net.call("CHECK", "a", &a).run().assert_error(7);
    // A route and an address gone.
    let mut with_route = net.conf.clone();
    with_route["ipam"]["routes"] = json!([{"dst": "198.51.100.0/24"}]);
    let b = net.sb.container();
    let rb = net.call_conf("ADD", "b", &b, &with_route).run().assert_ok();
    let mut check_b = with_route.clone();
    check_b["prevResult"] = rb.clone();
    net.call_conf("CHECK", "b", &b, &check_b)
        .run()
        .assert_ok_empty();
    b.run(&["ip", "route", "del", "198.51.100.0/24"]);
    net.call_conf("CHECK", "b", &b, &check_b)
        .run()
        .assert_error_containing(103, "198.51.100.0/24");
    a.run(&["ip", "addr", "flush", "dev", "eth0"]);
    net.with_prev("CHECK", "a", &a, &r)
        .assert_error_containing(103, "10.69.0.2/24");
    // The link replaced by one of another kind.
    a.run(&["ip", "link", "del", "eth0"]);
    a.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ]);
    net.with_prev("CHECK", "a", &a, &r)
        .assert_error_containing(103, "not a macvlan");
    // DEL leaves that veth alone (not ours) and still releases the address.
    net.with_prev("DEL", "a", &a, &r).assert_ok_empty();
    assert!(a.link("eth0").is_some());
    assert_eq!(net.allocations(), vec!["10.69.0.3"]);
}

#[test]
fn del_is_idempotent_and_always_releases_the_address() {
    let net = Net::new("10.70.0.0/24", json!({}));
    // Twice, without prevResult, with an empty CNI_NETNS.
    let a = net.sb.container();
    net.add("a", &a);
    net.call("DEL", "a", &a).run().assert_ok_empty();
    net.call("DEL", "a", &a).run().assert_ok_empty();
    net.call("DEL", "a", &a)
        .env("CNI_NETNS", "")
        .run()
        .assert_ok_empty();
    assert_only_lo(&a);
    assert!(net.allocations().is_empty());
    // The name is free again right after DEL: an ADD may follow at once.
    net.add("a", &a);
    net.call("DEL", "a", &a).run().assert_ok_empty();
    net.add("a", &a);
    // Even before the DEL's deletion (sent once that plugin has exited) has happened: a
    // link tagged as DEL tags it gives its name up to the ADD.
    net.call("DEL", "a", &a).run().assert_ok_empty();
    assert_only_lo(&a);
    add_veth(&a, "eth0");
    a.run(&["ip", "link", "set", "eth0", "alias", DYING_ALIAS]);
    net.add("a", &a);
    assert_eq!(details(&a, "eth0")["linkinfo"]["info_kind"], "macvlan");

    // The netns is gone.
    let gone = a.path_str().to_string();
    drop(a);
    net.sb
        .call(plugin_bin("macvlan"), "DEL")
        .container("a", &gone, "eth0")
        .cni_path(bin_dir().to_str().unwrap())
        .stdin_json(&net.conf)
        .run()
        .assert_ok_empty();
    assert!(net.allocations().is_empty());

    // The master is gone (the kernel deleted its macvlans with it).
    let b = net.sb.container();
    net.add("b", &b);
    net.sb.host_run(&["ip", "link", "del", "m0"]);
    net.call("DEL", "b", &b).run().assert_ok_empty();
    assert!(net.allocations().is_empty());
    assert_only_lo(&b);

    // A config that no longer validates still cleans up.
    add_veth(&net.sb.host, "m0");
    let c = net.sb.container();
    net.add("c", &c);
    let mut bad = net.conf.clone();
    bad["mode"] = json!("nonsense");
    bad["master"] = json!("nosuch0");
    net.call_conf("DEL", "c", &c, &bad).run().assert_ok_empty();
    assert_only_lo(&c);
    assert!(net.allocations().is_empty());
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_behind() {
    let net = Net::new("10.71.0.0/24", json!({}));
    let a = net.sb.container();
    let cases: Vec<(Value, u64, &str)> = vec![
        (json!({"mode": "vepa2"}), 7, "unknown macvlan mode"),
        (json!({"mode": "source"}), 7, "unknown macvlan mode"),
        (json!({"master": "nosuch0"}), 7, "nosuch0 does not exist"),
        (json!({"mtu": 9000}), 7, "above the MTU of master m0 (1500)"),
        (json!({"mtu": "big"}), 6, "mtu"),
        (json!({"mac": "zz"}), 7, "not a MAC address"),
        (
            json!({"mode": "passthru", "mac": "02:00:00:00:00:01"}),
            7,
            "passthru",
        ),
        (json!({"master": "lo"}), 7, "loopback"),
        (json!({"ipam": {"type": "no-such-ipam"}}), 4, "no-such-ipam"),
    ];
    for (extra, code, needle) in cases {
        let mut conf = net.conf.clone();
        merge(&mut conf, extra.clone());
        let out = net.call_conf("ADD", "a", &a, &conf).run();
        out.assert_error_containing(code, needle);
        assert_eq!(link_names(&a), ["lo"], "{extra}");
        assert!(net.allocations().is_empty(), "{extra}");
        assert!(net.host_leftovers().is_empty(), "{extra}");
    }
    // CNI_IFNAME taken in the container: code 4, the existing link untouched.
    add_veth(&a, "eth0");
    net.call("ADD", "a", &a)
        .run()
        .assert_error_containing(4, "already exists");
    assert_eq!(details(&a, "eth0")["linkinfo"]["info_kind"], "veth");
    assert!(net.allocations().is_empty());
    assert!(net.host_leftovers().is_empty());
    // An unknown CNI_ARGS key without IgnoreUnknown.
    let b = net.sb.container();
    net.call("ADD", "b", &b)
        .cni_args("FOO=bar")
        .run()
        .assert_error_containing(4, "FOO");
    assert_eq!(link_names(&b), ["lo"]);
}

#[test]
fn status_follows_the_master_and_gc_goes_to_ipam() {
    let net = Net::new("10.72.0.0/24", json!({}));
    let status = |conf: &Value| {
        net.sb
            .call(plugin_bin("macvlan"), "STATUS")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(conf)
            .run()
    };
    status(&net.conf).assert_ok_empty();
    let a = net.sb.container();
    let b = net.sb.container();
    net.add("a", &a);
    net.add("b", &b);
    let mut gc = net.conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
    net.sb
        .call(plugin_bin("macvlan"), "GC")
        .cni_path(bin_dir().to_str().unwrap())
        .stdin_json(&gc)
        .run()
        .assert_ok_empty();
    assert_eq!(net.allocations(), vec!["10.72.0.2"]);
    net.sb.host_run(&["ip", "link", "del", "m0"]);
    status(&net.conf).assert_error_containing(50, "m0");
    let mut old = net.conf.clone();
    old["cniVersion"] = json!("1.0.0");
    status(&old).assert_error(1);
}

#[test]
fn chained_macvlan_passes_the_previous_result_on() {
    let net = Net::new("10.73.0.0/24", json!({}));
    let a = net.sb.container();
    let prev = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "other0", "sandbox": a.path_str()}],
        "ips": [{"address": "192.0.2.9/24", "interface": 0}],
        "dns": {"nameservers": ["192.0.2.53"]}});
    let r = net.with_prev("ADD", "a", &a, &prev).assert_ok();
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2, "{r}");
    assert_eq!(ifaces[0]["name"], "other0");
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(r["ips"][0]["address"], "192.0.2.9/24");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["ips"][1]["address"], "10.73.0.2/24");
    assert_eq!(r["ips"][1]["interface"], 1);
    assert_eq!(r["dns"]["nameservers"][0], "192.0.2.53");
    // Only its own address went on the link.
    let link = a.link("eth0").unwrap();
    let v4: Vec<&Value> = link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .collect();
    assert_eq!(v4.len(), 1, "{link}");
    assert_eq!(v4[0]["local"], "10.73.0.2");
    net.with_prev("CHECK", "a", &a, &r).assert_ok_empty();
}

#[test]
fn results_in_every_version() {
    for v in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let net = Net::new("10.74.0.0/24", json!({"cniVersion": v}));
        let a = net.sb.container();
        let r = net.add("a", &a);
        assert_eq!(r["cniVersion"], v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert_eq!(r["ip4"]["ip"], "10.74.0.2/24", "{r}");
        } else {
            assert_eq!(r["interfaces"][0]["sandbox"], a.path_str(), "{r}");
            assert_eq!(
                r["ips"][0]["version"].is_string(),
                v.starts_with('0'),
                "{r}"
            );
        }
        net.call("DEL", "a", &a).run().assert_ok_empty();
        assert!(net.allocations().is_empty());
    }
}

/// ipvlan's own tests need a kernel with ipvlan (tests/vm/ipvlan); here we check that a
/// kernel without it gets a clear error and that nothing is left behind.
#[test]
fn ipvlan_on_a_kernel_without_it_says_so() {
    let probe = Sandbox::new();
    add_veth(&probe.host, "p0");
    let has_ipvlan = probe.host.succeeds(&[
        "ip", "link", "add", "link", "p0", "name", "ipv0", "type", "ipvlan",
    ]);
    if !test_requires::kernel_without(has_ipvlan, "ipvlan") {
        return;
    }
    let mut net = Net::new("10.75.0.0/24", json!({"type": "ipvlan", "mode": "l3"}));
    net.plugin = "ipvlan";
    let a = net.sb.container();
    net.call("ADD", "a", &a)
        .run()
        .assert_error_containing(50, "no ipvlan support");
    assert_eq!(link_names(&a), ["lo"]);
    assert!(net.allocations().is_empty());
    assert!(net.host_leftovers().is_empty());
    net.sb
        .call(plugin_bin("ipvlan"), "STATUS")
        .cni_path(bin_dir().to_str().unwrap())
        .stdin_json(&net.conf)
        .run()
        .assert_error_containing(50, "ipvlan");
    // DEL still works (and releases nothing it does not have).
    net.call("DEL", "a", &a).run().assert_ok_empty();
}

#[test]
fn an_add_that_fails_after_the_link_exists_takes_it_back() {
    // A /30 has one address to hand out: the second container's IPAM fails once its link
    // is already made (IPAM runs while the link is created).
    let net = Net::new("10.76.0.0/30", json!({}));
    let (a, b) = (net.sb.container(), net.sb.container());
    net.add("a", &a);
    net.call("ADD", "b", &b).run().assert_error(101);
    assert_eq!(link_names(&b), ["lo"]);
    assert_eq!(net.allocations(), vec!["10.76.0.2"]);
    assert!(net.host_leftovers().is_empty());
    // A route IPAM hands out that the kernel refuses (its gateway is unreachable): the
    // link and the address are both taken back.
    let mut conf = net.conf.clone();
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.77.0.0/24"}]]);
    conf["ipam"]["routes"] = json!([{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}]);
    let c = net.sb.container();
    let out = net.call_conf("ADD", "c", &c, &conf).run();
    out.assert_error_containing(999, "198.51.100.0/24");
    assert_eq!(link_names(&c), ["lo"]);
    assert_eq!(net.allocations(), vec!["10.76.0.2"]);
}
