//! cnictl: Docker's network workflow for any CNI runtime, and a cnitool-compatible runner.
//!
//! - [`cnitool`]: `add|check|del|gc|status NETWORK NETNS` with cnitool's environment;
//! - [`create`], [`network`]: `network create|ls|inspect|rm|prune`;
//! - [`attach`]: `connect` and `disconnect`, and the connections read back from libcni's
//!   result cache (shared with the runtimes of the node);
//! - [`demo`]: the whole workflow in a private sandbox.
//!
//! cnictl keeps no state of its own: a network's settings are in its conflist (cnictl's
//! metadata under the top-level key `cnictl`), a connection's name, aliases, ports and
//! addresses in its libcni cache entry.

pub mod attach;
pub mod cli;
pub mod cnitool;
pub mod create;
pub mod demo;
pub mod env;
pub mod error;
pub mod netconf;
pub mod network;
pub mod output;
pub mod ports;

pub use error::{CliError, Result};
