//! The nftables backend: verdict-free DNAT maps and masquerade sets in `inet cni_portmap`.
//!
//! ```text
//! table inet cni_portmap
//!   map dnat4      ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//!                  (mappings restricted to a hostIP)
//!   map dnat4_any  inet_proto . inet_service : ipv4_addr . inet_service
//!                  (mappings on every local address); dnat6, dnat6_any alike
//!   set masqall4, masqall6            container addresses of masqAll networks
//!   set snat4_<subnet>, snat6_<...>   container addresses of a subnet, with snat
//!   chain prerouting (nat, dstnat)    fib daddr type local jump hostports
//!   chain output (nat, -100)          fib daddr type local jump hostports
//!   chain hostports                   meta nfproto ipv4 dnat ip to ip daddr . meta l4proto
//!                                       . th dport map @dnat4
//!                                     meta nfproto ipv4 dnat ip to meta l4proto . th dport
//!                                       map @dnat4_any    (and the same for IPv6)
//!                                     jump conditional
//!   chain conditional                 jump hostports_<conditions> for each set of
//!                                     conditionsV4/V6 in use, whose chain holds the same
//!                                     rules behind the conditions, on maps of its own
//!   chain postrouting (nat, srcnat)   jump hairpin
//!                                     ct status dnat ip daddr @masqall4 masquerade (and v6)
//!   chain hairpin                     per subnet in use: ct status dnat ip saddr <subnet>
//!                                       ip daddr @snat4_<subnet> masquerade
//!                                     ip saddr 127.0.0.0/8 ip daddr @snat4_<subnet>
//!                                       masquerade
//! ```
//!
//! The structure is created with `nft` the first time it is missing (an ADD that finds a
//! set missing creates it under a lock and tries again). A container is only elements:
//! one per mapping and family in a DNAT map and its address in a masquerade set, all added
//! in one netlink transaction, each with a comment naming the attachment. A host port that
//! another container holds is refused by the kernel (a map key holds one value), so the
//! second container gets an error and the first keeps its mapping.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use cni::{Attachment, Error, Request, Undo};
use cni_netlink::nft::{self, ElementOp, Family, Nft, key};
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::state::{self, AttachmentState, StoredElement, hex, unhex};
use crate::{Backend, PORT_IN_USE, container_addresses};

pub const TABLE: &str = "cni_portmap";

fn nft_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn short_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..5])
}

/// The comment on every element of an attachment.
pub fn element_comment(network: &str, container_id: &str, ifname: &str) -> String {
    let plain = format!("net={network} id={container_id} if={ifname}");
    if plain.len() <= nft::MAX_COMMENT_LEN {
        return plain;
    }
    let hashed = format!("net=#{} id={container_id} if={ifname}", short_hash(network));
    if hashed.len() <= nft::MAX_COMMENT_LEN {
        return hashed;
    }
    format!(
        "att=#{}",
        short_hash(&format!("{network}\0{container_id}\0{ifname}"))
    )
}

/// The attachment an element comment names: (network, container ID, ifname).
fn parse_comment(comment: &str) -> Option<(String, String, String)> {
    let mut parts = comment.split(' ');
    let net = parts.next()?.strip_prefix("net=")?;
    let id = parts.next()?.strip_prefix("id=")?;
    let ifname = parts.next()?.strip_prefix("if=")?;
    if parts.next().is_some() || net.starts_with('#') {
        return None;
    }
    Some((net.to_string(), id.to_string(), ifname.to_string()))
}

/// A piece of the table's structure, created with `nft` when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Structure {
    Base,
    /// The maps and chain of one set of conditions.
    Profile {
        id: String,
        v4: Vec<String>,
        v6: Vec<String>,
    },
    /// The hairpin and localhost masquerade of one subnet.
    Subnet(IpNetwork),
}

fn family_digit(v6: bool) -> char {
    if v6 { '6' } else { '4' }
}

/// `dnat4`, `dnat4_any`, `dnat6_<profile>`...
fn dnat_map(v6: bool, specific: bool, profile: Option<&str>) -> String {
    let mut name = format!("dnat{}", family_digit(v6));
    if !specific {
        name.push_str("_any");
    }
    if let Some(p) = profile {
        name.push('_');
        name.push_str(p);
    }
    name
}

fn subnet_set(subnet: &IpNetwork) -> String {
    format!(
        "snat{}_{}",
        family_digit(subnet.is_ipv6()),
        short_hash(&subnet.to_string())
    )
}

fn dnat_rules(chain: &str, profile: Option<&str>, v4: &[String], v6: &[String]) -> String {
    let mut text = String::new();
    for (is_v6, conds) in [(false, v4), (true, v6)] {
        let (ip, nfproto) = if is_v6 {
            ("ip6", "ipv6")
        } else {
            ("ip", "ipv4")
        };
        let conds = if conds.is_empty() {
            String::new()
        } else {
            format!("{} ", conds.join(" "))
        };
        for specific in [true, false] {
            let map = dnat_map(is_v6, specific, profile);
            let key = if specific {
                format!("{ip} daddr . meta l4proto . th dport")
            } else {
                "meta l4proto . th dport".to_string()
            };
            text.push_str(&format!(
                "add rule inet {TABLE} {chain} meta nfproto {nfproto} {conds}dnat {ip} to {key} map @{map} comment \"portmap {map}\"\n"
            ));
        }
    }
    text
}

fn map_declarations(profile: Option<&str>) -> String {
    let mut text = String::new();
    for v6 in [false, true] {
        let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
        text.push_str(&format!(
            "\tmap {} {{ type {addr} . inet_proto . inet_service : {addr} . inet_service; }}\n",
            dnat_map(v6, true, profile)
        ));
        text.push_str(&format!(
            "\tmap {} {{ type inet_proto . inet_service : {addr} . inet_service; }}\n",
            dnat_map(v6, false, profile)
        ));
    }
    text
}

impl Structure {
    /// A set its text creates: when it exists, so does the rest (`nft -f` is atomic).
    fn marker(&self) -> String {
        match self {
            Structure::Base => "masqall6".into(),
            Structure::Profile { id, .. } => dnat_map(true, false, Some(id)),
            Structure::Subnet(net) => subnet_set(net),
        }
    }

    /// Applying this twice leaves one copy (chains are flushed before their rules), except
    /// for the one rule each profile and subnet adds to a shared chain.
    fn text(&self) -> String {
        match self {
            Structure::Base => {
                let mut text = format!(
                    "table inet {TABLE} {{\n{}\
                     \tset masqall4 {{ type ipv4_addr; }}\n\
                     \tset masqall6 {{ type ipv6_addr; }}\n\
                     \tchain hostports {{ }}\n\
                     \tchain conditional {{ }}\n\
                     \tchain hairpin {{ }}\n\
                     \tchain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
                     \tchain output {{ type nat hook output priority -100; policy accept; }}\n\
                     \tchain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
                     }}\n",
                    map_declarations(None)
                );
                for chain in ["prerouting", "output", "postrouting", "hostports"] {
                    text.push_str(&format!("flush chain inet {TABLE} {chain}\n"));
                }
                for chain in ["prerouting", "output"] {
                    text.push_str(&format!(
                        "add rule inet {TABLE} {chain} fib daddr type local jump hostports comment \"portmap {chain}\"\n"
                    ));
                }
                text.push_str(&dnat_rules("hostports", None, &[], &[]));
                text.push_str(&format!(
                    "add rule inet {TABLE} hostports jump conditional comment \"portmap conditional\"\n\
                     add rule inet {TABLE} postrouting jump hairpin comment \"portmap hairpin\"\n\
                     add rule inet {TABLE} postrouting ct status dnat ip daddr @masqall4 masquerade comment \"portmap masqall4\"\n\
                     add rule inet {TABLE} postrouting ct status dnat ip6 daddr @masqall6 masquerade comment \"portmap masqall6\"\n"
                ));
                text
            }
            Structure::Profile { id, v4, v6 } => {
                let chain = format!("hostports_{id}");
                let mut text = format!(
                    "table inet {TABLE} {{\n{}\tchain {chain} {{ }}\n}}\nflush chain inet {TABLE} {chain}\n",
                    map_declarations(Some(id))
                );
                text.push_str(&dnat_rules(&chain, Some(id), v4, v6));
                text.push_str(&format!(
                    "add rule inet {TABLE} conditional jump {chain} comment \"portmap conditions {id}\"\n"
                ));
                text
            }
            Structure::Subnet(net) => {
                let set = subnet_set(net);
                let (ip, addr) = if net.is_ipv6() {
                    ("ip6", "ipv6_addr")
                } else {
                    ("ip", "ipv4_addr")
                };
                let mut text = format!(
                    "table inet {TABLE} {{\n\tset {set} {{ type {addr}; }}\n}}\n\
                     add rule inet {TABLE} hairpin ct status dnat {ip} saddr {net} {ip} daddr @{set} masquerade comment \"portmap hairpin {net}\"\n"
                );
                if net.is_ipv4() {
                    text.push_str(&format!(
                        "add rule inet {TABLE} hairpin ip saddr 127.0.0.0/8 ip daddr @{set} masquerade comment \"portmap localhost {net}\"\n"
                    ));
                }
                text
            }
        }
    }
}

/// The conditions profile of a config, if it has conditions: an id from their text.
fn profile_of(cfg: &Config) -> Option<Structure> {
    if cfg.conditions_v4.is_empty() && cfg.conditions_v6.is_empty() {
        return None;
    }
    let text = serde_json::json!([cfg.conditions_v4, cfg.conditions_v6]).to_string();
    Some(Structure::Profile {
        id: format!("c{}", short_hash(&text)),
        v4: cfg.conditions_v4.clone(),
        v6: cfg.conditions_v6.clone(),
    })
}

/// One element an attachment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    set: String,
    key: Vec<u8>,
    data: Option<Vec<u8>>,
    /// What it is, for errors: `tcp/8080 -> 10.88.0.2:80`.
    what: String,
}

/// Everything an attachment needs in the table.
#[derive(Debug, Default)]
struct Plan {
    elements: Vec<Planned>,
    structures: Vec<Structure>,
    /// Comments of the structure rules the elements are used by.
    rules: Vec<String>,
}

fn target(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

fn plan(cfg: &Config, addrs: &[IpNetwork]) -> Result<Plan, Error> {
    let profile = profile_of(cfg);
    let profile_id = match &profile {
        Some(Structure::Profile { id, .. }) => Some(id.clone()),
        _ => None,
    };
    let mut plan = Plan {
        structures: vec![Structure::Base],
        ..Plan::default()
    };
    let mut rules = BTreeSet::new();
    rules.insert("portmap prerouting".to_string());
    rules.insert("portmap output".to_string());
    if let (Some(p), Some(id)) = (profile, &profile_id) {
        plan.structures.push(p);
        rules.insert("portmap conditional".to_string());
        rules.insert(format!("portmap conditions {id}"));
    }
    for addr in addrs {
        let v6 = addr.is_ipv6();
        let ip = addr.ip();
        for m in cfg.mappings.iter().filter(|m| m.applies_to_v6(v6)) {
            let specific = m.specific_host_ip();
            let set = dnat_map(v6, specific.is_some(), profile_id.as_deref());
            let proto = key::inet_proto(m.protocol.number());
            let port = key::inet_service(m.host_port);
            let key = match specific {
                Some(host) => key::concat(&[&key::ip_addr(host), &proto, &port]),
                None => key::concat(&[&proto, &port]),
            };
            let data = key::concat(&[&key::ip_addr(ip), &key::inet_service(m.container_port)]);
            let what = format!("{} -> {}", m.host_side(), target(ip, m.container_port));
            if let Some(dup) = plan.elements.iter().find(|e| e.set == set && e.key == key) {
                if dup.data.as_deref() == Some(data.as_slice()) {
                    continue;
                }
                return Err(Error::invalid_config(format!(
                    "runtimeConfig.portMappings: host port mapped twice ({} and {what})",
                    dup.what
                )));
            }
            rules.insert(format!("portmap {set}"));
            plan.elements.push(Planned {
                set,
                key,
                data: Some(data),
                what,
            });
        }
        if !cfg.snat {
            continue;
        }
        let (set, what) = if cfg.masq_all {
            rules.insert(format!("portmap masqall{}", family_digit(v6)));
            (
                format!("masqall{}", family_digit(v6)),
                format!("masquerade of {ip}"),
            )
        } else {
            let subnet = IpNetwork::new(addr.network(), addr.prefix())
                .map_err(|e| Error::internal(format!("subnet of {addr}: {e}")))?;
            rules.insert("portmap hairpin".to_string());
            rules.insert(format!("portmap hairpin {subnet}"));
            if !v6 {
                rules.insert(format!("portmap localhost {subnet}"));
            }
            let set = subnet_set(&subnet);
            plan.structures.push(Structure::Subnet(subnet));
            (set, format!("hairpin and localhost masquerade of {ip}"))
        };
        plan.elements.push(Planned {
            set,
            key: key::ip_addr(ip),
            data: None,
            what,
        });
    }
    plan.rules = rules.into_iter().collect();
    Ok(plan)
}

fn stored(plan: &Plan) -> Vec<StoredElement> {
    plan.elements
        .iter()
        .map(|e| StoredElement {
            set: e.set.clone(),
            key: hex(&e.key),
            data: e.data.as_deref().map(hex),
        })
        .collect()
}

fn add_op(e: &Planned, comment: &str) -> ElementOp {
    let op = ElementOp::add(Family::Inet, TABLE, &e.set, e.key.clone()).with_comment(comment);
    match &e.data {
        Some(d) => op.with_data(d.clone()),
        None => op,
    }
}

/// Runs `f` holding the data dir's lock, so concurrent ADDs create the structure once.
fn with_structure_lock<T>(
    data_dir: &Path,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let _lock = plugin_kit::lock_in(data_dir, "nft.lock").map_err(plugin_kit::state_error)?;
    f()
}

/// Creates the pieces of `wanted` that are missing.
fn ensure_structure(nft: &mut Nft, data_dir: &Path, wanted: &[Structure]) -> Result<(), Error> {
    let missing = |nft: &mut Nft| -> Result<Vec<&Structure>, Error> {
        let mut out = Vec::new();
        for s in wanted {
            if !nft
                .set_exists(Family::Inet, TABLE, &s.marker())
                .map_err(|e| nft_error("look up nftables set", e))?
            {
                out.push(s);
            }
        }
        Ok(out)
    };
    with_structure_lock(data_dir, || {
        let mut todo = missing(nft)?;
        if todo.is_empty() {
            // Every marker is there but a set was not: someone deleted part of the table.
            // The base structure is safe to apply again.
            todo.push(&Structure::Base);
        }
        let text: String = todo.iter().map(|s| s.text()).collect();
        let Err(e) = nft::apply_ruleset(None, &text) else {
            return Ok(());
        };
        // A profile's conditions are the one part of the text from the config: if the rest
        // applies without them, they are what nft refused.
        if todo.iter().any(|s| matches!(s, Structure::Profile { .. })) {
            let rest: String = todo
                .iter()
                .filter(|s| !matches!(s, Structure::Profile { .. }))
                .map(|s| s.text())
                .collect();
            if rest.is_empty() || nft::apply_ruleset(None, &rest).is_ok() {
                return Err(Error::invalid_config(format!(
                    "conditionsV4/conditionsV6 are not valid nft expressions: {e}"
                )));
            }
        }
        Err(nft_error("create the portmap nftables table", e))
    })
}

/// ADD: the attachment's elements in one transaction (replacing what an earlier ADD of the
/// same attachment left), the structure created first if missing.
pub fn add(
    req: &Request,
    cfg: &Config,
    addrs: &[IpNetwork],
    localnet: &[String],
) -> Result<AttachmentState, Error> {
    let plan = plan(cfg, addrs)?;
    let comment = element_comment(&cfg.network, req.container_id(), req.ifname());
    let states = state::dir(&cfg.data_dir, &cfg.network);
    let old: Option<AttachmentState> = states.load(req.container_id(), req.ifname());
    let mut stale = Vec::new();
    if let Some(old) = &old {
        if old.backend == Backend::Iptables {
            crate::iptables::release(&cfg.data_dir, old)?;
        }
        for e in &old.elements {
            let Some(key) = unhex(&e.key) else { continue };
            let kept = plan
                .elements
                .iter()
                .any(|p| p.set == e.set && p.key == key && p.data.as_deref().map(hex) == e.data);
            if !kept {
                stale.push(ElementOp::delete(Family::Inet, TABLE, &e.set, key));
            }
        }
    }
    let saved = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        netns_id: plugin_kit::netns_identity(req.netns()),
        backend: Backend::Nftables,
        mappings: cfg.mappings.clone(),
        addresses: addrs.to_vec(),
        localnet: localnet.to_vec(),
        elements: stored(&plan),
        rules: plan.rules.clone(),
        iptables: None,
    };
    // Recorded before the elements are added, with those an earlier ADD left that this one
    // deletes, so that a DEL after a kill at any point finds every one of them.
    let mut undo = Undo::new();
    states.restore_on_undo(req.container_id(), req.ifname(), &mut undo);
    let replaced = old
        .iter()
        .flat_map(|o| o.elements.iter())
        .filter(|e| !saved.elements.contains(e));
    let intent = AttachmentState {
        elements: saved.elements.iter().chain(replaced).cloned().collect(),
        ..saved.clone()
    };
    states
        .save(req.container_id(), req.ifname(), &intent)
        .map_err(plugin_kit::state_error)?;
    // Deletes of what an earlier ADD of this attachment left and this one replaces, and the
    // adds, in one transaction; the socket is closed without making the runtime wait.
    let mut ops = stale;
    ops.extend(plan.elements.iter().map(|e| add_op(e, &comment)));
    let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
    apply_adds(cfg, &plan, &comment, || {
        nft.apply(&ops).map_err(|e| {
            if e.is_not_found() {
                Failure::Missing
            } else if e.is_exists() {
                Failure::Taken
            } else {
                Failure::Other(e.to_string())
            }
        })
    })?;
    nft.close_after_exit();
    if intent.elements.len() != saved.elements.len() {
        let adds: Vec<ElementOp> = plan
            .elements
            .iter()
            .map(|e| ElementOp::delete(Family::Inet, TABLE, &e.set, e.key.clone()))
            .collect();
        undo.push("delete port mapping elements", move || {
            Nft::host()
                .and_then(|mut nft| nft.apply(&adds))
                .map_err(|e| e.to_string())
        });
        states
            .save(req.container_id(), req.ifname(), &saved)
            .map_err(plugin_kit::state_error)?;
    }
    undo.commit();
    Ok(saved)
}

/// Why a batch of the ADD failed.
enum Failure {
    /// A set or the table is missing (ENOENT).
    Missing,
    /// A map key is held with other data (EEXIST).
    Taken,
    Other(String),
}

/// Sends the ADD's batch (`send`); a missing set creates the structure, a host port held
/// by another attachment is the caller's error unless that attachment is gone.
fn apply_adds(
    cfg: &Config,
    plan: &Plan,
    comment: &str,
    mut send: impl FnMut() -> Result<(), Failure>,
) -> Result<(), Error> {
    let mut created = false;
    let mut reclaimed = false;
    loop {
        match send() {
            Ok(()) => return Ok(()),
            Err(Failure::Missing) if !created => {
                let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
                ensure_structure(&mut nft, &cfg.data_dir, &plan.structures)?;
                created = true;
            }
            Err(Failure::Taken) if !reclaimed => {
                conflict(cfg, plan, comment)?;
                reclaimed = true;
            }
            Err(Failure::Missing) => {
                return Err(Error::internal(
                    "add port mapping elements: a set of table inet cni_portmap is missing",
                ));
            }
            Err(Failure::Taken) => {
                return Err(Error::internal(
                    "add port mapping elements: an element is still held by another attachment",
                ));
            }
            Err(Failure::Other(e)) => return Err(nft_error("add port mapping elements", e)),
        }
    }
}

/// A map key of the plan is held with other data. If its holder is this attachment (an ADD
/// whose state was lost) or an attachment whose netns is gone (its DEL never came), its
/// elements go and the caller tries again; otherwise the error names the holder.
fn conflict(cfg: &Config, plan: &Plan, comment: &str) -> Result<(), Error> {
    let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
    for p in plan.elements.iter().filter(|p| p.data.is_some()) {
        let Some(held) = nft
            .get_element(Family::Inet, TABLE, &p.set, &p.key)
            .map_err(|e| nft_error("look up port mapping", e))?
        else {
            continue;
        };
        if held.data == p.data {
            continue;
        }
        let holder = held.comment.as_deref().unwrap_or_default();
        if holder == comment {
            log::info!("replacing {}: left by an earlier ADD without state", p.what);
            let op = ElementOp::delete(Family::Inet, TABLE, &p.set, p.key.clone());
            return nft
                .apply(&[op])
                .map_err(|e| nft_error("delete leftover mapping", e));
        }
        if let Some((network, id, ifname)) = parse_comment(holder) {
            let states = state::dir(&cfg.data_dir, &network);
            if let Some(s) = states.load::<AttachmentState>(&id, &ifname)
                && s.netns_gone()
            {
                log::info!(
                    "releasing the mappings of {id}/{ifname}: its netns {} is gone",
                    s.netns
                );
                release(&network, &s)?;
                let _ = states.remove(&id, &ifname);
                return Ok(());
            }
        }
        let to = held
            .data
            .as_deref()
            .and_then(describe_target)
            .unwrap_or_else(|| "another container".into());
        let by = match parse_comment(holder) {
            Some((network, id, ifname)) => {
                format!(" (container {id}, interface {ifname}, network {network})")
            }
            None if !holder.is_empty() => format!(" ({holder})"),
            None => String::new(),
        };
        let host = p.what.split(" -> ").next().unwrap_or_default();
        return Err(Error::new(
            PORT_IN_USE,
            format!("host port {host} is already mapped to {to}{by}"),
        ));
    }
    Err(Error::internal(
        "add port mapping elements: the kernel reports an existing element, but none of ours conflicts",
    ))
}

/// `10.88.0.5:80` from a map's data (`ipv4_addr . inet_service` or the IPv6 form).
fn describe_target(data: &[u8]) -> Option<String> {
    for lens in [[4, 2], [16, 2]] {
        if let Some(parts) = key::split(data, &lens) {
            let ip: IpAddr = match lens[0] {
                4 => key::parse_ipv4_addr(parts[0])?.into(),
                _ => key::parse_ipv6_addr(parts[0])?.into(),
            };
            return Some(target(ip, key::parse_inet_service(parts[1])?));
        }
    }
    None
}

/// Removes an attachment's elements (DEL, GC): a map element only while it still holds the
/// attachment's data and a set element only while it carries the attachment's comment (or
/// none), so an element another attachment holds by now stays.
pub fn release(network: &str, saved: &AttachmentState) -> Result<(), Error> {
    if saved.elements.is_empty() {
        return Ok(());
    }
    let comment = element_comment(network, &saved.container_id, &saved.ifname);
    let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
    let mut doomed: Vec<ElementOp> = Vec::new();
    for e in &saved.elements {
        let Some(key) = unhex(&e.key) else { continue };
        let Some(held) = nft
            .get_element(Family::Inet, TABLE, &e.set, &key)
            .map_err(|err| nft_error(&format!("look up element of {}", e.set), err))?
        else {
            continue;
        };
        let ours = match &e.data {
            Some(data) => held.data.as_deref().map(hex).as_deref() == Some(data.as_str()),
            None => held.comment.as_deref().is_none_or(|c| c == comment),
        };
        if ours {
            doomed.push(ElementOp::delete(Family::Inet, TABLE, &e.set, key));
        } else {
            log::info!(
                "{} element {} is another attachment's by now: kept",
                e.set,
                e.key
            );
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    // Deletes of elements gone in between are skipped (see cni_netlink::nft); the socket is
    // closed without making the runtime wait.
    nft.apply(&doomed)
        .map_err(|e| nft_error("delete port mapping elements", e))?;
    nft.close_after_exit();
    Ok(())
}

/// DEL without state but with mappings (the state was lost): the elements the mappings and
/// `prevResult` name are removed when they are this attachment's; without `prevResult`, the
/// DNAT maps are searched for elements carrying its comment.
pub fn release_unrecorded(cfg: &Config, req: &Request) -> Result<(), Error> {
    let addrs = req
        .conf
        .prev_result
        .as_ref()
        .map(|r| container_addresses(r, req.ifname()))
        .unwrap_or_default();
    let comment = element_comment(&cfg.network, req.container_id(), req.ifname());
    if !addrs.is_empty()
        && let Ok(plan) = plan(cfg, &addrs)
    {
        let saved = AttachmentState {
            container_id: req.container_id().to_string(),
            ifname: req.ifname().to_string(),
            netns: String::new(),
            netns_id: String::new(),
            backend: Backend::Nftables,
            mappings: cfg.mappings.clone(),
            addresses: addrs,
            localnet: Vec::new(),
            elements: stored(&plan),
            rules: Vec::new(),
            iptables: None,
        };
        return release(&cfg.network, &saved);
    }
    let profile = match profile_of(cfg) {
        Some(Structure::Profile { id, .. }) => Some(id),
        _ => None,
    };
    let mut sets: Vec<String> = Vec::new();
    for v6 in [false, true] {
        for specific in [true, false] {
            sets.push(dnat_map(v6, specific, profile.as_deref()));
        }
        sets.push(format!("masqall{}", family_digit(v6)));
    }
    delete_by_comment(&sets, |c| c == comment)
}

/// Deletes the elements of `sets` whose comment `doomed` picks (missing sets are skipped).
fn delete_by_comment(sets: &[String], doomed: impl Fn(&str) -> bool) -> Result<(), Error> {
    let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
    let mut ops = Vec::new();
    for set in sets {
        let elements = match nft.elements(Family::Inet, TABLE, set) {
            Ok(elements) => elements,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(nft_error("list port mapping elements", e)),
        };
        for el in elements {
            if el.comment.as_deref().is_some_and(&doomed) {
                ops.push(ElementOp::delete(Family::Inet, TABLE, set, el.key));
            }
        }
    }
    nft.apply(&ops)
        .map_err(|e| nft_error("delete port mapping elements", e))
}

/// GC, after the recorded attachments: elements of this network whose attachment is not
/// valid and left no state (a lost state file) are deleted by their comment.
pub fn sweep(network: &str, states: &[AttachmentState], valid: &[Attachment]) -> Result<(), Error> {
    let mut sets: BTreeSet<String> = BTreeSet::new();
    for v6 in [false, true] {
        for specific in [true, false] {
            sets.insert(dnat_map(v6, specific, None));
        }
        sets.insert(format!("masqall{}", family_digit(v6)));
    }
    for s in states {
        sets.extend(s.elements.iter().map(|e| e.set.clone()));
    }
    let sets: Vec<String> = sets.into_iter().collect();
    delete_by_comment(&sets, |c| {
        parse_comment(c).is_some_and(|(net, id, ifname)| {
            net == network
                && !valid
                    .iter()
                    .any(|a| a.container_id == id && a.ifname == ifname)
        })
    })
}

/// CHECK: every element is there with the attachment's data, and every structure rule it
/// is used by is in the table.
pub fn check(saved: &AttachmentState) -> Result<(), Error> {
    let mut nft = Nft::host().map_err(|e| nft_error("open nftables socket", e))?;
    for e in &saved.elements {
        let Some(key) = unhex(&e.key) else {
            return Err(Error::check_failed(format!(
                "unreadable state: key {}",
                e.key
            )));
        };
        let held = nft
            .get_element(Family::Inet, TABLE, &e.set, &key)
            .map_err(|err| nft_error(&format!("look up element of {}", e.set), err))?;
        let what = e
            .data
            .as_deref()
            .and_then(unhex)
            .as_deref()
            .and_then(describe_target)
            .map(|t| format!("mapping to {t}"))
            .unwrap_or_else(|| "element".into());
        match held {
            None => {
                return Err(Error::check_failed(format!(
                    "{what} is missing from nftables set inet {TABLE} {}",
                    e.set
                )));
            }
            Some(h) if e.data.is_some() && h.data.as_deref().map(hex) != e.data => {
                return Err(Error::check_failed(format!(
                    "{what} in inet {TABLE} {} now leads to {}",
                    e.set,
                    h.data
                        .as_deref()
                        .and_then(describe_target)
                        .unwrap_or_else(|| "something else".into())
                )));
            }
            Some(_) => {}
        }
    }
    let present = rule_comments()?;
    for rule in &saved.rules {
        if !present.contains(rule) {
            return Err(Error::check_failed(format!(
                "the rule \"{rule}\" is missing from nftables table inet {TABLE}"
            )));
        }
    }
    Ok(())
}

/// The comments of the table's rules (`nft -t -j list table`: no set elements listed).
fn rule_comments() -> Result<BTreeSet<String>, Error> {
    let out = nft::query(None, &["-t", "-j", "list", "table", "inet", TABLE])
        .map_err(|e| Error::check_failed(format!("nftables table inet {TABLE}: {e}")))?;
    let listing: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| Error::internal(format!("decode nft's listing: {e}")))?;
    Ok(listing
        .get("nftables")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|item| item.pointer("/rule/comment")?.as_str())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mapping, Protocol};
    use std::path::PathBuf;

    fn cfg(mappings: Vec<Mapping>) -> Config {
        Config {
            network: "net".into(),
            backend: Backend::Nftables,
            snat: true,
            masq_all: false,
            mark_masq_bit: 13,
            external_set_mark_chain: None,
            conditions_v4: vec![],
            conditions_v6: vec![],
            data_dir: PathBuf::from("/nonexistent"),
            mappings,
        }
    }

    fn m(host: u16, ctr: u16, protocol: Protocol, host_ip: Option<&str>) -> Mapping {
        Mapping {
            host_port: host,
            container_port: ctr,
            protocol,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn comments_name_the_attachment_and_parse_back() {
        let c = element_comment("podman", &"a".repeat(64), "eth0");
        assert!(c.len() <= nft::MAX_COMMENT_LEN);
        assert_eq!(
            parse_comment(&c),
            Some(("podman".into(), "a".repeat(64), "eth0".into()))
        );
        let long = element_comment(&"n".repeat(100), &"a".repeat(64), "eth0");
        assert!(long.len() <= nft::MAX_COMMENT_LEN);
        assert_eq!(parse_comment(&long), None);
        let huge = element_comment("n", &"a".repeat(200), "eth0");
        assert!(huge.starts_with("att=#"));
    }

    #[test]
    fn plan_for_a_dual_stack_container() {
        let c = cfg(vec![
            m(8080, 80, Protocol::Tcp, None),
            m(5353, 53, Protocol::Udp, Some("127.0.0.1")),
            m(9090, 90, Protocol::Sctp, Some("::")),
        ]);
        let addrs: Vec<IpNetwork> = vec![
            "10.88.0.5/16".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let p = plan(&c, &addrs).unwrap();
        let sets: Vec<&str> = p.elements.iter().map(|e| e.set.as_str()).collect();
        let v4net = subnet_set(&"10.88.0.0/16".parse().unwrap());
        let v6net = subnet_set(&"fd00::/64".parse().unwrap());
        assert_eq!(
            sets,
            [
                "dnat4_any",
                "dnat4",
                v4net.as_str(),
                "dnat6_any",
                "dnat6_any",
                v6net.as_str()
            ]
        );
        // tcp . 8080 -> 10.88.0.5 . 80
        assert_eq!(p.elements[0].key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(
            p.elements[0].data.as_deref(),
            Some(&[10, 88, 0, 5, 0, 80, 0, 0][..])
        );
        // 127.0.0.1 . udp . 5353
        assert_eq!(
            p.elements[1].key,
            [127, 0, 0, 1, 17, 0, 0, 0, 0x14, 0xe9, 0, 0]
        );
        assert_eq!(p.elements[2].key, [10, 88, 0, 5]);
        assert!(
            p.rules
                .contains(&"portmap localhost 10.88.0.0/16".to_string())
        );
        assert!(p.rules.contains(&"portmap hairpin fd00::/64".to_string()));
        assert_eq!(
            describe_target(p.elements[3].data.as_deref().unwrap()).as_deref(),
            Some("[fd00::5]:80")
        );
        assert_eq!(p.structures.len(), 3);
    }

    #[test]
    fn plan_with_masq_all_conditions_and_no_snat() {
        let mut c = cfg(vec![m(8080, 80, Protocol::Tcp, None)]);
        c.masq_all = true;
        c.conditions_v4 = vec!["iifname \"eth0\"".into()];
        let addrs: Vec<IpNetwork> = vec!["10.88.0.5/16".parse().unwrap()];
        let p = plan(&c, &addrs).unwrap();
        assert!(p.elements[0].set.starts_with("dnat4_any_c"));
        assert_eq!(p.elements[1].set, "masqall4");
        assert!(matches!(p.structures[1], Structure::Profile { .. }));
        let text = p.structures[1].text();
        assert!(
            text.contains("meta nfproto ipv4 iifname \"eth0\" dnat ip to"),
            "{text}"
        );
        c.snat = false;
        let p = plan(&c, &addrs).unwrap();
        assert_eq!(p.elements.len(), 1);
    }

    #[test]
    fn any_and_unspecified_on_the_same_port_conflict_in_the_plan() {
        let c = cfg(vec![
            m(8080, 80, Protocol::Tcp, None),
            m(8080, 81, Protocol::Tcp, Some("0.0.0.0")),
        ]);
        let addrs: Vec<IpNetwork> = vec!["10.88.0.5/16".parse().unwrap()];
        assert!(plan(&c, &addrs).is_err());
    }
}
