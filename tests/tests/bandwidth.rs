//! Black-box tests of the bandwidth plugin, chained after ptp and after bridge as the
//! Kubernetes chains do, in a sandbox host per test.

#![allow(clippy::unwrap_used)]

use cni_tests::fixtures::{assert_only_lo, link_names};
use cni_tests::{
    RawOutcome, Sandbox, TestNetns, bin_dir, plugin_bin, reference_bin, require_reference_plugins,
};
use serde_json::{Value, json};

const NETWORK: &str = "k8s-pod-network";

/// A sandbox host with a main plugin (ptp or bridge) to chain bandwidth after.
struct Chain {
    sb: Sandbox,
    main: Value,
}

impl Chain {
    fn new(main_type: &str) -> Chain {
        let sb = Sandbox::new();
        let mut main = json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "type": main_type,
            "dataDir": sb.data_dir().join(main_type),
            "ipam": {"type": "host-local", "dataDir": sb.data_dir().join("ipam"),
                     "ranges": [[{"subnet": "10.246.0.0/24"}]]},
        });
        if main_type == "bridge" {
            main["bridge"] = json!("cni0");
            main["isGateway"] = json!(true);
        }
        Chain { sb, main }
    }

    fn call(
        &self,
        bin: std::path::PathBuf,
        command: &str,
        id: &str,
        netns: &str,
        conf: &Value,
    ) -> RawOutcome {
        self.sb
            .call(bin, command)
            .container(id, netns, "eth0")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(conf)
            .run()
    }

    fn main_bin(&self) -> std::path::PathBuf {
        plugin_bin(self.main["type"].as_str().unwrap())
    }

    /// The main plugin's ADD; its result.
    fn add_main(&self, id: &str, ctr: &TestNetns) -> Value {
        self.call(self.main_bin(), "ADD", id, ctr.path_str(), &self.main)
            .assert_ok()
    }

    fn bandwidth_conf(&self, limits: Value, prev: Option<&Value>) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "type": "bandwidth",
            "capabilities": {"bandwidth": true},
            "runtimeConfig": {"bandwidth": limits},
        });
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn bandwidth(&self, command: &str, id: &str, netns: &str, conf: &Value) -> RawOutcome {
        self.call(plugin_bin("bandwidth"), command, id, netns, conf)
    }

    fn del_main(&self, id: &str, netns: &str) {
        self.call(self.main_bin(), "DEL", id, netns, &self.main)
            .assert_ok_empty();
    }

    /// `tc -j qdisc show` in the sandbox host.
    fn qdiscs(&self) -> Vec<Value> {
        let out = self.sb.host_run(&["tc", "-j", "qdisc", "show"]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// GC at 1.1.0 with `valid` as `cni.dev/valid-attachments`; it must succeed.
    fn gc(&self, valid: Value) {
        let mut gc = self.bandwidth_conf(json!({}), None);
        gc["cniVersion"] = json!("1.1.0");
        gc["cni.dev/valid-attachments"] = valid;
        self.sb
            .call(plugin_bin("bandwidth"), "GC")
            .stdin_json(&gc)
            .run()
            .assert_ok_empty();
    }

    fn ifbs(&self) -> Vec<String> {
        link_names(&self.sb.host)
            .into_iter()
            .filter(|n| n.starts_with("bwp"))
            .collect()
    }
}

fn limits() -> Value {
    json!({"ingressRate": 8_000_000, "ingressBurst": 80_000,
           "egressRate": 16_000_000, "egressBurst": 4_294_967_295u64})
}

fn host_end(result: &Value) -> String {
    result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["sandbox"].is_null() && i["name"].as_str().unwrap().starts_with("veth"))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The tbf qdisc on `dev`: its rate in bytes/s as tc prints it.
fn tbf_rate(qdiscs: &[Value], dev: &str) -> Option<u64> {
    qdiscs
        .iter()
        .find(|q| q["dev"] == dev && q["kind"] == "tbf")
        .map(|q| q["options"]["rate"].as_u64().unwrap())
}

#[test]
fn shapes_both_directions_after_ptp_and_after_bridge() {
    for main in ["ptp", "bridge"] {
        let chain = Chain::new(main);
        let a = chain.sb.container();
        let prev = chain.add_main("a", &a);
        let conf = chain.bandwidth_conf(limits(), Some(&prev));
        let result = chain.bandwidth("ADD", "a", a.path_str(), &conf).assert_ok();
        let veth = host_end(&prev);
        let ifbs = chain.ifbs();
        assert_eq!(ifbs.len(), 1, "{main}: {ifbs:?}");
        // The result is prevResult with the ifb added.
        let ifaces = result["interfaces"].as_array().unwrap();
        assert_eq!(
            ifaces.len(),
            prev["interfaces"].as_array().unwrap().len() + 1
        );
        assert_eq!(ifaces.last().unwrap()["name"], ifbs[0].as_str());
        assert_eq!(result["ips"], prev["ips"]);

        let qdiscs = chain.qdiscs();
        assert_eq!(
            tbf_rate(&qdiscs, &veth),
            Some(1_000_000),
            "{main}: {qdiscs:?}"
        );
        assert_eq!(
            tbf_rate(&qdiscs, &ifbs[0]),
            Some(2_000_000),
            "{main}: {qdiscs:?}"
        );
        assert!(
            qdiscs
                .iter()
                .any(|q| q["dev"] == veth.as_str() && q["kind"] == "ingress"),
            "{qdiscs:?}"
        );
        let filters = chain
            .sb
            .host_run(&["tc", "filter", "show", "dev", &veth, "ingress"]);
        assert!(
            filters.contains(&format!("Egress Redirect to device {}", ifbs[0])),
            "{filters}"
        );

        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        chain
            .bandwidth("CHECK", "a", a.path_str(), &check)
            .assert_ok_empty();

        // DEL in the runtime's order: bandwidth first, then the main plugin.
        chain
            .bandwidth("DEL", "a", a.path_str(), &check)
            .assert_ok_empty();
        assert!(chain.ifbs().is_empty(), "{main}");
        let qdiscs = chain.qdiscs();
        assert!(
            !qdiscs
                .iter()
                .any(|q| q["kind"] == "tbf" || q["kind"] == "ingress"),
            "{qdiscs:?}"
        );
        chain
            .bandwidth("DEL", "a", a.path_str(), &check)
            .assert_ok_empty();
        chain.del_main("a", a.path_str());
        assert_only_lo(&a);
    }
}

#[test]
fn without_limits_the_result_passes_through_and_nothing_is_made() {
    let chain = Chain::new("ptp");
    let a = chain.sb.container();
    let prev = chain.add_main("a", &a);
    let conf = chain.bandwidth_conf(json!({}), Some(&prev));
    let result = chain.bandwidth("ADD", "a", a.path_str(), &conf).assert_ok();
    assert_eq!(result, prev);
    assert!(chain.ifbs().is_empty());
    assert!(!chain.qdiscs().iter().any(|q| q["kind"] == "tbf"));
    // Ingress only: no ifb.
    let conf = chain.bandwidth_conf(
        json!({"ingressRate": 800_000, "ingressBurst": 8_000}),
        Some(&prev),
    );
    let result = chain.bandwidth("ADD", "a", a.path_str(), &conf).assert_ok();
    assert_eq!(result["interfaces"], prev["interfaces"]);
    assert!(chain.ifbs().is_empty());
    assert_eq!(tbf_rate(&chain.qdiscs(), &host_end(&prev)), Some(100_000));
    chain
        .bandwidth("DEL", "a", a.path_str(), &conf)
        .assert_ok_empty();
    chain.del_main("a", a.path_str());
}

#[test]
fn del_with_the_netns_gone_removes_the_ifb() {
    let chain = Chain::new("ptp");
    let a = chain.sb.container();
    let prev = chain.add_main("a", &a);
    let conf = chain.bandwidth_conf(limits(), Some(&prev));
    chain.bandwidth("ADD", "a", a.path_str(), &conf).assert_ok();
    let path = a.path_str().to_string();
    drop(a);
    // No prevResult, no netns: only the container ID.
    let bare = chain.bandwidth_conf(limits(), None);
    chain.bandwidth("DEL", "a", &path, &bare).assert_ok_empty();
    chain.bandwidth("DEL", "a", "", &bare).assert_ok_empty();
    assert!(chain.ifbs().is_empty());
    chain.del_main("a", &path);
    assert_eq!(link_names(&chain.sb.host), vec!["lo"]);
}

#[test]
fn gc_removes_the_ifbs_of_attachments_not_listed() {
    let chain = Chain::new("ptp");
    let (a, b) = (chain.sb.container(), chain.sb.container());
    let mut ifb_of = Vec::new();
    for (id, ctr) in [("a", &a), ("b", &b)] {
        let prev = chain.add_main(id, ctr);
        let conf = chain.bandwidth_conf(limits(), Some(&prev));
        let result = chain
            .bandwidth("ADD", id, ctr.path_str(), &conf)
            .assert_ok();
        let ifaces = result["interfaces"].as_array().unwrap();
        ifb_of.push(ifaces.last().unwrap()["name"].as_str().unwrap().to_string());
    }
    assert_eq!(chain.ifbs().len(), 2);
    chain.gc(json!([{"containerID": "b", "ifname": "eth0"}]));
    let left = chain.ifbs();
    assert_eq!(left, vec![ifb_of[1].clone()], "{left:?}");
    for (id, ctr) in [("a", &a), ("b", &b)] {
        chain
            .bandwidth(
                "DEL",
                id,
                ctr.path_str(),
                &chain.bandwidth_conf(json!({}), None),
            )
            .assert_ok_empty();
        chain.del_main(id, ctr.path_str());
    }
    assert!(chain.ifbs().is_empty());
}

/// An ADD killed between making its ifb and tagging it leaves it untagged and down: GC
/// takes it. One that is up (the reference tags none) or tagged for another network stays.
#[test]
fn gc_removes_half_made_ifbs_and_nothing_it_cannot_tell_is_ours() {
    let chain = Chain::new("ptp");
    let ip = |args: &[&str]| {
        let out = chain.sb.host_exec(&[&["ip", "link"][..], args].concat());
        assert!(out.status.success(), "ip link {args:?}: {out:?}");
    };
    ip(&["add", "bwp0000000000a1", "type", "ifb"]);
    ip(&["add", "bwp0000000000a2", "up", "type", "ifb"]);
    ip(&["add", "bwp0000000000a3", "type", "ifb"]);
    ip(&[
        "set",
        "bwp0000000000a3",
        "alias",
        "cni-bandwidth 0123456789ab c eth0",
    ]);
    chain.gc(json!([]));
    assert_eq!(chain.ifbs(), vec!["bwp0000000000a2", "bwp0000000000a3"]);
}

#[test]
fn bad_input_is_refused_and_nothing_is_made() {
    let chain = Chain::new("ptp");
    let a = chain.sb.container();
    let prev = chain.add_main("a", &a);
    let cases = [
        (chain.bandwidth_conf(limits(), None), 7, "chained"),
        (
            chain.bandwidth_conf(json!({"ingressRate": 1000}), Some(&prev)),
            7,
            "ingressBurst",
        ),
        (
            chain.bandwidth_conf(json!({"egressBurst": 1000}), Some(&prev)),
            7,
            "egressRate",
        ),
        (
            chain.bandwidth_conf(
                json!({"egressRate": 1000, "egressBurst": 40_000_000_000u64}),
                Some(&prev),
            ),
            7,
            "4GB",
        ),
        (
            chain.bandwidth_conf(json!({"ingressRate": -5, "ingressBurst": 10}), Some(&prev)),
            6,
            "ingressRate",
        ),
        (
            chain.bandwidth_conf(
                json!({"ingressRate": "fast", "ingressBurst": 10}),
                Some(&prev),
            ),
            6,
            "ingressRate",
        ),
    ];
    for (conf, code, needle) in cases {
        let out = chain.bandwidth("ADD", "a", a.path_str(), &conf);
        assert_eq!(out.code(), Some(code), "{conf}: {}", out.describe());
        assert!(out.msg().unwrap().contains(needle), "{}", out.describe());
        assert!(chain.ifbs().is_empty());
        assert!(
            !chain
                .qdiscs()
                .iter()
                .any(|q| q["kind"] == "tbf" || q["kind"] == "ingress")
        );
    }
    // A prevResult that does not name the host end.
    let mut other = prev.clone();
    other["interfaces"] = json!([prev["interfaces"][1]]);
    let out = chain.bandwidth(
        "ADD",
        "a",
        a.path_str(),
        &chain.bandwidth_conf(limits(), Some(&other)),
    );
    assert_eq!(out.code(), Some(7), "{}", out.describe());
    assert!(chain.ifbs().is_empty());
    chain.del_main("a", a.path_str());
}

/// Either implementation cleans up after the other, and the reference's CHECK accepts our
/// qdiscs (same bucket arithmetic).
#[test]
fn reference_parity_in_both_directions() {
    if !require_reference_plugins() {
        return;
    }
    let chain = Chain::new("ptp");
    for (adder, other) in [
        (plugin_bin("bandwidth"), reference_bin("bandwidth")),
        (reference_bin("bandwidth"), plugin_bin("bandwidth")),
    ] {
        let a = chain.sb.container();
        let prev = chain.add_main("a", &a);
        let conf = chain.bandwidth_conf(limits(), Some(&prev));
        let result = chain
            .call(adder.clone(), "ADD", "a", a.path_str(), &conf)
            .assert_ok();
        let mut check = conf.clone();
        check["prevResult"] = result;
        chain
            .call(other.clone(), "CHECK", "a", a.path_str(), &check)
            .assert_ok_empty();
        chain
            .call(other, "DEL", "a", a.path_str(), &check)
            .assert_ok_empty();
        assert!(chain.ifbs().is_empty(), "{}", adder.display());
        chain.del_main("a", a.path_str());
    }
}
