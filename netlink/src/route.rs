//! Routes: listing with kernel-side filters, adding, deleting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::address::{IpFamily, SCOPE_LINK, SCOPE_UNIVERSE};
use crate::error::{Error, Result};
use crate::handle::Netlink;

/// `RT_TABLE_MAIN`: the table `ip route` shows.
pub const TABLE_MAIN: u32 = 254;
/// `RT_TABLE_LOCAL`: local and broadcast routes the kernel maintains.
#[cfg(test)]
pub(crate) const TABLE_LOCAL: u32 = 255;
/// `RTPROT_KERNEL`: routes the kernel added for an address's subnet.
#[cfg(test)]
pub(crate) const PROTO_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: what `ip route add` uses by default.
pub const PROTO_BOOT: u8 = 3;
/// `RTN_UNICAST`.
pub const TYPE_UNICAST: u8 = 1;

/// A route. Multipath routes are listed with their first-level attributes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Output link index.
    pub oif: Option<u32>,
    /// Routing table ([`TABLE_MAIN`] unless set otherwise).
    pub table: u32,
    /// Metric.
    pub priority: Option<u32>,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTPROT_*`.
    pub protocol: u8,
    /// `RTN_*` ([`TYPE_UNICAST`], local, broadcast...).
    pub kind: u8,
    /// Preferred source address.
    pub pref_src: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
}

impl Route {
    /// A unicast route in the main table as `ip route add DST [via GW] [dev OIF]` makes
    /// it: scope link without a gateway, universe with one; protocol boot.
    pub fn new(dst: IpNetwork, gateway: Option<IpAddr>, oif: Option<u32>) -> Route {
        Route {
            dst,
            gateway,
            oif,
            table: TABLE_MAIN,
            priority: None,
            scope: if gateway.is_some() {
                SCOPE_UNIVERSE
            } else {
                SCOPE_LINK
            },
            protocol: PROTO_BOOT,
            kind: TYPE_UNICAST,
            pref_src: None,
            mtu: None,
            advmss: None,
        }
    }

    /// Reads an RTM_NEWROUTE message; `None` for families other than IPv4 and IPv6.
    fn from_message(msg: RouteMessage) -> Result<Option<Route>> {
        let family = match msg.header.address_family {
            AddressFamily::Inet => IpFamily::V4,
            AddressFamily::Inet6 => IpFamily::V6,
            _ => return Ok(None),
        };
        let mut dst = None;
        let mut route = Route::new(unspecified(family), None, None);
        route.table = u32::from(msg.header.table);
        route.scope = msg.header.scope.into();
        route.protocol = msg.header.protocol.into();
        route.kind = msg.header.kind.into();
        for attr in msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst = ip_of(a),
                RouteAttribute::Gateway(a) => route.gateway = ip_of(a),
                RouteAttribute::PrefSource(a) => route.pref_src = ip_of(a),
                RouteAttribute::Oif(i) => route.oif = Some(i),
                RouteAttribute::Table(t) => route.table = t,
                RouteAttribute::Priority(p) => route.priority = Some(p),
                RouteAttribute::Metrics(metrics) => {
                    for metric in metrics {
                        match metric {
                            RouteMetric::Mtu(m) => route.mtu = Some(m),
                            RouteMetric::Advmss(m) => route.advmss = Some(m),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let dst = dst.unwrap_or(route.dst.ip());
        let prefix = msg.header.destination_prefix_length;
        route.dst = IpNetwork::new(dst, prefix)
            .map_err(|e| Error::protocol(format!("route to {dst}/{prefix}: {e}")))?;
        Ok(Some(route))
    }

    /// The RTM_NEWROUTE/RTM_DELROUTE message for this route.
    fn to_message(&self) -> Result<RouteMessage> {
        let family = IpFamily::of(self.dst.ip());
        if let Some(gw) = self.gateway
            && IpFamily::of(gw) != family
        {
            return Err(Error::InvalidArgument(format!(
                "route to {}: gateway {gw} is of another address family",
                self.dst
            )));
        }
        let mut msg = RouteMessage::default();
        msg.header.address_family = family.to_netlink();
        msg.header.destination_prefix_length = self.dst.prefix();
        msg.header.scope = RouteScope::from(self.scope);
        msg.header.protocol = RouteProtocol::from(self.protocol);
        msg.header.kind = RouteType::from(self.kind);
        set_table(&mut msg, self.table);
        // The kernel refuses a destination with host bits set.
        msg.attributes
            .push(RouteAttribute::Destination(self.dst.network().into()));
        if let Some(gw) = self.gateway {
            msg.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(priority) = self.priority {
            msg.attributes.push(RouteAttribute::Priority(priority));
        }
        if let Some(src) = self.pref_src {
            msg.attributes.push(RouteAttribute::PrefSource(src.into()));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = self.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
        Ok(msg)
    }
}

/// Tables above 255 only fit the RTA_TABLE attribute.
fn set_table(msg: &mut RouteMessage, table: u32) {
    match u8::try_from(table) {
        Ok(t) => msg.header.table = t,
        Err(_) => {
            msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
            msg.attributes.push(RouteAttribute::Table(table));
        }
    }
}

fn unspecified(family: IpFamily) -> IpNetwork {
    match family {
        IpFamily::V4 => IpNetwork::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        IpFamily::V6 => IpNetwork::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    }
}

fn ip_of(addr: RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

/// Which routes [`Netlink::list_routes`] returns; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilter {
    pub family: Option<IpFamily>,
    pub table: Option<u32>,
    pub oif: Option<u32>,
}

impl RouteFilter {
    fn matches(&self, route: &Route) -> bool {
        self.family
            .is_none_or(|f| f == IpFamily::of(route.dst.ip()))
            && self.table.is_none_or(|t| t == route.table)
            && self.oif.is_none_or(|o| Some(o) == route.oif)
    }

    /// The dump request. With strict checking the kernel filters by table and output link
    /// itself; the results are filtered again here for kernels that do not.
    fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        if let Some(family) = self.family {
            msg.header.address_family = family.to_netlink();
        }
        if let Some(table) = self.table {
            msg.attributes.push(RouteAttribute::Table(table));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        msg
    }
}

impl Netlink {
    /// The routes matching `filter` (`ip route show [table T] [dev DEV]`, all tables by
    /// default). Filtering by a link that does not exist gives no routes.
    pub fn list_routes(&mut self, filter: &RouteFilter) -> Result<Vec<Route>> {
        let replies = match self.dump(RouteNetlinkMessage::GetRoute(filter.to_message())) {
            Ok(replies) => replies,
            Err(e) if filter.oif.is_some() && e.errno() == Some(libc::ENODEV) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.during("list routes")),
        };
        let mut routes = Vec::new();
        for reply in replies {
            if let RouteNetlinkMessage::NewRoute(msg) = reply
                && let Some(route) = Route::from_message(msg)?
                && filter.matches(&route)
            {
                routes.push(route);
            }
        }
        Ok(routes)
    }

    /// `ip route add ...`. Fails with EEXIST ([`Error::is_exists`]) if the route exists.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let msg = route.to_message()?;
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add route to {}", route.dst)))
    }

    /// `ip route replace ...`: adds the route, or replaces the one to the same destination
    /// (same table, metric and type) wherever it pointed.
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        let msg = route.to_message()?;
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
        .map_err(|e| e.during(format!("replace route to {}", route.dst)))
    }

    /// `ip route del ...`. Returns whether a route was deleted: a missing route (or
    /// link) is not an error.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool> {
        let msg = route.to_message()?;
        match self.request(RouteNetlinkMessage::DelRoute(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.during(format!("delete route to {}", route.dst))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_new_netns;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    /// br0 up with 10.22.0.5/16; returns its index.
    fn bridge_with_address(nl: &mut Netlink) -> u32 {
        nl.create_link_of_kind("br0", "bridge").unwrap();
        let index = nl.get_link("br0").unwrap().unwrap().index;
        nl.add_address(index, net("10.22.0.5/16")).unwrap();
        nl.set_link_up(index).unwrap();
        index
    }

    #[test]
    fn subnet_routes_appear_with_their_address() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            let index = bridge_with_address(&mut nl);
            let filter = RouteFilter {
                family: Some(IpFamily::V4),
                table: Some(TABLE_MAIN),
                oif: Some(index),
            };
            let routes = nl.list_routes(&filter).unwrap();
            assert_eq!(routes.len(), 1, "{routes:?}");
            let r = &routes[0];
            assert_eq!(r.dst, net("10.22.0.0/16"));
            assert_eq!(r.gateway, None);
            assert_eq!(r.oif, Some(index));
            assert_eq!(r.scope, SCOPE_LINK);
            assert_eq!(r.protocol, PROTO_KERNEL);
            assert_eq!(r.pref_src, Some("10.22.0.5".parse().unwrap()));

            // The local table holds the address itself.
            let local = nl
                .list_routes(&RouteFilter {
                    table: Some(TABLE_LOCAL),
                    ..RouteFilter::default()
                })
                .unwrap();
            assert!(local.iter().all(|r| r.table == TABLE_LOCAL));
            assert!(
                local.iter().any(|r| r.dst == net("10.22.0.5/32")),
                "{local:?}"
            );

            assert!(
                nl.list_routes(&RouteFilter {
                    oif: Some(4242),
                    ..filter
                })
                .unwrap()
                .is_empty()
            );
        });
    }

    #[test]
    fn add_list_and_delete_gateway_routes() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            let index = bridge_with_address(&mut nl);
            let mut default =
                Route::new(net("0.0.0.0/0"), Some("10.22.0.1".parse().unwrap()), None);
            default.priority = Some(100);
            nl.add_route(&default).unwrap();
            let mut other = Route::new(net("192.0.2.7/24"), None, Some(index));
            other.table = 1000;
            other.mtu = Some(1400);
            nl.add_route(&other).unwrap();

            let err = nl.add_route(&default).unwrap_err();
            assert!(err.is_exists(), "{err:?}");

            let v4 = RouteFilter {
                family: Some(IpFamily::V4),
                table: Some(TABLE_MAIN),
                ..RouteFilter::default()
            };
            let routes = nl.list_routes(&v4).unwrap();
            let found = routes.iter().find(|r| r.dst == net("0.0.0.0/0")).unwrap();
            assert_eq!(found.gateway, Some("10.22.0.1".parse().unwrap()));
            assert_eq!(found.oif, Some(index));
            assert_eq!(found.priority, Some(100));
            assert_eq!(found.protocol, PROTO_BOOT);

            let in_1000 = nl
                .list_routes(&RouteFilter {
                    table: Some(1000),
                    ..RouteFilter::default()
                })
                .unwrap();
            assert_eq!(in_1000.len(), 1, "{in_1000:?}");
            assert_eq!(in_1000[0].dst, net("192.0.2.0/24"));
            assert_eq!(in_1000[0].mtu, Some(1400));
            assert_eq!(in_1000[0].table, 1000);

            assert!(nl.delete_route(&default).unwrap());
            assert!(!nl.delete_route(&default).unwrap());
            assert!(nl.delete_route(&other).unwrap());
            assert!(
                nl.list_routes(&v4)
                    .unwrap()
                    .iter()
                    .all(|r| r.gateway.is_none())
            );

            let mixed = Route::new(net("0.0.0.0/0"), Some("fd00::1".parse().unwrap()), None);
            assert!(matches!(
                nl.add_route(&mixed),
                Err(Error::InvalidArgument(_))
            ));
        });
    }

    #[test]
    fn addresses_without_prefix_route_and_replaced_host_routes() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            for name in ["br0", "br1"] {
                nl.create_link_of_kind(name, "bridge").unwrap();
                nl.set_link_up(name).unwrap();
            }
            let br0 = nl.get_link("br0").unwrap().unwrap().index;
            let br1 = nl.get_link("br1").unwrap().unwrap().index;
            nl.add_address_without_prefix_route(br0, net("10.23.0.5/24"))
                .unwrap();
            nl.add_address_without_prefix_route(br0, net("fd23::5/64"))
                .unwrap();
            let main = |nl: &mut Netlink, oif| {
                nl.list_routes(&RouteFilter {
                    table: Some(TABLE_MAIN),
                    oif: Some(oif),
                    ..RouteFilter::default()
                })
                .unwrap()
            };
            let on_br0 = main(&mut nl, br0);
            assert!(
                !on_br0
                    .iter()
                    .any(|r| r.dst == net("10.23.0.0/24") || r.dst == net("fd23::/64")),
                "{on_br0:?}"
            );
            let addrs = nl.list_addresses(br0).unwrap();
            assert!(addrs.iter().any(|a| a.addr == net("10.23.0.5/24")));

            // A host route moved from one link to another in one step.
            let mut host = Route::new(net("10.23.0.9/32"), None, Some(br0));
            nl.replace_route(&host).unwrap();
            host.oif = Some(br1);
            nl.replace_route(&host).unwrap();
            assert!(!main(&mut nl, br0).iter().any(|r| r.dst == host.dst));
            assert!(main(&mut nl, br1).iter().any(|r| r.dst == host.dst));
        });
    }
}
