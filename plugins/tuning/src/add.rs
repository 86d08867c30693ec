//! ADD: read the values about to change, record them (before the first change, so that DEL
//! can undo a half-done ADD), apply the configuration; a failure puts the originals back.

use cni::{CniResult, Error, Request, Undo};
use cni_netlink::{IFF_ALLMULTI, Link, MacAddr, NetNs, Netlink, get_sysctl, set_sysctls};
use plugin_kit::{kernel_error, open_netns};

use crate::backup::{Backup, Found, backup_path, find_backup, remove_backup, write_backup};
use crate::config::Config;
use crate::del::restore;
use crate::{container_link, prev_result};

pub fn add(req: &Request) -> Result<CniResult, Error> {
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
    if let Found::Ours(earlier) = find_backup(&path, req.container_id(), req.ifname()) {
        backup.keep_originals_of(earlier);
    }
    write_backup(&path, &backup)?;
    let mut undo = Undo::new();
    let (netns, index) = (req.netns().to_string(), link.index);
    undo.push("restore the originals", move || {
        restore_originals(&netns, index, &backup);
        remove_backup(&path).map_err(|e| e.msg)
    });
    apply(&ns, &mut nl, &cfg, &link)?;
    if let Some(mac) = cfg.mac {
        update_result_mac(&mut result, req, mac);
    }
    undo.commit();
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
        netns_id: plugin_kit::netns_identity(req.netns()),
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

/// The undo of a failed ADD: the originals back, each failure logged.
fn restore_originals(netns: &str, index: u32, backup: &Backup) {
    let restored = NetNs::open(netns).and_then(|ns| {
        let mut nl = Netlink::in_netns(&ns)?;
        let link = nl.get_link(index)?;
        Ok((ns, nl, link))
    });
    match restored {
        Ok((ns, mut nl, Some(link))) => {
            for failure in restore(&ns, &mut nl, &link, backup) {
                log::warn!("undo tuning: {failure}");
            }
        }
        Ok((_, _, None)) => {}
        Err(e) => log::warn!("undo tuning: {e}"),
    }
}
