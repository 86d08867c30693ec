//! IP addresses of links: listing, adding, deleting.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::handle::Netlink;

/// An address family, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub(crate) fn to_netlink(self) -> AddressFamily {
        match self {
            IpFamily::V4 => AddressFamily::Inet,
            IpFamily::V6 => AddressFamily::Inet6,
        }
    }
}

/// `RT_SCOPE_HOST`: addresses valid only inside this host (127.0.0.1, ::1).
#[cfg(test)]
pub(crate) const SCOPE_HOST: u8 = 254;
/// `RT_SCOPE_LINK`: link-local addresses (fe80::/64).
pub const SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_UNIVERSE`: global addresses.
pub const SCOPE_UNIVERSE: u8 = 0;

/// An address assigned to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The link's ifindex.
    pub index: u32,
    /// The address with the prefix length of its subnet, e.g. `10.22.0.5/16`.
    pub addr: IpNetwork,
    /// `RT_SCOPE_*` (see [`SCOPE_LINK`], [`SCOPE_UNIVERSE`]; 254 is host).
    pub scope: u8,
    /// `IFA_F_*` flags (permanent, tentative, dadfailed...).
    pub flags: u32,
}

impl Address {
    /// Reads an RTM_NEWADDR message; `None` for families other than IPv4 and IPv6.
    fn from_message(msg: AddressMessage) -> Result<Option<Address>> {
        let mut local = None;
        let mut address = None;
        let mut flags = u32::from(msg.header.flags.bits());
        for attr in msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                AddressAttribute::Flags(f) => flags = f.bits(),
                _ => {}
            }
        }
        // On point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL our side; on all
        // others they are equal or only IFA_ADDRESS is set (IPv6).
        let Some(ip) = local.or(address) else {
            return Ok(None);
        };
        let addr = IpNetwork::new(ip, msg.header.prefix_len)
            .map_err(|e| Error::protocol(format!("address {ip}/{}: {e}", msg.header.prefix_len)))?;
        Ok(Some(Address {
            index: msg.header.index,
            addr,
            scope: msg.header.scope.into(),
            flags,
        }))
    }
}

/// An RTM_NEWADDR/RTM_DELADDR message for `addr` on link `index`, shaped like iproute2's:
/// IFA_LOCAL and IFA_ADDRESS both set, plus the broadcast address for IPv4 subnets that
/// have one.
fn message_for(index: u32, addr: IpNetwork) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = IpFamily::of(addr.ip()).to_netlink();
    msg.header.prefix_len = addr.prefix();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.ip()));
    msg.attributes.push(AddressAttribute::Address(addr.ip()));
    if let IpNetwork::V4(v4) = addr
        && v4.prefix() < 31
    {
        msg.attributes
            .push(AddressAttribute::Broadcast(v4.broadcast()));
    }
    msg
}

impl Netlink {
    /// The IPv4 and IPv6 addresses of link `index` (`ip addr show dev DEV`), in the kernel's
    /// order (primary addresses first).
    pub fn list_addresses(&mut self, index: u32) -> Result<Vec<Address>> {
        let mut msg = AddressMessage::default();
        // With strict checking the kernel filters by index itself.
        msg.header.index = index;
        let replies = self
            .dump(RouteNetlinkMessage::GetAddress(msg))
            .map_err(|e| e.during(format!("list addresses of link index {index}")))?;
        let mut addresses = Vec::new();
        for reply in replies {
            if let RouteNetlinkMessage::NewAddress(msg) = reply
                && msg.header.index == index
                && let Some(address) = Address::from_message(msg)?
            {
                addresses.push(address);
            }
        }
        Ok(addresses)
    }

    /// `ip addr add ADDR/PREFIX dev DEV`. Fails with EEXIST ([`Error::is_exists`]) if the
    /// link already has the address.
    pub fn add_address(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = message_for(index, addr);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add address {addr} to link index {index}")))
    }

    /// `ip addr add ADDR/PREFIX dev DEV nodad`: an IPv6 address usable at once, without
    /// duplicate address detection (the same as [`Netlink::add_address`] for IPv4). Setting
    /// `accept_dad` instead would cost a /proc/sys lookup, which gets slower with every netns
    /// on the machine.
    pub fn add_address_nodad(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let mut msg = message_for(index, addr);
        if addr.is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add address {addr} to link index {index}")))
    }

    /// `ip addr add ADDR/PREFIX dev DEV noprefixroute nodad`: the address with its real
    /// prefix but without the route to its subnet the kernel would add (for links that reach
    /// their subnet through a gateway, as ptp's do); IPv6 without duplicate address detection.
    pub fn add_address_without_prefix_route(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let mut msg = message_for(index, addr);
        let mut flags = AddressFlags::Noprefixroute;
        if addr.is_ipv6() {
            flags |= AddressFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Flags(flags));
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add address {addr} to link index {index}")))
    }

    /// `ip addr del ADDR/PREFIX dev DEV`. Returns whether an address was deleted: a missing
    /// address or link is not an error.
    pub fn delete_address(&mut self, index: u32, addr: IpNetwork) -> Result<bool> {
        let msg = message_for(index, addr);
        match self.request(RouteNetlinkMessage::DelAddress(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e.during(format!("delete address {addr} from link index {index}"))),
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

    fn addrs(nl: &mut Netlink, index: u32) -> Vec<IpNetwork> {
        nl.list_addresses(index)
            .unwrap()
            .into_iter()
            .map(|a| a.addr)
            .collect()
    }

    #[test]
    fn lo_gets_its_loopback_addresses_when_up() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            let lo = nl.get_link("lo").unwrap().unwrap();
            nl.set_link_up("lo").unwrap();
            let list = nl.list_addresses(lo.index).unwrap();
            let v4 = list.iter().find(|a| a.addr.is_ipv4()).unwrap();
            assert_eq!(v4.addr, net("127.0.0.1/8"));
            assert_eq!(v4.scope, SCOPE_HOST);
            assert_eq!(v4.index, lo.index);
            let v6 = list.iter().find(|a| a.addr.is_ipv6()).unwrap();
            assert_eq!(v6.addr, net("::1/128"));
        });
    }

    #[test]
    fn add_and_delete_addresses() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            nl.create_link_of_kind("br0", "bridge").unwrap();
            let index = nl.get_link("br0").unwrap().unwrap().index;
            assert!(addrs(&mut nl, index).is_empty());

            nl.add_address(index, net("10.22.0.5/16")).unwrap();
            nl.add_address(index, net("fd00:22::5/64")).unwrap();
            let list = addrs(&mut nl, index);
            assert!(list.contains(&net("10.22.0.5/16")), "{list:?}");
            assert!(list.contains(&net("fd00:22::5/64")), "{list:?}");

            let err = nl.add_address(index, net("10.22.0.5/16")).unwrap_err();
            assert!(err.is_exists(), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with("add address 10.22.0.5/16 to link"),
                "{err}"
            );

            assert!(nl.delete_address(index, net("10.22.0.5/16")).unwrap());
            assert!(!nl.delete_address(index, net("10.22.0.5/16")).unwrap());
            assert!(nl.delete_address(index, net("fd00:22::5/64")).unwrap());
            assert!(
                !addrs(&mut nl, index)
                    .iter()
                    .any(|a| a.ip().to_string().starts_with("10.22"))
            );

            let err = nl.add_address(4242, net("10.9.9.9/24")).unwrap_err();
            assert!(err.is_not_found(), "{err:?}");
        });
    }

    #[test]
    fn addresses_are_listed_per_link() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            nl.set_link_up("lo").unwrap();
            nl.create_link_of_kind("br0", "bridge").unwrap();
            let index = nl.get_link("br0").unwrap().unwrap().index;
            nl.add_address(index, net("192.0.2.1/24")).unwrap();
            assert_eq!(addrs(&mut nl, index), [net("192.0.2.1/24")]);
            assert!(!addrs(&mut nl, 1).contains(&net("192.0.2.1/24")));
        });
    }
}
