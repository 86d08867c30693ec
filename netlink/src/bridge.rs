//! Linux bridges: creating them, VLAN filtering, port options (hairpin, isolation,
//! learning) and the VLANs of ports and of the bridge itself.

use std::ops::RangeInclusive;

use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort,
    InfoData, InfoKind, InfoPortData, InfoPortKind, LinkAttribute, LinkExtentMask, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::link::{LinkId, MacAddr, check_ifname};

/// The highest VLAN ID a bridge takes (4095 is reserved).
pub const MAX_VLAN_ID: u16 = 4094;

/// Options of a new bridge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeOptions {
    /// MTU; the kernel default (1500) if `None`. Until it is set again after creation, the
    /// kernel lowers a bridge's MTU to its smallest port's.
    pub mtu: Option<u32>,
    /// `vlan_filtering 1`.
    pub vlan_filtering: bool,
    /// Address; if `None` the bridge takes a random one and then follows its ports.
    pub mac: Option<MacAddr>,
}

/// Options of a bridge port to change; `None` leaves an option as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortOptions {
    /// Hairpin mode: frames may leave through the port they came in by.
    pub hairpin: Option<bool>,
    /// Isolated ports cannot talk to each other, only to non-isolated ports.
    pub isolated: Option<bool>,
    /// Learn source MACs on this port.
    pub learning: Option<bool>,
}

/// The options of a bridge port, as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BridgePortInfo {
    pub hairpin: bool,
    pub isolated: bool,
    pub learning: bool,
}

impl BridgePortInfo {
    pub(crate) fn from_attributes(attrs: &[InfoBridgePort]) -> BridgePortInfo {
        let mut info = BridgePortInfo::default();
        for attr in attrs {
            match attr {
                InfoBridgePort::HairpinMode(on) => info.hairpin = *on,
                InfoBridgePort::Isolated(on) => info.isolated = *on,
                InfoBridgePort::Learning(on) => info.learning = *on,
                _ => {}
            }
        }
        info
    }
}

/// How a VLAN is set on a port (or on the bridge itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BridgeVlanFlags {
    /// Untagged frames arriving on the port belong to this VLAN (one per port).
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

/// A VLAN a bridge port (or the bridge itself) is a member of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// Whom a VLAN request is for: a port (handled by its bridge, `master`) or the bridge
/// device itself (`self`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VlanTarget {
    Port,
    Bridge,
}

/// Checks a VLAN range: IDs 1 to 4094, in order, PVID only for a single ID.
fn check_vids(vids: &RangeInclusive<u16>, pvid: bool) -> Result<()> {
    let (start, end) = (*vids.start(), *vids.end());
    if start == 0 || end > MAX_VLAN_ID || start > end {
        return Err(Error::InvalidArgument(format!(
            "invalid VLAN range {start}-{end}: IDs must be 1 to {MAX_VLAN_ID}, in order"
        )));
    }
    if pvid && start != end {
        return Err(Error::InvalidArgument(format!(
            "invalid VLAN range {start}-{end}: only a single VLAN can be the PVID"
        )));
    }
    Ok(())
}

fn vids_text(vids: &RangeInclusive<u16>) -> String {
    if vids.start() == vids.end() {
        format!("vid {}", vids.start())
    } else {
        format!("vid {}-{}", vids.start(), vids.end())
    }
}

/// An AF_BRIDGE link message for `index` whose IFLA_AF_SPEC carries `vids` (one entry, or
/// a RANGE_BEGIN/RANGE_END pair), as `bridge vlan add|del` sends it.
fn vlan_message(
    index: u32,
    target: VlanTarget,
    vids: &RangeInclusive<u16>,
    flags: BridgeVlanInfoFlags,
) -> LinkMessage {
    let mut spec = Vec::with_capacity(3);
    if target == VlanTarget::Bridge {
        spec.push(AfSpecBridge::Flags(BridgeFlag::LowerDev));
    }
    let (start, end) = (*vids.start(), *vids.end());
    if start == end {
        spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid: start }));
    } else {
        spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
            flags: flags | BridgeVlanInfoFlags::RangeBegin,
            vid: start,
        }));
        spec.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
            flags: flags | BridgeVlanInfoFlags::RangeEnd,
            vid: end,
        }));
    }
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::AfSpecBridge(spec));
    msg
}

/// The VLANs of an AF_BRIDGE IFLA_AF_SPEC, with compressed ranges expanded.
fn vlans_of(spec: &[AfSpecBridge]) -> Result<Vec<BridgeVlan>> {
    let mut vlans = Vec::new();
    let mut range_start = None;
    for attr in spec {
        let AfSpecBridge::VlanInfo(info) = attr else {
            continue;
        };
        let entry = |vid| BridgeVlan {
            vid,
            pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
            untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
        };
        if info.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
            range_start = Some(info.vid);
        } else if info.flags.contains(BridgeVlanInfoFlags::RangeEnd) {
            let start = range_start.take().ok_or_else(|| {
                Error::protocol(format!("VLAN range end {} without a start", info.vid))
            })?;
            vlans.extend((start..=info.vid).map(entry));
        } else {
            vlans.push(entry(info.vid));
        }
    }
    Ok(vlans)
}

impl Netlink {
    /// `ip link add NAME [mtu M] [address A] type bridge [vlan_filtering 1]`. Fails with
    /// EEXIST ([`Error::is_exists`]) if the name is taken, whatever kind of link has it,
    /// and with EOPNOTSUPP for `vlan_filtering` on a kernel built without
    /// CONFIG_BRIDGE_VLAN_FILTERING (this development machine's). The bridge is down.
    pub fn create_bridge(&mut self, name: &str, opts: &BridgeOptions) -> Result<()> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        if let Some(mtu) = opts.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = opts.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if opts.vlan_filtering {
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::VlanFiltering(true),
            ])));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        self.create_link(msg)
            .map_err(|e| e.during(format!("create bridge {name}")))
    }

    /// `ip link set BRIDGE type bridge vlan_filtering 0|1`. Sent as RTM_NEWLINK without
    /// NLM_F_CREATE: RTM_SETLINK ignores bridge options (netavark's finding, which `ip`
    /// confirms). EOPNOTSUPP if the link is not a bridge or the kernel lacks VLAN
    /// filtering (even to turn it off).
    pub fn set_vlan_filtering(&mut self, bridge: impl Into<LinkId>, on: bool) -> Result<()> {
        let id = bridge.into();
        self.change_link(&id, |msg| {
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
            ]));
        })
        .map_err(|e| e.during(format!("set bridge {id} vlan_filtering {}", u8::from(on))))
    }

    /// Whether VLAN filtering is on for `bridge`: `None` if the link is not a bridge,
    /// a not-found error if it does not exist.
    pub fn vlan_filtering(&mut self, bridge: impl Into<LinkId>) -> Result<Option<bool>> {
        let id = bridge.into();
        match self.get_link(id.clone())? {
            Some(link) => Ok(link.vlan_filtering),
            None => {
                Err(Error::kernel(libc::ENODEV, None).during(format!("get vlan_filtering of {id}")))
            }
        }
    }

    /// `ip link set PORT type bridge_slave [hairpin on|off] [isolated on|off]
    /// [learning on|off]`: one RTM_NEWLINK whose IFLA_INFO_SLAVE_DATA the port's bridge
    /// applies (the same kernel function as `bridge link set`'s AF_BRIDGE IFLA_PROTINFO,
    /// and the same attributes [`Netlink::bridge_port`] reads back). Options left `None`
    /// are not sent; with none at all, nothing is sent. EOPNOTSUPP if the link is not a
    /// bridge port.
    pub fn set_bridge_port(&mut self, port: u32, opts: &BridgePortOptions) -> Result<()> {
        let mut attrs = Vec::with_capacity(3);
        if let Some(on) = opts.hairpin {
            attrs.push(InfoBridgePort::HairpinMode(on));
        }
        if let Some(on) = opts.isolated {
            attrs.push(InfoBridgePort::Isolated(on));
        }
        if let Some(on) = opts.learning {
            attrs.push(InfoBridgePort::Learning(on));
        }
        if attrs.is_empty() {
            return Ok(());
        }
        self.change_link(&LinkId::Index(port), |msg| {
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(attrs)),
            ]));
        })
        .map_err(|e| e.during(format!("set bridge port index {port} {opts:?}")))
    }

    /// The port options of `port`: `None` if the link is not a bridge port, a not-found
    /// error if it does not exist. One GETLINK: the kernel adds the port's options to
    /// the link message.
    pub fn bridge_port(&mut self, port: u32) -> Result<Option<BridgePortInfo>> {
        match self.get_link(port)? {
            Some(link) => Ok(link.bridge_port),
            None => {
                Err(Error::kernel(libc::ENODEV, None)
                    .during(format!("get bridge port index {port}")))
            }
        }
    }

    /// `bridge vlan add dev PORT vid V[-W] [pvid] [untagged]`. The bridge must have VLAN
    /// filtering on for the VLANs to take effect (they are accepted either way).
    pub fn add_bridge_vlan(
        &mut self,
        port: u32,
        vids: RangeInclusive<u16>,
        flags: BridgeVlanFlags,
    ) -> Result<()> {
        self.change_vlans(true, port, VlanTarget::Port, vids, flags)
    }

    /// `bridge vlan add dev BRIDGE vid V[-W] [pvid] [untagged] self`: the bridge device's
    /// own membership, for a gateway address on the bridge in a VLAN.
    #[cfg(test)]
    pub(crate) fn add_bridge_self_vlan(
        &mut self,
        bridge: u32,
        vids: RangeInclusive<u16>,
        flags: BridgeVlanFlags,
    ) -> Result<()> {
        self.change_vlans(true, bridge, VlanTarget::Bridge, vids, flags)
    }

    /// `bridge vlan del dev PORT vid V[-W]`. Removing a VLAN the port is not a member of
    /// is not an error (the kernel ignores it).
    pub fn del_bridge_vlan(&mut self, port: u32, vids: RangeInclusive<u16>) -> Result<()> {
        self.change_vlans(
            false,
            port,
            VlanTarget::Port,
            vids,
            BridgeVlanFlags::default(),
        )
    }

    /// `bridge vlan del dev BRIDGE vid V[-W] self`.
    #[cfg(test)]
    pub(crate) fn del_bridge_self_vlan(
        &mut self,
        bridge: u32,
        vids: RangeInclusive<u16>,
    ) -> Result<()> {
        self.change_vlans(
            false,
            bridge,
            VlanTarget::Bridge,
            vids,
            BridgeVlanFlags::default(),
        )
    }

    fn change_vlans(
        &mut self,
        add: bool,
        index: u32,
        target: VlanTarget,
        vids: RangeInclusive<u16>,
        flags: BridgeVlanFlags,
    ) -> Result<()> {
        let what = || {
            format!(
                "bridge vlan {} dev index {index} {}{}{}{}",
                if add { "add" } else { "del" },
                vids_text(&vids),
                if flags.pvid { " pvid" } else { "" },
                if flags.untagged { " untagged" } else { "" },
                if target == VlanTarget::Bridge {
                    " self"
                } else {
                    ""
                },
            )
        };
        check_vids(&vids, flags.pvid)?;
        let mut info_flags = BridgeVlanInfoFlags::empty();
        if flags.pvid {
            info_flags |= BridgeVlanInfoFlags::Pvid;
        }
        if flags.untagged {
            info_flags |= BridgeVlanInfoFlags::Untagged;
        }
        let msg = vlan_message(index, target, &vids, info_flags);
        // AF_BRIDGE RTM_SETLINK / RTM_DELLINK go to the bridge's setlink/dellink
        // handlers: they change VLANs and never create or delete the link.
        let msg = if add {
            RouteNetlinkMessage::SetLink(msg)
        } else {
            RouteNetlinkMessage::DelLink(msg)
        };
        self.request(msg, 0).map(drop).map_err(|e| e.during(what()))
    }

    /// The VLANs of a bridge port or of a bridge itself (`bridge vlan show dev DEV`), in
    /// ascending order; empty for a link that is neither, and on kernels without bridge
    /// VLAN filtering. Ports of a bridge with filtering off still have their VLANs
    /// (default: 1, PVID, untagged); they just have no effect.
    ///
    /// The kernel cannot filter this dump by link (an AF_BRIDGE GETLINK dump with a
    /// non-zero index is EINVAL), so it walks every link of the namespace; only ports
    /// and bridges answer, with their VLANs in compressed ranges.
    pub fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>> {
        let what = || format!("bridge vlan show dev index {index}");
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ExtMask(vec![
            LinkExtentMask::BrvlanCompressed,
        ]));
        let replies = self
            .dump(RouteNetlinkMessage::GetLink(msg))
            .map_err(|e| e.during(what()))?;
        let mut found = false;
        let mut vlans = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewLink(msg) = reply else {
                continue;
            };
            if msg.header.index != index {
                continue;
            }
            found = true;
            for attr in &msg.attributes {
                if let LinkAttribute::AfSpecBridge(spec) = attr {
                    vlans.extend(vlans_of(spec).map_err(|e| e.during(what()))?);
                }
            }
        }
        if !found && self.get_link(index)?.is_none() {
            return Err(Error::kernel(libc::ENODEV, None).during(what()));
        }
        vlans.sort_by_key(|v| v.vid);
        Ok(vlans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VethOptions;
    use crate::netns::NetNs;
    use crate::testutil::sandbox;

    /// Whether the kernel has bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING; this
    /// machine's kernel lacks it, the test VM's has it). Prints why a test is skipped.
    fn vlan_filtering_supported(nl: &mut Netlink) -> bool {
        let opts = BridgeOptions {
            vlan_filtering: true,
            ..BridgeOptions::default()
        };
        match nl.create_bridge("vfprobe", &opts) {
            Ok(()) => {
                nl.delete_link("vfprobe").unwrap();
                true
            }
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                test_requires::kernel_feature(false, "bridge VLAN filtering", "netlink")
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A bridge "br0" with a veth port "vh0" whose peer "eth0" is in `peer_ns`; returns
    /// (bridge index, port index).
    fn bridge_with_port(nl: &mut Netlink, peer_ns: &NetNs, vlan_filtering: bool) -> (u32, u32) {
        let opts = BridgeOptions {
            vlan_filtering,
            ..BridgeOptions::default()
        };
        nl.create_bridge("br0", &opts).unwrap();
        nl.create_veth("vh0", "eth0", peer_ns, &VethOptions::default())
            .unwrap();
        let br = nl.get_link("br0").unwrap().unwrap().index;
        let port = nl.get_link("vh0").unwrap().unwrap().index;
        nl.set_master(port, Some(br)).unwrap();
        (br, port)
    }

    #[test]
    fn vlan_ranges_are_checked() {
        assert!(check_vids(&(1..=4094), false).is_ok());
        assert!(check_vids(&(10..=10), true).is_ok());
        for (vids, pvid) in [
            (0..=1, false),
            (1..=4095, false),
            (RangeInclusive::new(20, 10), false),
            (10..=11, true),
        ] {
            let err = check_vids(&vids, pvid).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{vids:?}: {err:?}"
            );
        }
    }

    #[test]
    fn vlan_messages_use_ranges_and_self() {
        let msg = vlan_message(7, VlanTarget::Port, &(5..=5), BridgeVlanInfoFlags::Pvid);
        assert_eq!(msg.header.interface_family, AddressFamily::Bridge);
        assert_eq!(msg.header.index, 7);
        assert_eq!(
            msg.attributes,
            [LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
                BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid,
                    vid: 5
                }
            )])]
        );
        let msg = vlan_message(
            3,
            VlanTarget::Bridge,
            &(10..=20),
            BridgeVlanInfoFlags::empty(),
        );
        let LinkAttribute::AfSpecBridge(spec) = &msg.attributes[0] else {
            panic!("{msg:?}");
        };
        assert_eq!(spec[0], AfSpecBridge::Flags(BridgeFlag::LowerDev));
        assert_eq!(vlans_of(spec).unwrap().len(), 11);
    }

    #[test]
    fn compressed_vlan_ranges_expand() {
        let info = |flags, vid| AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid });
        let spec = [
            info(BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged, 1),
            info(BridgeVlanInfoFlags::RangeBegin, 100),
            info(BridgeVlanInfoFlags::RangeEnd, 102),
        ];
        let vlans = vlans_of(&spec).unwrap();
        assert_eq!(
            vlans,
            [
                BridgeVlan {
                    vid: 1,
                    pvid: true,
                    untagged: true
                },
                BridgeVlan {
                    vid: 100,
                    pvid: false,
                    untagged: false
                },
                BridgeVlan {
                    vid: 101,
                    pvid: false,
                    untagged: false
                },
                BridgeVlan {
                    vid: 102,
                    pvid: false,
                    untagged: false
                },
            ]
        );
        assert!(vlans_of(&[info(BridgeVlanInfoFlags::RangeEnd, 3)]).is_err());
    }

    #[test]
    fn create_bridge_with_mtu_and_mac() {
        let Some((_ns, mut nl)) = sandbox() else {
            return;
        };
        let mac: MacAddr = "02:00:00:00:00:b1".parse().unwrap();
        let opts = BridgeOptions {
            mtu: Some(1400),
            vlan_filtering: false,
            mac: Some(mac),
        };
        nl.create_bridge("cni0", &opts).unwrap();
        let br = nl.get_link("cni0").unwrap().unwrap();
        assert_eq!(br.kind.as_deref(), Some("bridge"));
        assert_eq!(br.mtu, 1400);
        assert_eq!(br.mac, Some(mac));
        assert_eq!(br.vlan_filtering, Some(false));
        assert_eq!(nl.vlan_filtering("cni0").unwrap(), Some(false));
        assert_eq!(br.bridge_port, None);
        assert!(!br.is_up());

        let err = nl.create_bridge("cni0", &opts).unwrap_err();
        assert!(err.is_exists(), "{err:?}");
        assert!(err.to_string().starts_with("create bridge cni0: "), "{err}");
        // A name taken by another kind of link is EEXIST too.
        let err = nl
            .create_bridge("lo", &BridgeOptions::default())
            .unwrap_err();
        assert!(err.is_exists(), "{err:?}");

        assert_eq!(nl.vlan_filtering("lo").unwrap(), None);
        assert!(nl.vlan_filtering("nosuch0").unwrap_err().is_not_found());
    }

    #[test]
    fn bridge_port_options_are_set_and_read_back() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        let peer_ns = NetNs::new_unnamed().unwrap();
        let (br, port) = bridge_with_port(&mut nl, &peer_ns, false);
        let link = nl.get_link(port).unwrap().unwrap();
        assert_eq!(link.master, Some(br));
        // Kernel defaults of a new port.
        let info = nl.bridge_port(port).unwrap().unwrap();
        assert_eq!(
            info,
            BridgePortInfo {
                hairpin: false,
                isolated: false,
                learning: true
            }
        );
        assert_eq!(link.bridge_port, Some(info));

        let opts = BridgePortOptions {
            hairpin: Some(true),
            isolated: Some(true),
            learning: Some(false),
        };
        nl.set_bridge_port(port, &opts).unwrap();
        let info = nl.bridge_port(port).unwrap().unwrap();
        assert_eq!(
            info,
            BridgePortInfo {
                hairpin: true,
                isolated: true,
                learning: false
            }
        );
        // Only the options given change.
        nl.set_bridge_port(
            port,
            &BridgePortOptions {
                isolated: Some(false),
                ..BridgePortOptions::default()
            },
        )
        .unwrap();
        let info = nl.bridge_port(port).unwrap().unwrap();
        assert!(info.hairpin && !info.isolated && !info.learning, "{info:?}");
        // Nothing to set: no request, no error.
        nl.set_bridge_port(port, &BridgePortOptions::default())
            .unwrap();

        // The bridge itself and non-ports have no port options.
        assert_eq!(nl.bridge_port(br).unwrap(), None);
        nl.set_master(port, None).unwrap();
        assert_eq!(nl.get_link(port).unwrap().unwrap().master, None);
        assert_eq!(nl.bridge_port(port).unwrap(), None);
        let err = nl.set_bridge_port(port, &opts).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err:?}");
        assert!(nl.bridge_port(4242).unwrap_err().is_not_found());
        let err = nl.set_bridge_port(4242, &opts).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn vlan_filtering_is_toggled_on_an_existing_bridge() {
        let Some((_ns, mut nl)) = sandbox() else {
            return;
        };
        if !vlan_filtering_supported(&mut nl) {
            return;
        }
        nl.create_bridge("br0", &BridgeOptions::default()).unwrap();
        assert_eq!(nl.vlan_filtering("br0").unwrap(), Some(false));
        nl.set_vlan_filtering("br0", true).unwrap();
        assert_eq!(nl.vlan_filtering("br0").unwrap(), Some(true));
        nl.set_vlan_filtering("br0", false).unwrap();
        assert_eq!(nl.vlan_filtering("br0").unwrap(), Some(false));

        let opts = BridgeOptions {
            vlan_filtering: true,
            ..BridgeOptions::default()
        };
        nl.create_bridge("br1", &opts).unwrap();
        assert_eq!(
            nl.get_link("br1").unwrap().unwrap().vlan_filtering,
            Some(true)
        );

        let err = nl.set_vlan_filtering("lo", true).unwrap_err();
        assert!(err.errno().is_some(), "{err:?}");
        assert!(
            nl.set_vlan_filtering("nosuch0", true)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn port_vlans_access_and_trunk() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        if !vlan_filtering_supported(&mut nl) {
            return;
        }
        let peer_ns = NetNs::new_unnamed().unwrap();
        let (br, port) = bridge_with_port(&mut nl, &peer_ns, false);
        // A new port is in the default VLAN 1, PVID and untagged, filtering or not.
        let default = BridgeVlan {
            vid: 1,
            pvid: true,
            untagged: true,
        };
        assert_eq!(nl.bridge_vlans(port).unwrap(), [default]);
        // The reference plugin turns filtering on for an existing bridge.
        nl.set_vlan_filtering(br, true).unwrap();
        assert_eq!(nl.bridge_vlans(port).unwrap(), [default]);

        // The reference plugin's access VLAN (vlan: 100), trunk (vlanTrunk: 200-203,
        // 300) and removal of the default VLAN (preserveDefaultVlan: false).
        let access = BridgeVlanFlags {
            pvid: true,
            untagged: true,
        };
        nl.add_bridge_vlan(port, 100..=100, access).unwrap();
        nl.add_bridge_vlan(port, 200..=203, BridgeVlanFlags::default())
            .unwrap();
        nl.add_bridge_vlan(port, 300..=300, BridgeVlanFlags::default())
            .unwrap();
        nl.del_bridge_vlan(port, 1..=1).unwrap();
        let tagged = |vid| BridgeVlan {
            vid,
            pvid: false,
            untagged: false,
        };
        let mut want = vec![BridgeVlan {
            vid: 100,
            pvid: true,
            untagged: true,
        }];
        want.extend((200..=203).chain([300]).map(tagged));
        assert_eq!(nl.bridge_vlans(port).unwrap(), want);

        // Deleting part of a range, and a VLAN the port is not in.
        nl.del_bridge_vlan(port, 201..=202).unwrap();
        nl.del_bridge_vlan(port, 999..=999).unwrap();
        let vids: Vec<u16> = nl
            .bridge_vlans(port)
            .unwrap()
            .iter()
            .map(|v| v.vid)
            .collect();
        assert_eq!(vids, [100, 200, 203, 300]);

        // The port's VLAN requests went to the bridge: the port still exists.
        assert_eq!(nl.get_link(port).unwrap().unwrap().master, Some(br));

        // Bad ranges never reach the kernel.
        let err = nl.add_bridge_vlan(port, 5..=6, access).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains("5-6"), "{err}");
        assert!(nl.bridge_vlans(4242).unwrap_err().is_not_found());
        let err = nl
            .add_bridge_vlan(4242, 5..=5, BridgeVlanFlags::default())
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn bridge_self_vlans() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        if !vlan_filtering_supported(&mut nl) {
            return;
        }
        let peer_ns = NetNs::new_unnamed().unwrap();
        let (br, port) = bridge_with_port(&mut nl, &peer_ns, true);
        let own = nl.bridge_vlans(br).unwrap();
        assert_eq!(
            own,
            [BridgeVlan {
                vid: 1,
                pvid: true,
                untagged: true
            }]
        );
        nl.add_bridge_self_vlan(br, 100..=100, BridgeVlanFlags::default())
            .unwrap();
        nl.add_bridge_self_vlan(br, 10..=12, BridgeVlanFlags::default())
            .unwrap();
        let vids: Vec<u16> = nl.bridge_vlans(br).unwrap().iter().map(|v| v.vid).collect();
        assert_eq!(vids, [1, 10, 11, 12, 100]);
        nl.del_bridge_self_vlan(br, 10..=12).unwrap();
        let vids: Vec<u16> = nl.bridge_vlans(br).unwrap().iter().map(|v| v.vid).collect();
        assert_eq!(vids, [1, 100]);
        // The port's VLANs did not change.
        assert_eq!(nl.bridge_vlans(port).unwrap().len(), 1);
        // "self" is refused on a port that is not a bridge device itself.
        let err = nl
            .add_bridge_self_vlan(port, 5..=5, BridgeVlanFlags::default())
            .unwrap_err();
        assert!(err.errno().is_some(), "{err:?}");
    }
}
