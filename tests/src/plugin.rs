//! Running one plugin binary as a runtime would, keeping everything it printed.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use serde_json::Value;

/// What one plugin run produced.
#[derive(Debug, Clone)]
pub struct RawOutcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// stdout parsed as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl RawOutcome {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The `code` of the error object on stdout.
    pub fn code(&self) -> Option<u64> {
        self.json.as_ref()?.get("code")?.as_u64()
    }

    /// The `msg` of the error object on stdout.
    pub fn msg(&self) -> Option<&str> {
        self.json.as_ref()?.get("msg")?.as_str()
    }

    /// Everything, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// Panics unless the run succeeded; returns stdout's JSON (`Null` when stdout is empty).
    #[track_caller]
    pub fn assert_ok(&self) -> Value {
        assert!(self.success(), "plugin failed:\n{}", self.describe());
        self.json.clone().unwrap_or(Value::Null)
    }

    /// Panics unless the run succeeded with nothing on stdout, as DEL, CHECK, STATUS and GC
    /// must answer.
    #[track_caller]
    pub fn assert_ok_empty(&self) {
        assert!(self.success(), "plugin failed:\n{}", self.describe());
        assert!(
            self.stdout.trim().is_empty(),
            "unexpected output:\n{}",
            self.describe()
        );
    }

    /// Panics unless the run failed with a CNI error object of `code` on stdout; returns it.
    #[track_caller]
    pub fn assert_error(&self, code: u64) -> Value {
        assert!(
            !self.success(),
            "plugin succeeded, expected error code {code}:\n{}",
            self.describe()
        );
        assert!(
            self.json.as_ref().is_some_and(Value::is_object),
            "no error object on stdout:\n{}",
            self.describe()
        );
        assert_eq!(
            self.code(),
            Some(code),
            "wrong error code:\n{}",
            self.describe()
        );
        assert!(
            self.msg().is_some_and(|m| !m.is_empty()),
            "error object has no msg:\n{}",
            self.describe()
        );
        self.json.clone().unwrap_or(Value::Null)
    }

    /// Like [`Self::assert_error`], also requiring `needle` in the message.
    #[track_caller]
    pub fn assert_error_containing(&self, code: u64, needle: &str) -> Value {
        let err = self.assert_error(code);
        assert!(
            self.msg().is_some_and(|m| m.contains(needle)),
            "error message lacks {needle:?}:\n{}",
            self.describe()
        );
        err
    }
}

/// One plugin run, built up: the environment starts empty but for `PATH` (so a test controls
/// exactly which CNI_* variables exist), stdin is empty unless given, and the plugin runs in
/// the caller's network namespace unless [`PluginCall::in_netns`] says otherwise.
#[derive(Debug, Clone)]
pub struct PluginCall {
    bin: PathBuf,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    netns: Option<PathBuf>,
}

impl PluginCall {
    /// A call of `bin` with CNI_COMMAND set to `command` (left unset when empty).
    pub fn new(bin: impl Into<PathBuf>, command: &str) -> PluginCall {
        let mut env = vec![(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )];
        if !command.is_empty() {
            env.push(("CNI_COMMAND".into(), command.into()));
        }
        PluginCall {
            bin: bin.into(),
            env,
            stdin: Vec::new(),
            netns: None,
        }
    }

    /// Sets a variable (replacing an earlier value).
    pub fn env(mut self, key: &str, value: &str) -> PluginCall {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes a variable.
    pub fn unset(mut self, key: &str) -> PluginCall {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME.
    pub fn container(self, id: &str, netns: &str, ifname: &str) -> PluginCall {
        self.env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
    }

    /// CNI_PATH.
    pub fn cni_path(self, path: &str) -> PluginCall {
        self.env("CNI_PATH", path)
    }

    /// CNI_ARGS.
    pub fn cni_args(self, args: &str) -> PluginCall {
        self.env("CNI_ARGS", args)
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> PluginCall {
        self.stdin = bytes.into();
        self
    }

    pub fn stdin_json(self, value: &Value) -> PluginCall {
        let bytes = serde_json::to_vec(value).unwrap();
        self.stdin(bytes)
    }

    /// Runs the plugin inside this network namespace (the sandbox's host).
    pub fn in_netns(mut self, netns: impl Into<PathBuf>) -> PluginCall {
        self.netns = Some(netns.into());
        self
    }

    pub fn run(&self) -> RawOutcome {
        let out = libcni::exec_raw(
            &self.bin,
            &self.env,
            false,
            &self.stdin,
            self.netns.as_deref(),
        )
        .unwrap_or_else(|e| panic!("exec {}: {e}", self.bin.display()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = if stdout.trim().is_empty() {
            None
        } else {
            serde_json::from_str(&stdout).ok()
        };
        RawOutcome {
            status: out.status,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            json,
        }
    }
}

/// Runs `bin` once in the caller's network namespace with CNI_COMMAND=`command` (unset when
/// empty), exactly the variables in `env` besides `PATH`, and `stdin`.
pub fn run_plugin(bin: &Path, command: &str, env: &[(&str, &str)], stdin: &[u8]) -> RawOutcome {
    env.iter()
        .fold(PluginCall::new(bin, command), |call, (k, v)| call.env(k, v))
        .stdin(stdin)
        .run()
}
