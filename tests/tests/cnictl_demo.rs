//! `cnictl demo`: the whole workflow runs, and it leaves nothing on the machine, also when it
//! is interrupted (SIGINT, as Ctrl-C sends) in the middle.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni_tests::{bin_dir, plugin_bin};

/// Named namespaces whose name starts with `prefix`.
fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                out.push(format!("{name}: {text}"));
            }
        }
    }
    out
}

/// The sandbox temp dir the demo announces.
fn temp_dir_of(output: &str) -> String {
    output
        .split_whitespace()
        .find(|w| w.starts_with("/tmp/cnictl-demo."))
        .map(|w| w.trim_end_matches('.').to_string())
        .unwrap_or_else(|| panic!("no temp dir in the output:\n{output}"))
}

fn demo() -> Command {
    let mut cmd = Command::new(plugin_bin("cnictl"));
    cmd.arg("demo")
        .env("CNI_PATH", bin_dir())
        .env_remove("NETCONFPATH")
        .env_remove("CNICTL_EXEC_NETNS")
        .env_remove("CNICTL_CACHE_DIR")
        .env_remove("CNICTL_DATA_DIR");
    cmd
}

#[test]
fn demo_plays_the_workflow_and_leaves_nothing() {
    let child = demo()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "$ cnictl network create app-net",
        "connected web-server to app-net: eth0",
        "ports 8080->80/tcp",
        "(in client) cnictl demo-fetch http://web-server/",
        "(in host) cnictl demo-fetch http://127.0.0.1:8080/",
        "connected web-server to db-net: eth1",
        "aliases db",
        "(in db-client) cnictl demo-fetch http://db/",
        "fails as it should: cannot resolve web-server",
        "fails as it should: cannot connect to",
        "\"name\": \"web-server\"",
        "disconnected web-server (eth1) from db-net",
        "has 2 container(s) connected",
        "Deleted Networks:",
        "nothing left behind",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("Hello from web-server").count(),
        3,
        "{stdout}"
    );
    let dir = temp_dir_of(&stdout);
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    assert_eq!(
        netns_with_prefix(&format!("cnictl-demo-{pid}")),
        Vec::<String>::new()
    );
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}

#[test]
fn interrupted_demo_removes_everything() {
    // Interrupt at several points: right after the first network, with servers and the DNS
    // sidecar running, and in the middle of the second network.
    for stop_at in ["== 2.", "== 5.", "== 7."] {
        let mut child = demo()
            .args(["--pause-ms", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut seen = String::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with(stop_at) || Instant::now() > deadline {
                break;
            }
        }
        assert!(seen.contains(stop_at), "{stop_at} never came:\n{seen}");
        let dir = temp_dir_of(&seen);
        assert!(!netns_with_prefix(&format!("cnictl-demo-{pid}")).is_empty());
        std::thread::sleep(Duration::from_millis(150));
        nix_kill(pid, "INT");
        for line in lines {
            let _ = line;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stop_at}: {stderr}");
        assert!(
            stderr.contains("removing everything the demo made"),
            "{stderr}"
        );
        assert!(stderr.contains("nothing left behind"), "{stderr}");
        assert!(
            !std::path::Path::new(&dir).exists(),
            "{stop_at}: {dir} left behind"
        );
        assert_eq!(
            netns_with_prefix(&format!("cnictl-demo-{pid}")),
            Vec::<String>::new(),
            "{stop_at}"
        );
        assert_eq!(
            processes_mentioning(&dir),
            Vec::<String>::new(),
            "{stop_at}"
        );
    }
}

fn nix_kill(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
