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

/// The example with every `dataDir` pointed into the sandbox.
fn sandboxed(path: &PathBuf, sandbox: &Sandbox) -> NetworkConfigList {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for plugin in value["plugins"].as_array_mut().unwrap() {
        if plugin["ipam"]["dataDir"].is_string() {
            plugin["ipam"]["dataDir"] = Value::from(sandbox.data_dir().to_str().unwrap());
        }
    }
    sandbox.conflist(&value)
}

#[test]
fn every_example_runs_a_full_cycle() {
    for path in examples() {
        NetworkConfigList::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let sandbox = Sandbox::new();
        let list = sandboxed(&path, &sandbox);
        let cni = sandbox.ours();
        let container = sandbox.container();
        let rt = RuntimeConf::new("example", container.path_str(), "eth0");
        let result = cni
            .add_network_list(&list, &rt)
            .unwrap_or_else(|e| panic!("{}: ADD: {e}", path.display()));
        assert!(!result.ips.is_empty(), "{}: {result:?}", path.display());
        cni.check_network_list(&list, &rt).unwrap();
        cni.status_network_list(&list).unwrap();
        cni.gc_network_list(
            &list,
            Some(&[cni::Attachment {
                container_id: "example".into(),
                ifname: "eth0".into(),
            }]),
        )
        .unwrap();
        cni.check_network_list(&list, &rt).unwrap();
        cni.del_network_list(&list, &rt).unwrap();
        cni.del_network_list(&list, &rt).unwrap();
    }
}
