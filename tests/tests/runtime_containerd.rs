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

use std::path::Path;
use std::process::Command;

use harness::{RuntimeSandbox, check, cri_python, require_tools};
use serde_json::{Value, json};

const IMAGE: &str = "localhost/bb:latest";
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
    let python = cri_python().unwrap_or_else(|e| panic!("CRI client setup: {e}"));
    let cri = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtimes/cri.py");
    let t = sb.dir.path().display().to_string();
    for sub in ["ctd/net.d", "ctd/root", "ctd/state"] {
        std::fs::create_dir_all(sb.path(sub)).unwrap();
    }
    std::fs::write(
        sb.path("ctd/net.d/10-ctdnet.conflist"),
        serde_json::to_vec_pretty(&podman_shaped_conflist()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        sb.path("ctd/config.toml"),
        format!(
            "version = 2\n\
             root = \"{t}/ctd/root\"\n\
             state = \"{t}/ctd/state\"\n\
             [grpc]\n  address = \"{t}/ctd/containerd.sock\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n\
             \x20 restrict_oom_score_adj = true\n\
             \x20 sandbox_image = \"{IMAGE}\"\n\
             \x20 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
             \x20   snapshotter = \"native\"\n\
             \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
             \x20   bin_dir = \"{t}/bin\"\n\
             \x20   conf_dir = \"{t}/ctd/net.d\"\n"
        ),
    )
    .unwrap();
    let rootfs = sb.rootfs();
    let image = sb.path("image.tar");
    check(
        Command::new(&python)
            .arg(&cri)
            .args(["image", &image.display().to_string()])
            .arg(&rootfs)
            .arg(IMAGE)
            .output()
            .unwrap(),
        "build image",
    );
    let sock = sb.path("ctd/containerd.sock");
    sb.start_holder(
        &format!("containerd --config {t}/ctd/config.toml"),
        "containerd.log",
        Some(&sock),
    );
    let sock_s = sock.display().to_string();
    check(
        Command::new("ctr")
            .args([
                "-a",
                &sock_s,
                "-n",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "native",
            ])
            .arg(&image)
            .output()
            .unwrap(),
        "ctr images import",
    );

    let out = check(
        Command::new("ip")
            .args(["netns", "exec", sb.host.name()])
            .arg(&python)
            .arg(&cri)
            .args(["run", &sock_s, IMAGE, &HOST_PORT.to_string()])
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
