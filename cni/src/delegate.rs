//! Running a delegated plugin (IPAM) found through CNI_PATH, with the caller's environment and
//! the complete network config, as the spec's §4 describes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::Error;
use crate::env::Command;
use crate::result::CniResult;
use crate::skel::Request;

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

/// Execs the delegate with the request's environment (CNI_COMMAND replaced) and config bytes.
fn exec(plugin: &str, command: Command, req: &Request) -> Result<Option<serde_json::Value>, Error> {
    let path = find_in_path(plugin, &req.cmd.path)?;
    let mut child = Process::new(&path)
        .env_clear()
        .envs(req.env.iter())
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(format!("exec {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A delegate that exits without reading stdin is judged by its exit status below.
        let _ = stdin.write_all(&req.stdin);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("wait for {}: {e}", path.display())))?;
    if !output.status.success() {
        return Err(delegate_error(plugin, &output.stdout, output.status));
    }
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&output.stdout)
        .map(Some)
        .map_err(|e| Error::decoding(format!("{plugin}: decode {command} output: {e}")))
}

/// The delegate's own error object when it printed one, else its exit status.
fn delegate_error(plugin: &str, stdout: &[u8], status: std::process::ExitStatus) -> Error {
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

    /// The ADD succeeded: the allocation stays.
    pub fn keep(mut self) {
        self.kept = true;
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
