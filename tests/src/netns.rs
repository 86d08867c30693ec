//! Throwaway named network namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace (`ip netns add cnitest-<pid>-<n>`) at `/run/netns/<name>`.
/// Dropping it stops the processes still running inside (the test started them) and deletes
/// it.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    /// Creates a fresh namespace. Panics when it cannot (the tests need root).
    pub fn new() -> TestNetns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("cnitest-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("cannot run `ip` (package iproute2)");
        if !out.status.success() {
            panic!(
                "ip netns add {name} failed (tests need root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let path = Path::new("/run/netns").join(&name);
        TestNetns { name, path }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string, for CNI_NETNS.
    pub fn path_str(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Runs a command inside the namespace (`ip netns exec <name> ...`).
    /// Panics naming the Debian package when the command is not installed.
    pub fn exec(&self, args: &[&str]) -> Output {
        let (cmd, rest) = args.split_first().expect("exec needs a command");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(rest)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {cmd}: {e}", self.name));
        let not_found = format!("exec of \"{cmd}\" failed: No such file or directory");
        if String::from_utf8_lossy(&out.stderr).contains(&not_found) {
            panic!("missing `{cmd}`: {}", test_requires::install_hint(cmd));
        }
        out
    }

    /// Runs a command inside the namespace and returns its stdout; panics when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        if !out.status.success() {
            panic!(
                "`{}` in netns {} failed ({}): {}{}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a command inside the namespace succeeds.
    pub fn succeeds(&self, args: &[&str]) -> bool {
        self.exec(args).status.success()
    }

    /// `ip -j addr show dev <ifname>` parsed, or `None` when the interface does not exist.
    pub fn link(&self, ifname: &str) -> Option<serde_json::Value> {
        let out = self.exec(&["ip", "-j", "addr", "show", "dev", ifname]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.first().cloned()
    }

    /// Brings `lo` up.
    pub fn lo_up(&self) {
        self.run(&["ip", "link", "set", "lo", "up"]);
    }

    /// The ids of the processes whose network namespace this is.
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops every process left inside (TERM, then KILL after a second), by pid.
    pub fn stop_processes(&self) {
        let pids = self.pids();
        if pids.is_empty() {
            return;
        }
        signal(&pids, "TERM");
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && !self.pids().is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = self.pids();
        if !left.is_empty() {
            signal(&left, "KILL");
        }
    }
}

fn signal(pids: &[u32], sig: &str) {
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}"));
    cmd.args(pids.iter().map(u32::to_string));
    let _ = cmd.output();
}

impl Default for TestNetns {
    fn default() -> Self {
        TestNetns::new()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        self.stop_processes();
        let out = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: ip netns delete {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("warning: ip netns delete {}: {e}", self.name),
        }
    }
}
