//! The tuning plugin: sysctls and link attributes of the container interface, set on ADD,
//! compared on CHECK, put back on DEL; chained after our bridge with real traffic; bad
//! input; and the reference plugin restoring what ours changed and the other way round.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cni_tests::{
    PluginCall, Sandbox, TestNetns, plugin_bin, reference_bin, require_reference_plugins,
};
use libcni::RuntimeConf;
use serde_json::{Value, json};

/// `ip -d -j link show dev IF` in `ns`.
fn link(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.run(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == flag)
}

fn sysctl(ns: &TestNetns, key: &str) -> String {
    ns.run(&["sysctl", "-n", key]).trim().to_string()
}

/// A container with a veth `eth0` (its peer stays beside it) and the prevResult a main plugin would have returned.
struct Case {
    sandbox: Sandbox,
    ctr: TestNetns,
    data_dir: PathBuf,
}

impl Case {
    fn new() -> Case {
        let sandbox = Sandbox::new();
        let ctr = sandbox.container();
        ctr.run(&[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ]);
        ctr.run(&["ip", "link", "set", "eth0", "up"]);
        let data_dir = sandbox.data_dir().join("tuning");
        Case {
            sandbox,
            ctr,
            data_dir,
        }
    }

    fn conf(&self, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": "tune", "type": "tuning",
            "dataDir": self.data_dir,
            "prevResult": {"cniVersion": "1.0.0",
                           "interfaces": [{"name": "eth0", "mac": "00:00:00:00:00:01",
                                           "sandbox": self.ctr.path_str()}],
                           "ips": [{"address": "10.97.0.2/24", "interface": 0}]}
        });
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        conf
    }

    fn call(&self, bin: PathBuf, cmd: &str, conf: &Value) -> PluginCall {
        self.sandbox
            .call(bin, cmd)
            .container("c1", self.ctr.path_str(), "eth0")
            .stdin_json(conf)
    }

    fn backup(&self) -> PathBuf {
        self.data_dir.join("c1_eth0.json")
    }
}

const EVERYTHING: &str = r#"{
    "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "2", "net/core/somaxconn": "512",
               "net.ipv4.tcp_rmem": "4096 87380 1048576"},
    "mac": "c2:b0:57:49:47:f1", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 2000
}"#;

#[test]
fn add_sets_check_compares_and_del_restores() {
    let case = Case::new();
    let before = link(&case.ctr, "eth0");
    let (somaxconn, arp_ignore) = (
        sysctl(&case.ctr, "net.core.somaxconn"),
        sysctl(&case.ctr, "net.ipv4.conf.eth0.arp_ignore"),
    );
    let conf = case.conf(serde_json::from_str(EVERYTHING).unwrap());
    let out = case
        .call(plugin_bin("tuning"), "ADD", &conf)
        .run()
        .assert_ok();
    // The result is prevResult with the new MAC.
    assert_eq!(out["interfaces"][0]["mac"], "c2:b0:57:49:47:f1", "{out}");
    assert_eq!(out["ips"][0]["address"], "10.97.0.2/24");
    let after = link(&case.ctr, "eth0");
    assert_eq!(after["address"], "c2:b0:57:49:47:f1");
    assert_eq!(after["mtu"], 1400);
    assert_eq!(after["txqlen"], 2000);
    assert!(
        has_flag(&after, "PROMISC") && has_flag(&after, "ALLMULTI"),
        "{after}"
    );
    assert_eq!(sysctl(&case.ctr, "net.core.somaxconn"), "512");
    assert_eq!(sysctl(&case.ctr, "net.ipv4.conf.eth0.arp_ignore"), "2");
    assert!(case.backup().is_file());
    // A second ADD without DEL keeps the first one's originals.
    case.call(plugin_bin("tuning"), "ADD", &conf)
        .run()
        .assert_ok();

    case.call(plugin_bin("tuning"), "CHECK", &conf)
        .run()
        .assert_ok_empty();
    case.ctr.run(&["ip", "link", "set", "eth0", "mtu", "1300"]);
    case.call(plugin_bin("tuning"), "CHECK", &conf)
        .run()
        .assert_error_containing(103, "MTU");
    case.ctr.run(&["ip", "link", "set", "eth0", "mtu", "1400"]);
    case.ctr.run(&["sysctl", "-qw", "net.core.somaxconn=100"]);
    case.call(plugin_bin("tuning"), "CHECK", &conf)
        .run()
        .assert_error_containing(103, "somaxconn");

    case.call(plugin_bin("tuning"), "DEL", &conf)
        .run()
        .assert_ok_empty();
    let restored = link(&case.ctr, "eth0");
    for key in ["address", "mtu", "txqlen"] {
        assert_eq!(restored[key], before[key], "{key}: {restored}");
    }
    assert!(
        !has_flag(&restored, "PROMISC") && !has_flag(&restored, "ALLMULTI"),
        "{restored}"
    );
    assert_eq!(sysctl(&case.ctr, "net.core.somaxconn"), somaxconn);
    assert_eq!(
        sysctl(&case.ctr, "net.ipv4.conf.eth0.arp_ignore"),
        arp_ignore
    );
    assert!(!case.backup().exists());
    // Again, without netns, and without prevResult: success.
    case.call(plugin_bin("tuning"), "DEL", &conf)
        .run()
        .assert_ok_empty();
    case.call(plugin_bin("tuning"), "DEL", &conf)
        .env("CNI_NETNS", "")
        .run()
        .assert_ok_empty();
}

#[test]
fn mac_comes_from_args_then_capability_then_cni_args_then_config() {
    let case = Case::new();
    let mac_after = |conf: &Value, cni_args: &str| {
        case.call(plugin_bin("tuning"), "ADD", conf)
            .cni_args(cni_args)
            .run()
            .assert_ok();
        let mac = link(&case.ctr, "eth0")["address"].clone();
        case.call(plugin_bin("tuning"), "DEL", conf)
            .run()
            .assert_ok_empty();
        mac
    };
    let mut conf = case.conf(json!({"mac": "02:00:00:00:00:01"}));
    assert_eq!(mac_after(&conf, ""), "02:00:00:00:00:01");
    assert_eq!(
        mac_after(&conf, "MAC=02:00:00:00:00:02"),
        "02:00:00:00:00:02"
    );
    conf["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
    assert_eq!(
        mac_after(&conf, "MAC=02:00:00:00:00:02"),
        "02:00:00:00:00:03"
    );
    conf["args"] = json!({"cni": {"mac": "02:00:00:00:00:04"}});
    assert_eq!(
        mac_after(&conf, "MAC=02:00:00:00:00:02"),
        "02:00:00:00:00:04"
    );
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let case = Case::new();
    let before = link(&case.ctr, "eth0");
    let add = |extra: Value| {
        case.call(plugin_bin("tuning"), "ADD", &case.conf(extra))
            .run()
    };
    for key in [
        "kernel.hostname",
        "fs.file-max",
        "net/../kernel/hostname",
        "net.ipv4..conf",
        "net/ipv4/conf/../../../kernel/hostname",
        "net/./core/somaxconn",
    ] {
        add(json!({"sysctl": {key: "1"}, "mtu": 1300})).assert_error_containing(7, "sysctl");
    }
    add(json!({"sysctl": {"net.core.nosuchkey": "1"}})).assert_error_containing(7, "nosuchkey");
    add(json!({"mtu": 20})).assert_error_containing(7, "mtu");
    add(json!({"mac": "zz:00:00:00:00:00"})).assert_error_containing(7, "mac");
    add(json!({"txQLen": -1})).assert_error_containing(7, "txQLen");
    add(json!({"mtu": "big"})).assert_error_containing(6, "mtu");
    let mut unchained = case.conf(json!({"mtu": 1300}));
    unchained.as_object_mut().unwrap().remove("prevResult");
    case.call(plugin_bin("tuning"), "ADD", &unchained)
        .run()
        .assert_error_containing(7, "prevResult");
    case.call(
        plugin_bin("tuning"),
        "ADD",
        &case.conf(json!({"mtu": 1300})),
    )
    .cni_args("FOO=1")
    .run()
    .assert_error_containing(4, "FOO");
    // A value the kernel refuses: the ADD fails as a whole, nothing stays changed.
    add(json!({"mtu": 1300, "sysctl": {"net.ipv4.ip_forward": "not-a-number"}}))
        .assert_error_containing(999, "ip_forward");
    assert_eq!(link(&case.ctr, "eth0"), before);
    assert!(!case.backup().exists());
}

#[test]
fn gc_forgets_backups_of_attachments_that_are_gone() {
    let case = Case::new();
    let conf = case.conf(json!({"mtu": 1300}));
    case.call(plugin_bin("tuning"), "ADD", &conf)
        .run()
        .assert_ok();
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc.as_object_mut().unwrap().remove("prevResult");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    let run_gc = |gc: &Value| {
        case.sandbox
            .call(plugin_bin("tuning"), "GC")
            .stdin_json(gc)
            .run()
            .assert_ok_empty()
    };
    run_gc(&gc);
    assert!(case.backup().exists());
    gc["cni.dev/valid-attachments"] = json!([]);
    run_gc(&gc);
    assert!(!case.backup().exists());
}

#[test]
fn chained_after_bridge_the_container_still_talks() {
    let sandbox = Sandbox::new();
    let cni = sandbox.ours();
    let list = sandbox.conflist(&json!({
        "cniVersion": "1.0.0", "name": "tuned",
        "plugins": [
            {"type": "bridge", "bridge": "tune0", "isGateway": true,
             "dataDir": sandbox.data_dir().join("bridge"),
             "ipam": {"type": "host-local", "dataDir": sandbox.data_dir(),
                      "ranges": [[{"subnet": "10.98.0.0/24"}]]}},
            {"type": "tuning", "dataDir": sandbox.data_dir().join("tuning"),
             "capabilities": {"mac": true}, "mtu": 1400,
             "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}
        ]
    }));
    let (c1, c2) = (sandbox.container(), sandbox.container());
    let mut rt1 = RuntimeConf::new("t1", c1.path_str(), "eth0");
    rt1.capability_args
        .insert("mac".into(), json!("0a:11:22:33:44:55"));
    let rt2 = RuntimeConf::new("t2", c2.path_str(), "eth0");
    let r1 = cni.add_network_list(&list, &rt1).unwrap();
    cni.add_network_list(&list, &rt2).unwrap();
    let eth0 = link(&c1, "eth0");
    assert_eq!(eth0["address"], "0a:11:22:33:44:55");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(sysctl(&c1, "net.ipv4.conf.eth0.arp_notify"), "1");
    let ctr_iface = r1.interfaces.iter().find(|i| i.name == "eth0").unwrap();
    assert_eq!(ctr_iface.mac, "0a:11:22:33:44:55");
    assert!(c2.succeeds(&["ping", "-c", "1", "-W", "2", "10.98.0.2"]));
    cni.check_network_list(&list, &rt1).unwrap();
    cni.del_network_list(&list, &rt1).unwrap();
    cni.del_network_list(&list, &rt2).unwrap();
    assert_eq!(
        std::fs::read_dir(sandbox.data_dir().join("tuning"))
            .unwrap()
            .count(),
        0
    );
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn each_implementation_restores_what_the_other_changed() {
    if !require_reference_plugins() {
        return;
    }
    for (adder, deleter) in [
        (reference_bin("tuning"), plugin_bin("tuning")),
        (plugin_bin("tuning"), reference_bin("tuning")),
    ] {
        let case = Case::new();
        let before = link(&case.ctr, "eth0");
        let conf = case.conf(json!({"mac": "02:aa:00:00:00:01", "mtu": 1300, "promisc": true}));
        case.call(adder.clone(), "ADD", &conf)
            .cni_path("/usr/lib/cni")
            .run()
            .assert_ok();
        assert_eq!(link(&case.ctr, "eth0")["mtu"], 1300);
        assert!(exists(&case.backup()));
        case.call(deleter, "DEL", &conf)
            .cni_path("/usr/lib/cni")
            .run()
            .assert_ok_empty();
        let after = link(&case.ctr, "eth0");
        for key in ["address", "mtu"] {
            assert_eq!(after[key], before[key], "{key} ({})", adder.display());
        }
        assert!(!has_flag(&after, "PROMISC"));
        assert!(!exists(&case.backup()));
    }
}
