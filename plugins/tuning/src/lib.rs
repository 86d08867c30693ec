//! The tuning plugin: sets network sysctls of the container's namespace and attributes of
//! the container interface (MAC, MTU, promiscuous and all-multicast mode, transmit queue
//! length), and puts the original values back on DEL.
//!
//! The originals are kept where the reference plugin keeps them, in the reference's format:
//! `<dataDir>/<containerID>_<ifname>.json` with `mac`, `mtu`, `promisc`, `allmulti` and
//! `txQLen`, so either implementation can restore what the other changed. This plugin adds
//! the original sysctl values (restored too) and the attachment's identity (for GC).

mod config;

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cni::{Attachment, CniResult, Error, Plugin, Request};
use cni_netlink::{
    IFF_ALLMULTI, IFF_PROMISC, Link, MacAddr, NetNs, Netlink, get_sysctl, set_sysctls,
};
use plugin_kit::{kernel_error, open_netns};
use serde::{Deserialize, Serialize};

pub use config::{Config, DEFAULT_DATA_DIR, Sysctl, sysctl_key};

pub struct Tuning;

impl Plugin for Tuning {
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

/// What ADD changed, with the values it found: the reference's `configToRestore` plus
/// this plugin's fields (ignored by the reference when it reads the file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub txqlen: Option<u32>,
    /// Original values, by path relative to /proc/sys/net.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ifname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
}

impl Backup {
    /// Takes the values an earlier backup of the same attachment recorded: those are the
    /// originals, what is there now may be that ADD's doing.
    fn keep_originals_of(&mut self, earlier: Backup) {
        if !earlier.mac.is_empty() {
            self.mac = earlier.mac;
        }
        if earlier.mtu != 0 {
            self.mtu = earlier.mtu;
        }
        self.promisc = earlier.promisc.or(self.promisc);
        self.allmulti = earlier.allmulti.or(self.allmulti);
        self.txqlen = earlier.txqlen.or(self.txqlen);
        for (path, value) in earlier.sysctl {
            self.sysctl.insert(path, value);
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// `<dataDir>/<containerID>_<ifname>.json`, the reference's file name. Both parts were
/// validated by the skel (no `/`, not `.` or `..`).
pub fn backup_path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(format!("{container_id}_{ifname}.json"))
}

fn write_backup(path: &Path, backup: &Backup) -> Result<(), Error> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal("backup path has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}: {e}", dir.display())))?;
    let bytes = serde_json::to_vec_pretty(backup).map_err(|e| Error::internal(e.to_string()))?;
    atomic_file::write_atomic(path, &bytes)
        .map_err(|e| Error::io(format!("write {}: {e}", path.display())))
}

fn read_backup(path: &Path) -> Option<Backup> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("ignoring unreadable backup {}: {e}", path.display());
            None
        }
    }
}

fn remove_backup(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn prev_result(req: &Request) -> Result<CniResult, Error> {
    req.conf.prev_result.clone().ok_or_else(|| {
        Error::invalid_config(
            "tuning must be chained after the plugin that creates the interface: \
             Required prevResult missing",
        )
    })
}

/// The container interface, which must exist.
fn container_link(nl: &mut Netlink, req: &Request) -> Result<Link, Error> {
    nl.get_link(req.ifname())
        .map_err(kernel_error)?
        .ok_or_else(|| {
            Error::internal(format!(
                "interface {} not found in {}",
                req.ifname(),
                req.netns()
            ))
        })
}

/// Reads the values ADD is about to change.
fn read_originals(
    ns: &NetNs,
    nl: &mut Netlink,
    cfg: &Config,
    req: &Request,
) -> Result<Backup, Error> {
    let link = container_link(nl, req)?;
    let mut backup = Backup {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        network: req.conf.name.clone(),
        netns: req.netns().to_string(),
        ..Backup::default()
    };
    let paths: Vec<(String, String)> = cfg
        .sysctls
        .iter()
        .map(|s| (s.key.clone(), s.path.clone()))
        .collect();
    let values = ns
        .run(|| {
            paths
                .iter()
                .map(|(key, path)| {
                    get_sysctl(None, path).map_err(|e| {
                        if e.is_not_found() {
                            Error::invalid_config(format!(
                                "sysctl {key:?}: no such sysctl in the container's namespace"
                            ))
                        } else {
                            Error::internal(format!("sysctl {key:?}: {e}"))
                        }
                    })
                })
                .collect::<Result<Vec<String>, Error>>()
        })
        .map_err(kernel_error)??;
    for ((_, path), value) in paths.into_iter().zip(values) {
        backup.sysctl.insert(path, value);
    }
    if cfg.mac.is_some() {
        backup.mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    }
    if cfg.mtu.is_some() {
        backup.mtu = link.mtu;
    }
    if cfg.promisc {
        backup.promisc = Some(link.is_promisc());
    }
    if cfg.allmulti.is_some() {
        backup.allmulti = Some(link.flags & IFF_ALLMULTI != 0);
    }
    if cfg.txqlen.is_some() {
        backup.txqlen = Some(link.txqlen);
    }
    Ok(backup)
}

/// Applies the configuration; stops at the first failure.
fn apply(ns: &NetNs, nl: &mut Netlink, cfg: &Config, link: &Link) -> Result<(), Error> {
    let entries: Vec<(&str, &str)> = cfg
        .sysctls
        .iter()
        .map(|s| (s.path.as_str(), s.value.as_str()))
        .collect();
    set_sysctls(Some(ns), &entries)
        .map_err(|e| Error::internal(format!("set sysctls: {e}")).context("tuning"))?;
    if let Some(mac) = cfg.mac {
        nl.set_mac(link.index, mac).map_err(kernel_error)?;
    }
    if cfg.promisc {
        nl.set_promisc(link.index, true).map_err(kernel_error)?;
    }
    if let Some(mtu) = cfg.mtu {
        nl.set_mtu(link.index, mtu).map_err(kernel_error)?;
    }
    if let Some(on) = cfg.allmulti {
        nl.set_allmulti(link.index, on).map_err(kernel_error)?;
    }
    if let Some(len) = cfg.txqlen {
        nl.set_txqlen(link.index, len).map_err(kernel_error)?;
    }
    Ok(())
}

/// Puts back every recorded value, trying them all; returns what failed.
fn restore(ns: &NetNs, nl: &mut Netlink, link: &Link, backup: &Backup) -> Vec<String> {
    let mut failed = Vec::new();
    if backup.mtu != 0
        && let Err(e) = nl.set_mtu(link.index, backup.mtu)
    {
        failed.push(format!("restore MTU: {e}"));
    }
    if !backup.mac.is_empty() {
        match backup.mac.parse::<MacAddr>() {
            Ok(mac) => {
                if let Err(e) = nl.set_mac(link.index, mac) {
                    failed.push(format!("restore MAC address: {e}"));
                }
            }
            Err(e) => failed.push(format!("restore MAC address {:?}: {e}", backup.mac)),
        }
    }
    if let Some(on) = backup.promisc
        && let Err(e) = nl.set_promisc(link.index, on)
    {
        failed.push(format!("restore promiscuous mode: {e}"));
    }
    if let Some(on) = backup.allmulti
        && let Err(e) = nl.set_allmulti(link.index, on)
    {
        failed.push(format!("restore all-multicast mode: {e}"));
    }
    if let Some(len) = backup.txqlen
        && let Err(e) = nl.set_txqlen(link.index, len)
    {
        failed.push(format!("restore txqueuelen: {e}"));
    }
    for (path, value) in &backup.sysctl {
        // Keys are checked again: the file may come from anywhere.
        match cni_netlink::set_sysctl(Some(ns), path, value) {
            Err(e) if !e.is_not_found() => failed.push(format!("restore sysctl {path}: {e}")),
            _ => {}
        }
    }
    failed
}

fn add(req: &Request) -> Result<CniResult, Error> {
    let cfg = Config::from_request(req)?;
    let mut result = prev_result(req)?;
    let ns = open_netns(req.netns())?;
    if !cfg.changes_anything() {
        return Ok(result);
    }
    let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let link = container_link(&mut nl, req)?;
    let mut backup = read_originals(&ns, &mut nl, &cfg, req)?;
    // Recorded before the first change, so that DEL can undo a half-done ADD.
    let path = backup_path(&cfg.data_dir, req.container_id(), req.ifname());
    // A second ADD without DEL must not take the first one's values for the originals.
    if let Some(earlier) = read_backup(&path) {
        backup.keep_originals_of(earlier);
    }
    write_backup(&path, &backup)?;
    if let Err(e) = apply(&ns, &mut nl, &cfg, &link) {
        for failure in restore(&ns, &mut nl, &link, &backup) {
            log::warn!("undo tuning: {failure}");
        }
        let _ = remove_backup(&path);
        return Err(e);
    }
    if let Some(mac) = cfg.mac {
        update_result_mac(&mut result, req, mac);
    }
    Ok(result)
}

/// The container interface's MAC in the result follows the change.
fn update_result_mac(result: &mut CniResult, req: &Request, mac: MacAddr) {
    let in_netns = result
        .interfaces
        .iter()
        .any(|i| i.name == req.ifname() && i.sandbox == req.netns());
    for iface in &mut result.interfaces {
        if iface.name == req.ifname() && (!in_netns || iface.sandbox == req.netns()) {
            iface.mac = mac.to_string();
        }
    }
}

/// Restores what ADD changed. Succeeds when there is nothing to restore: no backup, no
/// netns, no interface. A value that cannot be put back is logged, as the reference does,
/// so that a runtime's DEL is never stuck on it.
fn del(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    let path = backup_path(&data_dir, req.container_id(), req.ifname());
    let Some(backup) = read_backup(&path) else {
        return remove_backup(&path);
    };
    if req.netns().is_empty() {
        return remove_backup(&path);
    }
    let ns = match NetNs::open(req.netns()) {
        Ok(ns) => ns,
        Err(e) if e.is_netns_gone() => return remove_backup(&path),
        Err(e) => return Err(Error::invalid_netns(e.to_string())),
    };
    let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let Some(link) = nl.get_link(req.ifname()).map_err(kernel_error)? else {
        return remove_backup(&path);
    };
    for failure in restore(&ns, &mut nl, &link, &backup) {
        log::warn!("DEL {} {}: {failure}", req.container_id(), req.ifname());
    }
    remove_backup(&path)
}

/// Compares every configured value with what the container has.
fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    prev_result(req)?;
    let ns = open_netns(req.netns())?;
    for s in &cfg.sysctls {
        let current = get_sysctl(Some(&ns), &s.path)
            .map_err(|e| Error::check_failed(format!("sysctl {}: {e}", s.key)))?;
        // The kernel prints multi-value sysctls with tabs (net.ipv4.tcp_rmem).
        let norm = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
        if norm(&current) != norm(&s.value) {
            return Err(Error::check_failed(format!(
                "sysctl {} is {current:?}, configured {:?}",
                s.key, s.value
            )));
        }
    }
    let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let name = req.ifname();
    let link = nl.get_link(name).map_err(kernel_error)?.ok_or_else(|| {
        Error::check_failed(format!("interface {name} not found in {}", req.netns()))
    })?;
    let differs = |what: &str, current: String, configured: String| {
        Err(Error::check_failed(format!(
            "{what} of {name} is {current}, configured {configured}"
        )))
    };
    if let Some(mac) = cfg.mac
        && link.mac != Some(mac)
    {
        let current = link.mac.map(|m| m.to_string()).unwrap_or_default();
        return differs("MAC address", current, mac.to_string());
    }
    if cfg.promisc != (link.flags & IFF_PROMISC != 0) {
        return differs(
            "promiscuous mode",
            link.is_promisc().to_string(),
            cfg.promisc.to_string(),
        );
    }
    if let Some(mtu) = cfg.mtu
        && link.mtu != mtu
    {
        return differs("MTU", link.mtu.to_string(), mtu.to_string());
    }
    if let Some(on) = cfg.allmulti {
        let current = link.flags & IFF_ALLMULTI != 0;
        if current != on {
            return differs("all-multicast mode", current.to_string(), on.to_string());
        }
    }
    if let Some(len) = cfg.txqlen
        && link.txqlen != len
    {
        return differs("txqueuelen", link.txqlen.to_string(), len.to_string());
    }
    Ok(())
}

/// GC: forgets the backups of this network's attachments that are not valid any more
/// (without `cni.dev/valid-attachments`: those whose netns is gone). Their namespaces are
/// gone or about to be, so there is nothing to restore. Backups written by the reference
/// plugin carry no network and are left alone.
fn gc(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    let entries = match std::fs::read_dir(&data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("list {}: {e}", data_dir.display()))),
    };
    let valid: Option<&Vec<Attachment>> = req.conf.valid_attachments.as_ref();
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(backup) = read_backup(&path) else {
            continue;
        };
        if backup.network != req.conf.name || backup.container_id.is_empty() {
            continue;
        }
        let stale = match valid {
            Some(valid) => !valid
                .iter()
                .any(|a| a.container_id == backup.container_id && a.ifname == backup.ifname),
            None => !backup.netns.is_empty() && !Path::new(&backup.netns).exists(),
        };
        if stale && let Err(e) = remove_backup(&path) {
            errors.push(e.msg);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::io(format!("gc: {}", errors.join("; "))))
    }
}
