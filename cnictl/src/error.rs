//! cnictl's errors: what went wrong and, when there is something to do about it, what to do.

use std::fmt;

/// An error for the user: a message, an optional hint (what to do next) and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub msg: String,
    pub hint: Option<String>,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(msg: impl Into<String>) -> CliError {
        CliError {
            msg: msg.into(),
            hint: None,
        }
    }

    /// Adds (or replaces) the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Puts `context: ` in front of the message.
    pub fn context(mut self, context: impl fmt::Display) -> CliError {
        self.msg = format!("{context}: {}", self.msg);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

impl From<libcni::Error> for CliError {
    fn from(e: libcni::Error) -> CliError {
        let hint = match &e {
            libcni::Error::NoConfigsFound { dir } => Some(format!(
                "create a network with `cnictl network create NAME`, or point NETCONFPATH at \
                 the directory holding your configs (now {})",
                dir.display()
            )),
            libcni::Error::NotFound { .. } => {
                Some("`cnictl network ls` lists the networks there".to_string())
            }
            _ => plugin_hint(&e.to_string()),
        };
        CliError {
            msg: e.to_string(),
            hint,
        }
    }
}

/// A hint for the plugin failures people run into first.
pub fn plugin_hint(msg: &str) -> Option<String> {
    if msg.contains("failed to find plugin") || msg.contains("no paths provided") {
        Some(
            "install the plugins (scripts/install.sh puts them in /opt/cni/bin) or point \
             CNI_PATH (or --plugin-dir) at the directory holding them"
                .to_string(),
        )
    } else if msg.contains("does not support config version") {
        Some(
            "a plugin in CNI_PATH is older than the network's cniVersion: use this suite's \
             plugins, or write the config with a cniVersion they support"
                .to_string(),
        )
    } else {
        None
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::new(e.to_string())
    }
}

/// `Err(CliError::new(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::CliError::new(format!($($arg)*)))
    };
}
