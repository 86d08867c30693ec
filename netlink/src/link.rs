//! Links: looking them up, listing, bringing them up and down, deleting.

use std::fmt;
use std::str::FromStr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};

use crate::error::{Error, Result};
use crate::handle::Netlink;

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// `IFF_UP`.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;

/// How a link is named in a request: by ifindex or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkId {
    Index(u32),
    Name(String),
}

impl From<u32> for LinkId {
    fn from(index: u32) -> LinkId {
        LinkId::Index(index)
    }
}

impl From<&str> for LinkId {
    fn from(name: &str) -> LinkId {
        LinkId::Name(name.to_owned())
    }
}

impl From<String> for LinkId {
    fn from(name: String) -> LinkId {
        LinkId::Name(name)
    }
}

impl From<&String> for LinkId {
    fn from(name: &String) -> LinkId {
        LinkId::Name(name.clone())
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "index {i}"),
            LinkId::Name(n) => f.write_str(n),
        }
    }
}

/// A 48-bit Ethernet address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), case-insensitively.
    fn from_str(s: &str) -> Result<MacAddr> {
        let bad = || Error::InvalidArgument(format!("invalid MAC address {s:?}"));
        let mut mac = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(mac))
    }
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFF_*` flags (see [`IFF_UP`], [`IFF_LOOPBACK`]).
    pub flags: u32,
    pub mtu: u32,
    /// The hardware address, when it is 6 bytes long (Ethernet-like links and `lo`).
    pub mac: Option<MacAddr>,
    /// `IFLA_INFO_KIND`: "veth", "bridge", "macvlan"...; `None` for `lo` and physical NICs.
    pub kind: Option<String>,
    /// Index of the bridge or bond this link is a port of.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent of a macvlan/ipvlan/vlan, the peer of a veth.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when `link` lives in another namespace.
    pub link_netnsid: Option<i32>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }

    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            flags: msg.header.flags.bits(),
            mtu: 0,
            mac: None,
            kind: None,
            master: None,
            link: None,
            link_netnsid: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Address(bytes) => {
                    link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
                }
                LinkAttribute::Controller(index) => link.master = Some(index),
                LinkAttribute::Link(index) => link.link = Some(index),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }
}

/// Checks a name the kernel would refuse anyway, for a clearer message.
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        return Err(Error::InvalidArgument(format!(
            "invalid interface name {name:?}: must be 1 to {MAX_IFNAME_LEN} bytes"
        )));
    }
    Ok(())
}

/// A link message addressed to `id`.
fn message_for(id: &LinkId) -> Result<LinkMessage> {
    let mut msg = LinkMessage::default();
    match id {
        LinkId::Index(index) => msg.header.index = *index,
        LinkId::Name(name) => {
            check_ifname(name)?;
            msg.attributes.push(LinkAttribute::IfName(name.clone()));
        }
    }
    Ok(msg)
}

/// Statistics are large and never needed: ask the kernel to leave them out.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

impl Netlink {
    /// The link named by `id`, or `None` if there is none (`ip link show DEV`).
    pub fn get_link(&mut self, id: impl Into<LinkId>) -> Result<Option<Link>> {
        let id = id.into();
        let mut msg = message_for(&id)?;
        msg.attributes.push(skip_stats());
        let replies = match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => replies,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.during(format!("get link {id}"))),
        };
        match replies.into_iter().next() {
            Some(RouteNetlinkMessage::NewLink(msg)) => Ok(Some(Link::from_message(msg))),
            other => Err(Error::protocol(format!("unexpected reply {other:?}"))
                .during(format!("get link {id}"))),
        }
    }

    /// Every link of the namespace (`ip link show`).
    pub fn list_links(&mut self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(skip_stats());
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .map_err(|e| e.during("list links"))?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(msg) => Some(Link::from_message(msg)),
                _ => None,
            })
            .collect())
    }

    /// `ip link set DEV up`.
    pub fn set_link_up(&mut self, id: impl Into<LinkId>) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
        })
        .map_err(|e| e.during(format!("set link {id} up")))
    }

    /// `ip link set DEV down`.
    pub fn set_link_down(&mut self, id: impl Into<LinkId>) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.header.flags = LinkFlags::empty();
            msg.header.change_mask = LinkFlags::Up;
        })
        .map_err(|e| e.during(format!("set link {id} down")))
    }

    /// `ip link del DEV`. Returns whether a link was deleted: a link that does not exist
    /// is not an error, so teardown can call this unconditionally.
    pub fn delete_link(&mut self, id: impl Into<LinkId>) -> Result<bool> {
        let id = id.into();
        let msg = message_for(&id)?;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.during(format!("delete link {id}"))),
        }
    }

    /// Changes attributes of an existing link: an RTM_NEWLINK without NLM_F_CREATE, as
    /// `ip link set` sends (RTM_SETLINK ignores some attributes, e.g. bridge options).
    pub(crate) fn change_link(
        &mut self,
        id: &LinkId,
        edit: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let mut msg = message_for(id)?;
        edit(&mut msg);
        self.request(RouteNetlinkMessage::NewLink(msg), 0).map(drop)
    }

    /// `ip link add NAME type KIND`, for kinds that need no options ("dummy", "ifb",
    /// "bridge" with kernel defaults): links to hang addresses and routes on, or parents
    /// for macvlans in tests. Fails with EEXIST ([`Error::is_exists`]) if the name is
    /// taken, EOPNOTSUPP if the kernel lacks the kind.
    pub fn create_link_of_kind(&mut self, name: &str, kind: &str) -> Result<()> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::from(kind),
            )]));
        self.create_link(msg)
            .map_err(|e| e.during(format!("create {kind} link {name}")))
    }

    /// Creates a link from a complete RTM_NEWLINK message (the building block of every
    /// link type); fails with EEXIST if the name is taken.
    pub(crate) fn create_link(&mut self, msg: LinkMessage) -> Result<()> {
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_new_netns;

    #[test]
    fn mac_addresses_parse_and_print() {
        let mac: MacAddr = "0A:58:0a:16:00:05".parse().unwrap();
        assert_eq!(mac.0, [0x0a, 0x58, 0x0a, 0x16, 0x00, 0x05]);
        assert_eq!(mac.to_string(), "0a:58:0a:16:00:05");
        assert_eq!("00-00-00-00-00-01".parse::<MacAddr>().unwrap().0[5], 1);
        for bad in [
            "",
            "0a:58:0a:16:00",
            "0a:58:0a:16:00:05:06",
            "0a:58:0a:16:00:5",
            "zz:58:0a:16:00:05",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn link_ids_convert_and_print() {
        assert_eq!(LinkId::from(3), LinkId::Index(3));
        assert_eq!(LinkId::from("eth0").to_string(), "eth0");
        assert_eq!(LinkId::from(3).to_string(), "index 3");
        assert!(check_ifname("sixteen-chars-xx").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("fifteen-chars-x").is_ok());
    }

    #[test]
    fn fresh_netns_has_only_a_down_lo() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            let links = nl.list_links().unwrap();
            assert_eq!(links.len(), 1, "{links:?}");
            let lo = &links[0];
            assert_eq!(lo.name, "lo");
            assert!(lo.is_loopback());
            assert!(!lo.is_up());
            assert_eq!(lo.mac, Some(MacAddr::default()));
            assert_eq!(lo.kind, None);
            assert_eq!(lo.master, None);
            assert_eq!(nl.get_link("lo").unwrap().as_ref(), Some(lo));
            assert_eq!(nl.get_link(lo.index).unwrap().as_ref(), Some(lo));
        });
    }

    #[test]
    fn set_lo_up_and_down() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            nl.set_link_up("lo").unwrap();
            assert!(nl.get_link("lo").unwrap().unwrap().is_up());
            // Idempotent, like `ip link set lo up`.
            nl.set_link_up("lo").unwrap();
            let index = nl.get_link("lo").unwrap().unwrap().index;
            nl.set_link_down(index).unwrap();
            assert!(!nl.get_link("lo").unwrap().unwrap().is_up());
        });
    }

    #[test]
    fn missing_links_are_none_or_not_found() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            assert_eq!(nl.get_link("nosuch0").unwrap(), None);
            assert_eq!(nl.get_link(4242).unwrap(), None);
            let err = nl.set_link_up("nosuch0").unwrap_err();
            assert!(err.is_not_found(), "{err:?}");
            assert!(
                err.to_string().starts_with("set link nosuch0 up: "),
                "{err}"
            );
            assert!(!nl.delete_link("nosuch0").unwrap());
            assert!(!nl.delete_link(4242).unwrap());
            let err = nl.get_link("sixteen-chars-xx").unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        });
    }

    #[test]
    fn links_are_created_once_and_deleted() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            nl.create_link_of_kind("br0", "bridge").unwrap();
            let link = nl.get_link("br0").unwrap().unwrap();
            assert_eq!(link.kind.as_deref(), Some("bridge"));
            assert!(!link.is_up());
            assert!(!link.is_loopback());
            assert!(link.mac.is_some());
            let err = nl.create_link_of_kind("br0", "bridge").unwrap_err();
            assert!(err.is_exists(), "{err:?}");
            assert_eq!(nl.list_links().unwrap().len(), 2);
            assert!(nl.delete_link(link.index).unwrap());
            assert!(!nl.delete_link("br0").unwrap());
            assert_eq!(nl.get_link("br0").unwrap(), None);

            let err = nl.create_link_of_kind("x0", "no-such-kind").unwrap_err();
            assert!(
                err.to_string().starts_with("create no-such-kind link x0: "),
                "{err}"
            );
        });
    }

    #[test]
    fn kernel_refusals_carry_errno() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            // lo cannot be deleted.
            let err = nl.delete_link("lo").unwrap_err();
            assert!(err.errno().is_some(), "{err:?}");
            assert!(err.to_string().starts_with("delete link lo: "), "{err}");
        });
    }
}
