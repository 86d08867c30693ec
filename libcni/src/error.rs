//! What can go wrong on the runtime side.

use std::path::PathBuf;

/// An error of the runtime side of CNI. A plugin's own error object is kept whole
/// ([`Error::Cni`]), wrapped in [`Error::Plugin`] when it came from one plugin of a chain, so
/// callers can still read its code with [`Error::cni_error`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration that cannot be read as libcni reads it.
    #[error("{0}")]
    Config(String),
    /// `load_network` found configurations, but none with that name.
    #[error("no net configuration with name \"{name}\" in {}", dir.display())]
    NotFound { dir: PathBuf, name: String },
    /// `load_network` found no configuration file at all.
    #[error("no net configurations found in {}", dir.display())]
    NoConfigsFound { dir: PathBuf },
    /// A CNI error object: printed by a plugin, made from a plugin's failure without one
    /// (code 0, as libcni does), or a runtime-side check with a spec code (an empty container
    /// ID is code 3, a bad interface name code 4, a bad network name code 7).
    #[error("{}", display_cni(.0))]
    Cni(cni::Error),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The result cache holds something that cannot be used.
    #[error("{0}")]
    Cache(String),
    /// One plugin of a chain failed: `plugin type="bridge" failed (add): <error>`.
    #[error("plugin {plugin} failed ({op}): {source}")]
    Plugin {
        /// `type="bridge"`, plus ` name="x"` when the plugin object has a name.
        plugin: String,
        /// `add`, `delete`, `check`, `status` or `gc`.
        op: &'static str,
        #[source]
        source: Box<Error>,
    },
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// Several independent failures (GC continues past errors and reports them all).
    #[error("{}", display_all(.0))]
    Multiple(Vec<Error>),
}

fn display_cni(e: &cni::Error) -> String {
    if e.details.is_empty() {
        e.msg.clone()
    } else {
        format!("{}; {}", e.msg, e.details)
    }
}

fn display_all(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The CNI error object behind this error, looking through [`Error::Plugin`] wrappers and,
    /// for [`Error::Multiple`], at the first error.
    pub fn cni_error(&self) -> Option<&cni::Error> {
        match self {
            Error::Cni(e) => Some(e),
            Error::Plugin { source, .. } | Error::Context { source, .. } => source.cni_error(),
            Error::Multiple(errors) => errors.iter().find_map(Error::cni_error),
            _ => None,
        }
    }

    /// The CNI error code behind this error, when there is one and it is not 0.
    pub fn code(&self) -> Option<u32> {
        self.cni_error().map(|e| e.code).filter(|c| *c != 0)
    }

    pub(crate) fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// Joins errors: none is `Ok`, one is itself, more are [`Error::Multiple`].
    pub(crate) fn join(mut errors: Vec<Error>) -> Result<(), Error> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Multiple(errors)),
        }
    }
}

impl From<cni::Error> for Error {
    fn from(e: cni::Error) -> Error {
        Error::Cni(e)
    }
}
