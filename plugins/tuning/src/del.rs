//! DEL: put back what ADD changed.

use cni::{Error, Request};
use cni_netlink::{Link, MacAddr, NetNs, Netlink};
use plugin_kit::kernel_error;

use crate::backup::{Backup, Found, backup_path, find_backup, remove_backup};
use crate::config;

/// Restores what ADD changed. Succeeds when there is nothing to restore: no backup, no
/// netns, no interface. A value that cannot be put back is logged, as the reference does,
/// so that a runtime's DEL is never stuck on it.
pub fn del(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    let path = backup_path(&data_dir, req.container_id(), req.ifname());
    let backup = match find_backup(&path, req.container_id(), req.ifname()) {
        Found::Ours(backup) => backup,
        Found::Nothing => return remove_backup(&path),
        // Not ours to restore or remove.
        Found::Another => return Ok(()),
    };
    let Some(ns) = plugin_kit::netns_for_del(req.netns())? else {
        return remove_backup(&path);
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

/// Puts back every recorded value, trying them all; returns what failed.
pub fn restore(ns: &NetNs, nl: &mut Netlink, link: &Link, backup: &Backup) -> Vec<String> {
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
