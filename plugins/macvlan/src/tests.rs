//! Unit tests of configuration parsing and validation; the kernel side is exercised by the
//! black-box tests in tests/.

#![allow(clippy::unwrap_used)]

use cni::Request;
use cni::error::code;
use cni_netlink::{MacvlanMode, Netlink};
use serde_json::{Value, json};

use child_link::{Addressing, Kind, Master};

use crate::config::macvlan_config;

pub(crate) fn request(conf: Value, cni_args: &str) -> Request {
    cni::testing::request("ADD", &conf, cni_args).unwrap()
}

fn conf(extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "mv", "type": "macvlan"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn err_code(extra: Value) -> u32 {
    macvlan_config(&request(conf(extra), "")).unwrap_err().code
}

#[test]
fn defaults_are_the_references() {
    let cfg = macvlan_config(&request(conf(json!({})), "")).unwrap();
    assert_eq!(
        cfg.kind,
        Kind::Macvlan {
            mode: MacvlanMode::Bridge,
            mac: None,
            bc_queue_len: None
        }
    );
    assert_eq!(cfg.master, Master::DefaultRoute);
    assert_eq!(cfg.mtu, None);
    assert!(!cfg.link_in_container);
    assert_eq!(cfg.addressing, Addressing::None);
    let cfg = macvlan_config(&request(
        conf(
            json!({"master": "eth1", "mode": "", "mtu": 0, "bcqueuelen": 0,
                    "linkInContainer": true, "ipam": {"type": "host-local"}}),
        ),
        "",
    ))
    .unwrap();
    assert_eq!(cfg.master, Master::Named("eth1".into()));
    assert_eq!(cfg.mtu, None);
    assert!(cfg.link_in_container);
    assert_eq!(cfg.addressing, Addressing::Ipam("host-local".into()));
    // `ipam: {}` is L2 only.
    let cfg = macvlan_config(&request(conf(json!({"ipam": {}})), "")).unwrap();
    assert_eq!(cfg.addressing, Addressing::None);
}

#[test]
fn every_mode_and_no_other() {
    for (name, mode) in [
        ("bridge", MacvlanMode::Bridge),
        ("private", MacvlanMode::Private),
        ("vepa", MacvlanMode::Vepa),
        ("passthru", MacvlanMode::Passthru),
    ] {
        let cfg = macvlan_config(&request(conf(json!({"mode": name})), "")).unwrap();
        assert_eq!(cfg.kind.mode(), mode.to_string());
    }
    for bad in ["source", "Bridge", "l2", "x"] {
        let err = macvlan_config(&request(conf(json!({"mode": bad})), "")).unwrap_err();
        assert_eq!(err.code, code::INVALID_NETWORK_CONFIG, "{bad}");
        assert!(err.msg.contains("unknown macvlan mode"), "{}", err.msg);
    }
}

#[test]
fn numbers_are_range_checked() {
    assert_eq!(err_code(json!({"mtu": -1})), code::INVALID_NETWORK_CONFIG);
    assert_eq!(err_code(json!({"mtu": 67})), code::INVALID_NETWORK_CONFIG);
    assert_eq!(
        err_code(json!({"mtu": 65536})),
        code::INVALID_NETWORK_CONFIG
    );
    assert_eq!(err_code(json!({"mtu": "1500"})), code::DECODING_FAILURE);
    assert_eq!(
        err_code(json!({"bcqueuelen": -1})),
        code::INVALID_NETWORK_CONFIG
    );
    assert_eq!(
        err_code(json!({"bcqueuelen": 4_294_967_296_i64})),
        code::INVALID_NETWORK_CONFIG
    );
    let cfg = macvlan_config(&request(conf(json!({"mtu": 1400, "bcqueuelen": 100})), "")).unwrap();
    assert_eq!(cfg.mtu, Some(1400));
    assert!(matches!(
        cfg.kind,
        Kind::Macvlan {
            bc_queue_len: Some(100),
            ..
        }
    ));
    assert_eq!(
        err_code(json!({"master": "sixteen-chars-xx"})),
        code::INVALID_NETWORK_CONFIG
    );
}

fn mac_of(extra: Value, args: &str) -> Option<String> {
    match macvlan_config(&request(conf(extra), args)).unwrap().kind {
        Kind::Macvlan { mac, .. } => mac.map(|m| m.to_string()),
        Kind::Ipvlan { .. } => unreachable!(),
    }
}

#[test]
fn mac_from_key_then_cni_args_then_runtime_config() {
    let key = json!({"mac": "02:00:00:00:00:01"});
    assert_eq!(mac_of(key.clone(), "").unwrap(), "02:00:00:00:00:01");
    assert_eq!(
        mac_of(key.clone(), "MAC=02:00:00:00:00:02").unwrap(),
        "02:00:00:00:00:02"
    );
    let both = json!({"mac": "02:00:00:00:00:01",
                      "runtimeConfig": {"mac": "02:00:00:00:00:03"}});
    assert_eq!(
        mac_of(both, "MAC=02:00:00:00:00:02").unwrap(),
        "02:00:00:00:00:03"
    );
    assert_eq!(mac_of(json!({}), "IgnoreUnknown=1;FOO=x"), None);
    // Bad input: a bad key is code 7, a bad CNI_ARGS code 4.
    assert_eq!(
        err_code(json!({"mac": "nope"})),
        code::INVALID_NETWORK_CONFIG
    );
    assert_eq!(
        err_code(json!({"mac": "01:00:5e:00:00:01"})),
        code::INVALID_NETWORK_CONFIG
    );
    let err = macvlan_config(&request(conf(json!({})), "MAC=zz")).unwrap_err();
    assert_eq!(err.code, code::INVALID_ENV);
    let err = macvlan_config(&request(conf(json!({})), "FOO=bar")).unwrap_err();
    assert_eq!(err.code, code::INVALID_ENV);
    // passthru takes the master's address: asking for another is an error.
    let err = macvlan_config(&request(
        conf(json!({"mode": "passthru", "mac": "02:00:00:00:00:01"})),
        "",
    ))
    .unwrap_err();
    assert_eq!(err.code, code::INVALID_NETWORK_CONFIG);
    assert!(err.msg.contains("passthru"), "{}", err.msg);
}

#[test]
fn master_lookup_explains_what_is_wrong() {
    // Needs a private netns: only as root.
    if !test_requires::root() {
        return;
    }
    let ns = cni_netlink::NetNs::new_unnamed().unwrap();
    let msgs = ns
        .run(|| {
            let mut nl = Netlink::host().unwrap();
            let find = |nl: &mut Netlink, extra: Value| {
                let cfg = macvlan_config(&request(conf(extra), "")).unwrap();
                child_link::find_master(nl, &cfg).unwrap_err()
            };
            vec![
                find(&mut nl, json!({"master": "eth9"})),
                find(&mut nl, json!({})),
                find(&mut nl, json!({"master": "lo"})),
            ]
        })
        .unwrap();
    assert!(
        msgs[0].msg.contains("eth9 does not exist"),
        "{}",
        msgs[0].msg
    );
    assert!(msgs[1].msg.contains("no default route"), "{}", msgs[1].msg);
    assert!(msgs[2].msg.contains("loopback"), "{}", msgs[2].msg);
    for e in msgs {
        assert_eq!(e.code, code::INVALID_NETWORK_CONFIG);
    }
}
