//! Localhost access: a connection to 127.0.0.1:<hostPort> is DNATed to the container and
//! leaves through the host interface that routes to it with its 127.0.0.1 source (then
//! masqueraded). The kernel drops such packets as martians unless `route_localnet` is set
//! on that interface, which the reference does too (and never clears: other containers
//! behind the same bridge need it).

use cni::{CniResult, Error};
use cni_netlink::{Ipv4Conf, Netlink};
use ipnetwork::IpNetwork;

fn key(ifname: &str) -> String {
    format!("ipv4/conf/{ifname}/route_localnet")
}

/// Sets `route_localnet` on the host-side interfaces of `prevResult` (sandbox empty: the
/// bridge and the container's veth end for bridge, the veth for ptp) when the container has
/// an IPv4 address; returns those it was set on. Over netlink (`IFLA_INET_CONF`), one
/// request per interface: a /proc/sys write gets slower with every netns on the machine.
/// On a bridge port the flag is inert; the bridge is the interface that routes.
///
/// Without host-side interfaces (macvlan, ipvlan: the host cannot reach those containers,
/// so localhost access cannot work) nothing is set. The reference then sets it on whatever
/// interface the route to the container leaves by: the physical NIC.
pub fn enable_localnet(prev: &CniResult, addrs: &[IpNetwork]) -> Result<Vec<String>, Error> {
    if !addrs.iter().any(|a| a.is_ipv4()) {
        return Ok(Vec::new());
    }
    let mut set = Vec::new();
    let mut nl = None;
    for iface in prev.interfaces.iter().filter(|i| i.sandbox.is_empty()) {
        if cni::env::validate_ifname(&iface.name).is_err() {
            continue;
        }
        let nl = match &mut nl {
            Some(nl) => nl,
            None => nl.insert(Netlink::host().map_err(|e| {
                Error::internal(format!("open a netlink socket for route_localnet: {e}"))
            })?),
        };
        match nl.enable_ipv4_conf(iface.name.as_str(), &[Ipv4Conf::RouteLocalnet]) {
            Ok(()) => set.push(iface.name.clone()),
            // Not an interface of this host (namespace): nothing to route through.
            Err(e) if e.is_not_found() => log::debug!("route_localnet on {}: {e}", iface.name),
            Err(e) => {
                return Err(Error::internal(format!(
                    "enable route_localnet on {}: {e}",
                    iface.name
                )));
            }
        }
    }
    Ok(set)
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
