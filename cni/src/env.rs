//! The CNI_* environment variables: reading, requiring per command, validating.

use std::collections::HashMap;
use std::fmt;

use crate::Error;
use crate::conf::is_id_like;

/// The operation a plugin is asked to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Variables the spec (and the Go skel) require for this command. CNI_PATH is left out:
    /// it is only needed by plugins that delegate, which ask for it themselves.
    fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Status | Command::Gc | Command::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the environment the plugin was started with. Delegates get exactly this.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Env {
        Env::from_pairs(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        }))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value, with an empty value read as unset (libcni exports unset ones as "").
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The validated CNI_* parameters of one invocation. Unset ones are empty strings.
#[derive(Debug, Clone)]
pub struct CmdArgs {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS, unparsed; plugins parse it with the keys they know.
    pub args: String,
    pub path: String,
}

impl CmdArgs {
    /// Reads and validates the variables, reporting every missing one at once (code 4).
    pub fn from_env(env: &Env) -> Result<CmdArgs, Error> {
        let command = match env.get("CNI_COMMAND") {
            None => return Err(missing(&["CNI_COMMAND"])),
            Some(c) => Command::parse(c)
                .ok_or_else(|| Error::invalid_env(format!("unknown CNI_COMMAND: {c}")))?,
        };
        if command == Command::Version {
            // libcni sets CNI_NETNS, CNI_IFNAME and CNI_PATH to "dummy" for VERSION: only
            // CNI_COMMAND counts.
            return Ok(CmdArgs {
                command,
                container_id: String::new(),
                netns: String::new(),
                ifname: String::new(),
                args: String::new(),
                path: String::new(),
            });
        }
        let absent: Vec<&str> = command
            .required_vars()
            .iter()
            .copied()
            .filter(|v| env.get(v).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
        let get = |k: &str| env.get(k).unwrap_or_default().to_string();
        let cmd = CmdArgs {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
        };
        if !cmd.container_id.is_empty() {
            validate_container_id(&cmd.container_id)?;
        }
        if !cmd.ifname.is_empty() {
            validate_ifname(&cmd.ifname)?;
        }
        if !cmd.netns.is_empty() {
            validate_netns_path(&cmd.netns)?;
        }
        Ok(cmd)
    }
}

fn missing(vars: &[&str]) -> Error {
    Error::invalid_env(format!(
        "required env variables [{}] missing",
        vars.join(",")
    ))
}

/// Container IDs as libcni accepts them: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`. This also keeps
/// `/` and a leading `..` out of anything that becomes a file name.
pub fn validate_container_id(id: &str) -> Result<(), Error> {
    if is_id_like(id) {
        Ok(())
    } else {
        Err(Error::invalid_env(format!(
            "invalid CNI_CONTAINERID {id:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
        )))
    }
}

/// Interface names as the kernel accepts them: 1 to 15 bytes, not `.` or `..`, no `/`, `:`
/// or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), Error> {
    match ifname_problem(name) {
        None => Ok(()),
        Some(p) => Err(Error::invalid_env(format!(
            "invalid CNI_IFNAME {name:?}: {p}"
        ))),
    }
}

/// What makes `name` no interface name the kernel accepts (see [`validate_ifname`]); `None`
/// for a valid one. For names that arrive elsewhere than in `CNI_IFNAME` (a prevResult).
pub fn ifname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 15 {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("is . or ..")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    }
}

/// A netns is named by an absolute path (`/run/netns/x`, `/proc/<pid>/ns/net`).
pub fn validate_netns_path(path: &str) -> Result<(), Error> {
    if path.starts_with('/') && !path.contains('\0') {
        Ok(())
    } else {
        Err(Error::invalid_env(format!(
            "invalid CNI_NETNS {path:?}: must be an absolute path"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn reports_every_missing_variable() {
        let err =
            CmdArgs::from_env(&env(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "")])).unwrap_err();
        assert_eq!(err.code, code::INVALID_ENV);
        assert_eq!(
            err.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"
        );
    }

    #[test]
    fn version_ignores_libcni_dummy_values() {
        let args = CmdArgs::from_env(&env(&[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
        ]))
        .unwrap();
        assert_eq!(args.command, Command::Version);
    }

    #[test]
    fn del_does_not_need_a_netns() {
        let args = CmdArgs::from_env(&env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert_eq!(args.netns, "");
    }

    #[test]
    fn rejects_bad_ids_and_names() {
        assert!(validate_container_id("../etc").is_err());
        assert!(validate_container_id("a/b").is_err());
        assert!(validate_container_id("abc-1.2_3").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert_eq!(
                validate_ifname(bad).unwrap_err().code,
                code::INVALID_ENV,
                "{bad}"
            );
        }
        assert!(validate_ifname("fifteen-chars-x").is_ok());
        assert!(validate_netns_path("run/netns/x").is_err());
        let err = CmdArgs::from_env(&env(&[("CNI_COMMAND", "FOO")])).unwrap_err();
        assert_eq!(err.code, code::INVALID_ENV);
    }
}
