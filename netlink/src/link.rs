//! Links: looking them up, listing, bringing them up and down, deleting, and changing
//! their generic attributes (master, MTU, MAC, promiscuity, name, namespace).

use std::fmt;
use std::str::FromStr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InetDevConf, InfoBridge, InfoData, InfoIpVlan, InfoMacVlan,
    InfoPortData, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, State,
};

use crate::bridge::BridgePortInfo;
use crate::error::{Error, Result};
use crate::handle::Netlink;

/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// `IFF_UP`.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;
/// `IFF_PROMISC`: promiscuous mode as set by the user (`ip link set DEV promisc on`);
/// the kernel's own promiscuity counter (a bridge port's) does not show here.
pub const IFF_PROMISC: u32 = libc::IFF_PROMISC as u32;
/// `IFF_ALLMULTI`: receive all multicast packets (`ip link set DEV allmulticast on`).
pub const IFF_ALLMULTI: u32 = libc::IFF_ALLMULTI as u32;

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

/// IPv4 per-link settings [`Netlink::enable_ipv4_conf`] can turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Conf {
    /// `arp_notify`: announce the link's addresses when it comes up or changes MAC.
    ArpNotify,
    /// `route_localnet`: route 127.0.0.0/8 sources and destinations on this link.
    RouteLocalnet,
    /// `forwarding` of this link.
    Forwarding,
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

impl MacAddr {
    /// Whether an interface can have it: not multicast (nor broadcast), not all zeros.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && *self != MacAddr::default()
    }

    /// A random unicast, locally administered address.
    pub fn random_local() -> Result<MacAddr> {
        let mut mac = [0u8; 6];
        random_bytes(&mut mac)?;
        mac[0] = (mac[0] & 0xfe) | 0x02;
        Ok(MacAddr(mac))
    }
}

/// `<prefix><8 hex digits>`, e.g. `veth1a2b3c4d` as the reference names host ends: a name
/// that is free with overwhelming likelihood (callers still handle EEXIST).
pub fn random_link_name(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 4];
    random_bytes(&mut bytes)?;
    Ok(format!("{prefix}{:08x}", u32::from_be_bytes(bytes)))
}

fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::InvalidArgument(format!("read /dev/urandom: {e}")))
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
    /// `IFLA_TXQLEN`: the transmit queue length.
    pub txqlen: u32,
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
    /// `IFLA_OPERSTATE` (RFC 2863): whether the link can pass packets.
    pub oper_state: OperState,
    /// For a bridge: whether VLAN filtering is on.
    pub vlan_filtering: Option<bool>,
    /// For a macvlan: its mode.
    pub macvlan_mode: Option<MacvlanMode>,
    /// For an ipvlan: its mode.
    pub ipvlan_mode: Option<IpvlanMode>,
    /// For a bridge port: its port options (the `IFLA_INFO_SLAVE_DATA` the kernel adds to
    /// every port's link message).
    pub bridge_port: Option<BridgePortInfo>,
    /// `IFLA_IFALIAS`: the link's free-text alias (`ip link set DEV alias TEXT`).
    pub alias: Option<String>,
}

/// `IFLA_OPERSTATE` values (`IF_OPER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OperState {
    #[default]
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
    Other(u8),
}

impl From<State> for OperState {
    fn from(state: State) -> OperState {
        match state {
            State::Unknown => OperState::Unknown,
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            State::Other(v) => OperState::Other(v),
            _ => OperState::Unknown,
        }
    }
}

impl fmt::Display for OperState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperState::Unknown => f.write_str("UNKNOWN"),
            OperState::NotPresent => f.write_str("NOTPRESENT"),
            OperState::Down => f.write_str("DOWN"),
            OperState::LowerLayerDown => f.write_str("LOWERLAYERDOWN"),
            OperState::Testing => f.write_str("TESTING"),
            OperState::Dormant => f.write_str("DORMANT"),
            OperState::Up => f.write_str("UP"),
            OperState::Other(v) => write!(f, "{v}"),
        }
    }
}

/// The mode of a macvlan (`MACVLAN_MODE_*`), as `ip link add ... type macvlan mode M`
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
    Source,
    Other(u32),
}

impl MacvlanMode {
    /// The kernel's `MACVLAN_MODE_*` value.
    pub fn to_raw(self) -> u32 {
        match self {
            MacvlanMode::Private => 1,
            MacvlanMode::Vepa => 2,
            MacvlanMode::Bridge => 4,
            MacvlanMode::Passthru => 8,
            MacvlanMode::Source => 16,
            MacvlanMode::Other(v) => v,
        }
    }

    pub fn from_raw(raw: u32) -> MacvlanMode {
        match raw {
            1 => MacvlanMode::Private,
            2 => MacvlanMode::Vepa,
            4 => MacvlanMode::Bridge,
            8 => MacvlanMode::Passthru,
            16 => MacvlanMode::Source,
            v => MacvlanMode::Other(v),
        }
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacvlanMode::Private => f.write_str("private"),
            MacvlanMode::Vepa => f.write_str("vepa"),
            MacvlanMode::Bridge => f.write_str("bridge"),
            MacvlanMode::Passthru => f.write_str("passthru"),
            MacvlanMode::Source => f.write_str("source"),
            MacvlanMode::Other(v) => write!(f, "{v}"),
        }
    }
}

impl FromStr for MacvlanMode {
    type Err = Error;

    /// Parses the names `ip` uses: "private", "vepa", "bridge", "passthru", "source".
    fn from_str(s: &str) -> Result<MacvlanMode> {
        Ok(match s {
            "private" => MacvlanMode::Private,
            "vepa" => MacvlanMode::Vepa,
            "bridge" => MacvlanMode::Bridge,
            "passthru" => MacvlanMode::Passthru,
            "source" => MacvlanMode::Source,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown macvlan mode {s:?}"
                )));
            }
        })
    }
}

impl From<netlink_packet_route::link::MacVlanMode> for MacvlanMode {
    fn from(mode: netlink_packet_route::link::MacVlanMode) -> MacvlanMode {
        MacvlanMode::from_raw(mode.into())
    }
}

/// The mode of an ipvlan (`IPVLAN_MODE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    L2,
    L3,
    L3s,
    Other(u16),
}

impl IpvlanMode {
    /// The kernel's `IPVLAN_MODE_*` value.
    pub fn to_raw(self) -> u16 {
        match self {
            IpvlanMode::L2 => 0,
            IpvlanMode::L3 => 1,
            IpvlanMode::L3s => 2,
            IpvlanMode::Other(v) => v,
        }
    }

    pub fn from_raw(raw: u16) -> IpvlanMode {
        match raw {
            0 => IpvlanMode::L2,
            1 => IpvlanMode::L3,
            2 => IpvlanMode::L3s,
            v => IpvlanMode::Other(v),
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvlanMode::L2 => f.write_str("l2"),
            IpvlanMode::L3 => f.write_str("l3"),
            IpvlanMode::L3s => f.write_str("l3s"),
            IpvlanMode::Other(v) => write!(f, "{v}"),
        }
    }
}

impl FromStr for IpvlanMode {
    type Err = Error;

    /// Parses "l2", "l3", "l3s".
    fn from_str(s: &str) -> Result<IpvlanMode> {
        Ok(match s {
            "l2" => IpvlanMode::L2,
            "l3" => IpvlanMode::L3,
            "l3s" => IpvlanMode::L3s,
            _ => {
                return Err(Error::InvalidArgument(format!("unknown ipvlan mode {s:?}")));
            }
        })
    }
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }

    /// Promiscuous mode as set by the user ([`IFF_PROMISC`]).
    pub fn is_promisc(&self) -> bool {
        self.flags & IFF_PROMISC != 0
    }

    /// Whether the kernel reports the link operationally up (`IFLA_OPERSTATE` UP): for a
    /// veth, both ends are up; for a bridge, at least one port forwards.
    #[cfg(test)]
    pub(crate) fn oper_up(&self) -> bool {
        self.oper_state == OperState::Up
    }

    /// For a veth: the peer's ifindex, in the namespace `link_netnsid` names (this one
    /// when `link_netnsid` is `None`).
    pub fn veth_peer_index(&self) -> Option<u32> {
        if self.kind.as_deref() == Some("veth") {
            self.link
        } else {
            None
        }
    }

    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            flags: msg.header.flags.bits(),
            mtu: 0,
            txqlen: 0,
            mac: None,
            kind: None,
            master: None,
            link: None,
            link_netnsid: None,
            oper_state: OperState::Unknown,
            vlan_filtering: None,
            macvlan_mode: None,
            ipvlan_mode: None,
            bridge_port: None,
            alias: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias),
                LinkAttribute::TxQueueLen(len) => link.txqlen = len,
                LinkAttribute::Address(bytes) => {
                    link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr);
                }
                LinkAttribute::Controller(index) => link.master = Some(index),
                LinkAttribute::Link(index) => link.link = Some(index),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(id),
                LinkAttribute::OperState(state) => link.oper_state = state.into(),
                LinkAttribute::LinkInfo(infos) => link.read_link_info(infos),
                _ => {}
            }
        }
        link
    }

    /// Reads `IFLA_LINKINFO`: the kind, the kind's data we care about, and the port data
    /// the master adds.
    fn read_link_info(&mut self, infos: Vec<LinkInfo>) {
        for info in infos {
            match info {
                LinkInfo::Kind(kind) => self.kind = Some(kind.to_string()),
                LinkInfo::Data(InfoData::Bridge(attrs)) => {
                    self.vlan_filtering = Some(
                        attrs
                            .iter()
                            .any(|a| matches!(a, InfoBridge::VlanFiltering(true))),
                    );
                }
                LinkInfo::Data(InfoData::MacVlan(attrs)) => {
                    self.macvlan_mode = attrs.into_iter().find_map(|a| match a {
                        InfoMacVlan::Mode(mode) => Some(mode.into()),
                        _ => None,
                    });
                }
                LinkInfo::Data(InfoData::IpVlan(attrs)) => {
                    self.ipvlan_mode = attrs.into_iter().find_map(|a| match a {
                        InfoIpVlan::Mode(mode) => Some(IpvlanMode::from_raw(mode.into())),
                        _ => None,
                    });
                }
                LinkInfo::PortData(InfoPortData::BridgePort(attrs)) => {
                    self.bridge_port = Some(BridgePortInfo::from_attributes(&attrs));
                }
                _ => {}
            }
        }
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

    /// `ip link set DEV master BRIDGE` with `Some(bridge_index)`, `ip link set DEV nomaster`
    /// with `None`.
    pub fn set_master(&mut self, id: impl Into<LinkId>, master: Option<u32>) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.attributes
                .push(LinkAttribute::Controller(master.unwrap_or(0)));
        })
        .map_err(|e| match master {
            Some(m) => e.during(format!("set link {id} master index {m}")),
            None => e.during(format!("set link {id} nomaster")),
        })
    }

    /// `ip link set DEV mtu MTU`.
    pub fn set_mtu(&mut self, id: impl Into<LinkId>, mtu: u32) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| msg.attributes.push(LinkAttribute::Mtu(mtu)))
            .map_err(|e| e.during(format!("set link {id} mtu {mtu}")))
    }

    /// `ip link set DEV address MAC`. On a bridge this also pins the address: the bridge
    /// no longer takes over the lowest MAC of its ports.
    pub fn set_mac(&mut self, id: impl Into<LinkId>, mac: MacAddr) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        })
        .map_err(|e| e.during(format!("set link {id} address {mac}")))
    }

    /// `ip link set DEV promisc on|off`.
    pub fn set_promisc(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.header.flags = if on {
                LinkFlags::Promisc
            } else {
                LinkFlags::empty()
            };
            msg.header.change_mask = LinkFlags::Promisc;
        })
        .map_err(|e| {
            e.during(format!(
                "set link {id} promisc {}",
                if on { "on" } else { "off" }
            ))
        })
    }

    /// Turns on IPv4 settings of a link over netlink (`IFLA_INET_CONF`), the equivalent of
    /// writing 1 to `/proc/sys/net/ipv4/conf/DEV/<key>`, without the /proc/sys lookup that
    /// gets slower with every network namespace on the machine.
    pub fn enable_ipv4_conf(&mut self, id: impl Into<LinkId>, keys: &[Ipv4Conf]) -> Result<()> {
        let id = id.into();
        let mut conf = InetDevConf::default();
        for key in keys {
            match key {
                Ipv4Conf::ArpNotify => conf.arp_notify = 1,
                Ipv4Conf::RouteLocalnet => conf.route_localnet = 1,
                Ipv4Conf::Forwarding => conf.forwarding = 1,
            }
        }
        self.change_link(&id, |msg| {
            msg.attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                    AfSpecInet::DevConfRequest(conf),
                ])]))
        })
        .map_err(|e| e.during(format!("set ipv4 conf {keys:?} on link {id}")))
    }

    /// `ip link set DEV allmulticast on|off`.
    pub fn set_allmulti(&mut self, id: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.header.flags = if on {
                LinkFlags::Allmulti
            } else {
                LinkFlags::empty()
            };
            msg.header.change_mask = LinkFlags::Allmulti;
        })
        .map_err(|e| {
            e.during(format!(
                "set link {id} allmulticast {}",
                if on { "on" } else { "off" }
            ))
        })
    }

    /// `ip link set DEV txqueuelen N`.
    pub fn set_txqlen(&mut self, id: impl Into<LinkId>, len: u32) -> Result<()> {
        let id = id.into();
        self.change_link(&id, |msg| {
            msg.attributes.push(LinkAttribute::TxQueueLen(len))
        })
        .map_err(|e| e.during(format!("set link {id} txqueuelen {len}")))
    }

    /// `ip link set DEV name NEW`. Older kernels (6.1) refuse to rename a link that is up
    /// (EBUSY); recent ones (6.18) allow it.
    /// Naming the link by name costs one more request to find its index.
    pub fn rename_link(&mut self, id: impl Into<LinkId>, new_name: &str) -> Result<()> {
        let id = id.into();
        let what = || format!("rename link {id} to {new_name}");
        check_ifname(new_name)?;
        let index = self.resolve_index(&id).map_err(|e| e.during(what()))?;
        self.change_link(&LinkId::Index(index), |msg| {
            msg.attributes
                .push(LinkAttribute::IfName(new_name.to_owned()));
        })
        .map_err(|e| e.during(what()))
    }

    /// The ifindex of `id`: itself for an index, a lookup for a name (ENODEV if none).
    fn resolve_index(&mut self, id: &LinkId) -> Result<u32> {
        match id {
            LinkId::Index(index) => Ok(*index),
            LinkId::Name(_) => match self.get_link(id.clone())? {
                Some(link) => Ok(link.index),
                None => Err(Error::kernel(libc::ENODEV, None)),
            },
        }
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
    #[cfg(test)]
    pub(crate) fn create_link_of_kind(&mut self, name: &str, kind: &str) -> Result<()> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                netlink_packet_route::link::InfoKind::from(kind),
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

/// Whether the MAC of `ifname` was set by someone (`addr_assign_type` 3, `NET_ADDR_SET`)
/// rather than generated or inherited, read from sysfs (rtnetlink does not report it).
/// `None` when sysfs has no such device: it may show another netns than the caller's.
pub fn mac_is_set(ifname: &str) -> Option<bool> {
    if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
        return None;
    }
    let path = format!("/sys/class/net/{ifname}/addr_assign_type");
    let kind = std::fs::read_to_string(path).ok()?;
    Some(kind.trim() == "3")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VethOptions;
    use crate::testutil::{in_new_netns, sandbox};
    use netlink_packet_route::link::{InfoKind, MacVlanMode};

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

    #[test]
    fn modes_parse_and_print() {
        for mode in ["private", "vepa", "bridge", "passthru", "source"] {
            let parsed: MacvlanMode = mode.parse().unwrap();
            assert_eq!(parsed.to_string(), mode);
            assert_eq!(MacvlanMode::from_raw(parsed.to_raw()), parsed);
        }
        for mode in ["l2", "l3", "l3s"] {
            let parsed: IpvlanMode = mode.parse().unwrap();
            assert_eq!(parsed.to_string(), mode);
            assert_eq!(IpvlanMode::from_raw(parsed.to_raw()), parsed);
        }
        assert_eq!(MacvlanMode::Bridge.to_raw(), 4);
        assert_eq!(IpvlanMode::L3s.to_raw(), 2);
        assert!("L2".parse::<IpvlanMode>().is_err());
        assert!("".parse::<MacvlanMode>().is_err());
    }

    #[test]
    fn mtu_mac_and_promisc_change() {
        let Some((_ns, mut nl)) = sandbox() else {
            return;
        };
        nl.create_link_of_kind("br0", "bridge").unwrap();
        let index = nl.get_link("br0").unwrap().unwrap().index;
        nl.set_mtu("br0", 1400).unwrap();
        let mac: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        nl.set_mac(index, mac).unwrap();
        nl.set_promisc("br0", true).unwrap();
        let link = nl.get_link(index).unwrap().unwrap();
        assert_eq!(link.mtu, 1400);
        assert_eq!(link.mac, Some(mac));
        assert!(link.is_promisc());
        nl.set_promisc(index, false).unwrap();
        assert!(!nl.get_link(index).unwrap().unwrap().is_promisc());

        let err = nl.set_mtu("br0", 10).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL), "{err:?}");
        assert!(
            err.to_string().starts_with("set link br0 mtu 10: "),
            "{err}"
        );
        assert!(nl.set_mtu("nosuch0", 1400).unwrap_err().is_not_found());
        assert!(nl.set_mac(4242, mac).unwrap_err().is_not_found());
        assert!(nl.set_promisc("nosuch0", true).unwrap_err().is_not_found());
    }

    #[test]
    fn master_is_set_and_cleared() {
        let Some((ns, mut nl)) = sandbox() else {
            return;
        };
        nl.create_link_of_kind("br0", "bridge").unwrap();
        nl.create_veth("va", "vb", &ns, &VethOptions::default())
            .unwrap();
        let br = nl.get_link("br0").unwrap().unwrap().index;
        nl.set_master("va", Some(br)).unwrap();
        assert_eq!(nl.get_link("va").unwrap().unwrap().master, Some(br));
        nl.set_master("va", None).unwrap();
        assert_eq!(nl.get_link("va").unwrap().unwrap().master, None);
        // No such master.
        let err = nl.set_master("va", Some(4242)).unwrap_err();
        assert!(err.errno().is_some(), "{err:?}");
        assert!(
            nl.set_master("nosuch0", Some(br))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn links_are_renamed_when_down() {
        let Some((_ns, mut nl)) = sandbox() else {
            return;
        };
        nl.create_link_of_kind("br0", "bridge").unwrap();
        nl.create_link_of_kind("br1", "bridge").unwrap();
        let index = nl.get_link("br0").unwrap().unwrap().index;
        nl.rename_link("br0", "cni0").unwrap();
        assert_eq!(nl.get_link("br0").unwrap(), None);
        assert_eq!(nl.get_link("cni0").unwrap().unwrap().index, index);
        nl.rename_link(index, "cni1").unwrap();
        assert_eq!(nl.get_link(index).unwrap().unwrap().name, "cni1");

        let err = nl.rename_link(index, "br1").unwrap_err();
        assert!(err.is_exists(), "{err:?}");
        assert!(nl.rename_link("nosuch0", "x").unwrap_err().is_not_found());
        assert!(nl.rename_link(4242, "x").unwrap_err().is_not_found());
        let err = nl.rename_link(index, "sixteen-chars-xx").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        // Older kernels (6.1) refuse to rename a link that is up (EBUSY); recent ones
        // (6.18) allow it.
        nl.set_link_up(index).unwrap();
        if let Err(err) = nl.rename_link(index, "cni2") {
            assert_eq!(err.errno(), Some(libc::EBUSY), "{err:?}");
        }
    }

    #[test]
    fn macvlan_mode_is_reported() {
        let Some((ns, mut nl)) = sandbox() else {
            return;
        };
        // A veth end as the parent: this kernel has no dummy links.
        nl.create_veth("parent0", "peer0", &ns, &VethOptions::default())
            .unwrap();
        let parent = nl.get_link("parent0").unwrap().unwrap().index;
        for (name, mode) in [("mv0", MacVlanMode::Bridge), ("mv1", MacVlanMode::Private)] {
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::IfName(name.into()));
            msg.attributes.push(LinkAttribute::Link(parent));
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)])),
            ]));
            nl.create_link(msg).unwrap();
        }
        let mv0 = nl.get_link("mv0").unwrap().unwrap();
        assert_eq!(mv0.kind.as_deref(), Some("macvlan"));
        assert_eq!(mv0.macvlan_mode, Some(MacvlanMode::Bridge));
        assert_eq!(mv0.link, Some(parent));
        assert_eq!(mv0.ipvlan_mode, None);
        assert_eq!(mv0.vlan_filtering, None);
        assert_eq!(mv0.veth_peer_index(), None);
        let mv1 = nl.get_link("mv1").unwrap().unwrap();
        assert_eq!(mv1.macvlan_mode, Some(MacvlanMode::Private));
    }

    #[test]
    fn ipvlan_mode_is_reported() {
        let Some((ns, mut nl)) = sandbox() else {
            return;
        };
        nl.create_veth("parent0", "peer0", &ns, &VethOptions::default())
            .unwrap();
        let parent = nl.get_link("parent0").unwrap().unwrap().index;
        for (name, mode) in [("ipvl0", IpvlanMode::L3), ("ipvl1", IpvlanMode::L2)] {
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::IfName(name.into()));
            msg.attributes.push(LinkAttribute::Link(parent));
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::IpVlan),
                LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(
                    mode.to_raw().into(),
                )])),
            ]));
            match nl.create_link(msg) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                    test_requires::kernel_feature(false, "ipvlan", "netlink");
                    return;
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The mode belongs to the parent (the ipvlan "port"): the last ipvlan created on
        // it set it for both.
        let ipvl0 = nl.get_link("ipvl0").unwrap().unwrap();
        assert_eq!(ipvl0.kind.as_deref(), Some("ipvlan"));
        assert_eq!(ipvl0.ipvlan_mode, Some(IpvlanMode::L2));
        assert_eq!(ipvl0.macvlan_mode, None);
        assert_eq!(
            nl.get_link("ipvl1").unwrap().unwrap().ipvlan_mode,
            Some(IpvlanMode::L2)
        );
    }
}
