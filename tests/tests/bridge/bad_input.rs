//! Bad input: refused before anything is made, nothing left behind.

use serde_json::{Value, json};

use crate::bed::*;

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_behind() {
    // (extra keys, expected code, what the message names)
    let cases: Vec<(Value, u64, &str)> = vec![
        (
            json!({"hairpinMode": true, "promiscMode": true}),
            7,
            "hairpinMode",
        ),
        (json!({"vlan": 5000}), 7, "vlan"),
        (json!({"vlan": -1}), 7, "vlan"),
        (json!({"vlanTrunk": [{"id": 0}]}), 7, "vlanTrunk"),
        (json!({"vlanTrunk": [{"id": 4095}]}), 7, "vlanTrunk"),
        (
            json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]}),
            7,
            "vlanTrunk",
        ),
        (
            json!({"vlanTrunk": [{"minID": 1, "maxID": 5000}]}),
            7,
            "vlanTrunk",
        ),
        (json!({"vlanTrunk": [{"minID": 5}]}), 7, "vlanTrunk"),
        (json!({"vlanTrunk": [{"maxID": 5}]}), 7, "vlanTrunk"),
        (json!({"vlan": 5, "vlanTrunk": [{"id": 6}]}), 7, "vlanTrunk"),
        (
            json!({"ipMasq": true, "ipMasqBackend": "foo"}),
            7,
            "ipMasqBackend",
        ),
        (json!({"mtu": 70000}), 7, "mtu"),
        (json!({"mtu": 67}), 7, "mtu"),
        (json!({"mtu": -1}), 7, "mtu"),
        (json!({"bridge": "a-bridge-name-too-long"}), 7, "bridge"),
        (json!({"bridge": "br/x"}), 7, "bridge"),
        (
            json!({"vlan": 100, "isGateway": true, "bridge": "br-fifteen-ch"}),
            7,
            "bridge",
        ),
        (
            json!({"disableContainerInterface": true}),
            7,
            "disableContainerInterface",
        ),
        (json!({"portIsolation": "maybe"}), 7, "portIsolation"),
        (
            json!({"args": {"cni": {"mac": "not-a-mac"}}}),
            7,
            "args.cni.mac",
        ),
        (
            json!({"runtimeConfig": {"mac": "02:00"}}),
            7,
            "runtimeConfig.mac",
        ),
        (
            json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
            7,
            "not a unicast address",
        ),
        (json!({"mtu": "1500"}), 6, "mtu"),
        (json!({"isGateway": "yes"}), 6, "isGateway"),
    ];
    for v in VERSIONS {
        let bed = Bed::new();
        let ctr = bed.sb.container();
        for (extra, code, needle) in &cases {
            let conf = bed.conf(v, "bad", "br-bad", &["10.101.0.0/24"], extra.clone());
            bed.call("ADD", &conf, "c1", ctr.path_str())
                .run()
                .assert_error_containing(*code, needle);
            bed.assert_nothing_left("bad");
            assert!(ctr.link("eth0").is_none(), "{v} {extra}");
            let links = links(&bed.host(&["ip", "-j", "link", "show"]));
            assert_eq!(links, vec!["lo"], "{v} {extra}: links left");
        }
        // A netns that does not exist is code 8; nothing is created.
        let conf = bed.conf(v, "bad", "br-bad", &["10.101.0.0/24"], json!({}));
        bed.call("ADD", &conf, "c1", "/run/netns/cnitest-no-such-netns")
            .run()
            .assert_error(8);
        bed.assert_nothing_left("bad");
        assert_eq!(links(&bed.host(&["ip", "-j", "link", "show"])), vec!["lo"]);
        // A bad MAC in CNI_ARGS is the runtime's error (code 4).
        let conf = bed.conf(v, "bad", "br-bad", &["10.101.0.0/24"], json!({}));
        bed.call("ADD", &conf, "c1", ctr.path_str())
            .cni_args("MAC=zz:00")
            .run()
            .assert_error_containing(4, "MAC");
        bed.assert_nothing_left("bad");
    }
}

#[test]
fn an_existing_link_of_the_bridges_name_that_is_no_bridge_is_refused() {
    for v in VERSIONS {
        let bed = Bed::new();
        bed.host(&[
            "ip",
            "link",
            "add",
            "br-taken",
            "type",
            "veth",
            "peer",
            "name",
            "br-taken-p",
        ]);
        let conf = bed.conf(
            v,
            "taken",
            "br-taken",
            &["10.102.0.0/24"],
            json!({"isGateway": true}),
        );
        let ctr = bed.sb.container();
        bed.call("ADD", &conf, "c1", ctr.path_str())
            .run()
            .assert_error_containing(7, "not a bridge");
        let mut veths = links(&bed.host(&["ip", "-j", "link", "show", "type", "veth"]));
        veths.sort();
        assert_eq!(veths, vec!["br-taken", "br-taken-p"], "{v}");
        assert!(bed.allocations("taken").is_empty());
        assert!(bed.states("taken").is_empty());
        assert!(ctr.link("eth0").is_none());
    }
}

#[test]
fn an_ifname_already_in_the_netns_is_refused_and_left_alone() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = bed.conf(
            v,
            "dup",
            "br-dup",
            &["10.103.0.0/24"],
            json!({"isGateway": true, "ipMasq": true, "macspoofchk": true}),
        );
        let ctr = bed.sb.container();
        ctr.run(&[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
        ]);
        let before = eth0(&ctr);
        bed.call("ADD", &conf, "c1", ctr.path_str())
            .run()
            .assert_error_containing(4, "CNI_IFNAME");
        assert_eq!(eth0(&ctr)["ifindex"], before["ifindex"], "{v}");
        assert_eq!(mac_of(&eth0(&ctr)), mac_of(&before), "{v}");
        bed.assert_nothing_left("dup");
    }
}

/// The config allows any MTU in 68..65535 and the kernel takes all of them for a veth and a
/// bridge; what it refuses is an IPv6 address on a link below 1280. That failure comes
/// after the veth, the spoof check and the IPAM allocation, which must all be undone.
#[test]
fn an_mtu_the_kernel_refuses_for_ipv6_fails_the_add_and_undoes_it() {
    for v in VERSIONS {
        let bed = Bed::new();
        let conf = bed.conf(
            v,
            "small",
            "br-small",
            &["10.104.0.0/24", "fd68::/64"],
            json!({"isGateway": true, "mtu": 1000, "ipMasq": true, "macspoofchk": true}),
        );
        let ctr = bed.sb.container();
        let out = bed.call("ADD", &conf, "c1", ctr.path_str()).run();
        assert!(!out.success(), "{v}: {}", out.describe());
        let msg = out.msg().unwrap();
        assert!(
            msg.contains("fd68::") && msg.contains("mtu 1000"),
            "{v}: {}",
            out.describe()
        );
        bed.assert_nothing_left("small");
        assert!(ctr.link("eth0").is_none(), "{v}");
        // The same MTU with IPv4 only works.
        let v4 = bed.conf(
            v,
            "small",
            "br-small",
            &["10.104.0.0/24"],
            json!({"isGateway": true, "mtu": 1000}),
        );
        bed.add(&v4, "c1", &ctr);
        assert_eq!(eth0(&ctr)["mtu"], 1000);
    }
}

/// This kernel has no bridge VLAN filtering: a valid VLAN config fails, naming the cause,
/// and leaves nothing (the VLAN scenarios run in the VM).
#[test]
fn a_vlan_on_a_kernel_without_vlan_filtering_fails_cleanly() {
    let bed = Bed::new();
    let probe = bed.sb.host_exec(&[
        "ip",
        "link",
        "add",
        "probe0",
        "type",
        "bridge",
        "vlan_filtering",
        "1",
    ]);
    if !test_requires::kernel_without(probe.status.success(), "bridge VLAN filtering") {
        return;
    }
    for extra in [json!({"vlan": 10}), json!({"vlanTrunk": [{"id": 10}]})] {
        let conf = bed.conf("1.1.0", "vl", "br-vl", &["10.105.0.0/24"], extra.clone());
        let ctr = bed.sb.container();
        let out = bed.call("ADD", &conf, "c1", ctr.path_str()).run();
        assert!(!out.success(), "{extra}: {}", out.describe());
        assert!(
            out.msg().unwrap().to_lowercase().contains("vlan"),
            "{}",
            out.describe()
        );
        bed.assert_nothing_left("vl");
        assert!(ctr.link("eth0").is_none());
        let links = links(&bed.host(&["ip", "-j", "link", "show"]));
        assert_eq!(links, vec!["lo"], "{extra}: links left");
    }
}
