//! Executing one plugin exactly as a runtime does, and timing it.
//!
//! The child gets the six CNI_* variables (all of them, empty when unset, as libcni's
//! `invoke.Args.AsEnv` does) plus a fixed `PATH`, and nothing else of our environment, so that
//! both implementations see the same thing whatever shell started the bench. The config goes
//! to stdin; stdout and stderr are collected. The time measured is the wall time from just
//! before the spawn to the moment the exited child is reaped: what a runtime waits for.

use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::signals;

/// The `PATH` plugins get (the reference portmap and firewall exec iptables/nft through it).
pub const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CNI_* parameters of one call.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS, already joined (`K=V;K2=V2`).
    pub args: String,
    /// CNI_PATH, already joined with `:`.
    pub path: String,
}

impl Invocation {
    pub fn new(command: &str) -> Invocation {
        Invocation {
            command: command.to_string(),
            ..Invocation::default()
        }
    }

    pub fn container(mut self, id: impl Into<String>) -> Invocation {
        self.container_id = id.into();
        self
    }

    pub fn netns(mut self, netns: impl Into<String>) -> Invocation {
        self.netns = netns.into();
        self
    }

    pub fn ifname(mut self, ifname: impl Into<String>) -> Invocation {
        self.ifname = ifname.into();
        self
    }

    pub fn args(mut self, args: impl Into<String>) -> Invocation {
        self.args = args.into();
        self
    }

    pub fn cni_path(mut self, path: impl Into<String>) -> Invocation {
        self.path = path.into();
        self
    }

    /// The same call with another command (ADD → DEL).
    pub fn with_command(&self, command: &str) -> Invocation {
        Invocation {
            command: command.to_string(),
            ..self.clone()
        }
    }

    pub fn env(&self) -> [(&'static str, &str); 7] {
        [
            ("PATH", PLUGIN_PATH),
            ("CNI_COMMAND", &self.command),
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_ARGS", &self.args),
            ("CNI_PATH", &self.path),
        ]
    }
}

/// Namespaces the plugin process is moved into between fork and exec: a network namespace
/// and a mount namespace (where `/sys` shows that network namespace). Both are file
/// descriptors that must stay open until the spawn returns.
#[derive(Debug, Clone, Copy)]
pub struct EnterNs {
    pub net: RawFd,
    pub mnt: RawFd,
}

/// What one successful call produced.
#[derive(Debug)]
pub struct Timed {
    pub elapsed: Duration,
    pub stdout: Vec<u8>,
}

impl Timed {
    /// stdout parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.stdout).map_err(|e| {
            Error::msg(format!(
                "plugin output is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.stdout)
            ))
        })
    }
}

/// Runs `bin` once with `inv`'s variables and `stdin`, inside `ns` when given, and returns how
/// long it took. A non-zero exit (or death by signal) is an error carrying what the plugin
/// printed: a benchmark of failing calls is worthless.
pub fn exec_plugin(
    bin: &Path,
    inv: &Invocation,
    stdin: &[u8],
    ns: Option<EnterNs>,
) -> Result<Timed> {
    signals::check()?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(inv.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = ns {
        enter_before_exec(&mut cmd, ns);
    }

    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::msg(format!("cannot exec {}: {e}", bin.display())))?;
    if let Some(mut pipe) = child.stdin.take() {
        // Configs are far smaller than a pipe buffer, so this does not wait for the plugin.
        // A plugin that exits without reading everything is judged by its exit status.
        let _ = pipe.write_all(stdin);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::msg(format!("waiting for {}: {e}", bin.display())))?;
    let elapsed = start.elapsed();

    if !output.status.success() {
        // Ctrl-C reaches the plugin too: that is not the plugin's failure.
        signals::check()?;
        return Err(Error::msg(format!(
            "{} {} (container {:?}, netns {:?}, ifname {:?}) failed with {}\n  stdout: {}\n  stderr: {}",
            bin.display(),
            inv.command,
            inv.container_id,
            inv.netns,
            inv.ifname,
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
        )));
    }
    Ok(Timed {
        elapsed,
        stdout: output.stdout,
    })
}

/// Makes the child `setns` into `ns` right before exec: two system calls, no mounts (the
/// mount namespace was prepared once, see `sandbox::HostNs`).
fn enter_before_exec(cmd: &mut Command, ns: EnterNs) {
    let pre_exec = move || -> std::io::Result<()> {
        // SAFETY: setns on descriptors the parent keeps open for the duration of the spawn;
        // no allocation or locking happens here, as required between fork and exec.
        unsafe {
            if libc::setns(ns.net, libc::CLONE_NEWNET) != 0
                || libc::setns(ns.mnt, libc::CLONE_NEWNS) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure is async-signal-safe (see above).
    unsafe {
        cmd.pre_exec(pre_exec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_has_all_six_variables_even_empty() {
        let inv = Invocation::new("DEL").container("c1").cni_path("/x:/y");
        let env = inv.env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        assert_eq!(get("CNI_COMMAND"), Some("DEL"));
        assert_eq!(get("CNI_CONTAINERID"), Some("c1"));
        assert_eq!(get("CNI_NETNS"), Some(""));
        assert_eq!(get("CNI_IFNAME"), Some(""));
        assert_eq!(get("CNI_ARGS"), Some(""));
        assert_eq!(get("CNI_PATH"), Some("/x:/y"));
    }

    #[test]
    fn times_a_process_and_reports_failures_loudly() {
        let ok = exec_plugin(Path::new("/bin/sh"), &Invocation::new("VERSION"), b"", None);
        // /bin/sh with an empty stdin exits 0.
        assert!(ok.is_ok());
        let err = exec_plugin(
            Path::new("/bin/false"),
            &Invocation::new("ADD"),
            b"{}",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }
}
