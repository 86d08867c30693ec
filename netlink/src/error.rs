//! The error type of every kernel operation, with errno-based helpers.

use std::io;
use std::path::PathBuf;

/// What went wrong while talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netns path does not exist (the namespace is gone, or was never created).
    #[error("open netns {}: no such file or directory", path.display())]
    NetnsNotFound { path: PathBuf },

    /// The path exists but is not a network namespace (a leftover mount point, another
    /// namespace type, a plain file).
    #[error("{} is not a network namespace", path.display())]
    NotNetns { path: PathBuf },

    /// The netns path could not be opened or inspected.
    #[error("open netns {}: {source}", path.display())]
    OpenNetns { path: PathBuf, source: io::Error },

    /// `setns` into the namespace failed.
    #[error("enter netns {}: {source}", path.display())]
    EnterNetns { path: PathBuf, source: io::Error },

    /// The helper thread that enters a namespace could not be started.
    #[error("spawn netns thread: {0}")]
    SpawnThread(io::Error),

    /// A caller-supplied value the kernel would reject anyway (name too long, bad MAC).
    #[error("{0}")]
    InvalidArgument(String),

    /// The kernel answered a request with an error (an `NLMSG_ERROR` with a negative code,
    /// or an error code in `NLMSG_DONE`).
    #[error("{}{}{}", prefix(op), io::Error::from_raw_os_error(*errno), ext_ack_suffix(ext_ack))]
    Kernel {
        op: String,
        errno: i32,
        /// The kernel's extended ack message, e.g. "Invalid MTU".
        ext_ack: Option<String>,
    },

    /// A socket system call failed.
    #[error("{}netlink socket: {source}", prefix(op))]
    Socket { op: String, source: io::Error },

    /// A reply could not be decoded or did not follow the protocol.
    #[error("{}netlink protocol: {msg}", prefix(op))]
    Protocol { op: String, msg: String },

    /// The `nft` tool could not be run, or rejected a ruleset; `detail` carries its exit
    /// status and error output.
    #[error("{}{detail}", prefix(op))]
    NftTool { op: String, detail: String },

    /// `iptables-restore` could not be run, or rejected a script.
    #[error("{tool}: {detail}")]
    IptablesTool { tool: String, detail: String },

    /// Reading or writing a sysctl under /proc/sys/net failed.
    #[error("{op} sysctl {}: {source}", path.display())]
    Sysctl {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },

    /// A dump kept being interrupted by concurrent changes.
    #[error(
        "{}netlink dump interrupted {attempts} times by concurrent changes",
        prefix(op)
    )]
    DumpInterrupted { op: String, attempts: usize },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn prefix(op: &str) -> String {
    if op.is_empty() {
        String::new()
    } else {
        format!("{op}: ")
    }
}

fn ext_ack_suffix(ext_ack: &Option<String>) -> String {
    match ext_ack {
        Some(msg) => format!(" ({msg})"),
        None => String::new(),
    }
}

impl Error {
    /// The errno of a kernel or socket error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Socket { source, .. }
            | Error::OpenNetns { source, .. }
            | Error::EnterNetns { source, .. }
            | Error::Sysctl { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The kernel object does not exist: ENODEV (link), ENOENT, ESRCH (route), or a
    /// sysctl the kernel does not have (no such interface, IPv6 disabled).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Kernel { errno, .. } => {
                *errno == libc::ENODEV || *errno == libc::ENOENT || *errno == libc::ESRCH
            }
            Error::Sysctl { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The kernel object already exists: EEXIST.
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Kernel { errno, .. } if *errno == libc::EEXIST)
    }

    /// The kernel lacks what was asked for (a link kind, a qdisc, a feature): EOPNOTSUPP.
    pub fn is_not_supported(&self) -> bool {
        matches!(self, Error::Kernel { errno, .. } if *errno == libc::EOPNOTSUPP)
    }

    /// The netns path names no namespace any more: it does not exist, or it is no longer
    /// a network namespace (a leftover file whose bind mount is gone). DEL treats this as
    /// "nothing left to delete".
    pub fn is_netns_gone(&self) -> bool {
        matches!(self, Error::NetnsNotFound { .. } | Error::NotNetns { .. })
    }

    /// Names the operation that failed, for errors that came out of the socket layer
    /// without one: `set link lo up: No such device`.
    pub(crate) fn during(mut self, what: impl Into<String>) -> Error {
        match &mut self {
            Error::Kernel { op, .. }
            | Error::Socket { op, .. }
            | Error::Protocol { op, .. }
            | Error::NftTool { op, .. }
            | Error::DumpInterrupted { op, .. } => {
                if op.is_empty() {
                    *op = what.into();
                } else {
                    *op = format!("{}: {op}", what.into());
                }
            }
            _ => {}
        }
        self
    }

    pub(crate) fn kernel(errno: i32, ext_ack: Option<String>) -> Error {
        Error::Kernel {
            op: String::new(),
            errno,
            ext_ack,
        }
    }

    pub(crate) fn socket(source: io::Error) -> Error {
        Error::Socket {
            op: String::new(),
            source,
        }
    }

    pub(crate) fn protocol(msg: impl Into<String>) -> Error {
        Error::Protocol {
            op: String::new(),
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_read_like_verb_object_cause() {
        let err = Error::kernel(libc::ENODEV, None).during("set link eth0 up");
        assert!(err.is_not_found());
        assert!(!err.is_exists());
        assert_eq!(err.errno(), Some(libc::ENODEV));
        let msg = err.to_string();
        assert!(msg.starts_with("set link eth0 up: No such device"), "{msg}");

        let err = Error::kernel(libc::EEXIST, Some("File exists".into())).during("add link");
        assert!(err.is_exists());
        assert!(err.to_string().ends_with("(File exists)"), "{err}");
    }

    #[test]
    fn netns_gone_covers_missing_and_non_netns_paths() {
        let gone = Error::NetnsNotFound {
            path: "/run/netns/x".into(),
        };
        assert!(gone.is_netns_gone());
        assert!(!gone.is_not_found());
        assert!(Error::NotNetns { path: "/x".into() }.is_netns_gone());
        assert!(!Error::kernel(libc::ENOENT, None).is_netns_gone());
    }
}
