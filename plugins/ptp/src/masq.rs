//! Masquerade in nftables for ptp networks: traffic from a container's address to anywhere
//! outside its subnet (and not multicast) leaves with the host's address, as the reference's
//! per-container chains do. One set per network and subnet holds the containers' addresses;
//! its rule is created once, so adding a container is one element in one transaction.
//!
//! ```text
//! table inet cni_ptp
//!   chain postrouting (nat)
//!   set masq4_<id>      per network and IPv4 subnet: ip saddr @masq4_<id>
//!                       ip daddr != <subnet> ip daddr != 224.0.0.0/4 masquerade
//!   set masq6_<id>      the same for IPv6 (ff00::/8)
//! ```

use std::path::Path;

use cni::Error;
use cni_netlink::IpNetwork;
use cni_netlink::nft::{ElementOp, Family, Nft, key};
use plugin_kit::{NftSession, ensure_structure, net_id, nft_error};

pub const TABLE: &str = "cni_ptp";

/// The set of a network's containers on one subnet.
fn set_name(network: &str, address: IpNetwork) -> String {
    let family = if address.is_ipv4() { 4 } else { 6 };
    let subnet = format!("{}/{}", address.network(), address.prefix());
    format!("masq{family}_{}", net_id(&format!("{network} {subnet}")))
}

fn comment(network: &str, address: IpNetwork) -> String {
    format!(
        "cni network {} {}/{}",
        network.escape_default(),
        address.network(),
        address.prefix()
    )
}

/// Creates the set and rule of the subnet of `address` unless they exist.
pub fn ensure(
    nft: &mut Nft,
    data_dir: &Path,
    network: &str,
    address: IpNetwork,
) -> Result<(), Error> {
    let set = set_name(network, address);
    let exists = |nft: &mut Nft| {
        nft.set_exists(Family::Inet, TABLE, &set)
            .map_err(|e| nft_error("look up masquerade set", e))
    };
    ensure_structure(nft, data_dir, exists, "create masquerade rule", || {
        let (ip, addr_type, multicast) = if address.is_ipv4() {
            ("ip", "ipv4_addr", "224.0.0.0/4")
        } else {
            ("ip6", "ipv6_addr", "ff00::/8")
        };
        let subnet = format!("{}/{}", address.network(), address.prefix());
        let comment = comment(network, address);
        // The set must exist before the rule that names it.
        format!(
            "table inet {TABLE} {{\n\
             \tset {set} {{ type {addr_type}; }}\n\
             \tchain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
             }}\n\
             add rule inet {TABLE} postrouting {ip} saddr @{set} {ip} daddr != {subnet} {ip} daddr != {multicast} masquerade comment \"{comment}\"\n"
        )
    })
}

/// Adds (or removes) the container's addresses to (from) their subnets' sets.
pub fn ops(network: &str, addresses: &[IpNetwork], add: bool) -> Vec<ElementOp> {
    addresses
        .iter()
        .map(|a| {
            let set = set_name(network, *a);
            let key = key::ip_addr(a.ip());
            if add {
                ElementOp::add(Family::Inet, TABLE, &set, key)
            } else {
                ElementOp::delete(Family::Inet, TABLE, &set, key)
            }
        })
        .collect()
}

/// Takes the container's addresses out of the sets; a missing table, set or element is
/// nothing to do (deletes of absent elements succeed, see `cni_netlink::nft`).
pub fn release(nft: &mut NftSession, network: &str, addresses: &[IpNetwork]) -> Result<(), Error> {
    nft.apply(&ops(network, addresses, false))
}

/// Whether the container's address is in its subnet's set.
pub fn present(nft: &mut Nft, network: &str, address: IpNetwork) -> Result<bool, Error> {
    nft.has_element(
        Family::Inet,
        TABLE,
        &set_name(network, address),
        &key::ip_addr(address.ip()),
    )
    .map_err(|e| nft_error("look up masquerade element", e))
}
