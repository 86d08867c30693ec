//! Localhost access: a connection to 127.0.0.1:<hostPort> is DNATed to the container and
//! leaves through the host interface that routes to it with its 127.0.0.1 source (then
//! masqueraded). The kernel drops such packets as martians unless `route_localnet` is set
//! on that interface, which the reference does too (and never clears: other containers
//! behind the same bridge need it).

use cni::{CniResult, Error};
use cni_netlink::{IpFamily, Netlink, RouteFilter, TABLE_MAIN};
use ipnetwork::IpNetwork;

fn key(ifname: &str) -> String {
    format!("ipv4/conf/{ifname}/route_localnet")
}

fn kernel(what: &str, e: cni_netlink::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// Finds the host interface routing to the container's IPv4 address and sets its
/// `route_localnet`; returns its name (`None` when the container has no IPv4 address or
/// nothing on the host routes to it, as for macvlan).
///
/// The interface comes from `prevResult`'s host-side interfaces (sandbox empty): the first
/// one that exists, or the bridge it is a port of. Without any, the main table's most
/// specific route to the address names it.
pub fn host_interface(prev: &CniResult, addrs: &[IpNetwork]) -> Result<Option<String>, Error> {
    let Some(v4) = addrs.iter().find(|a| a.is_ipv4()) else {
        return Ok(None);
    };
    let mut nl = Netlink::host().map_err(|e| kernel("open netlink socket", e))?;
    let mut found = None;
    for iface in prev.interfaces.iter().filter(|i| i.sandbox.is_empty()) {
        let Some(link) = nl
            .get_link(iface.name.as_str())
            .map_err(|e| kernel("look up host interface", e))?
        else {
            continue;
        };
        found = match link.master {
            Some(master) => nl
                .get_link(master)
                .map_err(|e| kernel("look up bridge", e))?
                .map(|l| l.name),
            None => Some(link.name),
        };
        if found.is_some() {
            break;
        }
    }
    if found.is_none() {
        found = routed_interface(&mut nl, v4.ip())?;
    }
    let Some(name) = found else {
        log::debug!("no host interface routes to {v4}: route_localnet left alone");
        return Ok(None);
    };
    cni_netlink::set_sysctl(None, &key(&name), "1")
        .map_err(|e| Error::internal(format!("enable route_localnet on {name}: {e}")))?;
    Ok(Some(name))
}

/// The output interface of the most specific main-table route covering `ip`.
fn routed_interface(nl: &mut Netlink, ip: std::net::IpAddr) -> Result<Option<String>, Error> {
    let routes = nl
        .list_routes(&RouteFilter {
            family: Some(IpFamily::of(ip)),
            table: Some(TABLE_MAIN),
            oif: None,
        })
        .map_err(|e| kernel("list routes", e))?;
    let best = routes
        .iter()
        .filter(|r| r.oif.is_some() && r.gateway.is_none() && r.dst.contains(ip))
        .max_by_key(|r| r.dst.prefix());
    match best.and_then(|r| r.oif) {
        Some(oif) => Ok(nl
            .get_link(oif)
            .map_err(|e| kernel("look up routed interface", e))?
            .map(|l| l.name)),
        None => Ok(None),
    }
}

/// CHECK: `route_localnet` is still on where ADD set it.
pub fn check_route_localnet(ifname: &str) -> Result<(), Error> {
    match cni_netlink::get_sysctl(None, &key(ifname)) {
        Ok(v) if v.trim() == "1" => Ok(()),
        Ok(v) => Err(Error::check_failed(format!(
            "route_localnet on {ifname} is {} (ADD set it to 1)",
            v.trim()
        ))),
        Err(e) => Err(Error::check_failed(format!(
            "route_localnet on {ifname}: {e}"
        ))),
    }
}
