//! Errors of the store and the allocator.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Another process held the store's lock for longer than we wait.
    #[error("the store {} stayed locked for {seconds}s; try again later", path.display())]
    LockTimeout { path: PathBuf, seconds: u64 },
    /// The data directory could be redirected or tampered with by another user.
    #[error("unsafe dataDir: {0}")]
    UnsafePath(String),
    #[error("requested address {ip} is {reason}")]
    Unavailable { ip: IpAddr, reason: String },
    #[error("no IP addresses available in range set {set}")]
    Exhausted { set: String },
    #[error(
        "{container}/{ifname} already holds {ip} in range set {set}; duplicate allocation is not allowed"
    )]
    AlreadyAllocated {
        container: String,
        ifname: String,
        ip: IpAddr,
        set: String,
    },
}

impl StoreError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
