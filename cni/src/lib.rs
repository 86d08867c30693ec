//! The CNI specification and nothing else: config and result types for 0.1.0 to 1.1.0 and
//! the conversions between them, CNI_* env and CNI_ARGS parsing, the error type with the
//! spec's codes, the skel that dispatches commands, and IPAM delegation through CNI_PATH.
//! This crate never touches the kernel.

pub mod args;
pub mod conf;
pub mod delegate;
pub mod env;
pub mod error;
pub mod linked;
pub mod logger;
pub mod result;
pub mod skel;
pub mod testing;
pub mod undo;
pub mod version;

pub use args::CniArgs;
pub use conf::{Attachment, NetConf};
pub use env::{CmdArgs, Command, Env};
pub use error::{Error, ResultExt};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use skel::{Plugin, Request};
pub use undo::Undo;
pub use version::Version;

/// The suite's version: every plugin, `cni-dns` and `cnictl` carry the workspace's.
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");
