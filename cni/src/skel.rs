//! The plugin entry point: reads env and stdin, checks versions, dispatches the command and
//! prints the result or the error as JSON on stdout.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

use serde_json::json;

use crate::args::CniArgs;
use crate::env::{CmdArgs, Command, Env};
use crate::result::CniResult;
use crate::{Error, NetConf, Version};

/// What one invocation asks of a plugin: the CNI_* variables and the parsed config.
#[derive(Debug, Clone)]
pub struct Request {
    pub cmd: CmdArgs,
    pub conf: NetConf,
    /// The config bytes as received, handed unchanged to delegates.
    pub stdin: Vec<u8>,
    /// The environment, handed unchanged to delegates.
    pub env: Env,
}

impl Request {
    pub fn command(&self) -> Command {
        self.cmd.command
    }
    pub fn container_id(&self) -> &str {
        &self.cmd.container_id
    }
    pub fn ifname(&self) -> &str {
        &self.cmd.ifname
    }
    pub fn netns(&self) -> &str {
        &self.cmd.netns
    }
    pub fn version(&self) -> Version {
        self.conf.cni_version
    }

    /// CNI_ARGS, accepting `known` keys (plus the runtime's K8S_POD_* ones).
    pub fn cni_args(&self, known: &[&str]) -> Result<CniArgs, Error> {
        CniArgs::parse(&self.cmd.args, known)
    }
}

/// A CNI plugin: one method per command. STATUS and GC succeed by default.
pub trait Plugin {
    /// The spec versions the plugin speaks.
    fn versions(&self) -> &'static [Version] {
        &Version::ALL
    }
    fn add(&self, req: &Request) -> Result<CniResult, Error>;
    fn del(&self, req: &Request) -> Result<(), Error>;
    fn check(&self, req: &Request) -> Result<(), Error>;
    fn status(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
    fn gc(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
}

/// What a plugin invocation prints and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub success: bool,
}

/// Runs the plugin as a CNI executable and exits.
pub fn run(name: &'static str, plugin: &(impl Plugin + ?Sized)) -> ! {
    crate::logger::init(name);
    crate::linked::keep_marker();
    let env = Env::from_process();
    if env.get("CNI_COMMAND").is_none() {
        // Run by hand, as the reference plugins do: who we are on stderr, nothing on stdout.
        eprint!("{}", about(name, plugin));
        std::process::exit(0);
    }
    let outcome = dispatch(plugin, &env, &mut std::io::stdin().lock());
    let mut out = std::io::stdout().lock();
    // Nothing sensible is left to do if stdout is gone; the exit status still tells.
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(if outcome.success { 0 } else { 1 })
}

/// What a plugin run without `CNI_COMMAND` prints on stderr, in the reference's words.
pub fn about(name: &str, plugin: &(impl Plugin + ?Sized)) -> String {
    format!(
        "CNI {name} plugin v{}\nCNI protocol versions supported: {}\n",
        crate::SUITE_VERSION,
        crate::version::list(plugin.versions())
    )
}

/// One invocation, without touching the process environment or stdout. A panic anywhere
/// below still ends as an error object (code 999), never as a bare crash.
pub fn dispatch(plugin: &(impl Plugin + ?Sized), env: &Env, stdin: &mut impl Read) -> Outcome {
    let mut version_hint = Version::LATEST;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch_inner(plugin, env, stdin, &mut version_hint)
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::internal(format!(
            "internal error (please report): {what}"
        )))
    });
    match outcome {
        Ok(stdout) => Outcome {
            stdout,
            success: true,
        },
        Err(err) => {
            log::error!("{}", err.msg);
            Outcome {
                stdout: format!("{}\n", err.to_json(version_hint.as_str())),
                success: false,
            }
        }
    }
}

fn dispatch_inner(
    plugin: &(impl Plugin + ?Sized),
    env: &Env,
    stdin: &mut impl Read,
    version_hint: &mut Version,
) -> Result<String, Error> {
    let req = match read_invocation(plugin, env, stdin, version_hint)? {
        Invocation::Version(reply) => return Ok(reply),
        Invocation::Command(req) => *req,
    };
    check_not_own_netns(&req.cmd, env)?;
    log::debug!(
        "{} container={} ifname={} netns={} network={}",
        req.command(),
        req.container_id(),
        req.ifname(),
        req.netns(),
        req.conf.name
    );
    match req.command() {
        Command::Add => {
            let result = plugin.add(&req)?;
            let value = result.to_value(req.version())?;
            Ok(format!("{value}\n"))
        }
        Command::Del => plugin.del(&req).map(|()| String::new()),
        Command::Check => plugin.check(&req).map(|()| String::new()),
        Command::Status => plugin.status(&req).map(|()| String::new()),
        Command::Gc => plugin.gc(&req).map(|()| String::new()),
        Command::Version => Ok(version_reply(plugin, &req.stdin)),
    }
}

/// What an invocation's environment and stdin ask of a plugin.
#[derive(Debug)]
pub enum Invocation {
    /// VERSION, answered without a config: the reply to print.
    Version(String),
    /// Any other command, with its validated variables and config.
    Command(Box<Request>),
}

/// Reads an invocation as every run of a plugin reads it before the plugin acts: the CNI_*
/// variables (code 4), stdin (code 5), the shared config keys and `prevResult` (codes 6, 7
/// and 1) and the config's version against the plugin's versions and the command (code 1).
/// Touches nothing but `stdin`, so the fuzz targets build their requests through it too.
/// `version_hint` becomes the config's version once that is known, for the error object.
/// The check that the plugin does not run in the container's own netns is left to
/// [`dispatch`]: it looks at the filesystem, not at the input.
pub fn read_invocation(
    plugin: &(impl Plugin + ?Sized),
    env: &Env,
    stdin: &mut impl Read,
    version_hint: &mut Version,
) -> Result<Invocation, Error> {
    let cmd = CmdArgs::from_env(env)?;
    let mut bytes = Vec::new();
    let read = stdin.read_to_end(&mut bytes);
    if cmd.command == Command::Version {
        return Ok(Invocation::Version(version_reply(plugin, &bytes)));
    }
    read.map_err(|e| Error::io(format!("read network config from stdin: {e}")))?;
    let conf = if cmd.command == Command::Del {
        NetConf::from_bytes_for_del(&bytes)?
    } else {
        NetConf::from_bytes(&bytes)?
    };
    *version_hint = conf.cni_version;
    check_version(plugin, cmd.command, conf.cni_version)?;
    Ok(Invocation::Command(Box::new(Request {
        cmd,
        conf,
        stdin: bytes,
        env: env.clone(),
    })))
}

/// `{"cniVersion": <asked or latest>, "supportedVersions": [...]}`.
fn version_reply(plugin: &(impl Plugin + ?Sized), stdin: &[u8]) -> String {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().and_then(Version::parse))
        .unwrap_or(Version::LATEST);
    let supported: Vec<&str> = plugin.versions().iter().map(|v| v.as_str()).collect();
    format!(
        "{}\n",
        json!({"cniVersion": asked.as_str(), "supportedVersions": supported})
    )
}

/// The config's version must be one the plugin speaks and must know the command.
fn check_version(
    plugin: &(impl Plugin + ?Sized),
    command: Command,
    version: Version,
) -> Result<(), Error> {
    if !plugin.versions().contains(&version) {
        return Err(Error::incompatible_version(format!(
            "incompatible CNI versions; config is {version}, plugin supports [{}]",
            crate::version::list(plugin.versions())
        )));
    }
    let allowed = match command {
        Command::Check => version.has_check(),
        Command::Status | Command::Gc => version.has_status_and_gc(),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::incompatible_version(format!(
            "config version {version} does not allow {command}"
        )))
    }
}

/// A plugin running inside the container's netns would configure the wrong side; the Go skel
/// refuses this too (code 8), unless CNI_NETNS_OVERRIDE is set.
fn check_not_own_netns(cmd: &CmdArgs, env: &Env) -> Result<(), Error> {
    if cmd.netns.is_empty()
        || !matches!(cmd.command, Command::Add | Command::Del)
        || matches!(env.get("CNI_NETNS_OVERRIDE"), Some("1" | "true" | "TRUE"))
    {
        return Ok(());
    }
    let (Ok(target), Ok(own)) = (
        std::fs::metadata(&cmd.netns),
        std::fs::metadata("/proc/thread-self/ns/net"),
    ) else {
        return Ok(());
    };
    if target.dev() == own.dev() && target.ino() == own.ino() {
        return Err(Error::invalid_netns(format!(
            "plugin's netns and CNI_NETNS {} are the same",
            cmd.netns
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    struct Echo;
    impl Plugin for Echo {
        fn versions(&self) -> &'static [Version] {
            &[Version::V0_4_0, Version::V1_0_0, Version::V1_1_0]
        }
        fn add(&self, req: &Request) -> Result<CniResult, Error> {
            Ok(req.conf.prev_result.clone().unwrap_or_default())
        }
        fn del(&self, _req: &Request) -> Result<(), Error> {
            Ok(())
        }
        fn check(&self, _req: &Request) -> Result<(), Error> {
            Ok(())
        }
    }

    #[test]
    fn about_names_the_plugin_the_suite_version_and_the_spec_versions() {
        assert_eq!(
            about("echo", &Echo),
            format!(
                "CNI echo plugin v{}\nCNI protocol versions supported: 0.4.0, 1.0.0, 1.1.0\n",
                crate::SUITE_VERSION
            )
        );
    }

    fn call(pairs: &[(&str, &str)], stdin: &str) -> Outcome {
        dispatch(
            &Echo,
            &Env::from_pairs(pairs.iter().copied()),
            &mut stdin.as_bytes(),
        )
    }

    fn error_code(o: &Outcome) -> u64 {
        assert!(!o.success);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        v["code"].as_u64().unwrap()
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/nonexistent/netns"),
        ("CNI_IFNAME", "eth0"),
    ];

    #[test]
    fn version_echoes_the_asked_version_and_lists_supported() {
        let o = call(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
        assert!(o.success);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));
        let o = call(&[("CNI_COMMAND", "VERSION")], "");
        assert!(o.success);
    }

    #[test]
    fn add_passes_prev_result_through_in_the_config_version() {
        let o = call(
            ADD,
            r#"{"cniVersion":"0.4.0","name":"n","type":"echo","prevResult":
                {"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#,
        );
        assert!(o.success, "{}", o.stdout);
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn version_and_command_mismatches_are_code_1() {
        let o = call(ADD, r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!(error_code(&o), code::INCOMPATIBLE_VERSION as u64);
        let mut check = ADD.to_vec();
        check[0] = ("CNI_COMMAND", "GC");
        let o = call(&check, r#"{"cniVersion":"1.0.0","name":"n"}"#);
        assert_eq!(error_code(&o), code::INCOMPATIBLE_VERSION as u64);
    }

    struct Panics;
    impl Plugin for Panics {
        fn add(&self, _req: &Request) -> Result<CniResult, Error> {
            panic!("boom")
        }
        fn del(&self, _req: &Request) -> Result<(), Error> {
            Ok(())
        }
        fn check(&self, _req: &Request) -> Result<(), Error> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_becomes_an_error_object() {
        let env = Env::from_pairs(ADD.iter().copied());
        let o = dispatch(
            &Panics,
            &env,
            &mut &br#"{"cniVersion":"1.0.0","name":"n"}"#[..],
        );
        assert_eq!(error_code(&o), code::INTERNAL as u64);
        assert!(o.stdout.contains("boom"), "{}", o.stdout);
    }

    #[test]
    fn read_invocation_answers_version_and_builds_requests_without_acting() {
        let read = |pairs: &[(&str, &str)], stdin: &str| {
            let mut hint = Version::LATEST;
            let got = read_invocation(
                &Echo,
                &Env::from_pairs(pairs.iter().copied()),
                &mut stdin.as_bytes(),
                &mut hint,
            );
            (got, hint)
        };
        let (got, _) = read(&[("CNI_COMMAND", "VERSION")], "not json");
        assert!(matches!(got, Ok(Invocation::Version(reply)) if reply.contains("1.1.0")));
        let (got, hint) = read(ADD, r#"{"cniVersion":"0.4.0","name":"n"}"#);
        let Ok(Invocation::Command(req)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            (req.command(), req.version()),
            (Command::Add, Version::V0_4_0)
        );
        assert_eq!(hint, Version::V0_4_0);
        // The version is known before it is refused: the error object carries it.
        let (got, hint) = read(ADD, r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_eq!(got.unwrap_err().code, code::INCOMPATIBLE_VERSION);
        assert_eq!(hint, Version::V0_3_1);
    }

    #[test]
    fn env_and_decode_errors_have_their_codes() {
        let o = call(&[("CNI_COMMAND", "ADD")], "{}");
        assert_eq!(error_code(&o), code::INVALID_ENV as u64);
        let o = call(ADD, "{");
        assert_eq!(error_code(&o), code::DECODING_FAILURE as u64);
        let o = call(ADD, r#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(error_code(&o), code::INVALID_NETWORK_CONFIG as u64);
    }
}
