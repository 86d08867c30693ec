//! The portmap plugin: host ports forwarded to a container, chained after the plugin that
//! gave it its addresses (bridge, ptp, macvlan...).
//!
//! nftables by default: a few maps in table `inet cni_portmap` (one lookup per new
//! connection whatever the number of mappings) and, per container, map and set elements
//! added or removed in one netlink transaction. iptables when the config asks for it, with
//! the reference's chain layout. Either way what ADD created is recorded per attachment
//! (container ID and interface name), so DEL removes it without the runtime passing the
//! mappings again, and GC removes what belongs to attachments no longer valid.

mod config;
mod hostif;
mod iptables;
mod nft;
mod state;

use std::net::IpAddr;

use cni::{CniResult, Command, Error, Plugin, Request};
use ipnetwork::IpNetwork;

pub use config::{Backend, Config, DEFAULT_DATA_DIR, Mapping, Protocol};
pub use state::AttachmentState;

/// Plugin-specific error code: the host port is already mapped to another container.
pub const PORT_IN_USE: u32 = 104;

pub struct Portmap;

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        add(req)
    }
    fn del(&self, req: &Request) -> Result<(), Error> {
        del(req)
    }
    fn check(&self, req: &Request) -> Result<(), Error> {
        check(req)
    }
    /// Ready when the configured backend's kernel interface (nftables) or tools
    /// (iptables-restore) are usable.
    fn status(&self, req: &Request) -> Result<(), Error> {
        let cfg = Config::from_request(req)?;
        match cfg.backend {
            Backend::Nftables => cni_netlink::Nft::host()
                .map(drop)
                .map_err(|e| Error::not_available(format!("nftables: {e}"))),
            Backend::Iptables => iptables::available()
                .map_err(|e| Error::not_available(format!("iptables: {}", e.msg))),
        }
    }
    fn gc(&self, req: &Request) -> Result<(), Error> {
        gc(req)
    }
}

/// The container's addresses portmap forwards to: the first IPv4 and the first IPv6 of
/// `prevResult`, skipping addresses of host-side interfaces and of interfaces other than
/// CNI_IFNAME (as the reference does; addresses without an interface index count).
pub fn container_addresses(result: &CniResult, ifname: &str) -> Vec<IpNetwork> {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &result.ips {
        if let Some(iface) = ip.interface.and_then(|i| result.interfaces.get(i))
            && (iface.name != ifname || iface.sandbox.is_empty())
        {
            continue;
        }
        let slot = if ip.address.is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        if slot.is_none() {
            *slot = Some(ip.address);
        }
    }
    v4.into_iter().chain(v6).collect()
}

/// Every mapping with a host address must have a container address of its family.
fn check_families(mappings: &[Mapping], addrs: &[IpNetwork]) -> Result<(), Error> {
    for m in mappings {
        if let Some(host_ip) = m.host_ip
            && !addrs.iter().any(|a| a.is_ipv6() == host_ip.is_ipv6())
        {
            let family = if host_ip.is_ipv6() { "IPv6" } else { "IPv4" };
            let have = addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::invalid_config(format!(
                "runtimeConfig.portMappings: hostIP {host_ip} of {} is {family}, but the container has no {family} address (it has: {have})",
                m.host_side()
            )));
        }
    }
    Ok(())
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add => read_add(req).map(drop),
        Command::Check => {
            let (_, prev) = read_check(req)?;
            container_addresses(prev, req.ifname());
            Ok(())
        }
        Command::Status => Config::from_request(req).map(drop),
        // DEL and GC read their dataDir leniently; DEL without a state reads the mappings
        // too, and gives up quietly on a config that does not validate.
        Command::Del => {
            config::data_dir_of(req);
            let _ = Config::from_request(req);
            Ok(())
        }
        Command::Gc => {
            config::data_dir_of(req);
            Ok(())
        }
        Command::Version => Ok(()),
    }
}

/// What ADD reads from a request: the config, prevResult and, when there are mappings, the
/// container addresses they forward to, one of each mapping's host address family among
/// them.
fn read_add(req: &Request) -> Result<(Config, CniResult, Vec<IpNetwork>), Error> {
    let cfg = Config::from_request(req)?;
    let Some(prev) = req.conf.prev_result.clone() else {
        return Err(Error::invalid_config(
            "portmap must be called as a chained plugin (no prevResult)",
        ));
    };
    if cfg.mappings.is_empty() {
        return Ok((cfg, prev, Vec::new()));
    }
    let addrs = container_addresses(&prev, req.ifname());
    if addrs.is_empty() {
        return Err(Error::invalid_config(format!(
            "runtimeConfig.portMappings given, but prevResult has no address of {} to forward to",
            req.ifname()
        )));
    }
    check_families(&cfg.mappings, &addrs)?;
    Ok((cfg, prev, addrs))
}

/// What CHECK reads from a request: the config and prevResult.
fn read_check(req: &Request) -> Result<(Config, &CniResult), Error> {
    let cfg = Config::from_request(req)?;
    let Some(prev) = &req.conf.prev_result else {
        return Err(Error::invalid_config(
            "portmap CHECK needs prevResult (the ADD's result)",
        ));
    };
    Ok((cfg, prev))
}

fn add(req: &Request) -> Result<CniResult, Error> {
    let (cfg, prev, addrs) = read_add(req)?;
    if cfg.mappings.is_empty() {
        // Nothing to forward; a mapping left by an earlier ADD of this attachment goes.
        if state::dir(&cfg.data_dir, &cfg.network)
            .load::<AttachmentState>(req.container_id(), req.ifname())
            .is_some()
        {
            del(req)?;
        }
        return Ok(prev);
    }
    let localnet = if cfg.snat {
        hostif::enable_localnet(&prev, &addrs)?
    } else {
        Vec::new()
    };
    let state = match cfg.backend {
        Backend::Nftables => nft::add(req, &cfg, &addrs, &localnet)?,
        Backend::Iptables => iptables::add(req, &cfg, &addrs, &localnet)?,
    };
    log::debug!(
        "{} mappings for {}/{} through {}",
        state.mappings.len(),
        state.container_id,
        state.ifname,
        state.backend
    );
    flush_udp_conntrack(&cfg.mappings, &addrs);
    Ok(prev)
}

/// Deletes stale UDP conntrack entries of the mapped host ports, so a client that was
/// already sending there reaches the container. Failures are only logged, as in the
/// reference.
fn flush_udp_conntrack(mappings: &[Mapping], addrs: &[IpNetwork]) {
    let udp: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .collect();
    if udp.is_empty() {
        return;
    }
    let mut sock = match cni_netlink::conntrack::Conntrack::open() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("delete stale UDP conntrack entries: {e}");
            return;
        }
    };
    for addr in addrs {
        let family = if addr.is_ipv6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        } as u8;
        let mut ports: Vec<u16> = udp
            .iter()
            .filter(|m| m.applies_to_v6(addr.is_ipv6()))
            .map(|m| m.host_port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        match sock.delete_udp_conntrack(family, &ports) {
            Ok(0) => {}
            Ok(n) => log::debug!("deleted {n} stale UDP conntrack entries of ports {ports:?}"),
            Err(e) => log::warn!("delete stale UDP conntrack entries of ports {ports:?}: {e}"),
        }
    }
}

fn del(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    let states = state::dir(&data_dir, &req.conf.name);
    let saved: Option<AttachmentState> = states.load(req.container_id(), req.ifname());
    match &saved {
        Some(s) => match s.backend {
            Backend::Nftables => nft::release(&req.conf.name, s)?,
            Backend::Iptables => iptables::release(&data_dir, s)?,
        },
        None => release_unrecorded(req)?,
    }
    states
        .remove(req.container_id(), req.ifname())
        .map_err(plugin_kit::state_error)
}

/// DEL without a state file: nothing was recorded, so nothing of ours should exist. If the
/// runtime still passes mappings (the state was lost), what they name is removed when it is
/// this attachment's.
fn release_unrecorded(req: &Request) -> Result<(), Error> {
    let Ok(cfg) = Config::from_request(req) else {
        return Ok(());
    };
    match cfg.backend {
        Backend::Iptables => iptables::release_unrecorded(&cfg, req),
        // Mappings without state: also what the reference (iptables) may have set up for
        // this container on a node that ran it before.
        Backend::Nftables if !cfg.mappings.is_empty() => {
            nft::release_unrecorded(&cfg, req)?;
            iptables::release_unrecorded(&cfg, req)
        }
        Backend::Nftables => Ok(()),
    }
}

fn check(req: &Request) -> Result<(), Error> {
    let (cfg, prev) = read_check(req)?;
    let saved: Option<AttachmentState> =
        state::dir(&cfg.data_dir, &cfg.network).load(req.container_id(), req.ifname());
    let Some(saved) = saved else {
        if cfg.mappings.is_empty() {
            return Ok(());
        }
        return Err(Error::check_failed(format!(
            "no port mappings are recorded for {}/{} (was ADD run?)",
            req.container_id(),
            req.ifname()
        )));
    };
    if !cfg.mappings.is_empty() {
        let mut want = cfg.mappings.clone();
        let mut have = saved.mappings.clone();
        want.sort();
        have.sort();
        if want != have {
            return Err(Error::check_failed(format!(
                "port mappings differ from ADD's: asked for [{}], ADD set up [{}]",
                describe(&want),
                describe(&have)
            )));
        }
    }
    let addrs: Vec<IpAddr> = container_addresses(prev, req.ifname())
        .iter()
        .map(|a| a.ip())
        .collect();
    let recorded: Vec<IpAddr> = saved.addresses.iter().map(|a| a.ip()).collect();
    if addrs != recorded {
        return Err(Error::check_failed(format!(
            "container addresses differ from ADD's: prevResult has {addrs:?}, ADD forwarded to {recorded:?}"
        )));
    }
    for ifname in &saved.localnet {
        hostif::check_route_localnet(ifname)?;
    }
    match saved.backend {
        Backend::Nftables => nft::check(&saved),
        Backend::Iptables => iptables::check(&saved),
    }
}

fn describe(mappings: &[Mapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} -> {}", m.host_side(), m.container_port))
        .collect::<Vec<_>>()
        .join(", ")
}

/// GC: forget every attachment not in `cni.dev/valid-attachments` (without that key, those
/// whose netns is gone).
fn gc(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    let states = state::dir(&data_dir, &req.conf.name);
    let all: Vec<AttachmentState> = states.list().map_err(plugin_kit::state_error)?;
    let mut errors = Vec::new();
    for s in &all {
        if !plugin_kit::is_stale(req, &s.container_id, &s.ifname, &s.netns, &s.netns_id) {
            continue;
        }
        let released = match s.backend {
            Backend::Nftables => nft::release(&req.conf.name, s),
            Backend::Iptables => iptables::release(&data_dir, s),
        };
        match released {
            Ok(()) => {
                if let Err(e) = states.remove(&s.container_id, &s.ifname) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(format!("{}/{}: {}", s.container_id, s.ifname, e.msg)),
        }
    }
    if let Some(valid) = &req.conf.valid_attachments
        && let Err(e) = nft::sweep(&req.conf.name, &all, valid)
    {
        errors.push(e.msg);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!("gc: {}", errors.join("; "))))
    }
}
