//! Self-test of the harness: binaries are found, namespaces come and go, plugins run inside
//! the sandbox host, and libcni drives a real chain of reference plugins there.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cni_tests::{PluginCall, Sandbox, TestNetns, bin_dir, plugin_bin, reference_bin, run_plugin};
use libcni::RuntimeConf;
use serde_json::json;

#[test]
fn reference_plugin_answers_version_through_the_harness() {
    let out = run_plugin(&reference_bin("bridge"), "VERSION", &[], b"");
    let v = out.assert_ok();
    let supported: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    // Debian's reference plugins (1.1.x) speak up to 1.0.0.
    for want in ["0.3.1", "0.4.0", "1.0.0"] {
        assert!(supported.contains(&want), "{supported:?}");
    }
}

#[test]
fn error_codes_are_read_from_stdout() {
    // The Go skel reports missing variables as code 4 and names them.
    let out = run_plugin(
        &reference_bin("bridge"),
        "ADD",
        &[],
        br#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#,
    );
    out.assert_error_containing(4, "CNI_CONTAINERID");
    // An unknown command, with every variable present, is code 4.
    let conf = br#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#;
    PluginCall::new(reference_bin("bridge"), "FOO")
        .container("c1", "/run/netns/none", "eth0")
        .cni_path("/usr/lib/cni")
        .stdin(&conf[..])
        .run()
        .assert_error_containing(4, "FOO");
    // No CNI_COMMAND at all really means unset: the Go skel then prints its "about" text.
    let about = PluginCall::new(reference_bin("bridge"), "")
        .stdin(&conf[..])
        .run();
    assert!(
        about.json.is_none() && about.stderr.contains("CNI bridge plugin"),
        "{}",
        about.describe()
    );
    // A config without a name is code 7.
    run_plugin(
        &reference_bin("bridge"),
        "ADD",
        &[
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ],
        br#"{"cniVersion":"1.0.0","type":"bridge"}"#,
    )
    .assert_error(7);
}

#[test]
fn our_binaries_are_found_in_the_target_directory() {
    let dir = bin_dir();
    assert!(
        dir.ends_with("debug")
            || dir.ends_with("release")
            || std::env::var_os("CNI_TEST_BIN_DIR").is_some(),
        "{}",
        dir.display()
    );
    let out = run_plugin(&plugin_bin("host-local"), "VERSION", &[], b"");
    assert!(out.assert_ok()["supportedVersions"].is_array());
}

#[test]
#[should_panic(expected = "run `cargo build --workspace` first")]
fn a_missing_binary_says_how_to_build_it() {
    plugin_bin("no-such-plugin");
}

#[test]
fn a_netns_is_created_and_removed() {
    let ns = TestNetns::new();
    let path = ns.path().to_path_buf();
    assert!(path.exists());
    assert!(
        ns.name()
            .starts_with(&format!("cnitest-{}-", std::process::id()))
    );
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(ns.name()));
    // A new namespace has only a loopback, down.
    let links = ns.run(&["ip", "-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(ns.link("lo").is_some());
    assert!(ns.link("eth0").is_none());
    // Two namespaces never share a name.
    let other = TestNetns::new();
    assert_ne!(other.name(), ns.name());
    drop(ns);
    assert!(!path.exists());
}

#[test]
fn dropping_a_netns_stops_what_runs_inside() {
    let ns = TestNetns::new();
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "sleep", "30"])
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while ns.pids().is_empty() && t.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(ns.pids(), vec![child.id()]);
    drop(ns);
    let status = child.wait().unwrap();
    assert!(!status.success());
}

/// A shell "plugin" that reports the namespace and /sys it sees.
fn ns_reporter(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("nsreport");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf '{\"ns\":\"%s\",\"sys\":\"%s\"}' \"$(readlink /proc/self/ns/net)\" \"$(ls /sys/class/net | tr '\\n' ' ')\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn sandbox_plugins_run_inside_the_private_host() {
    let sb = Sandbox::new();
    let reporter = ns_reporter(sb.dir());
    let v = sb.call(&reporter, "VERSION").run().assert_ok();
    let inode = std::fs::metadata(sb.host_path()).unwrap().ino();
    assert_eq!(v["ns"], format!("net:[{inode}]"));
    // /sys shows the sandbox's devices, not the machine's.
    assert_eq!(v["sys"].as_str().unwrap().trim(), "lo");
    // Without the sandbox, the plugin runs where the test runs.
    let v = PluginCall::new(&reporter, "VERSION").run().assert_ok();
    assert_ne!(v["ns"], format!("net:[{inode}]"));
    // The sandbox's directories exist and are private to it.
    for d in [sb.data_dir(), sb.cache_dir(), sb.conf_dir()] {
        assert!(d.is_dir() && d.starts_with(sb.dir()));
    }
}

#[test]
fn libcni_runs_a_reference_chain_inside_the_sandbox() {
    let sb = Sandbox::new();
    let ctr = sb.container();
    let cni = sb.reference();
    let list = sb.conflist(&json!({
        "cniVersion": "1.0.0",
        "name": "smoke",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "smokebr0",
                "isGateway": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": sb.data_dir(),
                    "ranges": [[{"subnet": "10.213.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            // Its saved originals stay in the sandbox, not in the machine's /run/cni.
            {"type": "tuning", "capabilities": {"mac": true},
             "dataDir": sb.data_dir().join("tuning")}
        ]
    }));
    let mut rt = RuntimeConf::new("smoke1", ctr.path_str(), "eth0");
    rt.capability_args
        .insert("mac".into(), json!("c2:11:22:33:44:55"));

    let result = cni.add_network_list(&list, &rt).unwrap();
    let ip = result.ips[0].address;
    assert_eq!(ip.to_string(), "10.213.0.2/24");

    // The bridge is in the sandbox host, not on the machine.
    assert!(sb.host.link("smokebr0").is_some());
    assert!(
        !std::process::Command::new("ip")
            .args(["link", "show", "smokebr0"])
            .output()
            .unwrap()
            .status
            .success()
    );
    // The container got the address and the MAC from the capability argument.
    let eth0 = ctr.link("eth0").unwrap();
    assert_eq!(eth0["address"], "c2:11:22:33:44:55");
    assert!(eth0.to_string().contains("10.213.0.2"));
    // Traffic between our own namespaces only: container to its gateway.
    ctr.run(&["busybox", "ping", "-c", "1", "-W", "2", "10.213.0.1"]);

    // The result is cached in the sandbox, in libcni's format.
    let cached = sb.cache_dir().join("results/smoke-smoke1-eth0");
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached).unwrap()).unwrap();
    assert_eq!(entry["kind"], "cniCacheV1");
    assert_eq!(entry["result"]["ips"][0]["address"], "10.213.0.2/24");
    assert!(sb.data_dir().join("smoke/10.213.0.2").exists());

    cni.check_network_list(&list, &rt).unwrap();
    cni.status_network_list(&list).unwrap();

    cni.del_network_list(&list, &rt).unwrap();
    assert!(ctr.link("eth0").is_none());
    assert!(!cached.exists());
    assert!(!sb.data_dir().join("smoke/10.213.0.2").exists());
    // DEL is idempotent.
    cni.del_network_list(&list, &rt).unwrap();
}

#[test]
fn libcni_gc_releases_what_the_runtime_forgot() {
    // 1.0.0: the reference plugins here predate GC, so this exercises libcni's own part, the
    // DEL of cached attachments that are no longer valid.
    let sb = Sandbox::new();
    let cni = sb.reference();
    let list = sb.conflist(&json!({
        "cniVersion": "1.0.0",
        "name": "gcnet",
        "plugins": [{
            "type": "bridge",
            "bridge": "gcbr0",
            "ipam": {
                "type": "host-local",
                "dataDir": sb.data_dir(),
                "ranges": [[{"subnet": "10.214.0.0/24"}]]
            }
        }]
    }));
    let a = sb.container();
    let b = sb.container();
    cni.add_network_list(&list, &RuntimeConf::new("keep", a.path_str(), "eth0"))
        .unwrap();
    cni.add_network_list(&list, &RuntimeConf::new("stale", b.path_str(), "eth0"))
        .unwrap();
    let valid = [cni::Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    }];
    cni.gc_network_list(&list, Some(&valid)).unwrap();
    assert!(a.link("eth0").is_some());
    assert!(b.link("eth0").is_none());
    let left: Vec<String> = cni
        .cached_attachments(None)
        .unwrap()
        .into_iter()
        .map(|e| e.container_id)
        .collect();
    assert_eq!(left, ["keep"]);
    cni.del_network_list(&list, &RuntimeConf::new("keep", a.path_str(), "eth0"))
        .unwrap();
}

#[test]
fn a_mixed_plugin_dir_runs_ours_next_to_the_reference() {
    let sb = Sandbox::new();
    let dir = sb.plugin_dir(&["loopback"], &["bridge", "host-local"]);
    for name in ["loopback", "bridge", "host-local"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    assert_eq!(
        std::fs::read_link(dir.join("bridge")).unwrap(),
        reference_bin("bridge")
    );
    let mut cni = sb.cni_config(vec![dir]);
    // See `our_plugins_answer_the_libcni_version_probe`: until then, no VERSION round.
    cni.validate_versions = false;
    let ctr = sb.container();
    let lo = sb.conflist(&json!({
        "cniVersion": "1.0.0",
        "name": "lo",
        "plugins": [{"type": "loopback"}]
    }));
    let rt = RuntimeConf::new("mixed1", ctr.path_str(), "lo");
    cni.add_network_list(&lo, &rt).unwrap();
    assert!(ctr.run(&["ip", "-o", "link", "show", "lo"]).contains("UP"));
    cni.del_network_list(&lo, &rt).unwrap();
}

/// libcni (and so podman, cnitool's runtime library and containerd) sends VERSION with
/// CNI_NETNS, CNI_IFNAME and CNI_PATH set to "dummy"; a plugin must answer it anyway.
#[test]
fn our_plugins_answer_the_libcni_version_probe() {
    let sb = Sandbox::new();
    let cni = sb.ours();
    for name in ["loopback", "host-local"] {
        let info = cni
            .version_info(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(info.supports(cni::Version::V1_1_0), "{name}: {info:?}");
    }
}
