//! What the main plugins (bridge, ptp, macvlan, ipvlan) do alike on the container side: the
//! routes IPAM returned, and the interfaces they report.

use cni::{Error, Interface, IpConfig, Route};
use cni_netlink::{Link, Netlink};

/// An interface of the result, as the kernel has the link now.
pub fn result_interface(link: &Link, sandbox: &str) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
        mtu: Some(link.mtu),
        sandbox: sandbox.to_string(),
        ..Interface::default()
    }
}

/// Adds a route; one that exists already is fine (a retried ADD, or the kernel made it).
pub fn add_route_if_missing(nl: &mut Netlink, route: &cni_netlink::Route) -> Result<(), Error> {
    match nl.add_route(route) {
        Err(e) if !e.is_exists() => {
            Err(crate::kernel_error(e).context(format!("add route to {}", route.dst)))
        }
        _ => Ok(()),
    }
}

/// A route of the result on the link `index`: its own gateway, else the gateway of the first
/// address of its family, as the reference's `ipam.ConfigureIface` does.
pub fn add_result_route(
    nl: &mut Netlink,
    index: u32,
    route: &Route,
    ips: &[IpConfig],
) -> Result<(), Error> {
    let gw = route.gw.or_else(|| {
        ips.iter()
            .find(|ip| ip.address.is_ipv4() == route.dst.is_ipv4())
            .and_then(|ip| ip.gateway)
    });
    let mut r = cni_netlink::Route::new(route.dst, gw, Some(index));
    r.mtu = route.mtu;
    r.advmss = route.adv_mss;
    r.priority = route.priority;
    if let Some(table) = route.table {
        r.table = table;
    }
    add_route_if_missing(nl, &r).map_err(|e| e.context("in the container"))
}
