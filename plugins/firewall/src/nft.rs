//! The nftables backend.
//!
//! An accept in one nftables base chain does not override a drop in another: every base
//! chain on the forward hook must let a packet through. So the container's traffic is
//! *marked* in our own table, early on the hook, and every chain that would drop it gets
//! one static rule, `meta mark & MARK == MARK accept`: each nft base chain on the forward
//! hook whose policy is drop (firewalld, a hand-written `inet filter`), and iptables'
//! FORWARD when its policy is DROP (Docker's hosts; legacy or nft flavour). The bit is
//! cleared again at the end of the hook, so nothing after the forward hook sees it.
//!
//! ```text
//! table inet cni_firewall
//!   sets allow4, allow6              container addresses (one element per address)
//!   set iso (ifname)                 bridges with ingressPolicy same-bridge or isolated
//!   set iso_self (ifname . ifname)   br . br for each of them
//!   set icc_off (ifname . ifname)    br . br for bridges with ingressPolicy isolated
//!   chain forward (filter, priority -200)
//!     iifname . oifname @icc_off drop
//!     iifname @iso oifname @iso iifname . oifname != @iso_self drop
//!     ip saddr @allow4 mark |= MARK; ip daddr @allow4 ct state established,related mark |= MARK;
//!     ip daddr @allow4 ct status dnat mark |= MARK     (and the same for ip6)
//!   chain forward_unmark (filter, priority 300)       mark &= ~MARK
//! ```
//!
//! A container is one element per address in one netlink transaction: the cost of an ADD
//! does not grow with the number of containers.

use std::net::IpAddr;

use cni::Error;
use cni_netlink::nft::{self, ElementOp, Family, Nft, key};
use serde_json::Value;

pub const TABLE: &str = "cni_firewall";
/// The mark bit of the container's forwarded traffic. Clear of the bits the reference
/// portmap (0x2000), kube-proxy (0x4000, 0x8000) and Calico (0xffff0000 upper bits are
/// configurable there) use by default.
pub const MARK: u32 = 0x0010_0000;
/// The comment of the rules put into chains that are not ours.
pub const FOREIGN_COMMENT: &str = "cni-firewall: accept marked container traffic";

fn nft_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn ifname_key(name: &str) -> Result<[u8; key::IFNAMSIZ], Error> {
    key::ifname(name).map_err(|e| Error::internal(format!("interface name {name:?}: {e}")))
}

fn allow_set(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "allow4" } else { "allow6" }
}

/// Whether the `nft` tool is there (the structure is created with it).
pub fn available() -> bool {
    nft::is_installed()
}

/// Creates our table unless it exists. The caller holds the plugin's lock.
pub fn ensure_structure(nft: &mut Nft) -> Result<(), Error> {
    if nft
        .set_exists(Family::Inet, TABLE, "icc_off")
        .map_err(|e| nft_error("look up firewall table", e))?
    {
        return Ok(());
    }
    let text = format!(
        "table inet {TABLE} {{\n\
         \tset allow4 {{ type ipv4_addr; }}\n\
         \tset allow6 {{ type ipv6_addr; }}\n\
         \tset iso {{ type ifname; }}\n\
         \tset iso_self {{ type ifname . ifname; }}\n\
         \tset icc_off {{ type ifname . ifname; }}\n\
         \tchain forward {{ type filter hook forward priority -200; policy accept; }}\n\
         \tchain forward_unmark {{ type filter hook forward priority 300; policy accept; }}\n\
         }}\n\
         flush chain inet {TABLE} forward\n\
         flush chain inet {TABLE} forward_unmark\n\
         add rule inet {TABLE} forward iifname . oifname @icc_off drop comment \"ingressPolicy isolated\"\n\
         add rule inet {TABLE} forward iifname @iso oifname @iso iifname . oifname != @iso_self drop comment \"ingressPolicy same-bridge\"\n\
         add rule inet {TABLE} forward ip saddr @allow4 meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward ip daddr @allow4 ct state established,related meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward ip daddr @allow4 ct status dnat meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward ip6 saddr @allow6 meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward ip6 daddr @allow6 ct state established,related meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward ip6 daddr @allow6 ct status dnat meta mark set meta mark or {MARK:#x}\n\
         add rule inet {TABLE} forward_unmark meta mark and {MARK:#x} == {MARK:#x} meta mark set meta mark and {:#x}\n",
        !MARK
    );
    nft::apply_ruleset(None, &text).map_err(|e| nft_error("create firewall table", e))
}

/// A base chain on the forward hook that drops what it does not accept, in a table that is
/// neither ours nor iptables-nft's (iptables' FORWARD is handled through iptables, which
/// refuses to list tables holding rules it did not write).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForeignChain {
    family: String,
    table: String,
    chain: String,
    has_mark_rule: bool,
}

/// Runs `nft -j ARGS` and decodes its output.
fn nft_json(args: &[&str]) -> Result<Value, Error> {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out =
        nft::query(None, &all).map_err(|e| nft_error(&format!("nft {}", args.join(" ")), e))?;
    serde_json::from_str(&out).map_err(|e| nft_error("decode nft output", e))
}

/// The foreign drop chains: one `list chains` (no rules: cheap on a node with a large
/// ruleset), then one `list chain` per drop chain to look for our rule.
fn foreign_drop_chains() -> Result<Vec<ForeignChain>, Error> {
    if !nft::is_installed() {
        return Ok(Vec::new());
    }
    let mut chains = parse_foreign_drop_chains(&nft_json(&["list", "chains"])?);
    for c in chains.iter_mut() {
        let listing = nft_json(&["list", "chain", &c.family, &c.table, &c.chain])?;
        c.has_mark_rule = parse_foreign_drop_chains(&listing)
            .first()
            .is_some_and(|own| own.has_mark_rule);
    }
    Ok(chains)
}

fn parse_foreign_drop_chains(doc: &Value) -> Vec<ForeignChain> {
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut chains: Vec<ForeignChain> = Vec::new();
    for item in &items {
        let Some(c) = item.get("chain") else { continue };
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        let (family, table, name) = (field("family"), field("table"), field("name"));
        let iptables_nft =
            matches!(family, "ip" | "ip6") && name.chars().all(|c| !c.is_lowercase());
        if field("hook") == "forward"
            && field("policy") == "drop"
            && matches!(family, "ip" | "ip6" | "inet")
            && table != TABLE
            && !iptables_nft
        {
            chains.push(ForeignChain {
                family: family.into(),
                table: table.into(),
                chain: name.into(),
                has_mark_rule: false,
            });
        }
    }
    for item in &items {
        let Some(r) = item.get("rule") else { continue };
        let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        if field("comment") != FOREIGN_COMMENT {
            continue;
        }
        for c in chains.iter_mut() {
            if c.family == field("family") && c.table == field("table") && c.chain == field("chain")
            {
                c.has_mark_rule = true;
            }
        }
    }
    chains
}

/// Lets marked traffic through every foreign chain that would drop it. Runs on every ADD:
/// such a chain may have appeared since the last one (a firewall started).
pub fn ensure_foreign_accepts() -> Result<(), Error> {
    let mut text = String::new();
    for c in foreign_drop_chains()? {
        if !c.has_mark_rule {
            log::info!(
                "forward chain {} {} {} drops by policy: inserting an accept for marked container traffic",
                c.family,
                c.table,
                c.chain
            );
            text.push_str(&format!(
                "insert rule {} {} {} meta mark and {MARK:#x} == {MARK:#x} accept comment \"{FOREIGN_COMMENT}\"\n",
                c.family,
                quote(&c.table),
                quote(&c.chain)
            ));
        }
    }
    if !text.is_empty() {
        nft::apply_ruleset(None, &text).map_err(|e| nft_error("insert accept rules", e))?;
    }
    crate::iptables::ensure_mark_accept(MARK)
}

/// CHECK: a chain that would drop the container's traffic and lacks our accept rule.
pub fn missing_foreign_accept() -> Result<Option<String>, Error> {
    if let Some(c) = foreign_drop_chains()?
        .into_iter()
        .find(|c| !c.has_mark_rule)
    {
        return Ok(Some(format!(
            "forward chain {} {} {} drops by policy and lacks the accept rule for marked \
             container traffic",
            c.family, c.table, c.chain
        )));
    }
    crate::iptables::missing_mark_accept(MARK)
}

/// A table or chain name as nft reads it back.
fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', ""))
    }
}

pub fn allow_ops(ips: &[IpAddr], add: bool) -> Vec<ElementOp> {
    ips.iter()
        .map(|ip| {
            let set = allow_set(ip);
            if add {
                ElementOp::add(Family::Inet, TABLE, set, key::ip_addr(*ip))
            } else {
                ElementOp::delete(Family::Inet, TABLE, set, key::ip_addr(*ip))
            }
        })
        .collect()
}

/// The elements that isolate `bridge` (`icc_off`: also from itself).
pub fn isolation_ops(bridge: &str, icc_off: bool, add: bool) -> Result<Vec<ElementOp>, Error> {
    let name = ifname_key(bridge)?;
    let pair = key::concat(&[&name, &name]);
    let mut ops = Vec::new();
    let op = |set: &str, k: Vec<u8>| {
        if add {
            ElementOp::add(Family::Inet, TABLE, set, k)
        } else {
            ElementOp::delete(Family::Inet, TABLE, set, k)
        }
    };
    if icc_off {
        ops.push(op("icc_off", pair));
    } else {
        ops.push(op("iso_self", pair));
        ops.push(op("iso", name.to_vec()));
    }
    Ok(ops)
}

pub fn apply(nft: &mut Nft, ops: &[ElementOp]) -> Result<(), Error> {
    if ops.is_empty() {
        return Ok(());
    }
    nft.apply(ops)
        .map_err(|e| nft_error("update nftables sets", e))
}

pub fn allowed(nft: &mut Nft, ip: IpAddr) -> Result<bool, Error> {
    nft.has_element(Family::Inet, TABLE, allow_set(&ip), &key::ip_addr(ip))
        .map_err(|e| nft_error("look up firewall element", e))
}

pub fn isolated(nft: &mut Nft, bridge: &str, icc_off: bool) -> Result<bool, Error> {
    let name = ifname_key(bridge)?;
    let pair = key::concat(&[&name, &name]);
    let found = if icc_off {
        nft.has_element(Family::Inet, TABLE, "icc_off", &pair)
    } else {
        nft.has_element(Family::Inet, TABLE, "iso", &name)
    };
    found.map_err(|e| nft_error("look up isolation element", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_foreign_drop_chains_but_not_ours_or_iptables_nft() {
        let doc = json!({"nftables": [
            {"metainfo": {}},
            {"chain": {"family": "inet", "table": "filter", "name": "forward",
                       "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD",
                       "hook": "forward", "prio": 10, "policy": "accept"}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD",
                       "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": TABLE, "name": "forward",
                       "hook": "forward", "prio": -200, "policy": "drop"}},
            {"chain": {"family": "ip6", "table": "mine", "name": "fwd",
                       "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "bridge", "table": "b", "name": "fwd",
                       "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "ip6", "table": "mine", "chain": "fwd",
                      "comment": FOREIGN_COMMENT}},
        ]});
        let found = parse_foreign_drop_chains(&doc);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].table, "filter");
        assert!(!found[0].has_mark_rule);
        assert_eq!(found[1].table, "mine");
        assert!(found[1].has_mark_rule);
    }
}
