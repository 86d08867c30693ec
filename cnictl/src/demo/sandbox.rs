//! The demo's private world: named network namespaces, a temp dir and the processes started in
//! them, all recorded before they exist so that a Ctrl-C (SIGINT), SIGTERM or SIGHUP at any
//! moment removes exactly them: the signals are taken by a thread of their own, which tears
//! the sandbox down and exits.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

use crate::error::{CliError, Result};

/// Everything the demo made, in the order it is undone.
#[derive(Debug, Default)]
struct Registry {
    /// Processes started, by PID.
    pids: Vec<i32>,
    /// Named network namespaces (`ip netns`).
    netns: Vec<String>,
    /// The temp dir.
    dir: Option<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    netns: Vec::new(),
    dir: None,
});
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a signal arrived (the teardown is then under way on the signal thread).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The write end of the pipe the signal handler reports signals on.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

/// Routes SIGINT, SIGTERM and SIGHUP to a thread that tears the sandbox down and exits with
/// 128 + the signal. The handler only writes the signal's number to a pipe; no signal is
/// blocked, so the processes the demo starts get the usual signal mask.
pub fn catch_signals() -> Result<()> {
    let (read, write) =
        nix::unistd::pipe().map_err(|e| CliError::new(format!("cannot make a pipe: {e}")))?;
    SIGNAL_PIPE.store(write.into_raw_fd(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls write(2) (async-signal-safe).
        unsafe { sigaction(sig, &action) }
            .map_err(|e| CliError::new(format!("cannot catch {sig}: {e}")))?;
    }
    let mut read = File::from(read);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let sig = match read.read_exact(&mut byte) {
                Ok(()) => Signal::try_from(i32::from(byte[0])).unwrap_or(Signal::SIGINT),
                Err(_) => return,
            };
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\n{sig}: removing everything the demo made...");
            let mut reg = registry();
            let left = teardown(&mut reg);
            if left.is_empty() {
                eprintln!("sandbox removed, nothing left behind");
            } else {
                for l in left {
                    eprintln!("warning: {l}");
                }
            }
            std::process::exit(128 + sig as i32);
        })
        .map_err(|e| CliError::new(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// The PIDs whose network namespace is the one at `path` (what `ip netns pids` reports).
pub fn pids_in_netns(path: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let key = (target.dev(), target.ino());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == key)
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// SIGTERM, then SIGKILL after a second, for each PID still running; reaps our children.
fn stop_pids(pids: &[i32]) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        reap();
        let running: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if running.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for pid in running {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
            reap();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reap() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

/// Undoes everything recorded; returns what could not be undone.
fn teardown(reg: &mut Registry) -> Vec<String> {
    let mut left = Vec::new();
    // Processes started directly, then anything else living in our namespaces (the DNS
    // sidecar a plugin started).
    let mut pids = std::mem::take(&mut reg.pids);
    for ns in &reg.netns {
        pids.extend(pids_in_netns(&netns_path(ns)));
    }
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|p| *p != std::process::id() as i32);
    stop_pids(&pids);
    for ns in std::mem::take(&mut reg.netns).iter().rev() {
        let path = netns_path(ns);
        if !path.exists() {
            continue;
        }
        let ok = Command::new("ip")
            .args(["netns", "delete", ns])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok || path.exists() {
            left.push(format!(
                "network namespace {ns} (remove it with `ip netns delete {ns}`)"
            ));
        }
    }
    if let Some(dir) = reg.dir.take()
        && dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        left.push(format!("{}: {e}", dir.display()));
    }
    left
}

/// Tears down what is recorded (the demo's normal end); returns what is left.
pub fn teardown_all() -> Vec<String> {
    teardown(&mut registry())
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(crate::env::NETNS_RUN_DIR).join(name)
}

/// Creates the temp dir (recorded first).
pub fn make_dir() -> Result<PathBuf> {
    let mut reg = registry();
    let dir = tempfile::Builder::new()
        .prefix("cnictl-demo.")
        .tempdir()
        .map_err(|e| CliError::new(format!("cannot create a temp dir: {e}")))?
        .keep();
    reg.dir = Some(dir.clone());
    Ok(dir)
}

/// Creates a named network namespace with `lo` up (recorded before it exists).
pub fn add_netns(name: &str) -> Result<PathBuf> {
    let mut reg = registry();
    reg.netns.push(name.to_string());
    let out = Command::new("ip")
        .args(["netns", "add", name])
        .output()
        .map_err(|e| CliError::new(format!("cannot run `ip` (iproute2): {e}")))?;
    if !out.status.success() {
        return Err(CliError::new(format!(
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    drop(reg);
    let path = netns_path(name);
    let ns = cni_netlink::NetNs::open(&path)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    cni_netlink::Netlink::in_netns(&ns)
        .and_then(|mut nl| nl.set_link_up("lo".to_string()))
        .map_err(|e| CliError::new(format!("lo up in {name}: {e}")))?;
    Ok(path)
}

/// A command that runs inside the namespace at `netns`, in a process group of its own (so a
/// terminal's Ctrl-C reaches only cnictl, which stops it).
pub fn command_in(netns: &Path, program: &Path, args: &[&str]) -> Result<Command> {
    let ns =
        File::open(netns).map_err(|e| CliError::new(format!("open {}: {e}", netns.display())))?;
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    let enter = move || -> std::io::Result<()> {
        // SAFETY: setns on a descriptor the closure owns; async-signal-safe.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: the closure only makes one system call (see above).
    unsafe {
        cmd.pre_exec(enter);
    }
    Ok(cmd)
}

/// Starts a long-running process (recorded by PID before anything else can happen).
pub fn spawn(mut cmd: Command) -> Result<Child> {
    let mut reg = registry();
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start {:?}: {e}", cmd.get_program())))?;
    reg.pids.push(child.id() as i32);
    Ok(child)
}

/// Stops a process started with [`spawn`], by PID.
pub fn stop(child: &mut Child) {
    let pid = child.id() as i32;
    stop_pids(&[pid]);
    let _ = child.wait();
    registry().pids.retain(|p| *p != pid);
}

/// Deletes a namespace made with [`add_netns`] after stopping what runs in it.
pub fn del_netns(name: &str) -> Result<()> {
    let path = netns_path(name);
    stop_pids(&pids_in_netns(&path));
    let out = Command::new("ip")
        .args(["netns", "delete", name])
        .output()
        .map_err(|e| CliError::new(format!("cannot run `ip`: {e}")))?;
    if !out.status.success() {
        return Err(CliError::new(format!(
            "ip netns delete {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    registry().netns.retain(|n| n != name);
    Ok(())
}
