//! Running a delegated plugin (IPAM) found through CNI_PATH, with the caller's environment and
//! the complete network config, as the spec's §4 describes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::Error;
use crate::env::{Command, Env};
use crate::result::CniResult;
use crate::skel::{Outcome, Request};

/// Finds `plugin` in the `:`-separated CNI_PATH.
pub fn find_in_path(plugin: &str, cni_path: &str) -> Result<PathBuf, Error> {
    if plugin.is_empty() || plugin.contains(['/', '\\']) {
        return Err(Error::invalid_config(format!(
            "invalid plugin type {plugin:?}: must be a file name"
        )));
    }
    if cni_path.is_empty() {
        return Err(Error::invalid_env(format!(
            "CNI_PATH is required to find the {plugin} plugin"
        )));
    }
    cni_path
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::invalid_env(format!(
                "failed to find plugin {plugin:?} in CNI_PATH {cni_path}"
            ))
        })
}

/// IPAM ADD: returns the delegate's result.
pub fn add(plugin: &str, req: &Request) -> Result<CniResult, Error> {
    let value = exec(plugin, Command::Add, req)?
        .ok_or_else(|| Error::decoding(format!("{plugin}: ADD printed no result")))?;
    CniResult::from_value(value, req.version()).map_err(|e| e.context(plugin))
}

/// IPAM DEL, CHECK, STATUS or GC.
pub fn run(plugin: &str, command: Command, req: &Request) -> Result<(), Error> {
    exec(plugin, command, req).map(|_| ())
}

/// Execs the delegate with the request's environment (CNI_COMMAND replaced) and config
/// bytes, and waits for it. A linked delegate runs on this thread: waited for at once, a
/// thread of its own would only add its start and join (0.2 to 0.5 ms of wake-ups on a
/// small VM).
fn exec(plugin: &str, command: Command, req: &Request) -> Result<Option<serde_json::Value>, Error> {
    let path = find_in_path(plugin, &req.cmd.path)?;
    let running = match crate::linked::linked_for(plugin, &path) {
        Some(linked) => Running::Done(crate::skel::dispatch(
            linked,
            &delegate_env(command, req),
            &mut req.stdin.as_slice(),
        )),
        None => Running::Process(start_process(&path, command, req)?),
    };
    Pending {
        plugin: plugin.to_string(),
        command,
        running: Some(running),
    }
    .wait()
}

/// A delegate started and not waited for yet, so that the caller can work while it runs.
/// Dropping it waits for it (no zombie is left), ignoring what it printed.
pub struct Pending {
    plugin: String,
    command: Command,
    running: Option<Running>,
}

/// A delegate runs as its own process or, when linked in (see [`crate::linked`]), on a
/// thread of this one.
enum Running {
    Process(std::process::Child),
    Thread(std::thread::JoinHandle<Outcome>),
    /// Linked and run already.
    Done(Outcome),
}

impl Pending {
    /// Starts the delegate with the request's environment (CNI_COMMAND replaced) and config
    /// bytes, without waiting for it. Configs are far smaller than a pipe's buffer: the
    /// write does not wait for the delegate either.
    pub fn start(plugin: &str, command: Command, req: &Request) -> Result<Pending, Error> {
        let path = find_in_path(plugin, &req.cmd.path)?;
        let running = match crate::linked::linked_for(plugin, &path) {
            Some(linked) => Running::Thread(start_thread(linked, plugin, command, req)?),
            None => Running::Process(start_process(&path, command, req)?),
        };
        Ok(Pending {
            plugin: plugin.to_string(),
            command,
            running: Some(running),
        })
    }

    /// Waits for the delegate: its output as JSON (`None` when it printed nothing), or its
    /// error.
    pub fn wait(mut self) -> Result<Option<serde_json::Value>, Error> {
        let (plugin, command) = (self.plugin.clone(), self.command);
        let running = self
            .running
            .take()
            .ok_or_else(|| Error::internal(format!("{plugin} was already waited for")))?;
        let (stdout, failure) = match running {
            Running::Process(child) => {
                let output = child
                    .wait_with_output()
                    .map_err(|e| Error::io(format!("wait for {plugin}: {e}")))?;
                let failure = (!output.status.success()).then(|| output.status.to_string());
                (output.stdout, failure)
            }
            Running::Thread(thread) => {
                let outcome = thread
                    .join()
                    .map_err(|_| Error::internal(format!("{plugin} (linked) panicked")))?;
                linked_output(outcome)
            }
            Running::Done(outcome) => linked_output(outcome),
        };
        if let Some(status) = failure {
            return Err(delegate_error(&plugin, &stdout, &status));
        }
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&stdout)
            .map(Some)
            .map_err(|e| Error::decoding(format!("{plugin}: decode {command} output: {e}")))
    }
}

fn start_process(
    path: &Path,
    command: Command,
    req: &Request,
) -> Result<std::process::Child, Error> {
    let mut child = Process::new(path)
        .env_clear()
        .envs(req.env.iter())
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(format!("exec {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A delegate that exits without reading stdin is judged by its exit status.
        let _ = stdin.write_all(&req.stdin);
    }
    Ok(child)
}

/// Runs a linked delegate through the skel's dispatch, as its executable would.
fn start_thread(
    linked: crate::linked::LinkedPlugin,
    plugin: &str,
    command: Command,
    req: &Request,
) -> Result<std::thread::JoinHandle<Outcome>, Error> {
    let env = delegate_env(command, req);
    let stdin = req.stdin.clone();
    std::thread::Builder::new()
        .name(plugin.to_string())
        .spawn(move || crate::skel::dispatch(linked, &env, &mut stdin.as_slice()))
        .map_err(|e| Error::io(format!("start {plugin}: {e}")))
}

impl Drop for Pending {
    fn drop(&mut self) {
        match self.running.take() {
            Some(Running::Process(mut child)) => {
                let _ = child.wait();
            }
            Some(Running::Thread(thread)) => {
                let _ = thread.join();
            }
            Some(Running::Done(_)) | None => {}
        }
    }
}

/// A linked delegate's environment: the request's, CNI_COMMAND replaced.
fn delegate_env(command: Command, req: &Request) -> Env {
    Env::from_pairs(
        req.env
            .iter()
            .filter(|(k, _)| *k != "CNI_COMMAND")
            .chain([("CNI_COMMAND", command.as_str())]),
    )
}

/// A linked delegate's output and, when it failed, how.
fn linked_output(outcome: Outcome) -> (Vec<u8>, Option<String>) {
    let failure = (!outcome.success).then(|| "failed".to_string());
    (outcome.stdout.into_bytes(), failure)
}

/// The delegate's own error object when it printed one, else how it ended.
fn delegate_error(plugin: &str, stdout: &[u8], status: &str) -> Error {
    match serde_json::from_slice::<Error>(stdout) {
        Ok(err) => err.context(plugin),
        Err(_) => Error::internal(format!("{plugin} failed with no error message: {status}")),
    }
}

/// An IPAM allocation made during ADD that is released again (delegate DEL) unless the ADD
/// completes and calls [`IpamLease::keep`].
pub struct IpamLease<'a> {
    plugin: String,
    req: &'a Request,
    kept: bool,
}

impl<'a> IpamLease<'a> {
    /// Runs the delegate's ADD; the returned lease owns the allocation. A delegate ADD that
    /// fails is not followed by a DEL (as in the Go plugins): the DEL would also release what
    /// the same attachment already held, e.g. when the failure was a duplicate ADD.
    pub fn acquire(plugin: &str, req: &'a Request) -> Result<(IpamLease<'a>, CniResult), Error> {
        let result = add(plugin, req)?;
        let lease = IpamLease {
            plugin: plugin.to_string(),
            req,
            kept: false,
        };
        Ok((lease, result))
    }

    /// Starts the delegate's ADD without waiting for it: the caller does its own work (a
    /// link to create) while IPAM allocates, then takes the lease with
    /// [`PendingLease::wait`]. A pending lease dropped before that waits for the ADD and
    /// releases what it got.
    pub fn start(plugin: &str, req: &'a Request) -> Result<PendingLease<'a>, Error> {
        Ok(PendingLease {
            pending: Some(Pending::start(plugin, Command::Add, req)?),
            plugin: plugin.to_string(),
            req,
        })
    }

    /// The ADD succeeded: the allocation stays.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

/// An IPAM ADD still running (see [`IpamLease::start`]).
pub struct PendingLease<'a> {
    pending: Option<Pending>,
    plugin: String,
    req: &'a Request,
}

impl<'a> PendingLease<'a> {
    /// Waits for the delegate's ADD: the lease and the result, as [`IpamLease::acquire`].
    pub fn wait(mut self) -> Result<(IpamLease<'a>, CniResult), Error> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| Error::internal(format!("{} was already waited for", self.plugin)))?;
        let value = pending.wait()?;
        // From here on, a failure releases what the ADD may have allocated.
        let lease = IpamLease {
            plugin: self.plugin.clone(),
            req: self.req,
            kept: false,
        };
        let value = value
            .ok_or_else(|| Error::decoding(format!("{}: ADD printed no result", self.plugin)))?;
        let result = CniResult::from_value(value, self.req.version())
            .map_err(|e| e.context(&self.plugin))?;
        Ok((lease, result))
    }
}

impl Drop for PendingLease<'_> {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        // What the ADD allocated is released; a failed ADD holds nothing.
        if pending.wait().is_ok()
            && let Err(e) = run(&self.plugin, Command::Del, self.req)
        {
            log::warn!("release {} allocation after failed ADD: {e}", self.plugin);
        }
    }
}

impl Drop for IpamLease<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = run(&self.plugin, Command::Del, self.req) {
            log::warn!("release {} allocation after failed ADD: {e}", self.plugin);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::env::{CmdArgs, Env};
    use crate::error::code;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A directory with a fake IPAM plugin that logs each command it gets and, unless
    /// `fail`, answers ADD with an address.
    struct Fake {
        dir: PathBuf,
    }

    impl Fake {
        fn new(name: &str, fail: bool) -> Fake {
            let dir = std::env::temp_dir().join(format!("cni-fake-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let answer = if fail {
                r#"echo '{"code":101,"msg":"exhausted"}'; exit 1"#
            } else {
                r#"[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}'; exit 0"#
            };
            let script = format!(
                "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >> \"$(dirname \"$0\")/log\"\n{answer}\n"
            );
            let path = dir.join("fake-ipam");
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            Fake { dir }
        }

        fn request(&self) -> Request {
            let path = self.dir.to_str().unwrap().to_string();
            let env = Env::from_pairs([
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/run/netns/x"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", path.as_str()),
                ("PATH", "/usr/bin:/bin"),
            ]);
            let stdin =
                br#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"type":"fake-ipam"}}"#;
            Request {
                cmd: CmdArgs::from_env(&env).unwrap(),
                conf: crate::NetConf::from_bytes(stdin).unwrap(),
                stdin: stdin.to_vec(),
                env,
            }
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_pending_lease_kept_stays_and_one_dropped_is_released() {
        let fake = Fake::new("keep", false);
        let req = fake.request();
        let (lease, result) = IpamLease::start("fake-ipam", &req).unwrap().wait().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.0.0.2/24");
        lease.keep();
        assert_eq!(fake.log(), "ADD\n");

        let fake = Fake::new("drop", false);
        let req = fake.request();
        drop(IpamLease::start("fake-ipam", &req).unwrap());
        assert_eq!(fake.log(), "ADD\nDEL\n");

        let fake = Fake::new("unkept", false);
        let req = fake.request();
        let (lease, _) = IpamLease::start("fake-ipam", &req).unwrap().wait().unwrap();
        drop(lease);
        assert_eq!(fake.log(), "ADD\nDEL\n");
    }

    #[test]
    fn a_failed_pending_add_is_its_error_and_releases_nothing() {
        let fake = Fake::new("fail", true);
        let req = fake.request();
        let err = IpamLease::start("fake-ipam", &req)
            .unwrap()
            .wait()
            .err()
            .unwrap();
        assert_eq!(err.code, 101);
        assert!(err.msg.contains("exhausted"), "{}", err.msg);
        drop(IpamLease::start("fake-ipam", &req).unwrap());
        assert_eq!(fake.log(), "ADD\nADD\n");
        let err = IpamLease::start("no-such-ipam", &req).err().unwrap();
        assert_eq!(err.code, code::INVALID_ENV);
    }
}
