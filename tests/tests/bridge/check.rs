//! CHECK noticing each removed piece.

use cni_tests::TestNetns;
use cni_tests::fixtures::ip_of;
use serde_json::{Value, json};

use crate::bed::*;

#[test]
fn check_fails_with_103_once_a_piece_is_removed() {
    type Break = fn(&Bed, &TestNetns, &Value);
    let breaks: [(&str, Break); 5] = [
        ("address", |_, ctr, r| {
            let addr = r["ips"][0]["address"].as_str().unwrap();
            ctr.run(&["ip", "addr", "del", addr, "dev", "eth0"]);
        }),
        ("route", |_, ctr, _| {
            ctr.run(&["ip", "-4", "route", "del", "default"]);
        }),
        ("host veth", |bed, _, r| {
            bed.host(&["ip", "link", "del", &host_veth_of(r)]);
        }),
        ("masquerade element", |bed, _, r| {
            let set = bed.masq_set(4);
            let elem = format!("{{ {} }}", ip_of(r, 0));
            bed.host(&[
                "nft",
                "delete",
                "element",
                "inet",
                "cni_bridge",
                &set,
                &elem,
            ]);
        }),
        ("spoof check element", |bed, _, _| {
            bed.host(&[
                "nft",
                "flush",
                "set",
                "bridge",
                "cni_bridge",
                "spoofchk_allowed",
            ]);
        }),
    ];
    for v in VERSIONS {
        for (what, break_it) in breaks {
            let bed = Bed::new();
            let conf = bed.conf(
                v,
                "chk",
                "br-chk",
                &["10.99.0.0/24"],
                json!({"isDefaultGateway": true, "ipMasq": true, "macspoofchk": true}),
            );
            let ctr = bed.sb.container();
            let r = bed.add(&conf, "c1", &ctr);
            bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
                .assert_ok_empty();
            break_it(&bed, &ctr, &r);
            let out = bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str());
            assert!(!out.success(), "{v}: CHECK missed the {what}");
            assert_eq!(out.code(), Some(103), "{v} {what}: {}", out.describe());
            // DEL still cleans up whatever is left.
            bed.with_prev("DEL", &conf, &r, "c1", ctr.path_str())
                .assert_ok_empty();
            bed.assert_nothing_left("chk");
        }
    }
}

#[test]
fn check_notices_a_removed_iptables_masquerade_rule() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = bed.conf(
            v,
            "chk",
            "br-chk",
            &["10.99.1.0/24"],
            json!({"isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": "iptables"}),
        );
        let ctr = bed.sb.container();
        let r = bed.add(&conf, "c1", &ctr);
        bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
            .assert_ok_empty();
        let rule = bed
            .iptables_cni_rules()
            .into_iter()
            .find(|l| l.starts_with("-A POSTROUTING"))
            .unwrap();
        let mut args = vec!["iptables", "-w", "-t", "nat", "-D"];
        let words = shell_words(&rule["-A ".len()..]);
        args.extend(words.iter().map(String::as_str));
        bed.host(&args);
        bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
            .assert_error(103);
        bed.with_prev("DEL", &conf, &r, "c1", ctr.path_str())
            .assert_ok_empty();
        bed.assert_nothing_left("chk");
    }
}

/// Splits an `iptables -S` line into arguments (double quotes group).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}
