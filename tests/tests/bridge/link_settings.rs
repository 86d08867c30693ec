//! Link settings: MTU, the three MAC sources, gateways and forceAddress.

use cni_tests::fixtures::pings;
use cni_tests::require_reference_plugins;
use libcni::RuntimeConf;
use serde_json::{Value, json};

use crate::bed::*;

fn mtu_case(imp: Impl, v: &str) {
    let bed = Bed::with(imp);
    let conf = bed.conf(
        v,
        "mtu",
        "br-mtu",
        &["10.95.0.0/24"],
        json!({"isGateway": true, "mtu": 1400}),
    );
    let (c1, c2) = (bed.sb.container(), bed.sb.container());
    let r = bed.add(&conf, "c1", &c1);
    bed.add(&conf, "c2", &c2);
    assert_eq!(bed.host_link("br-mtu").unwrap()["mtu"], 1400, "{v}");
    assert_eq!(
        bed.host_link(&host_veth_of(&r)).unwrap()["mtu"],
        1400,
        "{v}"
    );
    assert_eq!(eth0(&c1)["mtu"], 1400, "{v}");
    if v == "1.1.0" {
        for i in 0..3 {
            assert_eq!(r["interfaces"][i]["mtu"], 1400, "{r}");
        }
    }
    // A full-size unfragmentable packet crosses; one byte more does not leave.
    let df_ping = |size: &str| {
        let args = [
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            size,
            "10.95.0.3",
        ];
        c1.succeeds(&args)
    };
    assert!(pings(&c1, "10.95.0.3"), "{v}");
    assert!(df_ping("1372"), "{v}");
    assert!(!df_ping("1373"), "{v}");
}

#[test]
fn mtu_is_set_on_the_new_bridge_and_both_veth_ends() {
    for v in VERSIONS {
        mtu_case(Impl::Ours, v);
    }
}

const FROM_ENV: &str = "02:00:5e:10:00:01";
const FROM_ARGS: &str = "02:00:5e:10:00:02";
const FROM_RUNTIME: &str = "02:00:5e:10:00:03";

fn mac_case(imp: Impl, v: &str) {
    let bed = Bed::with(imp);
    let base = bed.conf(
        v,
        "mac",
        "br-mac",
        &["10.96.0.0/24"],
        json!({"capabilities": {"mac": true}}),
    );

    let c1 = bed.sb.container();
    let r = bed
        .call("ADD", &base, "c1", c1.path_str())
        .cni_args(&format!("IgnoreUnknown=1;MAC={FROM_ENV}"))
        .run()
        .assert_ok();
    assert_eq!(mac_of(&eth0(&c1)), FROM_ENV, "{v}");
    assert_eq!(r["interfaces"][2]["mac"], FROM_ENV, "{v}: {r}");

    let mut with_args = base.clone();
    with_args["args"] = json!({"cni": {"mac": FROM_ARGS}});
    let c2 = bed.sb.container();
    bed.call("ADD", &with_args, "c2", c2.path_str())
        .cni_args(&format!("IgnoreUnknown=1;MAC={FROM_ENV}"))
        .run()
        .assert_ok();
    assert_eq!(mac_of(&eth0(&c2)), FROM_ARGS, "{v}");

    // Through libcni: the runtime passes the mac capability as runtimeConfig.
    let list = bed.list(&with_args);
    let c3 = bed.sb.container();
    let mut rt = RuntimeConf::new("c3", c3.path_str(), "eth0");
    rt.args = vec![
        ("IgnoreUnknown".into(), "1".into()),
        ("MAC".into(), FROM_ENV.into()),
    ];
    rt.capability_args.insert("mac".into(), json!(FROM_RUNTIME));
    let r3 = bed.cni().add_network_list(&list, &rt).unwrap();
    assert_eq!(mac_of(&eth0(&c3)), FROM_RUNTIME, "{v}");
    assert_eq!(r3.interfaces[2].mac, FROM_RUNTIME, "{v}");
    bed.cni().check_network_list(&list, &rt).unwrap();

    // Two containers with their own MACs still talk.
    assert_eq!(r3.ips[0].address.to_string(), "10.96.0.4/24", "{v}");
    assert!(pings(&c1, "10.96.0.4"), "{v}");
}

#[test]
fn container_mac_from_cni_args_args_and_runtime_config_the_last_wins() {
    for v in VERSIONS {
        mac_case(Impl::Ours, v);
    }
}

fn default_gateway_case(imp: Impl, v: &str) {
    let bed = Bed::with(imp);
    let conf = bed.conf(
        v,
        "dgw",
        "br-dgw",
        &["10.97.0.0/24", "fd97::/64"],
        json!({"isDefaultGateway": true}),
    );
    let ctr = bed.sb.container();
    bed.add(&conf, "c1", &ctr);
    let r4: Value =
        serde_json::from_str(&ctr.run(&["ip", "-j", "-4", "route", "show", "default"])).unwrap();
    assert_eq!(r4[0]["gateway"], "10.97.0.1", "{v}: {r4}");
    assert_eq!(r4[0]["dev"], "eth0", "{v}: {r4}");
    let r6: Value =
        serde_json::from_str(&ctr.run(&["ip", "-j", "-6", "route", "show", "default"])).unwrap();
    assert_eq!(r6[0]["gateway"], "fd97::1", "{v}: {r6}");
    assert!(addrs_of(&bed.host_link("br-dgw").unwrap()).contains(&"10.97.0.1/24".to_string()));
    // Without isGateway nothing goes on the bridge and no route is added.
    let plain = bed.conf(v, "l2", "br-l2", &["10.97.1.0/24"], json!({}));
    let c2 = bed.sb.container();
    let r = bed.add(&plain, "c2", &c2);
    assert!(r.get("routes").is_none(), "{v}: {r}");
    assert!(addrs_of(&bed.host_link("br-l2").unwrap()).is_empty(), "{v}");
    let routes: Value =
        serde_json::from_str(&c2.run(&["ip", "-j", "-4", "route", "show", "default"])).unwrap();
    assert_eq!(routes, json!([]), "{v}");
}

#[test]
fn is_default_gateway_adds_a_default_route_via_the_bridge() {
    for v in VERSIONS {
        default_gateway_case(Impl::Ours, v);
    }
}

#[test]
fn force_address_replaces_a_different_bridge_address_without_it_add_fails_cleanly() {
    for v in VERSIONS {
        let bed = Bed::new();
        bed.host(&["ip", "link", "add", "br-force", "type", "bridge"]);
        bed.host(&["ip", "addr", "add", "10.98.9.1/24", "dev", "br-force"]);
        let base = json!({"isGateway": true, "ipMasq": true, "macspoofchk": true});
        let conf = bed.conf(v, "force", "br-force", &["10.98.0.0/24"], base);
        let ctr = bed.sb.container();
        bed.call("ADD", &conf, "c1", ctr.path_str())
            .run()
            .assert_error_containing(7, "forceAddress");
        bed.assert_nothing_left("force");
        assert!(ctr.link("eth0").is_none(), "{v}");
        assert_eq!(
            addrs_of(&bed.host_link("br-force").unwrap()),
            vec!["10.98.9.1/24"]
        );

        let mut forced = conf.clone();
        forced["forceAddress"] = json!(true);
        let r = bed.add(&forced, "c1", &ctr);
        assert_eq!(
            addrs_of(&bed.host_link("br-force").unwrap()),
            vec!["10.98.0.1/24"]
        );
        assert!(pings(&ctr, "10.98.0.1"), "{v}");
        bed.with_prev("DEL", &forced, &r, "c1", ctr.path_str())
            .assert_ok_empty();
        bed.assert_nothing_left("force");
    }
}

#[test]
fn reference_parity_mtu_mac_and_default_gateway() {
    if !require_reference_plugins() {
        return;
    }
    mtu_case(Impl::Reference, REFERENCE_VERSION);
    mac_case(Impl::Reference, REFERENCE_VERSION);
    default_gateway_case(Impl::Reference, REFERENCE_VERSION);
}
