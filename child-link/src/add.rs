//! ADD: the child link created in the container under a temporary name and renamed there,
//! IPAM (or chained addresses), addresses and routes; each step undone if a later one fails.

use cni::delegate::IpamLease;
use cni::{CniResult, Error, Interface, IpConfig, Request, Route, Undo};
use cni_netlink::{
    ChildTarget, Ipv4Conf, IpvlanOptions, Link, MacvlanMode, MacvlanOptions, NetNs, Netlink,
};

use crate::config::{Addressing, Config, Kind};
use crate::{find_master, kernel_error, open_netns};

pub fn add(req: &Request, cfg: &Config) -> Result<CniResult, Error> {
    let ns = open_netns(req.netns())?;
    let mut undo = Undo::new();
    // IPAM is started while the master is looked up and the link made: a delegate's exec is
    // the longest step of the ADD. Should the master turn out unusable or the link fail, the
    // pending allocation is waited for and released.
    let mut host = if cfg.link_in_container {
        None
    } else {
        Some(Netlink::host().map_err(kernel_error)?)
    };
    let start_ipam = || match cfg.ipam_type() {
        Some(ipam) => IpamLease::start(ipam, req).map(Some),
        None => Ok(None),
    };
    let (mut ctr, link, pending) = create_link(req, cfg, &ns, host.as_mut(), start_ipam)?;
    let link = link?;
    let (netns, index, kind) = (req.netns().to_string(), link.index, cfg.kind.name());
    undo.push(format!("delete {kind} {}", link.name), move || {
        NetNs::open(&netns)
            .and_then(|ns| Netlink::in_netns(&ns))
            .and_then(|mut nl| nl.delete_link(index).map(drop))
            .map_err(|e| e.to_string())
    });
    let mut pending = pending?;

    // A chained plugin passes prevResult on with its own interface, addresses and routes
    // added; the addresses and routes it applies are IPAM's, or with chained ipvlan those of
    // prevResult.
    let mut result = req.conf.prev_result.clone().unwrap_or_default();
    result.interfaces.push(Interface {
        name: link.name.clone(),
        mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
        mtu: Some(link.mtu),
        sandbox: req.netns().to_string(),
        ..Interface::default()
    });
    let ours = result.interfaces.len() - 1;
    let mut lease = None;
    let (first_ip, first_route) = match &cfg.addressing {
        Addressing::Ipam(ipam) => {
            let (l, r) = pending
                .take()
                .ok_or_else(|| Error::internal(format!("{ipam} was not started")))?
                .wait()?;
            lease = Some(l);
            if r.ips.is_empty() {
                return Err(Error::internal(format!("{ipam} returned no IP address")));
            }
            let firsts = (result.ips.len(), result.routes.len());
            result.ips.extend(r.ips);
            result.routes.extend(r.routes);
            if !r.dns.is_empty() {
                result.dns = r.dns;
            }
            firsts
        }
        Addressing::PrevResult => {
            if result.ips.is_empty() {
                return Err(Error::invalid_config(
                    "ipam: not set, and prevResult has no address to apply",
                ));
            }
            (0, 0)
        }
        Addressing::None => (result.ips.len(), result.routes.len()),
    };
    for ip in &mut result.ips[first_ip..] {
        ip.interface = Some(ours);
    }
    configure(
        &mut ctr,
        &link,
        &result.ips[first_ip..],
        &result.routes[first_route..],
    )?;
    if let Some(dns) = &cfg.dns {
        result.dns = dns.clone();
    }
    if let Some(lease) = lease {
        lease.keep();
    }
    undo.commit();
    Ok(result)
}

/// In one trip into the container's netns: finds the master (through the host's socket, or
/// with `linkInContainer` the container's), creates the link there under a temporary name,
/// renames it to CNI_IFNAME, sets its sysctls and brings it up, while this thread runs
/// `alongside` (starts IPAM). Returns the container's socket, the link and what `alongside`
/// returned.
fn create_link<U>(
    req: &Request,
    cfg: &Config,
    ns: &NetNs,
    host: Option<&mut Netlink>,
    alongside: impl FnOnce() -> U,
) -> Result<(Netlink, Result<Link, Error>, U), Error> {
    let ifname = req.ifname();
    let run = |ctr: &mut Netlink| -> Result<Link, Error> {
        let link = match host {
            Some(host) => {
                let master = find_master(host, cfg)?;
                replacing_a_dying_link(ctr, ifname, |ctr| {
                    let target = ChildTarget::Netns { ns, nl: ctr };
                    create(host, &master, target, cfg, ifname)
                })?
                .map_err(|e| creation_error(e, cfg, &master, ifname, req.netns()))?
            }
            None => {
                let master = find_master(ctr, cfg)?;
                replacing_a_dying_link(ctr, ifname, |ctr| {
                    create(ctr, &master, ChildTarget::Here, cfg, ifname)
                })?
                .map_err(|e| creation_error(e, cfg, &master, ifname, req.netns()))?
            }
        };
        // As the reference: announce the addresses when they come (best effort: IPv6 may be
        // disabled in the container). arp_notify over netlink: /proc/sys lookups get slower
        // with every netns on the machine; ndisc_notify has no netlink setter.
        if let Err(e) = ctr.enable_ipv4_conf(link.index, &[Ipv4Conf::ArpNotify]) {
            log::debug!("arp_notify on {ifname}: {e}");
        }
        let key = format!("ipv6/conf/{ifname}/ndisc_notify");
        if let Err(e) = cni_netlink::set_sysctl(None, &key, "1") {
            log::debug!("{key}: {e}");
        }
        // Up here, while IPAM may still be running: the addresses come later. The caller's
        // undo does not know the link yet: a failure here takes it away itself.
        if let Err(e) = ctr.set_link_up(link.index) {
            if let Err(del) = ctr.delete_link(link.index) {
                log::warn!("delete {} after failing to bring it up: {del}", link.name);
            }
            return Err(kernel_error(e));
        }
        Ok(link)
    };
    Netlink::in_netns_alongside(ns, |ctr| Ok(run(ctr)), alongside).map_err(kernel_error)
}

/// Runs `create`; when CNI_IFNAME is taken by the link of a DEL that has just returned
/// (its deletion comes once that plugin has exited), deletes that link and runs it again.
fn replacing_a_dying_link(
    ctr: &mut Netlink,
    ifname: &str,
    mut create: impl FnMut(&mut Netlink) -> cni_netlink::Result<Link>,
) -> Result<cni_netlink::Result<Link>, Error> {
    let created = create(ctr);
    if matches!(&created, Err(e) if e.is_exists())
        && ctr.remove_dying_link(ifname).map_err(kernel_error)?
    {
        return Ok(create(ctr));
    }
    Ok(created)
}

/// Creates the link through `nl` (the socket of the master's netns).
fn create(
    nl: &mut Netlink,
    master: &Link,
    target: ChildTarget<'_>,
    cfg: &Config,
    ifname: &str,
) -> cni_netlink::Result<Link> {
    match &cfg.kind {
        Kind::Macvlan {
            mode,
            mac,
            bc_queue_len,
        } => {
            let opts = MacvlanOptions {
                mode: *mode,
                mtu: cfg.mtu,
                mac: *mac,
                bc_queue_len: *bc_queue_len,
            };
            nl.create_macvlan(master.index, ifname, target, &opts)
        }
        Kind::Ipvlan { mode } => {
            let opts = IpvlanOptions {
                mode: *mode,
                mtu: cfg.mtu,
            };
            nl.create_ipvlan(master.index, ifname, target, &opts)
        }
    }
}

/// What went wrong creating the link, the way a user can act on.
fn creation_error(
    e: cni_netlink::Error,
    cfg: &Config,
    master: &Link,
    ifname: &str,
    netns: &str,
) -> Error {
    if e.is_exists() {
        return Error::invalid_env(format!(
            "CNI_IFNAME {ifname}: an interface of that name already exists in {netns}"
        ));
    }
    let hint = match (e.errno(), &cfg.kind) {
        (Some(libc::EOPNOTSUPP), Kind::Ipvlan { .. }) => {
            return Error::not_available(format!(
                "this kernel has no ipvlan support (is the ipvlan module available? \
                 `modprobe ipvlan`): {e}"
            ));
        }
        (Some(libc::EINVAL), Kind::Macvlan { mode, .. }) if *mode == MacvlanMode::Passthru => {
            " (passthru needs a master with no other macvlan)"
        }
        (Some(libc::EINVAL), Kind::Macvlan { .. }) => {
            " (does the master already carry a macvlan in passthru mode?)"
        }
        (Some(libc::EBUSY), _) => {
            " (the master already serves another kind of child link, or is a bridge port)"
        }
        _ => "",
    };
    let (kind, master) = (cfg.kind.name(), &master.name);
    Error::internal(format!("create {kind} on master {master}: {e}{hint}"))
}

/// Adds the link's addresses and routes (it is up already).
fn configure(
    ctr: &mut Netlink,
    link: &Link,
    ips: &[IpConfig],
    routes: &[Route],
) -> Result<(), Error> {
    for ip in ips {
        match ctr.add_address(link.index, ip.address) {
            Err(e) if !e.is_exists() => {
                return Err(kernel_error(e).context(format!("add {} to {}", ip.address, link.name)));
            }
            _ => {}
        }
    }
    for route in routes {
        plugin_kit::add_result_route(ctr, link.index, route, ips)?;
    }
    Ok(())
}
