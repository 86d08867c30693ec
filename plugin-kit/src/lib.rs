//! What every plugin shares, written once: the attachment state DEL and GC rely on, locks,
//! opening the container's netns (and tolerating its absence on DEL), the mapping of kernel
//! and state errors to CNI codes, teardown that goes on past a failure and reports all of
//! them, whether an attachment is stale for GC, and the config keys several plugins accept.
//!
//! A plugin crate has the same shape everywhere (see docs/architecture.md): `config.rs`
//! parses and validates, `add.rs`/`del.rs`/`check.rs`/`gc.rs` do the work with this kit and
//! `cni::Undo`, and its `impl Plugin` only delegates.

mod check;
mod config;
mod container;
mod errors;
mod files;
mod forwarding;
mod gc;
mod links;
pub mod masq_iptables;
mod netns;
mod nft;
mod plugin;
mod state;
mod teardown;
mod veth;

pub use check::{
    expect_addresses_and_routes, expect_mac, expect_prev_interface, prev_interface,
    required_prev_result,
};
pub use config::{
    MTU_RANGE, MasqBackend, checked_data_dir, data_dir, masq_backend, parse_mac, validate_mtu,
};
pub use container::{add_result_route, add_route_if_missing, result_interface};
pub use errors::{KernelResultExt, kernel_error, state_error};
pub use files::{
    DirLock, LOCK_TIMEOUT, is_temporary, lock_in, lock_in_within, lock_shared_in, write_atomic,
};
pub use forwarding::enable_forwarding;
pub use gc::{ipam_status, is_listed, is_stale, netns_identity, netns_is_gone};
pub use links::delete_host_link_of_kind;
pub use netns::{netns_for_del, open_netns};
pub use nft::{NftSession, ensure_structure, net_id, nft_error, with_structure_lock};
pub use state::{StateDir, StateError};
pub use teardown::Teardown;
pub use veth::{create_veth_pair, remove_dying_link};

/// Helper programs a plugin runs (the DNS sidecar's self-check) are bounded like the
/// packet-filter tools.
pub use cni_netlink::{TOOL_TIMEOUT, run_bounded};
