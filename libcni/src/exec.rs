//! Executing plugin binaries as libcni's `pkg/invoke` does: the six CNI_* variables exported
//! (empty when unset) on top of the caller's own environment, the config on stdin, the result
//! or the CNI error object read from stdout, stderr as the fallback message, and retries while
//! the binary is busy being written ("text file busy").
//!
//! A plugin can also be run inside another network namespace than the caller's (`netns`): the
//! child enters it, in a private mount namespace with a fresh `/sys`, right before exec, as
//! `ip netns exec` does. Tests and demos use this to give plugins a private "host".

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus, Stdio};
use std::time::Duration;

use cni::{CniResult, Command, Version};
use serde_json::Value;

use crate::error::Error;

/// How often a "text file busy" exec is retried, one second apart (libcni: 5).
const BUSY_RETRIES: u32 = 5;

/// The CNI_* parameters of one plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as pairs, joined as `K=V;K2=V2`.
    pub args: Vec<(String, String)>,
    /// CNI_PATH, already joined with `:`.
    pub path: String,
}

impl Invocation {
    /// A call with every parameter but the command empty.
    pub fn new(command: Command) -> Invocation {
        Invocation {
            command,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            args: Vec::new(),
            path: String::new(),
        }
    }

    /// The six variables, always all of them (`invoke.Args.AsEnv`).
    pub fn env(&self) -> Vec<(String, String)> {
        let args = self
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        vec![
            ("CNI_COMMAND".into(), self.command.as_str().into()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns.clone()),
            ("CNI_ARGS".into(), args),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            ("CNI_PATH".into(), self.path.clone()),
        ]
    }
}

/// What one run of a plugin binary produced.
#[derive(Debug, Clone)]
pub struct RawOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `plugin` once (retrying only while its binary is busy): `env` on top of the caller's
/// environment when `inherit_env`, else alone; `stdin` written to it; inside `netns` when
/// given. Nothing is interpreted: tests use this to check exit codes and raw output.
pub fn exec_raw(
    plugin: &Path,
    env: &[(String, String)],
    inherit_env: bool,
    stdin: &[u8],
    netns: Option<&Path>,
) -> std::io::Result<RawOutput> {
    let mut attempt = 0;
    loop {
        match spawn_once(plugin, env, inherit_env, stdin, netns) {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                log::debug!("{}: text file busy, retrying", plugin.display());
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn spawn_once(
    plugin: &Path,
    env: &[(String, String)],
    inherit_env: bool,
    stdin: &[u8],
    netns: Option<&Path>,
) -> std::io::Result<RawOutput> {
    let mut cmd = Process::new(plugin);
    if !inherit_env {
        cmd.env_clear();
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = netns {
        let file = File::open(ns)?;
        enter_netns_before_exec(&mut cmd, file);
    }
    let mut child = cmd.spawn()?;
    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.to_vec();
        // A plugin may exit without reading all of stdin; its exit status tells the story.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let output = child.wait_with_output()?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(RawOutput {
        status: output.status,
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

/// Makes the child enter the network namespace `ns` right before exec, in a mount namespace of
/// its own where `/sys` is remounted so it shows that namespace's devices (`ip netns exec`).
fn enter_netns_before_exec(cmd: &mut Process, ns: File) {
    let pre_exec = move || -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: only raw system calls on a file descriptor this closure owns and on
        // constant C strings; nothing here allocates or takes locks, as required between
        // fork and exec.
        unsafe {
            check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ))?;
            // Not mounted is fine; a sysfs that cannot be mounted is not.
            libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH);
            check(libc::mount(
                c"sysfs".as_ptr(),
                c"/sys".as_ptr(),
                c"sysfs".as_ptr(),
                0,
                std::ptr::null(),
            ))?;
        }
        Ok(())
    };
    // SAFETY: the closure is async-signal-safe (see above).
    unsafe {
        cmd.pre_exec(pre_exec);
    }
}

/// Runs a plugin for a command without a result (or before reading it): the six variables on
/// top of the caller's environment. A non-zero exit becomes the plugin's CNI error object, or
/// an error made from its stderr (`RawExec.ExecPlugin`). Returns stdout; the plugin's stderr is
/// passed on to ours.
pub fn exec_plugin(
    plugin: &Path,
    stdin: &[u8],
    inv: &Invocation,
    netns: Option<&Path>,
) -> Result<Vec<u8>, Error> {
    log::debug!(
        "exec {} {} (container {:?}, ifname {:?})",
        plugin.display(),
        inv.command,
        inv.container_id,
        inv.ifname
    );
    let out = exec_raw(plugin, &inv.env(), true, stdin, netns)
        .map_err(|e| Error::io(format!("exec {}", plugin.display()), e))?;
    if !out.status.success() {
        return Err(Error::Cni(plugin_error(&out)));
    }
    if !out.stderr.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The error a failed plugin run stands for (`RawExec.pluginErr`): its stdout as a CNI error
/// object, else a message with stderr; code 0 when the plugin gave none.
pub fn plugin_error(out: &RawOutput) -> cni::Error {
    let status = describe_status(out.status);
    if out.stdout.is_empty() {
        if out.stderr.is_empty() {
            cni::Error::new(
                0,
                format!("netplugin failed with no error message: {status}"),
            )
        } else {
            cni::Error::new(
                0,
                format!(
                    "netplugin failed: {:?}: {status}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
    } else {
        serde_json::from_slice::<cni::Error>(&out.stdout).unwrap_or_else(|e| {
            cni::Error::new(
                0,
                format!(
                    "netplugin failed but error parsing its diagnostic message {:?}: {e}",
                    String::from_utf8_lossy(&out.stdout)
                ),
            )
        })
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal: {sig}"),
        _ => status.to_string(),
    }
}

/// Reads an ADD result printed by a plugin. A result without `cniVersion` is read as
/// `conf_version` (libcni's `fixupResultVersion`). Returns the result's version and the result.
pub fn parse_result(stdout: &[u8], conf_version: Version) -> Result<(Version, CniResult), Error> {
    let value: Value = serde_json::from_slice(stdout).map_err(|e| {
        Error::Cni(cni::Error::decoding(format!(
            "failed to unmarshal raw result: {e} result {}",
            String::from_utf8_lossy(stdout)
        )))
    })?;
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    let version = match value.get("cniVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => Version::parse(v).ok_or_else(|| {
            Error::Cni(cni::Error::incompatible_version(format!(
                "unsupported CNI result version {v:?}"
            )))
        })?,
        _ => conf_version,
    };
    let result = CniResult::from_value(value, version)?;
    Ok((version, result))
}

/// What a plugin answered to VERSION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

impl PluginInfo {
    pub fn supports(&self, version: Version) -> bool {
        self.supported_versions
            .iter()
            .any(|v| v == version.as_str())
    }

    /// Decodes a VERSION answer (`version.PluginDecoder`): a 0.2.0 answer without
    /// `supportedVersions` means 0.1.0 and 0.2.0.
    pub fn decode(stdout: &[u8]) -> Result<PluginInfo, Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(rename = "cniVersion", default)]
            cni_version: String,
            #[serde(rename = "supportedVersions", default)]
            supported_versions: Option<Vec<String>>,
        }
        let decode_err = |msg: String| {
            Error::Cni(cni::Error::decoding(format!(
                "decoding version info: {msg}"
            )))
        };
        let wire: Wire = serde_json::from_slice(stdout).map_err(|e| decode_err(e.to_string()))?;
        if wire.cni_version.is_empty() {
            return Err(decode_err("missing field cniVersion".into()));
        }
        let supported = wire.supported_versions.unwrap_or_default();
        if supported.is_empty() {
            if wire.cni_version == "0.2.0" {
                return Ok(PluginInfo {
                    cni_version: Version::LATEST.as_str().into(),
                    supported_versions: vec!["0.1.0".into(), "0.2.0".into()],
                });
            }
            return Err(decode_err("missing field supportedVersions".into()));
        }
        Ok(PluginInfo {
            cni_version: wire.cni_version,
            supported_versions: supported,
        })
    }
}

/// Asks a plugin which versions it supports (`invoke.GetVersionInfo`): CNI_NETNS, CNI_IFNAME
/// and CNI_PATH are "dummy" for old skels, stdin names the newest version, and a plugin that
/// says "unknown CNI_COMMAND: VERSION" supports 0.1.0 only.
pub fn get_version_info(plugin: &Path, netns: Option<&Path>) -> Result<PluginInfo, Error> {
    let inv = Invocation {
        netns: "dummy".into(),
        ifname: "dummy".into(),
        path: "dummy".into(),
        ..Invocation::new(Command::Version)
    };
    let stdin = format!(r#"{{"cniVersion":"{}"}}"#, Version::LATEST);
    match exec_plugin(plugin, stdin.as_bytes(), &inv, netns) {
        Ok(stdout) => PluginInfo::decode(&stdout),
        Err(Error::Cni(e)) if e.msg == "unknown CNI_COMMAND: VERSION" => Ok(PluginInfo {
            cni_version: Version::LATEST.as_str().into(),
            supported_versions: vec!["0.1.0".into()],
        }),
        Err(e) => Err(e),
    }
}

/// Finds a plugin binary in the plugin directories (`invoke.FindInPath`): the first regular
/// file named `plugin`.
pub fn find_in_path(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    if plugin.is_empty() {
        return Err(Error::Config("no plugin name provided".into()));
    }
    if plugin.contains(['/', '\\']) {
        return Err(Error::Config(format!("invalid plugin name: {plugin}")));
    }
    if dirs.is_empty() {
        return Err(Error::Config("no paths provided".into()));
    }
    dirs.iter()
        .map(|dir| dir.join(plugin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(|| {
            Error::Config(format!(
                "failed to find plugin {plugin:?} in path {:?}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A shell script standing in for a plugin.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn exports_all_six_variables_and_the_callers_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "envdump",
            r#"cat >/dev/null; printf '{"e":"%s|%s|%s|%s|%s|%s|%s","x":"%s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_ARGS" "$CNI_IFNAME" "$CNI_PATH" "${CNI_NETNS+set}" "${HOME+home}""#,
        );
        let inv = Invocation {
            container_id: "c1".into(),
            args: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            path: "/a:/b".into(),
            ..Invocation::new(Command::Del)
        };
        let out = exec_plugin(&p, b"{}", &inv, None).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["e"], "DEL|c1||A=1;B=2||/a:/b|set");
        if std::env::var_os("HOME").is_some() {
            assert_eq!(v["x"], "home");
        }
    }

    #[test]
    fn reads_errors_from_stdout_then_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let inv = Invocation::new(Command::Add);
        let p = script(
            dir.path(),
            "e1",
            r#"echo '{"code":7,"msg":"bad","details":"d"}'; exit 1"#,
        );
        let e = exec_plugin(&p, b"", &inv, None).unwrap_err();
        assert_eq!(e.code(), Some(7));
        assert_eq!(e.to_string(), "bad; d");

        let p = script(dir.path(), "e2", "echo oops >&2; exit 3");
        let e = exec_plugin(&p, b"", &inv, None).unwrap_err();
        assert_eq!(e.code(), None);
        assert_eq!(
            e.to_string(),
            "netplugin failed: \"oops\\n\": exit status 3"
        );

        let p = script(dir.path(), "e3", "exit 2");
        let e = exec_plugin(&p, b"", &inv, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "netplugin failed with no error message: exit status 2"
        );

        let p = script(dir.path(), "e4", "echo notjson; exit 2");
        let e = exec_plugin(&p, b"", &inv, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("netplugin failed but error parsing")
        );
    }

    #[test]
    fn result_version_defaults_to_the_config_version() {
        let (v, r) =
            parse_result(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, Version::V0_4_0).unwrap();
        assert_eq!(v, Version::V0_4_0);
        assert_eq!(r.ips.len(), 1);
        let (v, _) = parse_result(br#"{"cniVersion":"1.0.0"}"#, Version::V0_4_0).unwrap();
        assert_eq!(v, Version::V1_0_0);
        let (_, r) = parse_result(b"null", Version::V1_0_0).unwrap();
        assert_eq!(r, CniResult::default());
        assert!(parse_result(b"", Version::V1_0_0).is_err());
        assert!(parse_result(br#"{"cniVersion":"7.0.0"}"#, Version::V1_0_0).is_err());
    }

    #[test]
    fn decodes_version_answers() {
        let i =
            PluginInfo::decode(br#"{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.1.0"]}"#)
                .unwrap();
        assert!(i.supports(Version::V1_1_0) && !i.supports(Version::V1_0_0));
        let i = PluginInfo::decode(br#"{"cniVersion":"0.2.0"}"#).unwrap();
        assert_eq!(i.supported_versions, ["0.1.0", "0.2.0"]);
        assert!(PluginInfo::decode(br#"{"cniVersion":"1.0.0"}"#).is_err());
        assert!(PluginInfo::decode(br#"{"supportedVersions":["1.0.0"]}"#).is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "old",
            r#"echo '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1"#,
        );
        assert_eq!(
            get_version_info(&p, None).unwrap().supported_versions,
            ["0.1.0"]
        );
        let p = script(
            dir.path(),
            "dummy",
            r#"[ "$CNI_NETNS$CNI_IFNAME$CNI_PATH" = dummydummydummy ] || exit 9
               read line; echo "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\"],\"in\":$line}""#,
        );
        assert!(
            get_version_info(&p, None)
                .unwrap()
                .supports(Version::V1_0_0)
        );
    }

    #[test]
    fn retries_while_the_binary_is_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "busy", "echo '{}'");
        // An open write handle makes exec fail with ETXTBSY until it is closed.
        let writer = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            drop(writer);
        });
        let started = std::time::Instant::now();
        let out = exec_raw(&p, &[], true, b"", None).unwrap();
        closer.join().unwrap();
        assert!(out.status.success());
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[test]
    fn finds_plugins_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        script(b.path(), "p", "true");
        std::fs::create_dir(a.path().join("p")).unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_in_path("p", &dirs).unwrap(), b.path().join("p"));
        script(a.path(), "q", "true");
        assert_eq!(find_in_path("q", &dirs).unwrap(), a.path().join("q"));
        assert!(find_in_path("missing", &dirs).is_err());
        assert!(find_in_path("../p", &dirs).is_err());
        assert!(find_in_path("", &dirs).is_err());
        assert!(find_in_path("p", &[]).is_err());
    }
}
