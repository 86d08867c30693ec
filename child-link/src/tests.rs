//! Unit tests of what every child link shares.

#![allow(clippy::unwrap_used)]

use cni::error::code;
use serde_json::json;

use crate::config::chained_master;

#[test]
fn chained_master_is_the_single_other_interface() {
    let prev: cni::CniResult = serde_json::from_value(json!({
        "interfaces": [{"name": "m0"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.1.0.2/24", "interface": 0}]
    }))
    .unwrap();
    assert_eq!(chained_master(&prev, "eth0", "/run/netns/x").unwrap(), "m0");
    // Another container's eth0 is not ours.
    assert!(chained_master(&prev, "eth0", "/run/netns/y").is_err());
    let none = cni::CniResult::default();
    let err = chained_master(&none, "eth0", "/run/netns/x").unwrap_err();
    assert_eq!(err.code, code::INVALID_NETWORK_CONFIG);
}
