//! The remaining keys (portIsolation, promiscMode, enabledad, L2 only, disableContainerInterface, dns), VLANs on a kernel without filtering, concurrent ADDs.

use std::path::Path;

use cni_tests::TestNetns;
use cni_tests::fixtures::{ip_of, ping_once, pings};
use serde_json::{Value, json};

use crate::bed::*;

/// `portIsolation`: isolated ports do not reach each other, but still reach the gateway
/// and ports that are not isolated.
#[test]
fn port_isolation_keeps_isolated_ports_apart() {
    for v in VERSIONS {
        let bed = Bed::new();
        let isolated = bed.conf(
            v,
            "piso",
            "br-piso",
            &["10.106.0.0/24"],
            json!({"isGateway": true, "portIsolation": true}),
        );
        let open = bed.conf(
            v,
            "piso",
            "br-piso",
            &["10.106.0.0/24"],
            json!({"isGateway": true}),
        );
        let (c1, c2, c3) = (bed.sb.container(), bed.sb.container(), bed.sb.container());
        let r1 = bed.add(&isolated, "c1", &c1);
        bed.add(&isolated, "c2", &c2);
        bed.add(&open, "c3", &c3);
        let port: Value = serde_json::from_str(&bed.host(&[
            "bridge",
            "-d",
            "-j",
            "link",
            "show",
            "dev",
            &host_veth_of(&r1),
        ]))
        .unwrap();
        assert_eq!(port[0]["isolated"], true, "{v}: {port}");
        assert!(pings(&c1, "10.106.0.1"), "{v}");
        assert!(pings(&c2, "10.106.0.1"), "{v}");
        assert!(
            pings(&c1, "10.106.0.4"),
            "{v}: an isolated port cannot reach an open one"
        );
        assert!(
            !ping_once(&c1, "10.106.0.3"),
            "{v}: isolated ports reached each other"
        );
        bed.with_prev("CHECK", &isolated, &r1, "c1", c1.path_str())
            .assert_ok_empty();
    }
}

#[test]
fn promisc_mode_is_set_on_the_bridge_and_checked() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = bed.conf(
            v,
            "prom",
            "br-prom",
            &["10.107.0.0/24"],
            json!({"promiscMode": true}),
        );
        let ctr = bed.sb.container();
        let r = bed.add(&conf, "c1", &ctr);
        let br = bed.host_link("br-prom").unwrap();
        assert!(br["promiscuity"].as_u64().unwrap() >= 1, "{v}: {br}");
        bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
            .assert_ok_empty();
        bed.host(&["ip", "link", "set", "br-prom", "promisc", "off"]);
        bed.with_prev("CHECK", &conf, &r, "c1", ctr.path_str())
            .assert_error_containing(103, "promisc");
    }
}

/// `enabledad`: off by default (`accept_dad=0` in the container, as the reference does), on
/// with `accept_dad=1` and `enhanced_dad=1`.
#[test]
fn enabledad_sets_the_containers_dad_sysctls() {
    for v in VERSIONS {
        for (enable, accept) in [(false, "0"), (true, "1")] {
            let bed = Bed::new();
            let conf = bed.conf(
                v,
                "dad",
                "br-dad",
                &["fd07::/64"],
                json!({"enabledad": enable}),
            );
            let ctr = bed.sb.container();
            bed.add(&conf, "c1", &ctr);
            let get = |key: &str| {
                ctr.run(&["sysctl", "-n", &format!("net.ipv6.conf.eth0.{key}")])
                    .trim()
                    .to_string()
            };
            assert_eq!(get("accept_dad"), accept, "{v} enabledad={enable}");
            if enable {
                assert_eq!(get("enhanced_dad"), "1", "{v}");
            }
            assert_eq!(
                ctr.run(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"])
                    .trim(),
                "1",
                "{v}"
            );
        }
    }
}

/// Without IPAM the container gets an interface and nothing else (L2 only); CHECK works
/// for it (the reference's CHECK fails on an L2 network); `disableContainerInterface` leaves
/// the interface down.
#[test]
fn l2_only_networks_and_disable_container_interface() {
    for v in VERSIONS {
        let bed = Bed::new();
        let mut l2 = bed.conf(v, "l2", "br-l2", &[], json!({}));
        l2.as_object_mut().unwrap().remove("ipam");
        let (c1, c2) = (bed.sb.container(), bed.sb.container());
        let r1 = bed.add(&l2, "c1", &c1);
        let r2 = bed.add(&l2, "c2", &c2);
        assert!(r1.get("ips").is_none(), "{v}: {r1}");
        assert_eq!(r1["interfaces"].as_array().unwrap().len(), 3, "{v}: {r1}");
        assert!(addrs_of(&eth0(&c1)).is_empty(), "{v}");
        assert!(
            eth0(&c1)["flags"]
                .as_array()
                .unwrap()
                .contains(&json!("UP")),
            "{v}"
        );
        // The runtime (or another plugin) addresses them: they share the segment.
        c1.run(&["ip", "addr", "add", "192.168.7.1/24", "dev", "eth0"]);
        c2.run(&["ip", "addr", "add", "192.168.7.2/24", "dev", "eth0"]);
        assert!(pings(&c1, "192.168.7.2"), "{v}");
        bed.with_prev("CHECK", &l2, &r1, "c1", c1.path_str())
            .assert_ok_empty();
        bed.with_prev("DEL", &l2, &r2, "c2", c2.path_str())
            .assert_ok_empty();

        let mut down = l2.clone();
        down["disableContainerInterface"] = json!(true);
        let c3 = bed.sb.container();
        bed.add(&down, "c3", &c3);
        assert_eq!(eth0(&c3)["operstate"], "DOWN", "{v}");
        assert!(
            !eth0(&c3)["flags"]
                .as_array()
                .unwrap()
                .contains(&json!("UP")),
            "{v}"
        );
    }
}

/// The config's `dns` replaces what IPAM returned.
#[test]
fn dns_in_the_config_replaces_ipams() {
    for v in VERSIONS {
        let bed = Bed::new();
        let dns =
            json!({"nameservers": ["10.108.0.1"], "domain": "cni.test", "search": ["cni.test"]});
        let conf = bed.conf(v, "dns", "br-dns", &["10.108.0.0/24"], json!({"dns": dns}));
        let ctr = bed.sb.container();
        let r = bed.add(&conf, "c1", &ctr);
        assert_eq!(r["dns"], dns, "{v}: {r}");
    }
}

/// Two interfaces of one container on one network: each has its own address, rules and
/// state, and DEL of one leaves the other whole.
#[test]
fn two_interfaces_of_one_container_are_separate_attachments() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = full_conf(&bed, v, "nftables");
        let ctr = bed.sb.container();
        let call = |command: &str, ifname: &str, prev: Option<&Value>| {
            let mut conf = conf.clone();
            if let Some(prev) = prev {
                conf["prevResult"] = prev.clone();
            }
            bed.sb
                .call(bed.bins.join("bridge"), command)
                .container("c1", ctr.path_str(), ifname)
                .cni_path(bed.bins.to_str().unwrap())
                .stdin_json(&conf)
                .run()
        };
        let r0 = call("ADD", "eth0", None).assert_ok();
        let r1 = call("ADD", "eth1", None).assert_ok();
        assert_ne!(ip_of(&r0, 0), ip_of(&r1, 0), "{v}");
        assert_eq!(bed.set("inet", "masq4").len(), 2, "{v}");
        assert_eq!(bed.states("del"), vec!["c1@eth0", "c1@eth1"], "{v}");
        call("DEL", "eth1", Some(&r1)).assert_ok_empty();
        assert!(ctr.link("eth1").is_none(), "{v}");
        assert_eq!(bed.set("inet", "masq4"), vec![json!(ip_of(&r0, 0))], "{v}");
        assert_eq!(
            bed.set("bridge", "spoofchk_ports"),
            vec![json!(host_veth_of(&r0))],
            "{v}"
        );
        assert_eq!(bed.states("del"), vec!["c1@eth0"], "{v}");
        call("CHECK", "eth0", Some(&r0)).assert_ok_empty();
        assert!(pings(&ctr, "10.100.0.1"), "{v}");
        call("DEL", "eth0", Some(&r0)).assert_ok_empty();
        bed.assert_nothing_left("del");
    }
}

/// Concurrent ADDs on a fresh host race to create the bridge, the nftables structure and
/// the gateway address: every one succeeds and gets its own address and rules.
#[test]
fn concurrent_adds_on_a_fresh_host_all_succeed() {
    for backend in ["nftables", "iptables"] {
        concurrent_adds(backend);
    }
}

fn concurrent_adds(backend: &str) {
    const N: usize = 8;
    let bed = Bed::new();
    let conf = full_conf(&bed, "1.1.0", backend);
    let ctrs: Vec<TestNetns> = (0..N).map(|_| bed.sb.container()).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let (bed, conf) = (&bed, &conf);
                s.spawn(move || bed.add(conf, &format!("c{i}"), ctr))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = results.iter().map(|r| ip_of(r, 0)).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), N, "{ips:?}");
    if backend == "nftables" {
        assert_eq!(bed.set("inet", "masq4").len(), N);
    } else {
        let jumps = bed
            .iptables_cni_rules()
            .into_iter()
            .filter(|r| r.starts_with("-A POSTROUTING"))
            .count();
        assert_eq!(jumps, 2 * N, "{:?}", bed.iptables_cni_rules());
    }
    assert_eq!(bed.set("bridge", "spoofchk_ports").len(), N);
    assert_eq!(bed.states("del").len(), N);
    assert_eq!(addrs_of(&bed.host_link("br-del").unwrap()).len(), 2);
    for (i, (ctr, r)) in ctrs.iter().zip(&results).enumerate() {
        bed.with_prev("CHECK", &conf, r, &format!("c{i}"), ctr.path_str())
            .assert_ok_empty();
    }
    assert!(pings(&ctrs[0], &ip_of(&results[N - 1], 0)));
    for (i, (ctr, r)) in ctrs.iter().zip(&results).enumerate() {
        bed.with_prev("DEL", &conf, r, &format!("c{i}"), ctr.path_str())
            .assert_ok_empty();
    }
    bed.assert_nothing_left("del");
}

/// DEL needs only the attachment's key: a config that no longer validates (here a VLAN ID
/// out of range) still releases everything.
#[test]
fn del_with_a_config_that_no_longer_validates_still_cleans_up() {
    let bed = Bed::new();
    let conf = full_conf(&bed, "1.1.0", "nftables");
    let ctr = bed.sb.container();
    let r = bed.add(&conf, "c1", &ctr);
    let mut broken = conf.clone();
    broken["vlan"] = json!(5000);
    bed.with_prev("DEL", &broken, &r, "c1", ctr.path_str())
        .assert_ok_empty();
    assert!(ctr.link("eth0").is_none());
    bed.assert_nothing_left("del");
}

/// A bridge that existed before the plugin (made by an admin) keeps one MAC as containers
/// come and go, so CHECK of an early container still matches its ADD result (a bridge
/// left alone takes the lowest MAC of its ports).
#[test]
fn a_pre_existing_bridge_keeps_its_mac_as_ports_come_and_go() {
    for v in VERSIONS {
        let bed = Bed::new();
        bed.host(&["ip", "link", "add", "br-pre", "type", "bridge"]);
        let conf = bed.conf(
            v,
            "pre",
            "br-pre",
            &["10.109.0.0/24"],
            json!({"isGateway": true}),
        );
        let ctrs: Vec<TestNetns> = (0..6).map(|_| bed.sb.container()).collect();
        let results: Vec<Value> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| bed.add(&conf, &format!("c{i}"), ctr))
            .collect();
        let mac = mac_of(&bed.host_link("br-pre").unwrap());
        for (i, (ctr, r)) in ctrs.iter().zip(&results).enumerate() {
            assert_eq!(r["interfaces"][0]["mac"], mac, "{v}: c{i}");
            bed.with_prev("CHECK", &conf, r, &format!("c{i}"), ctr.path_str())
                .assert_ok_empty();
        }
    }
}

/// Our host-local found in CNI_PATH runs inside the bridge process: it works even from a
/// copy that cannot be executed. Any other file named host-local is exec'd as the spec
/// says: a script standing in for it hands out its own address and sees ADD and DEL.
#[test]
fn ipam_runs_linked_only_when_cni_path_holds_our_host_local() {
    use std::os::unix::fs::PermissionsExt;
    let bed = Bed::new();
    let ctr = bed.sb.container();
    let conf = bed.conf("1.1.0", "linked", "cnilk0", &["10.61.0.0/24"], json!({}));

    let ours = bed.sb.plugin_dir(&["bridge"], &[]);
    let copy = ours.join("host-local");
    std::fs::copy(cni_tests::plugin_bin("host-local"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let call = |dir: &Path, command: &str, conf: &Value| {
        bed.sb
            .call(dir.join("bridge"), command)
            .container("lk1", ctr.path_str(), "eth0")
            .cni_path(dir.to_str().unwrap())
            .stdin_json(conf)
            .run()
    };
    let result = call(&ours, "ADD", &conf).assert_ok();
    assert_eq!(ip_of(&result, 0), "10.61.0.2");
    assert_eq!(bed.allocations("linked"), ["10.61.0.2"]);
    call(&ours, "DEL", &conf).assert_ok_empty();
    assert!(bed.allocations("linked").is_empty());

    let foreign = bed.sb.plugin_dir(&["bridge"], &[]);
    let log = foreign.join("log");
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >> {}\n\
         [ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.1.0\",\"ips\":[{{\"address\":\"10.61.0.77/24\"}}]}}'\nexit 0\n",
        log.display()
    );
    std::fs::write(foreign.join("host-local"), script).unwrap();
    std::fs::set_permissions(
        foreign.join("host-local"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let result = call(&foreign, "ADD", &conf).assert_ok();
    assert_eq!(ip_of(&result, 0), "10.61.0.77");
    call(&foreign, "DEL", &conf).assert_ok_empty();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ADD\nDEL\n");
    assert!(bed.allocations("linked").is_empty());
}

/// A bridge made by someone else gets its MAC pinned by the first ADD only: a MAC write,
/// even of the same address, makes the host forget its neighbour entries on the bridge, so
/// a later ADD must not repeat it.
#[test]
fn a_later_add_keeps_the_hosts_neighbour_entries() {
    let bed = Bed::new();
    bed.host(&["ip", "link", "add", "br-neigh", "type", "bridge"]);
    let conf = bed.conf(
        "1.1.0",
        "neigh",
        "br-neigh",
        &["10.92.0.0/24"],
        json!({"isGateway": true}),
    );
    let (c1, c2) = (bed.sb.container(), bed.sb.container());
    let r1 = bed.add(&conf, "n1", &c1);
    let ip1 = ip_of(&r1, 0);
    let reached = (0..10).any(|_| {
        let ok = bed
            .sb
            .host_exec(&["ping", "-c", "1", "-W", "1", &ip1])
            .status
            .success();
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        ok
    });
    assert!(reached, "the host does not reach {ip1}");
    let neighbour = || bed.host(&["ip", "neigh", "show", "to", &ip1, "dev", "br-neigh"]);
    assert!(neighbour().contains("lladdr"), "{}", neighbour());
    let r2 = bed.add(&conf, "n2", &c2);
    assert!(
        neighbour().contains("lladdr"),
        "forgotten after the second ADD"
    );
    bed.with_prev("DEL", &conf, &r2, "n2", c2.path_str())
        .assert_ok_empty();
    bed.with_prev("DEL", &conf, &r1, "n1", c1.path_str())
        .assert_ok_empty();
    bed.assert_nothing_left("neigh");
}
