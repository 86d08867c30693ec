//! What CHECK compares: the interfaces, addresses and routes `prevResult` describes against
//! what the kernel has.

use cni::{CniResult, Error, Interface, Request};
use cni_netlink::{IpFamily, Link, Netlink, RouteFilter};

use crate::KernelResultExt;

/// CHECK's `prevResult`, which the spec requires (code 7 without it).
pub fn required_prev_result(req: &Request) -> Result<&CniResult, Error> {
    req.conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::invalid_config("required prevResult missing"))
}

/// The interface of `prev` with this name in this sandbox (`""`: the host).
pub fn prev_interface<'a>(prev: &'a CniResult, name: &str, sandbox: &str) -> Option<&'a Interface> {
    prev.interfaces
        .iter()
        .find(|i| i.name == name && i.sandbox == sandbox)
}

/// The interface CNI_IFNAME in CNI_NETNS, which CHECK's `prevResult` must record (code 103
/// otherwise).
pub fn expect_prev_interface<'a>(
    prev: &'a CniResult,
    req: &Request,
) -> Result<&'a Interface, Error> {
    prev_interface(prev, req.ifname(), req.netns()).ok_or_else(|| {
        Error::check_failed(format!(
            "prevResult has no interface {} in {}",
            req.ifname(),
            req.netns()
        ))
    })
}

/// The link has the MAC `want` records (when it records one).
pub fn expect_mac(link: &Link, want: &Interface) -> Result<(), Error> {
    if want.mac.is_empty() {
        return Ok(());
    }
    let have = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !have.eq_ignore_ascii_case(&want.mac) {
        return Err(Error::check_failed(format!(
            "{} has MAC {have}, expected {}",
            link.name, want.mac
        )));
    }
    Ok(())
}

/// Every address of `prev` is on `link`, and every route of `prev` is in the container's
/// routing tables (with its gateway, when it names one). Code 103 otherwise.
pub fn expect_addresses_and_routes(
    ctr: &mut Netlink,
    link: &Link,
    prev: &CniResult,
) -> Result<(), Error> {
    let have = ctr.list_addresses(link.index).cni()?;
    for ip in &prev.ips {
        if !have.iter().any(|a| a.addr == ip.address) {
            return Err(Error::check_failed(format!(
                "{} is missing from {}",
                ip.address, link.name
            )));
        }
    }
    for route in &prev.routes {
        let filter = RouteFilter {
            family: Some(IpFamily::of(route.dst.ip())),
            table: route.table,
            oif: None,
        };
        let routes = ctr.list_routes(&filter).cni()?;
        let found = routes
            .iter()
            .any(|r| r.dst == route.dst && route.gw.is_none_or(|gw| r.gateway == Some(gw)));
        if !found {
            return Err(Error::check_failed(format!(
                "route to {} is missing from the container",
                route.dst
            )));
        }
    }
    Ok(())
}
