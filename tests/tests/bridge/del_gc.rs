//! DEL and GC cleaning up whatever the runtime still passes.

use cni_tests::TestNetns;
use cni_tests::fixtures::{ip_of, pings};
use serde_json::{Value, json};

use crate::bed::*;

#[test]
fn del_is_idempotent_and_cleans_up_whatever_the_runtime_still_passes() {
    for backend in ["nftables", "iptables"] {
        for v in VERSIONS {
            let ctx = format!("{v} {backend}");
            let bed = Bed::new();
            let conf = full_conf(&bed, v, backend);

            // The plain case, twice.
            let c1 = bed.sb.container();
            let r1 = bed.add(&conf, "c1", &c1);
            if backend == "nftables" {
                assert_eq!(bed.set("inet", "masq4").len(), 1, "{ctx}");
                assert_eq!(bed.set("inet", "masq6").len(), 1, "{ctx}");
            } else {
                assert!(!bed.iptables_cni_rules().is_empty(), "{ctx}");
            }
            assert_eq!(bed.set("bridge", "spoofchk_allowed").len(), 1, "{ctx}");
            assert_eq!(bed.states("del").len(), 1, "{ctx}");
            bed.with_prev("DEL", &conf, &r1, "c1", c1.path_str())
                .assert_ok_empty();
            bed.with_prev("DEL", &conf, &r1, "c1", c1.path_str())
                .assert_ok_empty();
            bed.assert_nothing_left("del");
            assert!(c1.link("eth0").is_none(), "{ctx}");

            // The netns is gone first (the reference leaks its masquerade rules here).
            let c2 = bed.sb.container();
            let gone = c2.path_str().to_string();
            let r2 = bed.add(&conf, "c2", &c2);
            drop(c2);
            bed.with_prev("DEL", &conf, &r2, "c2", &gone)
                .assert_ok_empty();
            bed.assert_nothing_left("del");
            bed.with_prev("DEL", &conf, &r2, "c2", &gone)
                .assert_ok_empty();

            // CNI_NETNS empty and no prevResult (containerd's second DEL, podman's DEL after
            // a failed ADD): rules and addresses go; the link goes with the netns.
            let c3 = bed.sb.container();
            bed.add(&conf, "c3", &c3);
            bed.call("DEL", &conf, "c3", "").run().assert_ok_empty();
            assert!(bed.allocations("del").is_empty(), "{ctx}");
            assert!(bed.states("del").is_empty(), "{ctx}");
            assert!(
                bed.attachment_elements().is_empty(),
                "{ctx}: {:?}",
                bed.attachment_elements()
            );
            assert!(bed.iptables_cni_rules().is_empty(), "{ctx}");
            drop(c3);
            bed.assert_nothing_left("del");

            // No prevResult but the netns: the link goes too.
            let c4 = bed.sb.container();
            bed.add(&conf, "c4", &c4);
            bed.call("DEL", &conf, "c4", c4.path_str())
                .run()
                .assert_ok_empty();
            bed.call("DEL", &conf, "c4", c4.path_str())
                .run()
                .assert_ok_empty();
            assert!(c4.link("eth0").is_none(), "{ctx}");
            bed.assert_nothing_left("del");

            // Never added at all.
            bed.call("DEL", &conf, "never", c4.path_str())
                .run()
                .assert_ok_empty();
        }
    }
}

#[test]
fn gc_removes_the_rules_and_state_of_attachments_not_listed() {
    let bed = Bed::new();
    let conf = full_conf(&bed, "1.1.0", "nftables");
    let ctrs: Vec<TestNetns> = (0..3).map(|_| bed.sb.container()).collect();
    let results: Vec<Value> = ["keep", "drop1", "drop2"]
        .iter()
        .zip(&ctrs)
        .map(|(id, ctr)| bed.add(&conf, id, ctr))
        .collect();
    assert_eq!(bed.set("inet", "masq4").len(), 3);
    assert_eq!(bed.set("bridge", "spoofchk_allowed").len(), 3);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    bed.sb
        .call(bed.bins.join("bridge"), "GC")
        .cni_path(bed.bins.to_str().unwrap())
        .stdin_json(&gc)
        .run()
        .assert_ok_empty();
    assert_eq!(bed.set("inet", "masq4"), vec![json!(ip_of(&results[0], 0))]);
    assert_eq!(bed.set("inet", "masq6"), vec![json!(ip_of(&results[0], 1))]);
    let allowed = bed.set("bridge", "spoofchk_allowed");
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert!(
        allowed[0].to_string().contains(&host_veth_of(&results[0])),
        "{allowed:?}"
    );
    assert_eq!(
        bed.set("bridge", "spoofchk_ports"),
        vec![json!(host_veth_of(&results[0]))]
    );
    assert_eq!(bed.states("del"), vec!["keep@eth0"]);
    assert_eq!(
        bed.allocations("del"),
        vec![ip_of(&results[0], 0), ip_of(&results[0], 1)]
    );
    // The one kept still works.
    bed.with_prev("CHECK", &conf, &results[0], "keep", ctrs[0].path_str())
        .assert_ok_empty();
    assert!(pings(&ctrs[0], "10.100.0.1"));

    // Without a list, GC collects the attachments whose netns is gone (host-local, without
    // a list, keeps its allocations: it cannot tell).
    let orphan_ns = bed.sb.container();
    let orphan = bed.add(&conf, "orphan", &orphan_ns);
    drop(orphan_ns);
    bed.sb
        .call(bed.bins.join("bridge"), "GC")
        .cni_path(bed.bins.to_str().unwrap())
        .stdin_json(&conf)
        .run()
        .assert_ok_empty();
    assert_eq!(bed.set("inet", "masq4"), vec![json!(ip_of(&results[0], 0))]);
    assert_eq!(
        bed.set("bridge", "spoofchk_ports"),
        vec![json!(host_veth_of(&results[0]))]
    );
    assert_eq!(bed.states("del"), vec!["keep@eth0"]);
    bed.with_prev("DEL", &conf, &orphan, "orphan", "")
        .assert_ok_empty();

    // The runtime's own DELs of the collected ones still succeed.
    for (i, id) in ["drop1", "drop2"].iter().enumerate() {
        bed.with_prev("DEL", &conf, &results[i + 1], id, ctrs[i + 1].path_str())
            .assert_ok_empty();
    }
    bed.with_prev("DEL", &conf, &results[0], "keep", ctrs[0].path_str())
        .assert_ok_empty();
    bed.assert_nothing_left("del");
}
