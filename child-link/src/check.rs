//! CHECK: the link ADD made is still there as `prevResult` describes it: kind, mode,
//! master, MAC, addresses and routes.

use cni::{CniResult, Command, Error, Interface, Request, delegate};
use cni_netlink::{IpFamily, Link, Netlink, RouteFilter};

use crate::config::{Config, Kind};
use crate::{find_master, kernel_error, open_netns};

fn fail(msg: impl Into<String>) -> Error {
    Error::check_failed(msg)
}

pub fn check(req: &Request, cfg: &Config) -> Result<(), Error> {
    let prev = plugin_kit::required_prev_result(req)?;
    if let Some(ipam) = cfg.ipam_type() {
        delegate::run(ipam, Command::Check, req)?;
    }
    let want = plugin_kit::expect_prev_interface(prev, req)?;
    let ns = open_netns(req.netns())?;
    let mut ctr = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let master = if cfg.link_in_container {
        find_master(&mut ctr, cfg)
    } else {
        find_master(&mut Netlink::host().map_err(kernel_error)?, cfg)
    }
    .map_err(|e| fail(e.msg))?;
    let link = ctr
        .get_link(req.ifname())
        .map_err(kernel_error)?
        .ok_or_else(|| fail(format!("{} is missing from {}", req.ifname(), req.netns())))?;
    check_link(cfg, &link, &master, want)?;
    let ours = prev
        .interfaces
        .iter()
        .position(|i| i.name == req.ifname() && i.sandbox == req.netns());
    check_addresses_and_routes(&mut ctr, &link, ours, prev)
}

fn check_link(cfg: &Config, link: &Link, master: &Link, want: &Interface) -> Result<(), Error> {
    let kind = cfg.kind.name();
    if link.kind.as_deref() != Some(kind) {
        return Err(fail(format!(
            "{} is a {}, not a {kind}",
            link.name,
            link.kind.as_deref().unwrap_or("link of unknown kind")
        )));
    }
    let mode = match cfg.kind {
        Kind::Macvlan { .. } => link.macvlan_mode.map(|m| m.to_string()),
        Kind::Ipvlan { .. } => link.ipvlan_mode.map(|m| m.to_string()),
    };
    if mode.as_deref() != Some(cfg.kind.mode().as_str()) {
        return Err(fail(format!(
            "{} is in {kind} mode {}, expected {}",
            link.name,
            mode.as_deref().unwrap_or("unknown"),
            cfg.kind.mode()
        )));
    }
    // The parent is named by its index in its own netns: the host's (then the link says
    // which netns it is in), or the container's with linkInContainer.
    let parent_here = link.link_netnsid.is_none();
    if link.link != Some(master.index) || parent_here != cfg.link_in_container {
        return Err(fail(format!(
            "{} is not a child of master {}",
            link.name, master.name
        )));
    }
    if !want.mac.is_empty() {
        let have = link.mac.map(|m| m.to_string()).unwrap_or_default();
        if !have.eq_ignore_ascii_case(&want.mac) {
            return Err(fail(format!(
                "{} has MAC {have}, expected {}",
                link.name, want.mac
            )));
        }
    }
    Ok(())
}

fn check_addresses_and_routes(
    ctr: &mut Netlink,
    link: &Link,
    ours: Option<usize>,
    prev: &CniResult,
) -> Result<(), Error> {
    let have = ctr.list_addresses(link.index).map_err(kernel_error)?;
    for ip in prev.ips.iter().filter(|ip| ip.interface == ours) {
        if !have.iter().any(|a| a.addr == ip.address) {
            return Err(fail(format!(
                "{} is missing from {}",
                ip.address, link.name
            )));
        }
    }
    for route in &prev.routes {
        let family = if route.dst.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        };
        let filter = RouteFilter {
            family: Some(family),
            table: route.table,
            oif: None,
        };
        let routes = match ctr.list_routes(&filter) {
            Ok(routes) => routes,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(kernel_error(e)),
        };
        let found = routes
            .iter()
            .any(|r| r.dst == route.dst && route.gw.is_none_or(|gw| r.gateway == Some(gw)));
        if !found {
            return Err(fail(format!(
                "route to {} is missing from the container",
                route.dst
            )));
        }
    }
    Ok(())
}
