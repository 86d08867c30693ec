//! The CNI conformance checklist (cni-reference.md §1.15) for every plugin that exists, at
//! cniVersion 0.3.1, 0.4.0, 1.0.0 and 1.1.0, exec'ing the built binaries as a runtime does,
//! inside a private sandbox host.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cni_tests::fixtures::allocations;
use cni_tests::{PluginCall, Sandbox, TestNetns, bin_dir, plugin_bin};
use serde_json::{Value, json};

const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const ALL_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A plugin under test: its binary and a config at a given version.
#[derive(Clone, Copy)]
enum Subject {
    HostLocal,
    Loopback,
    Bridge,
    Firewall,
    Tuning,
    Macvlan,
}

const SUBJECTS: [Subject; 6] = [
    Subject::HostLocal,
    Subject::Loopback,
    Subject::Bridge,
    Subject::Macvlan,
    Subject::Firewall,
    Subject::Tuning,
];

impl Subject {
    fn bin(self) -> PathBuf {
        plugin_bin(match self {
            Subject::HostLocal => "host-local",
            Subject::Loopback => "loopback",
            Subject::Bridge => "bridge",
            Subject::Firewall => "firewall",
            Subject::Tuning => "tuning",
            Subject::Macvlan => "macvlan",
        })
    }

    fn conf(self, version: &str, data_dir: &Path) -> Value {
        match self {
            Subject::HostLocal => host_local_conf(version, data_dir, "10.77.0.0/24"),
            Subject::Loopback => json!({"cniVersion": version, "name": "lo", "type": "loopback"}),
            Subject::Bridge => {
                let mut conf = host_local_conf(version, data_dir, "10.77.0.0/24");
                conf["type"] = json!("bridge");
                conf["bridge"] = json!("cnf0");
                conf["isGateway"] = json!(true);
                conf["ipMasq"] = json!(true);
                conf["dataDir"] = json!(data_dir.join("bridge"));
                conf
            }
            // Chained plugins: the result of a main plugin comes as prevResult.
            Subject::Firewall | Subject::Tuning => {
                let name = if let Subject::Firewall = self {
                    "firewall"
                } else {
                    "tuning"
                };
                let mut conf = json!({
                    "cniVersion": version, "name": "conformance", "type": name,
                    "dataDir": data_dir.join(name),
                    "prevResult": {"cniVersion": version, "interfaces": [{"name": "eth0"}],
                                   "ips": [{"address": "10.77.0.9/24", "interface": 0}]}
                });
                if let Subject::Tuning = self {
                    conf["mtu"] = json!(1400);
                }
                conf
            }
            Subject::Macvlan => {
                let mut conf = host_local_conf(version, data_dir, "10.77.0.0/24");
                conf["type"] = json!("macvlan");
                conf["master"] = json!("cnfm0");
                conf
            }
        }
    }

    /// What the sandbox host needs first: macvlan's master, a veth end (no dummy here).
    fn prepare(self, sandbox: &Sandbox) {
        if let Subject::Macvlan = self {
            sandbox.host_run(&[
                "ip", "link", "add", "cnfm0", "type", "veth", "peer", "name", "cnfm1",
            ]);
            sandbox.host_run(&["ip", "link", "set", "cnfm0", "up"]);
        }
    }
}

fn host_local_conf(version: &str, data_dir: &Path, subnet: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": "conformance",
        "type": "host-local",
        "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]}
    })
}

/// A sandbox, a container netns and the calls of one subject at one version.
struct Case {
    sandbox: Sandbox,
    container: TestNetns,
    subject: Subject,
    conf: Value,
}

impl Case {
    fn new(subject: Subject, version: &str) -> Case {
        let sandbox = Sandbox::new();
        subject.prepare(&sandbox);
        let conf = subject.conf(version, &sandbox.data_dir());
        let container = sandbox.container();
        if let Subject::Tuning = subject {
            // tuning changes the interface a main plugin created: a veth pair stands in.
            container.run(&[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0",
            ]);
        }
        Case {
            container,
            sandbox,
            subject,
            conf,
        }
    }

    fn call(&self, command: &str, id: &str) -> PluginCall {
        self.sandbox
            .call(self.subject.bin(), command)
            .container(id, self.container.path_str(), "eth0")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&self.conf)
    }

    fn with_prev(&self, command: &str, id: &str, prev: &Value) -> PluginCall {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.call(command, id).stdin_json(&conf)
    }

    fn add(&self, id: &str) -> Value {
        self.call("ADD", id).run().assert_ok()
    }

    /// Undoes what ADD did behind the plugin's back, for CHECK to notice.
    fn break_attachment(&self, result: &Value) {
        match self.subject {
            Subject::HostLocal => {
                let ip = result["ips"][0]["address"].as_str().unwrap();
                let ip = ip.split('/').next().unwrap();
                std::fs::remove_file(self.sandbox.data_dir().join("conformance").join(ip)).unwrap();
            }
            Subject::Firewall => {
                self.sandbox.host_run(&[
                    "nft",
                    "delete",
                    "element",
                    "inet",
                    "cni_firewall",
                    "allow4",
                    "{ 10.77.0.9 }",
                ]);
            }
            Subject::Tuning => {
                self.container
                    .run(&["ip", "link", "set", "eth0", "mtu", "1300"]);
            }
            Subject::Loopback => {
                self.container.run(&["ip", "link", "set", "lo", "down"]);
            }
            Subject::Bridge | Subject::Macvlan => {
                self.container.run(&["ip", "addr", "flush", "dev", "eth0"]);
            }
        }
    }

    fn allocations(&self) -> Vec<String> {
        allocations(&self.sandbox.data_dir().join("conformance"))
    }
}

#[test]
fn version_lists_every_spec_version_and_echoes_the_asked_one() {
    for subject in SUBJECTS {
        let out = PluginCall::new(subject.bin(), "VERSION").run().assert_ok();
        assert_eq!(out["supportedVersions"], json!(ALL_VERSIONS));
        for v in VERSIONS {
            let out = PluginCall::new(subject.bin(), "VERSION")
                .stdin_json(&json!({"cniVersion": v}))
                .env("CNI_NETNS", "dummy")
                .env("CNI_IFNAME", "dummy")
                .env("CNI_PATH", "dummy")
                .run()
                .assert_ok();
            assert_eq!(out["cniVersion"], v);
        }
    }
}

#[test]
fn unsupported_version_is_code_1() {
    for subject in SUBJECTS {
        let case = Case::new(subject, "1.0.0");
        for bad in ["0.5.0", "2.0.0", "x"] {
            let mut conf = case.conf.clone();
            conf["cniVersion"] = json!(bad);
            case.call("ADD", "c1")
                .stdin_json(&conf)
                .run()
                .assert_error(1);
        }
        assert!(case.allocations().is_empty());
    }
}

#[test]
fn missing_or_invalid_env_is_code_4_naming_the_variable() {
    for subject in SUBJECTS {
        let case = Case::new(subject, "1.0.0");
        for command in ["ADD", "CHECK"] {
            for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
                case.call(command, "c1")
                    .unset(var)
                    .run()
                    .assert_error_containing(4, var);
            }
        }
        case.call("DEL", "c1")
            .unset("CNI_NETNS")
            .run()
            .assert_ok_empty();
        for ifname in ["sixteen-chars-xx", "a/b", "a:b", "a b", ".", ".."] {
            case.call("ADD", "c1")
                .env("CNI_IFNAME", ifname)
                .run()
                .assert_error_containing(4, "CNI_IFNAME");
        }
        for id in ["a/b", "../x", "..", "-x"] {
            case.call("ADD", "c1")
                .env("CNI_CONTAINERID", id)
                .run()
                .assert_error_containing(4, "CNI_CONTAINERID");
        }
        case.call("FROB", "c1")
            .run()
            .assert_error_containing(4, "FROB");
        assert!(case.allocations().is_empty());
    }
}

#[test]
fn undecodable_config_is_code_6_and_a_bad_name_code_7() {
    for subject in SUBJECTS {
        let case = Case::new(subject, "1.0.0");
        case.call("ADD", "c1")
            .stdin("{not json")
            .run()
            .assert_error(6);
        case.call("ADD", "c1").stdin("[1,2]").run().assert_error(6);
        let mut conf = case.conf.clone();
        conf.as_object_mut().unwrap().remove("name");
        case.call("ADD", "c1")
            .stdin_json(&conf)
            .run()
            .assert_error(7);
        conf["name"] = json!("bad/name");
        case.call("ADD", "c1")
            .stdin_json(&conf)
            .run()
            .assert_error(7);
        assert!(case.allocations().is_empty());
    }
}

#[test]
fn add_result_is_in_exactly_the_config_version() {
    for subject in SUBJECTS {
        for v in VERSIONS {
            let case = Case::new(subject, v);
            let result = case.add("c1");
            assert_eq!(result["cniVersion"], v, "{result}");
            let ip = &result["ips"][0];
            assert!(ip["address"].is_string(), "{result}");
            let has_version = ip.get("version").is_some();
            assert_eq!(has_version, v != "1.0.0" && v != "1.1.0", "{v}: {result}");
            if let Subject::Bridge = subject {
                let ifaces = result["interfaces"].as_array().unwrap();
                assert_eq!(ifaces.len(), 3, "{result}");
                assert_eq!(ifaces[2]["sandbox"], case.container.path_str(), "{result}");
                assert_eq!(ip["interface"], 2, "{result}");
            }
            if let Subject::HostLocal = subject {
                // An IPAM result names no interfaces.
                assert!(result.get("interfaces").is_none(), "{result}");
                assert!(ip.get("interface").is_none(), "{result}");
            }
        }
    }
}

#[test]
fn legacy_versions_get_ip4_and_ip6_objects() {
    for subject in SUBJECTS {
        for v in ["0.1.0", "0.2.0"] {
            let case = Case::new(subject, v);
            let result = case.add("c1");
            assert!(result["ip4"]["ip"].is_string(), "{v}: {result}");
            assert!(result.get("ips").is_none(), "{v}: {result}");
        }
    }
}

#[test]
fn chained_loopback_passes_the_previous_result_through() {
    for v in VERSIONS {
        let case = Case::new(Subject::Loopback, v);
        let host_local = Case::new(Subject::HostLocal, v);
        let prev = host_local.add("c1");
        let out = case.with_prev("ADD", "c1", &prev).run().assert_ok();
        assert_eq!(out, prev, "{v}");
    }
}

#[test]
fn del_succeeds_twice_without_prev_result_without_netns_and_after_the_netns_is_gone() {
    for subject in SUBJECTS {
        for v in VERSIONS {
            let case = Case::new(subject, v);
            let result = case.add("c1");
            if v != "0.3.1" {
                case.with_prev("DEL", "c1", &result).run().assert_ok_empty();
            } else {
                case.call("DEL", "c1").run().assert_ok_empty();
            }
            case.call("DEL", "c1").run().assert_ok_empty();
            case.call("DEL", "c1")
                .env("CNI_NETNS", "")
                .run()
                .assert_ok_empty();
            assert!(case.allocations().is_empty(), "{v}");

            // The container's netns disappears before DEL: IPAM is still released.
            case.add("c2");
            let gone = case.container.path_str().to_string();
            let Case {
                sandbox,
                container,
                subject,
                conf,
            } = case;
            drop(container);
            let orphan = PluginCall::new(subject.bin(), "DEL")
                .in_netns(sandbox.host_path())
                .cni_path(bin_dir().to_str().unwrap())
                .container("c2", &gone, "eth0")
                .stdin_json(&conf)
                .run();
            orphan.assert_ok_empty();
            assert!(allocations(&sandbox.data_dir().join("conformance")).is_empty());
        }
    }
}

#[test]
fn add_fails_when_the_interface_already_exists_in_the_netns() {
    for subject in [Subject::Bridge, Subject::Macvlan] {
        for v in VERSIONS {
            let case = Case::new(subject, v);
            case.add("c1");
            case.call("ADD", "c2")
                .run()
                .assert_error_containing(4, "already exists");
            assert_eq!(case.allocations(), vec!["10.77.0.2"], "{v}");
        }
    }
}

#[test]
fn a_failed_add_after_ipam_releases_the_allocation() {
    let sandbox = Sandbox::new();
    let container = sandbox.container();
    let bin_dir = sandbox.plugin_dir(&["host-local", "cni-test-delegator"], &[]);
    let mut conf = host_local_conf("1.0.0", &sandbox.data_dir(), "10.78.0.0/24");
    conf["type"] = json!("cni-test-delegator");
    let call = |id: &str, conf: &Value| {
        sandbox
            .call(bin_dir.join("cni-test-delegator"), "ADD")
            .container(id, container.path_str(), "eth0")
            .cni_path(bin_dir.to_str().unwrap())
            .stdin_json(conf)
            .run()
    };
    let ok = call("c1", &conf).assert_ok();
    assert_eq!(ok["ips"][0]["address"], "10.78.0.2/24");
    conf["failAfterIpam"] = json!(true);
    let failed = call("c2", &conf);
    assert!(!failed.success(), "{}", failed.describe());
    // Only the first container's address remains: the failed ADD's was released.
    assert_eq!(
        allocations(&sandbox.data_dir().join("conformance")),
        vec!["10.78.0.2"]
    );
}

#[test]
fn check_passes_after_add_and_fails_once_something_is_removed() {
    for subject in SUBJECTS {
        for v in ["0.4.0", "1.0.0", "1.1.0"] {
            let case = Case::new(subject, v);
            let result = case.add("c1");
            case.with_prev("CHECK", "c1", &result)
                .run()
                .assert_ok_empty();
            case.break_attachment(&result);
            case.with_prev("CHECK", "c1", &result)
                .run()
                .assert_error(103);
        }
        let case = Case::new(subject, "0.3.1");
        let result = case.add("c1");
        case.with_prev("CHECK", "c1", &result).run().assert_error(1);
    }
}

#[test]
fn gc_releases_what_is_not_valid_and_needs_1_1_0() {
    let case = Case::new(Subject::HostLocal, "1.1.0");
    for id in ["keep", "drop1", "drop2"] {
        case.add(id);
    }
    let mut conf = case.conf.clone();
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    case.sandbox
        .call(Subject::HostLocal.bin(), "GC")
        .stdin_json(&conf)
        .run()
        .assert_ok_empty();
    assert_eq!(case.allocations(), vec!["10.77.0.2"]);
    // An empty list is meaningful: nothing is valid any more.
    conf["cni.dev/valid-attachments"] = json!([]);
    case.sandbox
        .call(Subject::HostLocal.bin(), "GC")
        .stdin_json(&conf)
        .run()
        .assert_ok_empty();
    assert!(case.allocations().is_empty());

    for subject in SUBJECTS {
        let old = Case::new(subject, "1.0.0");
        old.sandbox
            .call(subject.bin(), "GC")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&old.conf)
            .run()
            .assert_error(1);
        let new = Case::new(subject, "1.1.0");
        new.sandbox
            .call(subject.bin(), "GC")
            .cni_path(bin_dir().to_str().unwrap())
            .stdin_json(&new.conf)
            .run()
            .assert_ok_empty();
    }
}

#[test]
fn status_reports_ready_exhausted_and_needs_1_1_0() {
    for subject in SUBJECTS {
        let case = Case::new(subject, "1.1.0");
        let status = |conf: &Value| {
            case.sandbox
                .call(subject.bin(), "STATUS")
                .cni_path(bin_dir().to_str().unwrap())
                .stdin_json(conf)
                .run()
        };
        status(&case.conf).assert_ok_empty();
        let mut old = case.conf.clone();
        old["cniVersion"] = json!("1.0.0");
        status(&old).assert_error(1);
    }
    // A /30 has one address to hand out (.1 is the gateway).
    let case = Case::new(Subject::HostLocal, "1.1.0");
    let conf = host_local_conf("1.1.0", &case.sandbox.data_dir(), "10.79.0.0/30");
    let call = |cmd: &str| {
        case.sandbox
            .call(Subject::HostLocal.bin(), cmd)
            .container("c1", case.container.path_str(), "eth0")
            .stdin_json(&conf)
            .run()
    };
    call("STATUS").assert_ok_empty();
    call("ADD").assert_ok();
    call("STATUS").assert_error_containing(50, "exhausted");
    call("DEL").assert_ok_empty();
    call("STATUS").assert_ok_empty();
}

#[test]
fn unknown_cni_args_need_ignore_unknown() {
    for subject in SUBJECTS {
        let case = Case::new(subject, "1.0.0");
        if let Subject::HostLocal | Subject::Bridge | Subject::Macvlan = subject {
            case.call("ADD", "c1")
                .cni_args("FOO=bar")
                .run()
                .assert_error_containing(4, "FOO");
            assert!(case.allocations().is_empty());
        }
        case.call("ADD", "c1")
            .cni_args("IgnoreUnknown=1;FOO=bar;K8S_POD_NAME=web")
            .run()
            .assert_ok();
    }
}
