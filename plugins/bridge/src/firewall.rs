//! Masquerade, isolation and MAC spoof checking in nftables.
//!
//! The structure (tables, chains, sets, one rule per network or bridge) is created with `nft`
//! the first time it is needed. What each container adds is an element in a set, written over
//! netlink in one small transaction, so the 1,000th container costs what the first one does.
//!
//! ```text
//! table inet cni_bridge
//!   set masq4_<net>, masq6_<net>       container addresses of a network with ipMasq
//!   chain postrouting (nat)            per network: ip saddr @masq4_<net> oifname != <bridge>
//!                                      ip daddr != 224.0.0.0/4 masquerade
//!   set isolated (ifname)              bridges of isolated networks
//!   chain forward (filter)             per isolated bridge: iifname <bridge>
//!                                      oifname @isolated oifname != <bridge> drop
//! table bridge cni_bridge
//!   sets spoofchk_ports (ifname), spoofchk_allowed (ifname . ether_addr)
//!   chain prerouting (filter, -300)    iifname @spoofchk_ports
//!                                      iifname . ether saddr != @spoofchk_allowed drop
//! ```

use std::net::IpAddr;
use std::path::Path;

use cni::Error;
use cni_netlink::nft::{self, ElementOp, Family, Nft, key};
use cni_netlink::{MacAddr, NetNs};
pub use plugin_kit::NftSession;
use plugin_kit::{ensure_structure, net_id, nft_error, with_structure_lock};

pub const TABLE: &str = "cni_bridge";

fn masq_set(network: &str, ip: &IpAddr) -> String {
    let family = if ip.is_ipv4() { 4 } else { 6 };
    format!("masq{family}_{}", net_id(network))
}

/// Creates the masquerade structure of `network` unless it exists.
pub fn ensure_masq(
    nft: &mut Nft,
    data_dir: &Path,
    network: &str,
    bridge: &str,
) -> Result<(), Error> {
    let id = net_id(network);
    let exists = |nft: &mut Nft| {
        nft.set_exists(Family::Inet, TABLE, &format!("masq6_{id}"))
            .map_err(|e| nft_error("look up masquerade set", e))
    };
    ensure_structure(nft, data_dir, exists, "create masquerade rules", || {
        let comment = format!("cni network {}", network.escape_default());
        // The sets must exist before the rules that name them: declared first.
        format!(
            "table inet {TABLE} {{\n\
             \tset masq4_{id} {{ type ipv4_addr; }}\n\
             \tset masq6_{id} {{ type ipv6_addr; }}\n\
             \tchain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
             }}\n\
             add rule inet {TABLE} postrouting ip saddr @masq4_{id} oifname != \"{bridge}\" ip daddr != 224.0.0.0/4 masquerade comment \"{comment}\"\n\
             add rule inet {TABLE} postrouting ip6 saddr @masq6_{id} oifname != \"{bridge}\" ip6 daddr != ff00::/8 masquerade comment \"{comment}\"\n",
        )
    })
}

/// Adds (or removes) the container's addresses to (from) its network's masquerade sets.
pub fn masq_ops(network: &str, ips: &[IpAddr], add: bool) -> Vec<ElementOp> {
    ips.iter()
        .map(|ip| {
            let set = masq_set(network, ip);
            let key = key::ip_addr(*ip);
            if add {
                ElementOp::add(Family::Inet, TABLE, &set, key)
            } else {
                ElementOp::delete(Family::Inet, TABLE, &set, key)
            }
        })
        .collect()
}

/// Whether the container's address is in its network's masquerade set.
pub fn masq_present(nft: &mut Nft, network: &str, ip: IpAddr) -> Result<bool, Error> {
    nft.has_element(
        Family::Inet,
        TABLE,
        &masq_set(network, &ip),
        &key::ip_addr(ip),
    )
    .map_err(|e| nft_error("look up masquerade element", e))
}

/// Drops traffic from `bridge` to other isolated bridges; created once per bridge.
pub fn ensure_isolation(nft: &mut Nft, data_dir: &Path, bridge: &str) -> Result<(), Error> {
    let key = ifname_key(bridge)?;
    let present = |nft: &mut Nft| {
        nft.has_element(Family::Inet, TABLE, "isolated", &key)
            .map_err(|e| nft_error("look up isolated bridges", e))
    };
    ensure_structure(nft, data_dir, present, "create isolation rule", || {
        format!(
            "table inet {TABLE} {{\n\
             \tset isolated {{ type ifname; }}\n\
             \tchain forward {{ type filter hook forward priority filter; policy accept; }}\n\
             }}\n\
             add rule inet {TABLE} forward iifname \"{bridge}\" oifname @isolated oifname != \"{bridge}\" drop comment \"isolate {bridge}\"\n\
             add element inet {TABLE} isolated {{ \"{bridge}\" }}\n"
        )
    })
}

/// Removes what ADDs made for `network` besides the containers' own entries: its masquerade
/// rules and sets and, given `bridge` (when no other network uses it), the bridge's
/// isolation rule and element; in the caller's netns or in `netns`. For when the network
/// itself is removed (`cnictl network rm`), once no container is attached; a later ADD would
/// create them again.
pub fn remove_network(
    netns: Option<&NetNs>,
    data_dir: &Path,
    network: &str,
    bridge: Option<&str>,
) -> Result<(), Error> {
    let mut nft = match netns {
        Some(ns) => Nft::in_netns(ns),
        None => Nft::host(),
    }
    .map_err(|e| nft_error("open nftables socket", e))?;
    if !nft
        .table_exists(Family::Inet, TABLE)
        .map_err(|e| nft_error("look up the bridge table", e))?
    {
        return Ok(());
    }
    with_structure_lock(data_dir, || {
        let mut text = String::new();
        let mut rules = vec![(
            "postrouting",
            format!("cni network {}", network.escape_default()),
        )];
        if let Some(bridge) = bridge {
            rules.push(("forward", format!("isolate {bridge}")));
        }
        for (chain, comment) in &rules {
            let handles = nft::rule_handles(netns, "inet", TABLE, chain, comment)
                .map_err(|e| nft_error("list the bridge rules", e))?;
            for handle in handles {
                text.push_str(&format!(
                    "delete rule inet {TABLE} {chain} handle {handle}\n"
                ));
            }
        }
        let id = net_id(network);
        for set in [format!("masq4_{id}"), format!("masq6_{id}")] {
            if nft
                .set_exists(Family::Inet, TABLE, &set)
                .map_err(|e| nft_error("look up masquerade set", e))?
            {
                text.push_str(&format!("delete set inet {TABLE} {set}\n"));
            }
        }
        if let Some(bridge) = bridge
            && nft
                .has_element(Family::Inet, TABLE, "isolated", &ifname_key(bridge)?)
                .map_err(|e| nft_error("look up isolated bridges", e))?
        {
            text.push_str(&format!(
                "delete element inet {TABLE} isolated {{ \"{bridge}\" }}\n"
            ));
        }
        if text.is_empty() {
            return Ok(());
        }
        nft::apply_ruleset(netns, &text).map_err(|e| nft_error("remove the network's rules", e))
    })
}

const SPOOF_PORTS: &str = "spoofchk_ports";
const SPOOF_ALLOWED: &str = "spoofchk_allowed";

/// Creates the MAC spoof check structure unless it exists.
pub fn ensure_spoofchk(nft: &mut Nft, data_dir: &Path) -> Result<(), Error> {
    let exists = |nft: &mut Nft| {
        nft.set_exists(Family::Bridge, TABLE, SPOOF_ALLOWED)
            .map_err(|e| nft_error("look up spoof check set", e))
    };
    ensure_structure(nft, data_dir, exists, "create spoof check", || {
        format!(
            "table bridge {TABLE} {{\n\
             \tset {SPOOF_PORTS} {{ type ifname; }}\n\
             \tset {SPOOF_ALLOWED} {{ type ifname . ether_addr; }}\n\
             \tchain prerouting {{ type filter hook prerouting priority -300; policy accept;\n\
             \t\tiifname @{SPOOF_PORTS} iifname . ether saddr != @{SPOOF_ALLOWED} drop comment \"mac spoof check\"\n\
             \t}}\n\
             }}\n"
        )
    })
}

/// Guards `port` so only frames from `mac` enter the bridge through it.
pub fn spoofchk_ops(port: &str, mac: MacAddr, add: bool) -> Result<Vec<ElementOp>, Error> {
    let port_key = ifname_key(port)?;
    let pair = key::concat(&[&port_key, &key::ether_addr(mac.0)]);
    Ok(if add {
        vec![
            ElementOp::add(Family::Bridge, TABLE, SPOOF_ALLOWED, pair),
            ElementOp::add(Family::Bridge, TABLE, SPOOF_PORTS, port_key),
        ]
    } else {
        vec![
            ElementOp::delete(Family::Bridge, TABLE, SPOOF_PORTS, port_key),
            ElementOp::delete(Family::Bridge, TABLE, SPOOF_ALLOWED, pair),
        ]
    })
}

pub fn spoofchk_present(nft: &mut Nft, port: &str, mac: MacAddr) -> Result<bool, Error> {
    let pair = key::concat(&[&ifname_key(port)?, &key::ether_addr(mac.0)]);
    nft.has_element(Family::Bridge, TABLE, SPOOF_ALLOWED, &pair)
        .map_err(|e| nft_error("look up spoof check element", e))
}

fn ifname_key(name: &str) -> Result<[u8; key::IFNAMSIZ], Error> {
    key::ifname(name).map_err(|e| Error::internal(format!("interface name {name:?}: {e}")))
}
