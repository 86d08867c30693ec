//! The firewall plugin: lets a container's forwarded traffic through a host whose forward
//! path drops by default (Docker's iptables FORWARD policy, a drop-policy nftables chain),
//! with the reference plugin's ingress policies (`open`, `same-bridge`, `isolated`).
//!
//! Backends: `nftables` (the default, also for `""`; see [`nft`]) and `iptables` (the
//! reference's CNI-FORWARD layout; see [`iptables`]). `firewalld` falls back to nftables
//! with a logged reason. DEL and GC remove what ADD added, using what ADD recorded in
//! `dataDir`, also when the runtime sends no `prevResult`; the isolation rules of a bridge go
//! with the last container that needed them (the reference never removes them).

mod config;
pub mod iptables;
pub mod nft;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni::{CniResult, Error, Plugin, Request};
use cni_netlink::nft::Nft;
use plugin_kit::{StateDir, kernel_error};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::{Backend, Config, DEFAULT_DATA_DIR, IngressPolicy};

pub struct Firewall;

impl Plugin for Firewall {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        add(req)
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        del(req)
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        check(req)
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        gc(req)
    }
}

/// What DEL and GC need to take an attachment's rules back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentState {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub backend: Backend,
    pub ips: Vec<IpAddr>,
    pub bridge: String,
    pub policy: IngressPolicy,
}

/// Where the state [`release`] works from came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Recorded by our ADD: the backend is the one that ADD used.
    Recorded,
    /// Rebuilt from prevResult because no state was recorded (the reference plugin's ADD, or
    /// a lost state): the rules may be in either backend.
    PrevResult,
}

/// Holds the plugin's lock for the whole operation: ADD, DEL and GC of all networks change
/// shared structure (tables, chains, the members of a bridge).
fn lock(data_dir: &Path) -> Result<plugin_kit::DirLock, Error> {
    plugin_kit::lock_in(data_dir, "lock").map_err(|e| Error::io(e.to_string()))
}

fn prev_result(req: &Request) -> Result<CniResult, Error> {
    req.conf.prev_result.clone().ok_or_else(|| {
        Error::invalid_config("firewall must be chained: missing prevResult from earlier plugin")
    })
}

/// The reference takes the first interface of the result as the bridge.
fn bridge_of(result: &CniResult, policy: IngressPolicy) -> Result<String, Error> {
    let name = result
        .interfaces
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    if name.is_empty() && policy != IngressPolicy::Open {
        return Err(Error::invalid_config(
            "ingressPolicy needs the bridge as the first interface of prevResult: chain \
             \"firewall\" after \"bridge\"",
        ));
    }
    Ok(name)
}

/// Members of a bridge under an isolating policy, one empty file per attachment:
/// `<dataDir>/bridges/<bridge>.<policy>/<hash of network, container, ifname>`. The rules of
/// the bridge stay while the directory has a file.
fn members_dir(data_dir: &Path, bridge: &str, policy: IngressPolicy) -> PathBuf {
    let policy = match policy {
        IngressPolicy::Open => "open",
        IngressPolicy::SameBridge => "same-bridge",
        IngressPolicy::Isolated => "isolated",
    };
    data_dir.join("bridges").join(format!("{bridge}.{policy}"))
}

fn member_name(network: &str, container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn join_member(dir: &Path, name: &str) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(name), b"")
        .map_err(|e| Error::io(format!("write {}: {e}", dir.join(name).display())))
}

/// Leaves the bridge; returns whether it was the last member (the directory is gone).
fn leave_member(dir: &Path, name: &str) -> bool {
    let _ = std::fs::remove_file(dir.join(name));
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn states(req: &Request, data_dir: &Path) -> StateDir {
    StateDir::new(&data_dir.join("attachments"), &req.conf.name)
}

/// Falls back to iptables when there is no `nft` to create the table with.
fn effective_backend(cfg: &Config) -> Backend {
    if cfg.backend == Backend::Nftables && !nft::available() {
        log::warn!("nft not found: using the iptables backend");
        return Backend::Iptables;
    }
    cfg.backend
}

fn add(req: &Request) -> Result<CniResult, Error> {
    let cfg = Config::from_request(req)?;
    let result = prev_result(req)?;
    let bridge = bridge_of(&result, cfg.ingress_policy)?;
    let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
    let backend = effective_backend(&cfg);
    let _lock = lock(&cfg.data_dir)?;
    let state = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        backend,
        ips: ips.clone(),
        bridge: bridge.clone(),
        policy: cfg.ingress_policy,
    };
    // Recorded first: a DEL after a half-done ADD then knows what to take back.
    states(req, &cfg.data_dir)
        .save(req.container_id(), req.ifname(), &state)
        .map_err(|e| Error::io(e.to_string()))?;
    let done = match backend {
        Backend::Nftables => add_nft(&cfg, req, &state),
        Backend::Iptables => add_iptables(&cfg, req, &state),
    };
    if let Err(e) = done {
        if let Err(undo) = release(&cfg.data_dir, &req.conf.name, &state, Origin::Recorded) {
            log::warn!("undo firewall ADD: {}", undo.msg);
        }
        let _ = states(req, &cfg.data_dir).remove(req.container_id(), req.ifname());
        return Err(e);
    }
    Ok(result)
}

fn add_nft(cfg: &Config, req: &Request, state: &AttachmentState) -> Result<(), Error> {
    let mut nft = Nft::host().map_err(kernel_error)?;
    nft::ensure_structure(&mut nft)?;
    nft::ensure_foreign_accepts()?;
    let mut ops = nft::allow_ops(&state.ips, true);
    if state.policy != IngressPolicy::Open {
        for policy in policies_needed(state.policy) {
            join_member(
                &members_dir(&cfg.data_dir, &state.bridge, policy),
                &member_name(&req.conf.name, req.container_id(), req.ifname()),
            )?;
            ops.extend(nft::isolation_ops(
                &state.bridge,
                policy == IngressPolicy::Isolated,
                true,
            )?);
        }
    }
    let applied = nft::apply(&mut nft, &ops);
    // The runtime need not wait for the kernel to free the transaction's garbage.
    nft.close_after_exit();
    applied
}

fn add_iptables(cfg: &Config, req: &Request, state: &AttachmentState) -> Result<(), Error> {
    iptables::add_container(&state.ips, &cfg.admin_chain)?;
    if state.policy != IngressPolicy::Open {
        for policy in policies_needed(state.policy) {
            join_member(
                &members_dir(&cfg.data_dir, &state.bridge, policy),
                &member_name(&req.conf.name, req.container_id(), req.ifname()),
            )?;
        }
        for v6 in families(&state.ips) {
            iptables::ensure_isolation(
                iptables::Ipt { v6 },
                &state.bridge,
                state.policy == IngressPolicy::Isolated,
            )?;
        }
    }
    Ok(())
}

/// `isolated` is `same-bridge` plus the drop within the bridge: a member of both sets.
fn policies_needed(policy: IngressPolicy) -> Vec<IngressPolicy> {
    match policy {
        IngressPolicy::Open => vec![],
        IngressPolicy::SameBridge => vec![IngressPolicy::SameBridge],
        IngressPolicy::Isolated => vec![IngressPolicy::SameBridge, IngressPolicy::Isolated],
    }
}

/// The families (`v6` flags) of the addresses; both when there are none (the reference's
/// `findProtos` without a result).
fn families(ips: &[IpAddr]) -> Vec<bool> {
    let mut v: Vec<bool> = ips.iter().map(IpAddr::is_ipv6).collect();
    v.sort();
    v.dedup();
    if v.is_empty() { vec![false, true] } else { v }
}

/// Takes back one attachment's rules, whatever is already gone. Every step is tried.
fn release(
    data_dir: &Path,
    network: &str,
    state: &AttachmentState,
    origin: Origin,
) -> Result<(), Error> {
    let mut errors: Vec<String> = Vec::new();
    let member = member_name(network, &state.container_id, &state.ifname);
    // Elements first, in one transaction.
    let mut ops = nft::allow_ops(&state.ips, false);
    let mut last_of: Vec<IngressPolicy> = Vec::new();
    for policy in policies_needed(state.policy) {
        if leave_member(&members_dir(data_dir, &state.bridge, policy), &member) {
            last_of.push(policy);
        }
    }
    if state.backend == Backend::Nftables {
        for policy in &last_of {
            match nft::isolation_ops(&state.bridge, *policy == IngressPolicy::Isolated, false) {
                Ok(o) => ops.extend(o),
                Err(e) => errors.push(e.msg),
            }
        }
    }
    match Nft::host() {
        Ok(mut n) => {
            if let Err(e) = nft::apply(&mut n, &ops) {
                errors.push(e.msg);
            }
            n.close_after_exit();
        }
        Err(e) => errors.push(e.to_string()),
    }
    // iptables rules: those of our iptables backend (also what an ADD that had no nft
    // recorded), and, without a recorded state, those the reference may have left for these
    // addresses. An attachment recorded with nftables has none: its DEL does not list
    // CNI-FORWARD once per address.
    if (state.backend == Backend::Iptables || origin == Origin::PrevResult)
        && let Err(e) = iptables::del_container(&state.ips)
    {
        errors.push(e.msg);
    }
    if state.backend == Backend::Iptables {
        for policy in &last_of {
            for v6 in families(&state.ips) {
                let ipt = iptables::Ipt { v6 };
                let only_icc = *policy == IngressPolicy::Isolated;
                if let Err(e) = iptables::remove_isolation(ipt, &state.bridge, only_icc) {
                    errors.push(e.msg);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(errors.join("; ")))
    }
}

fn del(req: &Request) -> Result<(), Error> {
    let data_dir = Config::data_dir_of(req);
    let _lock = lock(&data_dir)?;
    let dir = states(req, &data_dir);
    let state: Option<AttachmentState> = dir.load(req.container_id(), req.ifname());
    let (state, origin) = match state {
        Some(s) => (s, Origin::Recorded),
        None => {
            // Not added by us (the reference plugin, or a lost state): what prevResult
            // names, in both backends.
            let Some(prev) = &req.conf.prev_result else {
                return Ok(());
            };
            let state = AttachmentState {
                container_id: req.container_id().to_string(),
                ifname: req.ifname().to_string(),
                netns: req.netns().to_string(),
                backend: Backend::Nftables,
                ips: prev.ips.iter().map(|ip| ip.address.ip()).collect(),
                bridge: String::new(),
                policy: IngressPolicy::Open,
            };
            (state, Origin::PrevResult)
        }
    };
    release(&data_dir, &req.conf.name, &state, origin)?;
    dir.remove(req.container_id(), req.ifname())
        .map_err(|e| Error::io(e.to_string()))
}

fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    let result = prev_result(req)?;
    let bridge = bridge_of(&result, cfg.ingress_policy)?;
    let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
    match effective_backend(&cfg) {
        Backend::Nftables => {
            let mut nft = Nft::host().map_err(kernel_error)?;
            for ip in &ips {
                if !nft::allowed(&mut nft, *ip)? {
                    return Err(Error::check_failed(format!(
                        "{ip} is not in the firewall's nftables set"
                    )));
                }
            }
            if let Some(why) = nft::missing_foreign_accept()? {
                return Err(Error::check_failed(why));
            }
            for policy in policies_needed(cfg.ingress_policy) {
                if !nft::isolated(&mut nft, &bridge, policy == IngressPolicy::Isolated)? {
                    return Err(Error::check_failed(format!(
                        "bridge {bridge} lacks its isolation elements"
                    )));
                }
            }
        }
        Backend::Iptables => {
            iptables::check_container(&ips, &cfg.admin_chain)?;
            if cfg.ingress_policy != IngressPolicy::Open {
                for v6 in families(&ips) {
                    let icc_off = cfg.ingress_policy == IngressPolicy::Isolated;
                    if !iptables::isolation_present(iptables::Ipt { v6 }, &bridge, icc_off)? {
                        return Err(Error::check_failed(format!(
                            "bridge {bridge} lacks its isolation rules"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// GC: releases the attachments of this network that are not in
/// `cni.dev/valid-attachments` (without the key: those whose netns is gone).
fn gc(req: &Request) -> Result<(), Error> {
    let data_dir = Config::data_dir_of(req);
    let _lock = lock(&data_dir)?;
    let dir = states(req, &data_dir);
    let all: Vec<AttachmentState> = dir.list().map_err(|e| Error::io(e.to_string()))?;
    let mut errors = Vec::new();
    for state in all {
        let stale = match &req.conf.valid_attachments {
            Some(valid) => !valid
                .iter()
                .any(|a| a.container_id == state.container_id && a.ifname == state.ifname),
            None => !state.netns.is_empty() && !Path::new(&state.netns).exists(),
        };
        if !stale {
            continue;
        }
        match release(&data_dir, &req.conf.name, &state, Origin::Recorded) {
            Ok(()) => {
                let _ = dir.remove(&state.container_id, &state.ifname);
            }
            Err(e) => errors.push(e.msg),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!("gc: {}", errors.join("; "))))
    }
}
