//! Traffic: two containers, masquerade (nftables, iptables), isolation between bridges, hairpin, the MAC spoof check.

use cni_tests::fixtures::{ping_once, pings};
use cni_tests::{TestNetns, require_reference_plugins};
use libcni::RuntimeConf;
use serde_json::{Value, json};

use crate::bed::*;

/// Two containers on one network reach each other and the gateway over IPv4 and IPv6;
/// ADD, CHECK and DEL go through libcni as a runtime runs them.
fn two_containers(imp: Impl, v: &str) {
    let bed = Bed::with(imp);
    let conf = bed.conf(
        v,
        "pair",
        "br-pair",
        &["10.90.0.0/24", "fd90::/64"],
        json!({"isGateway": true}),
    );
    let list = bed.list(&conf);
    let cni = bed.cni();
    let (c1, c2) = (bed.sb.container(), bed.sb.container());
    let (rt1, rt2) = (
        RuntimeConf::new("c1", c1.path_str(), "eth0"),
        RuntimeConf::new("c2", c2.path_str(), "eth0"),
    );
    let r1 = cni.add_network_list(&list, &rt1).unwrap();
    let r2 = cni.add_network_list(&list, &rt2).unwrap();
    let ctx = format!("{imp:?} {v}");
    assert_eq!(r1.ips[0].address.to_string(), "10.90.0.2/24", "{ctx}");
    assert_eq!(r2.ips[0].address.to_string(), "10.90.0.3/24", "{ctx}");
    assert_eq!(r1.ips[1].address.to_string(), "fd90::2/64", "{ctx}");
    assert_eq!(r1.ips[0].gateway.unwrap().to_string(), "10.90.0.1", "{ctx}");
    assert_eq!(r1.interfaces.len(), 3, "{ctx}: {r1:?}");
    assert_eq!(r1.interfaces[0].name, "br-pair", "{ctx}");
    assert_eq!(r1.interfaces[2].name, "eth0", "{ctx}");
    assert_eq!(r1.interfaces[2].sandbox, c1.path_str(), "{ctx}");
    assert!(r1.ips.iter().all(|ip| ip.interface == Some(2)), "{ctx}");
    assert_eq!(mac_of(&eth0(&c1)), r1.interfaces[2].mac, "{ctx}");

    // The gateway addresses are on the bridge, the container ends are its ports.
    let br = bed.host_link("br-pair").unwrap();
    let br_addrs = addrs_of(&br);
    assert!(
        br_addrs.contains(&"10.90.0.1/24".to_string()),
        "{ctx}: {br_addrs:?}"
    );
    assert!(
        br_addrs.contains(&"fd90::1/64".to_string()),
        "{ctx}: {br_addrs:?}"
    );
    let port = bed.host_link(&r1.interfaces[1].name).unwrap();
    assert_eq!(port["master"], "br-pair", "{ctx}");

    for (from, to) in [
        (&c1, "10.90.0.3"),
        (&c2, "10.90.0.2"),
        (&c1, "fd90::3"),
        (&c2, "fd90::2"),
    ] {
        assert!(pings(from, to), "{ctx}: no answer from {to}");
    }
    for (from, gw) in [(&c1, "10.90.0.1"), (&c2, "fd90::1")] {
        assert!(pings(from, gw), "{ctx}: no answer from the gateway {gw}");
    }

    cni.check_network_list(&list, &rt1).unwrap();
    cni.check_network_list(&list, &rt2).unwrap();
    cni.del_network_list(&list, &rt1).unwrap();
    cni.del_network_list(&list, &rt1).unwrap();
    assert!(c1.link("eth0").is_none(), "{ctx}");
    assert!(
        pings(&c2, "10.90.0.1"),
        "{ctx}: the other container lost its network"
    );
    cni.del_network_list(&list, &rt2).unwrap();
    assert!(
        bed.host_link("br-pair").is_some(),
        "{ctx}: DEL removed the bridge"
    );
    assert!(bed.host_veths().is_empty(), "{ctx}: {:?}", bed.host_veths());
    assert!(bed.allocations("pair").is_empty(), "{ctx}");
    if imp == Impl::Ours {
        assert!(bed.states("pair").is_empty(), "{ctx}");
    }
}

#[test]
fn two_containers_reach_each_other_and_the_gateway() {
    for v in VERSIONS {
        two_containers(Impl::Ours, v);
    }
}

#[test]
fn reference_parity_two_containers() {
    if !require_reference_plugins() {
        return;
    }
    two_containers(Impl::Reference, REFERENCE_VERSION);
}

#[test]
fn add_result_has_the_configs_version_and_three_interfaces() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = bed.conf(
            v,
            "shape",
            "br-shape",
            &["10.90.1.0/24", "fd90:1::/64"],
            json!({"isDefaultGateway": true}),
        );
        let ctr = bed.sb.container();
        let r = bed.add(&conf, "c1", &ctr);
        assert_eq!(r["cniVersion"], v, "{r}");
        let ifaces = r["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 3, "{r}");
        assert_eq!(ifaces[0]["name"], "br-shape", "{r}");
        assert!(ifaces[0].get("sandbox").is_none(), "{r}");
        assert!(
            ifaces[1]["name"].as_str().unwrap().starts_with("veth"),
            "{r}"
        );
        assert!(ifaces[1].get("sandbox").is_none(), "{r}");
        assert_eq!(ifaces[2]["sandbox"], ctr.path_str(), "{r}");
        for (i, family) in [(0, "4"), (1, "6")] {
            let ip = &r["ips"][i];
            assert_eq!(ip["interface"], 2, "{r}");
            assert_eq!(ip.get("version").is_some(), v == "0.4.0", "{r}");
            if v == "0.4.0" {
                assert_eq!(ip["version"], family, "{r}");
            }
        }
        assert_eq!(r["ips"][0]["gateway"], "10.90.1.1", "{r}");
        assert_eq!(r["ips"][1]["gateway"], "fd90:1::1", "{r}");
        let routes = r["routes"].as_array().unwrap();
        assert!(
            routes.contains(&json!({"dst": "0.0.0.0/0", "gw": "10.90.1.1"})),
            "{r}"
        );
        assert!(
            routes.contains(&json!({"dst": "::/0", "gw": "fd90:1::1"})),
            "{r}"
        );
        // MACs in the result are those of the links.
        assert_eq!(ifaces[2]["mac"], mac_of(&eth0(&ctr)), "{r}");
        let host_veth = bed.host_link(ifaces[1]["name"].as_str().unwrap()).unwrap();
        assert_eq!(ifaces[1]["mac"], mac_of(&host_veth), "{r}");
    }
}

/// With ipMasq the outside sees the host's address; without it the outside sees the
/// container's address and has no way back.
fn masquerade(imp: Impl, v: &str, backend: &str) {
    let bed = Bed::with(imp);
    let outside = Outside::new(&bed);
    let ctx = format!("{imp:?} {v} {backend}");
    let conf = bed.conf(
        v,
        "masq",
        "br-masq",
        &["10.91.0.0/24", "fd91::/64"],
        json!({"isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": backend}),
    );
    let ctr = bed.sb.container();
    let r = bed.add(&conf, "c1", &ctr);
    // isGateway turned on forwarding in the (sandbox) host.
    assert_eq!(
        bed.host(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(),
        "1",
        "{ctx}"
    );
    assert_eq!(
        bed.host(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1",
        "{ctx}"
    );
    assert!(
        pings(&ctr, OUT4),
        "{ctx}: the outside did not answer over IPv4"
    );
    assert!(
        pings(&ctr, OUT6),
        "{ctx}: the outside did not answer over IPv6"
    );
    assert!(outside.count("host4") >= 1, "{ctx}");
    assert!(outside.count("host6") >= 1, "{ctx}");
    assert_eq!(
        outside.count("other4"),
        0,
        "{ctx}: a request arrived unmasqueraded"
    );
    assert_eq!(
        outside.count("other6"),
        0,
        "{ctx}: a request arrived unmasqueraded"
    );
    // Traffic inside the network keeps its source: the gateway answers the container itself.
    assert!(pings(&ctr, "10.91.0.1"), "{ctx}");

    bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
        .assert_ok_empty();
    bed.with_prev("DEL", &conf, &r, "c1", ctr.path_str())
        .assert_ok_empty();
    if imp == Impl::Ours {
        bed.assert_nothing_left("masq");
    } else {
        assert!(
            bed.iptables_cni_rules().is_empty(),
            "{ctx}: {:?}",
            bed.iptables_cni_rules()
        );
    }
}

#[test]
fn ip_masq_nftables_shows_the_outside_the_hosts_address() {
    for v in VERSIONS {
        masquerade(Impl::Ours, v, "nftables");
    }
}

#[test]
fn ip_masq_iptables_shows_the_outside_the_hosts_address() {
    for v in VERSIONS {
        masquerade(Impl::Ours, v, "iptables");
    }
}

#[test]
fn reference_parity_ip_masq() {
    if !require_reference_plugins() {
        return;
    }
    // 1.1.1 only has the iptables backend (and ignores ipMasqBackend).
    masquerade(Impl::Reference, REFERENCE_VERSION, "iptables");
}

#[test]
fn without_ip_masq_the_outside_sees_the_container_and_cannot_answer() {
    let bed = Bed::new();
    let outside = Outside::new(&bed);
    let conf = bed.conf(
        "1.1.0",
        "plain",
        "br-plain",
        &["10.91.1.0/24"],
        json!({"isDefaultGateway": true}),
    );
    let ctr = bed.sb.container();
    bed.add(&conf, "c1", &ctr);
    assert!(pings(&ctr, "10.91.1.1"));
    assert!(!ping_once(&ctr, OUT4));
    assert!(outside.count("other4") >= 1);
    assert_eq!(outside.count("host4"), 0);
    assert!(bed.set("inet", "masq").is_empty());
}

/// Two networks on two bridges of one host: with isolation (the default) neither reaches
/// the other, while both reach their gateway and the outside; with `isolate: false` on both
/// the host routes between them.
#[test]
fn isolated_bridges_do_not_reach_each_other() {
    for v in VERSIONS {
        for isolate in [true, false] {
            let ctx = format!("{v} isolate={isolate}");
            let bed = Bed::new();
            // Kept alive for the pings to the outside.
            let _outside = Outside::new(&bed);
            let extra = json!({"isDefaultGateway": true, "ipMasq": true, "isolate": isolate});
            let a = bed.conf(v, "net-a", "br-a", &["10.92.1.0/24"], extra.clone());
            let b = bed.conf(v, "net-b", "br-b", &["10.92.2.0/24"], extra);
            let (ca, cb) = (bed.sb.container(), bed.sb.container());
            bed.add(&a, "ca", &ca);
            bed.add(&b, "cb", &cb);
            assert!(pings(&ca, "10.92.1.1"), "{ctx}");
            assert!(pings(&cb, "10.92.2.1"), "{ctx}");
            assert!(pings(&ca, OUT4), "{ctx}");
            assert!(pings(&cb, OUT4), "{ctx}");
            if isolate {
                assert!(!ping_once(&ca, "10.92.2.2"), "{ctx}: a reached b");
                assert!(!ping_once(&cb, "10.92.1.2"), "{ctx}: b reached a");
            } else {
                assert!(pings(&ca, "10.92.2.2"), "{ctx}: a did not reach b");
                assert!(pings(&cb, "10.92.1.2"), "{ctx}: b did not reach a");
            }
        }
    }
}

/// Sends three pings from the container to its own MAC (a static neighbour for an address
/// routed out of eth0) and returns how many came back to eth0: only a hairpin port sends a
/// frame back where it came from.
///
/// A container reaching itself through a DNAT on the host would not show hairpin: the host
/// routes the rewritten packet out of the bridge device, so the bridge forwards it from its
/// own port, not back out of the one it came in on (hairpin matters there only with
/// br_netfilter, which would mean loading a module on the machine). Reflecting a frame at
/// L2 is what hairpin mode changes.
fn reflected_frames(bed: &Bed, ctr: &TestNetns) -> u64 {
    let mac = mac_of(&eth0(ctr));
    ctr.run(&["ip", "route", "add", "198.51.100.7/32", "dev", "eth0"]);
    ctr.run(&[
        "ip",
        "neigh",
        "replace",
        "198.51.100.7",
        "lladdr",
        &mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    nft_in(
        bed,
        ctr,
        "table inet probe {\n\tcounter reflected {}\n\
         \tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\
         \t\tiifname \"eth0\" ip daddr 198.51.100.7 counter name reflected\n\t}\n}\n",
    );
    // No answer is expected: the address is nobody's.
    let _ = ctr.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.51.100.7"]);
    counter(ctr, "probe", "reflected")
}

fn hairpin(imp: Impl, v: &str) {
    for on in [true, false] {
        let ctx = format!("{imp:?} {v} hairpin={on}");
        let bed = Bed::with(imp);
        let conf = bed.conf(
            v,
            "hp",
            "br-hp",
            &["10.93.0.0/24"],
            json!({"isGateway": true, "hairpinMode": on}),
        );
        let ctr = bed.sb.container();
        let r = bed.add(&conf, "c1", &ctr);
        let veth = host_veth_of(&r);
        let port: Value =
            serde_json::from_str(&bed.host(&["bridge", "-d", "-j", "link", "show", "dev", &veth]))
                .unwrap();
        assert_eq!(port[0]["hairpin"], on, "{ctx}: {port}");
        let reflected = reflected_frames(&bed, &ctr);
        if on {
            assert!(reflected >= 1, "{ctx}: no frame came back");
        } else {
            assert_eq!(reflected, 0, "{ctx}: frames came back without hairpin");
        }
        if on && imp == Impl::Ours {
            bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
                .assert_ok_empty();
            bed.host(&["bridge", "link", "set", "dev", &veth, "hairpin", "off"]);
            bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
                .assert_error_containing(103, "hairpin");
        }
    }
}

#[test]
fn hairpin_mode_sends_a_containers_frames_back_to_it() {
    for v in VERSIONS {
        hairpin(Impl::Ours, v);
    }
}

#[test]
fn reference_parity_hairpin() {
    if !require_reference_plugins() {
        return;
    }
    hairpin(Impl::Reference, REFERENCE_VERSION);
}

/// A container that takes another MAC is cut off until it takes its own back; on a network
/// without the check the same change goes unnoticed.
#[test]
fn macspoofchk_drops_frames_from_another_mac() {
    for v in VERSIONS {
        for check in [true, false] {
            let ctx = format!("{v} macspoofchk={check}");
            let bed = Bed::new();
            let conf = bed.conf(
                v,
                "spoof",
                "br-spoof",
                &["10.94.0.0/24"],
                json!({"isGateway": true, "macspoofchk": check}),
            );
            let (c1, c2) = (bed.sb.container(), bed.sb.container());
            let r1 = bed.add(&conf, "c1", &c1);
            bed.add(&conf, "c2", &c2);
            assert!(pings(&c1, "10.94.0.3"), "{ctx}");
            let own = mac_of(&eth0(&c1));
            let change_mac = |mac: &str| {
                c1.run(&["ip", "link", "set", "eth0", "address", mac]);
                for ns in [&c1, &c2] {
                    ns.run(&["ip", "neigh", "flush", "all"]);
                }
            };
            change_mac("02:00:5e:00:53:99");
            if check {
                assert!(
                    !ping_once(&c1, "10.94.0.3"),
                    "{ctx}: a spoofed MAC got through"
                );
                assert!(
                    !ping_once(&c1, "10.94.0.1"),
                    "{ctx}: a spoofed MAC reached the gateway"
                );
                bed.with_prev("CHECK", &conf, &r1, "c1", c1.path_str())
                    .assert_error(103);
            } else {
                assert!(pings(&c1, "10.94.0.3"), "{ctx}");
            }
            change_mac(&own);
            assert!(
                pings(&c1, "10.94.0.3"),
                "{ctx}: the own MAC no longer works"
            );
            assert!(pings(&c1, "10.94.0.1"), "{ctx}");
            bed.with_prev("CHECK", &conf, &r1, "c1", c1.path_str())
                .assert_ok_empty();
        }
    }
}
