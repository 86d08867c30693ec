//! ADD/DEL/CHECK through the skel, as a runtime drives the binary, against private netns.

use cni::env::Env;
use cni::error::code;
use cni::skel::{Outcome, dispatch};
use cni_netlink::{NetNs, Netlink};
use serde_json::{Value, json};

use super::Loopback;

/// Kernel tests need root (to create namespaces): the tests' one skip policy.
fn is_root() -> bool {
    test_requires::root()
}

fn call(command: &str, netns: &str, stdin: &Value) -> Outcome {
    let env = Env::from_pairs([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "lo"),
    ]);
    dispatch(&Loopback, &env, &mut stdin.to_string().as_bytes())
}

fn conf(version: &str) -> Value {
    json!({"cniVersion": version, "name": "lo", "type": "loopback"})
}

fn output(o: &Outcome) -> Value {
    serde_json::from_str(&o.stdout).unwrap()
}

fn lo_is_up(ns: &NetNs) -> bool {
    let mut nl = Netlink::in_netns(ns).unwrap();
    nl.get_link("lo").unwrap().unwrap().is_up()
}

fn path(ns: &NetNs) -> String {
    ns.path().to_str().unwrap().to_owned()
}

#[test]
fn add_sets_lo_up_and_reports_its_addresses() {
    if !is_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    assert!(!lo_is_up(&ns));
    let o = call("ADD", &path(&ns), &conf("1.0.0"));
    assert!(o.success, "{}", o.stdout);
    assert!(lo_is_up(&ns));
    assert_eq!(
        output(&o),
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": path(&ns)}],
            "ips": [
                {"address": "127.0.0.1/8", "interface": 0},
                {"address": "::1/128", "interface": 0},
            ],
        })
    );
}

#[test]
fn add_speaks_every_version() {
    if !is_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let o = call("ADD", &path(&ns), &conf(version));
        assert!(o.success, "{version}: {}", o.stdout);
        let v = output(&o);
        assert_eq!(v["cniVersion"], version);
        match version {
            "0.1.0" | "0.2.0" => {
                assert_eq!(v["ip4"]["ip"], "127.0.0.1/8");
                assert_eq!(v["ip6"]["ip"], "::1/128");
            }
            "0.3.0" | "0.3.1" | "0.4.0" => assert_eq!(v["ips"][0]["version"], "4"),
            _ => assert!(v["ips"][0].get("version").is_none()),
        }
    }
}

#[test]
fn add_passes_prev_result_through() {
    if !is_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": path(&ns)}],
        "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 0}],
        "dns": {"nameservers": ["10.22.0.1"]},
    });
    let mut stdin = conf("1.0.0");
    stdin["prevResult"] = prev.clone();
    let o = call("ADD", &path(&ns), &stdin);
    assert!(o.success, "{}", o.stdout);
    assert_eq!(output(&o), prev);
    assert!(lo_is_up(&ns));
}

#[test]
fn del_sets_lo_down_and_is_idempotent() {
    if !is_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    assert!(call("ADD", &path(&ns), &conf("1.1.0")).success);
    for _ in 0..2 {
        let o = call("DEL", &path(&ns), &conf("1.1.0"));
        assert!(o.success, "{}", o.stdout);
        assert_eq!(o.stdout, "");
        assert!(!lo_is_up(&ns));
    }
}

#[test]
fn del_succeeds_without_a_netns() {
    // No kernel access needed: both cases return before touching a namespace.
    for netns in ["", "/run/netns/cni-loopback-test-does-not-exist"] {
        let o = call("DEL", netns, &conf("1.0.0"));
        assert!(o.success, "{netns:?}: {}", o.stdout);
    }
    // A path that is not a netns (a leftover file after the namespace was unmounted).
    let o = call("DEL", "/proc/self/status", &conf("1.0.0"));
    assert!(o.success, "{}", o.stdout);
}

#[test]
fn check_follows_the_state_of_lo() {
    if !is_root() {
        return;
    }
    let ns = NetNs::new_unnamed().unwrap();
    let o = call("CHECK", &path(&ns), &conf("1.0.0"));
    assert!(!o.success);
    assert_eq!(output(&o)["msg"], "loopback interface is down");
    assert!(call("ADD", &path(&ns), &conf("1.0.0")).success);
    let o = call("CHECK", &path(&ns), &conf("1.0.0"));
    assert!(o.success, "{}", o.stdout);
    assert!(call("DEL", &path(&ns), &conf("1.0.0")).success);
    assert!(!call("CHECK", &path(&ns), &conf("1.0.0")).success);
}

#[test]
fn unusable_netns_is_code_8_naming_the_path() {
    let missing = "/run/netns/cni-loopback-test-does-not-exist";
    for command in ["ADD", "CHECK"] {
        for netns in [missing, "/proc/self/status"] {
            let o = call(command, netns, &conf("1.0.0"));
            assert!(!o.success);
            let v = output(&o);
            assert_eq!(v["code"], code::INVALID_NETNS, "{command} {netns}: {v}");
            assert!(v["msg"].as_str().unwrap().contains(netns), "{v}");
        }
    }
}

#[test]
fn status_and_gc_succeed() {
    for command in ["STATUS", "GC"] {
        let env = Env::from_pairs([("CNI_COMMAND", command)]);
        let o = dispatch(&Loopback, &env, &mut conf("1.1.0").to_string().as_bytes());
        assert!(o.success, "{command}: {}", o.stdout);
    }
}
