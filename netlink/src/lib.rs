//! The only crate that talks to the kernel: network namespace handles and a synchronous
//! rtnetlink socket with typed operations on links, addresses and routes.
//!
//! A [`Netlink`] belongs to the namespace it was opened in: open one per namespace
//! ([`Netlink::host`], [`Netlink::in_netns`]) and drive them all from the same thread. Code
//! that must run inside a namespace (sysctls under /proc/sys/net) goes through
//! [`NetNs::run`], which uses a fresh thread and never switches a reusable one.

mod address;
mod bridge;
pub mod conntrack;
mod error;
mod exit_handoff;
mod handle;
pub mod iptables;
mod link;
mod netns;
pub mod nft;
mod route;
mod socket;
mod sysctl;
pub mod tc;
#[cfg(test)]
mod testutil;
mod tools;
mod veth;
mod vlan_links;

pub use ipnetwork::IpNetwork;

pub use address::{Address, IpFamily, SCOPE_LINK};
pub use bridge::{BridgeOptions, BridgePortInfo, BridgePortOptions, BridgeVlan, BridgeVlanFlags};
pub use error::{Error, Result};
pub use exit_handoff::close_after_exit;
pub use handle::Netlink;
pub use link::{
    IFF_ALLMULTI, IFF_PROMISC, IFF_UP, Ipv4Conf, IpvlanMode, Link, LinkId, MacAddr, MacvlanMode,
    OperState, mac_is_set, random_link_name,
};
pub use netns::NetNs;
pub use nft::Nft;
pub use route::{Route, RouteFilter, TABLE_MAIN};
pub use sysctl::{get_sysctl, set_sysctl, set_sysctls, sysctl_path};
pub use tools::{TOOL_TIMEOUT, find_tool, run_bounded};
pub use veth::VethOptions;
pub use vlan_links::{ChildTarget, DYING_ALIAS, IpvlanOptions, MacvlanOptions};
