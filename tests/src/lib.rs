//! The black-box test harness: where the built plugin binaries (ours and the reference Go
//! ones) are, throwaway network namespaces, a private "host" sandbox per test, and running a
//! plugin exactly as a runtime does while keeping everything it printed.
//!
//! Tests run as root. Nothing here touches the machine's own interfaces, routes, firewall or
//! `/var/lib/cni`: plugins run inside a sandbox's own host namespace, with its own data and
//! cache directories, and every namespace is deleted when its handle is dropped.
//!
//! ```no_run
//! use cni_tests::{Sandbox, plugin_bin};
//! let sb = Sandbox::new();
//! let ctr = sb.container();
//! let out = sb
//!     .call(plugin_bin("loopback"), "ADD")
//!     .container("c1", ctr.path_str(), "lo")
//!     .stdin_json(&serde_json::json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}))
//!     .run();
//! out.assert_ok();
//! ```

#![allow(clippy::unwrap_used)]

mod bins;
pub mod faults;
pub mod fixtures;
mod netns;
mod plugin;
mod sandbox;

pub use bins::{
    REFERENCE_PLUGIN_DIR, bin_dir, plugin_bin, reference_bin, reference_dir,
    require_reference_plugins,
};
pub use netns::TestNetns;
pub use plugin::{PluginCall, RawOutcome, run_plugin};
pub use sandbox::Sandbox;
