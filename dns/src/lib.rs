//! The DNS sidecar of the `dnsname` plugin and what the plugin shares with it.
//!
//! - [`store`]: the record store on disk (one file per attachment, under a per-network lock),
//!   written by the plugin and read by the sidecar;
//! - [`control`]: the sidecar's control socket, and starting the sidecar when it is not
//!   running;
//! - [`probe`]: a minimal DNS query, for the plugin's CHECK;
//! - `server` (feature `server`, on by default): the daemon itself, on hickory-server.

pub mod control;
pub mod probe;
pub mod store;

#[cfg(feature = "server")]
pub mod server;
