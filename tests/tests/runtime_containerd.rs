//! containerd 1.6 (Debian) through its CRI plugin, driven as kubelet drives it (CRI v1 from
//! Python stubs, tests/runtimes/cri.py), on the network config podman writes (bridge +
//! host-local, portmap, firewall, tuning) with containerd's own `loopback` call: two pods
//! reach each other, a hostPort answers from the sandbox host, and StopPodSandbox +
//! RemovePodSandbox (containerd's double DEL, the second with `CNI_NETNS=""`) succeed and
//! leave no rule, allocation or state behind.
//!
//! containerd runs inside a private sandbox netns and mount namespace with its root, state,
//! socket, CNI conf dir, result cache and IPAM store under a temp dir
//! (tests/runtimes/harness.rs).

#![allow(clippy::unwrap_used)]

#[path = "../runtimes/harness.rs"]
mod harness;

use std::process::Command;

use harness::{IMAGE, RuntimeSandbox, check, require_tools};
use serde_json::{Value, json};

const HOST_PORT: u16 = 18081;

/// The network podman 4 generates for `podman network create`, as a CNI conf file.
fn podman_shaped_conflist() -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": "ctdnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni-ctd0", "isGateway": true, "ipMasq": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.89.20.0/24", "gateway": "10.89.20.1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"}
        ]
    })
}

#[test]
fn containerd_cri_runs_pods_on_our_plugins_alone() {
    if !require_tools(&[
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "runc",
        "unshare",
    ]) {
        return;
    }
    let mut sb = RuntimeSandbox::new("cnirt-ctd-");
    assert!(
        sb.has_plugin("portmap"),
        "run `cargo build --workspace` first"
    );
    let cri = sb.start_containerd("10-ctdnet.conflist", &podman_shaped_conflist());
    let out = check(
        Command::new("ip")
            .args(["netns", "exec", sb.host.name()])
            .arg(&cri.python)
            .arg(&cri.script)
            .args(["run", &cri.sock, IMAGE, &HOST_PORT.to_string()])
            .arg(format!("/{}", sb.cgroup_parent))
            .output()
            .unwrap(),
        "cri.py run",
    );
    let seen: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let log = std::fs::read_to_string(sb.path("containerd.log")).unwrap_or_default();
    let server = seen["ips"]["server"].as_str().unwrap().to_string();
    let client = seen["ips"]["client"].as_str().unwrap().to_string();
    assert!(
        server.starts_with("10.89.20.") && client.starts_with("10.89.20."),
        "{seen}"
    );
    assert_eq!(seen["lo_up"], true, "{seen}");
    assert_eq!(seen["pod_to_pod_ping"], true, "{seen}");
    assert_eq!(
        seen["pod_to_pod_http"], "hello from the container",
        "{seen}"
    );
    assert_eq!(
        seen["host_port_gateway"], "hello from the container",
        "{seen}"
    );
    assert_eq!(
        seen["host_port_localhost"], "hello from the container",
        "{seen}"
    );
    assert_eq!(seen["teardown_errors"], json!([]), "{seen}\n{log}");
    assert_eq!(seen["pods_left"], 0, "{seen}");
    // Two teardowns per pod (Stop with the netns, Remove without), both successful.
    assert!(
        log.matches("TearDown network for sandbox").count() >= 4,
        "{log}"
    );
    assert!(!log.contains("failed to destroy network"), "{log}");

    assert_eq!(sb.allocations(), Vec::<String>::new());
    for ip in [&server, &client] {
        assert_eq!(sb.rules_naming(ip), Vec::<String>::new(), "rules for {ip}");
    }
    assert_eq!(sb.state_files(), Vec::<String>::new());
}
