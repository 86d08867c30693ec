//! Every example config in `conf/` loads as libcni loads it and works through a full
//! ADD, CHECK, GC, STATUS and DEL cycle in a sandbox (its `dataDir` moved into the sandbox).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cni_tests::Sandbox;
use libcni::{NetworkConfigList, RuntimeConf};
use serde_json::Value;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conflist"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// The example with every plugin's state in the sandbox: IPAM's `dataDir`, and the
/// `dataDir` our plugins keep their attachment state in (default under /run/cni).
fn sandboxed(path: &PathBuf, sandbox: &Sandbox) -> Value {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for plugin in value["plugins"].as_array_mut().unwrap() {
        if plugin["ipam"].is_object() {
            plugin["ipam"]["dataDir"] = Value::from(sandbox.data_dir().to_str().unwrap());
        }
        let kind = plugin["type"].as_str().unwrap_or("plugin").to_string();
        plugin["dataDir"] = Value::from(sandbox.data_dir().join(kind).to_str().unwrap());
    }
    value
}

#[test]
fn every_example_runs_a_full_cycle() {
    for path in examples() {
        NetworkConfigList::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        run_cycle(&path, None);
        // Configs of versions without CHECK, STATUS and GC (kindnet's 0.3.1) get them too,
        // on the same chain at 1.1.0.
        if value["cniVersion"] != "1.1.0" {
            run_cycle(&path, Some("1.1.0"));
        }
    }
}

/// ADD, then what the version allows of CHECK, STATUS and GC (keeping the attachment), DEL
/// twice; nothing of the attachment may be left.
fn run_cycle(path: &PathBuf, version: Option<&str>) {
    let what = format!("{} at {}", path.display(), version.unwrap_or("its version"));
    let sandbox = Sandbox::new();
    let mut value = sandboxed(path, &sandbox);
    if let Some(v) = version {
        value["cniVersion"] = Value::from(v);
    }
    let list = sandbox.conflist(&value);
    let cni = sandbox.ours();
    let container = sandbox.container();
    let rt = RuntimeConf::new("example", container.path_str(), "eth0");
    let result = cni
        .add_network_list(&list, &rt)
        .unwrap_or_else(|e| panic!("{what}: ADD: {e}"));
    assert!(!result.ips.is_empty(), "{what}: {result:?}");
    if list.cni_version.has_check() {
        cni.check_network_list(&list, &rt)
            .unwrap_or_else(|e| panic!("{what}: CHECK: {e}"));
    }
    if list.cni_version.has_status_and_gc() {
        cni.status_network_list(&list)
            .unwrap_or_else(|e| panic!("{what}: STATUS: {e}"));
        cni.gc_network_list(
            &list,
            Some(&[cni::Attachment {
                container_id: "example".into(),
                ifname: "eth0".into(),
            }]),
        )
        .unwrap_or_else(|e| panic!("{what}: GC: {e}"));
        cni.check_network_list(&list, &rt)
            .unwrap_or_else(|e| panic!("{what}: CHECK after GC: {e}"));
    }
    cni.del_network_list(&list, &rt)
        .unwrap_or_else(|e| panic!("{what}: DEL: {e}"));
    cni.del_network_list(&list, &rt)
        .unwrap_or_else(|e| panic!("{what}: DEL again: {e}"));
    let left = cni_tests::fixtures::allocations(&sandbox.data_dir().join(&list.name));
    assert!(left.is_empty(), "{what}: addresses left: {left:?}");
}
