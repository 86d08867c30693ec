//! Interoperability with the reference Go plugins (Debian's containernetworking-plugins): the
//! reference bridge uses our host-local as its IPAM, and either host-local takes over a store
//! the other one wrote.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use cni_tests::{PluginCall, Sandbox, TestNetns, plugin_bin, reference_bin};
use libcni::RuntimeConf;
use serde_json::{Value, json};

fn host_local_conf(data_dir: &Path, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "interop",
        "type": "host-local",
        "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]}
    })
}

fn addresses(dir: &Path) -> Vec<String> {
    let mut ips: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    ips.sort();
    ips
}

#[test]
fn reference_bridge_delegates_ipam_to_our_host_local() {
    let sandbox = Sandbox::new();
    let dir = sandbox.plugin_dir(&["host-local", "loopback"], &["bridge"]);
    let list = sandbox.conflist(&json!({
        "cniVersion": "1.0.0",
        "name": "interop",
        "plugins": [{
            "type": "bridge", "bridge": "interop0", "isGateway": true,
            "ipam": {"type": "host-local", "dataDir": sandbox.data_dir(),
                     "ranges": [[{"subnet": "10.93.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
        }]
    }));
    let cni = sandbox.cni_config(vec![dir]);
    let (c1, c2) = (sandbox.container(), sandbox.container());
    let rt1 = RuntimeConf::new("ctr1", c1.path_str(), "eth0");
    let rt2 = RuntimeConf::new("ctr2", c2.path_str(), "eth0");
    let r1 = cni.add_network_list(&list, &rt1).unwrap();
    let r2 = cni.add_network_list(&list, &rt2).unwrap();
    assert_eq!(r1.ips[0].address.to_string(), "10.93.0.2/24");
    assert_eq!(r2.ips[0].address.to_string(), "10.93.0.3/24");
    // The address is on the container's interface and traffic flows between the two.
    let eth0 = c1.link("eth0").unwrap();
    assert!(eth0.to_string().contains("10.93.0.2"), "{eth0}");
    assert!(c1.succeeds(&["ping", "-c", "1", "-W", "2", "10.93.0.3"]));
    cni.check_network_list(&list, &rt1).unwrap();
    cni.del_network_list(&list, &rt1).unwrap();
    cni.del_network_list(&list, &rt2).unwrap();
    assert!(addresses(&sandbox.data_dir().join("interop")).is_empty());
}

#[test]
fn each_host_local_takes_over_the_others_store() {
    let data = tempfile::tempdir().unwrap();
    let netns = TestNetns::new();
    let conf = host_local_conf(data.path(), "10.94.0.0/24");
    let call = |bin: &Path, command: &str, id: &str| {
        PluginCall::new(bin, command)
            .container(id, netns.path_str(), "eth0")
            .cni_path("/usr/lib/cni")
            .stdin_json(&conf)
            .run()
    };
    let (ours, theirs) = (plugin_bin("host-local"), reference_bin("host-local"));
    let dir = data.path().join("interop");

    // The reference allocates first; ours continues round robin after it and sees its owner.
    let a = call(&theirs, "ADD", "by-ref").assert_ok();
    assert_eq!(a["ips"][0]["address"], "10.94.0.2/24");
    let b = call(&ours, "ADD", "by-ours").assert_ok();
    assert_eq!(b["ips"][0]["address"], "10.94.0.3/24");
    call(&ours, "ADD", "by-ref").assert_error(102);
    call(&ours, "CHECK", "by-ref").assert_ok_empty();

    // The reference continues after ours, and each releases what the other allocated.
    let c = call(&theirs, "ADD", "by-ref-2").assert_ok();
    assert_eq!(c["ips"][0]["address"], "10.94.0.4/24");
    call(&ours, "DEL", "by-ref").assert_ok_empty();
    call(&ours, "DEL", "by-ref-2").assert_ok_empty();
    call(&theirs, "DEL", "by-ours").assert_ok_empty();
    assert!(addresses(&dir).is_empty(), "{:?}", addresses(&dir));

    // The same container may come back through ours after the reference released it.
    call(&theirs, "ADD", "back").assert_ok();
    call(&theirs, "DEL", "back").assert_ok_empty();
    let d = call(&ours, "ADD", "back").assert_ok();
    assert_eq!(d["ips"][0]["address"], "10.94.0.6/24");
    call(&theirs, "CHECK", "back").assert_ok_empty();
}
