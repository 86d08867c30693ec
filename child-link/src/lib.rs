//! A child link of a master (a macvlan or an ipvlan), created directly in the container's
//! network namespace: the machinery the macvlan and ipvlan plugins share. The two differ only
//! in kind, mode and MAC handling ([`Kind`]); each plugin reads its own keys into a [`Config`]
//! and hands it to [`add`], [`del`], [`check`], [`status`] and [`gc`].

mod add;
mod check;
mod config;
mod del;

use cni::{Command, Error, Request, delegate};
use cni_netlink::{Link, MacvlanMode, Netlink};
pub(crate) use plugin_kit::{kernel_error, open_netns};

pub use add::add;
pub use check::check;
pub use config::{Addressing, Common, Config, Kind, Master, chained_master, invalid};
pub use del::del;

/// STATUS: the master is there (it cannot be checked with `linkInContainer`: STATUS has no
/// container), and IPAM is ready.
pub fn status(req: &Request, cfg: &Config) -> Result<(), Error> {
    if !cfg.link_in_container && !matches!(cfg.master, Master::Chained(_)) {
        let mut host = Netlink::host().map_err(kernel_error)?;
        find_master(&mut host, cfg).map_err(|e| Error::not_available(e.msg))?;
    }
    match cfg.ipam_type() {
        Some(ipam) => delegate::run(ipam, Command::Status, req),
        None => Ok(()),
    }
}

/// GC: the links go with their namespaces and the plugin keeps no state of its own, so GC
/// is IPAM's.
pub fn gc(req: &Request) -> Result<(), Error> {
    match &req.conf.ipam_type {
        Some(ipam) => delegate::run(ipam, Command::Gc, req),
        None => Ok(()),
    }
}

/// The master link, looked up through `nl` (a socket in the host, or in the container with
/// `linkInContainer`), and checked to be one the kernel can give this kind of child.
pub fn find_master(nl: &mut Netlink, cfg: &Config) -> Result<Link, Error> {
    let master = match &cfg.master {
        Master::Named(name) | Master::Chained(name) => {
            nl.get_link(name).map_err(kernel_error)?.ok_or_else(|| {
                Error::invalid_config(format!(
                    "master: {name} does not exist in {}",
                    cfg.master_netns()
                ))
            })?
        }
        Master::DefaultRoute => {
            nl.default_route_link()
                .map_err(kernel_error)?
                .ok_or_else(|| {
                    Error::invalid_config(format!(
                        "master: not set, and {} has no default route to take it from",
                        cfg.master_netns()
                    ))
                })?
        }
    };
    if master.is_loopback() {
        return Err(Error::invalid_config(format!(
            "master: {} is a loopback device; a {} needs an Ethernet master",
            master.name,
            cfg.kind.name()
        )));
    }
    if master.kind.as_deref() == Some("macvlan")
        && master.macvlan_mode == Some(MacvlanMode::Passthru)
    {
        return Err(Error::invalid_config(format!(
            "master: {} is a macvlan in passthru mode, which the kernel lets no link stack on",
            master.name
        )));
    }
    if let Some(mtu) = cfg.mtu
        && mtu > master.mtu
    {
        return Err(Error::invalid_config(format!(
            "mtu: {mtu} is above the MTU of master {} ({})",
            master.name, master.mtu
        )));
    }
    Ok(master)
}

#[cfg(test)]
mod tests;
