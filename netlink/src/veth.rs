//! veth pairs, created with the peer end directly inside the container's namespace.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};

use crate::error::Result;
use crate::handle::Netlink;
use crate::link::{MacAddr, check_ifname};
use crate::netns::NetNs;

/// Options of a new veth pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VethOptions {
    /// MTU of both ends; the kernel default (1500) if `None`.
    pub mtu: Option<u32>,
    /// Address of the end that stays in this namespace; random if `None`.
    pub host_mac: Option<MacAddr>,
    /// Address of the end created in the peer namespace; random if `None`.
    pub peer_mac: Option<MacAddr>,
}

impl Netlink {
    /// `ip link add HOST [mtu M] [address A] type veth peer name PEER netns NS [mtu M]
    /// [address B]`, in one request: `HOST` is created in this socket's namespace and
    /// `PEER` directly inside `peer_ns`, so no link ever needs moving or renaming.
    ///
    /// Fails with EEXIST ([`crate::Error::is_exists`]) if `HOST` exists here or `PEER`
    /// exists in `peer_ns`; nothing is created then. Both ends are down.
    pub fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_ns: &NetNs,
        opts: &VethOptions,
    ) -> Result<()> {
        check_ifname(host_name)?;
        check_ifname(peer_name)?;
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_owned()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_fd().as_raw_fd()));
        if let Some(mtu) = opts.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = opts.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        // One queue each way on both ends: the kernel otherwise creates one per CPU and
        // trims them right after, which waits for RCU (0.5 to 3 ms here).
        push_single_queue(&mut peer);

        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(host_name.to_owned()));
        if let Some(mtu) = opts.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = opts.host_mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        push_single_queue(&mut msg);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.create_link(msg).map_err(|e| {
            e.during(format!(
                "create veth {host_name} with peer {peer_name} in netns {}",
                peer_ns.path().display()
            ))
        })
    }
}

fn push_single_queue(msg: &mut LinkMessage) {
    msg.attributes.push(LinkAttribute::NumTxQueues(1));
    msg.attributes.push(LinkAttribute::NumRxQueues(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::OperState;
    use crate::testutil::{eventually, sandbox};

    #[test]
    fn peer_is_created_inside_the_other_netns() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        let peer_ns = NetNs::new_unnamed().unwrap();
        let mut in_peer = Netlink::in_netns(&peer_ns).unwrap();
        let host_mac: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        let peer_mac: MacAddr = "02:00:00:00:00:02".parse().unwrap();
        let opts = VethOptions {
            mtu: Some(1450),
            host_mac: Some(host_mac),
            peer_mac: Some(peer_mac),
        };
        nl.create_veth("veth1234", "eth0", &peer_ns, &opts).unwrap();

        let host = nl.get_link("veth1234").unwrap().unwrap();
        assert_eq!(host.kind.as_deref(), Some("veth"));
        assert_eq!(host.mtu, 1450);
        assert_eq!(host.mac, Some(host_mac));
        assert!(host.link_netnsid.is_some(), "{host:?}");
        assert_eq!(nl.get_link("eth0").unwrap(), None);

        let peer = in_peer.get_link("eth0").unwrap().unwrap();
        assert_eq!(peer.kind.as_deref(), Some("veth"));
        assert_eq!(peer.mtu, 1450);
        assert_eq!(peer.mac, Some(peer_mac));
        assert!(peer.link_netnsid.is_some(), "{peer:?}");
        // Each end names the other's ifindex (in the other namespace).
        assert_eq!(host.veth_peer_index(), Some(peer.index));
        assert_eq!(peer.veth_peer_index(), Some(host.index));
        assert_eq!(in_peer.list_links().unwrap().len(), 2);

        // Operationally up once both ends are up. One end alone has no carrier: DOWN or
        // LOWERLAYERDOWN depending on the kernel, after a moment of UNKNOWN on 6.1 (the
        // kernel's linkwatch updates the state asynchronously).
        assert!(!host.oper_up());
        nl.set_link_up(host.index).unwrap();
        assert!(eventually(|| matches!(
            nl.get_link(host.index).unwrap().unwrap().oper_state,
            OperState::Down | OperState::LowerLayerDown
        )));
        in_peer.set_link_up("eth0").unwrap();
        assert!(eventually(|| nl
            .get_link(host.index)
            .unwrap()
            .unwrap()
            .oper_up()));
        assert!(eventually(|| in_peer
            .get_link("eth0")
            .unwrap()
            .unwrap()
            .oper_up()));

        // Deleting one end deletes both.
        assert!(nl.delete_link("veth1234").unwrap());
        assert_eq!(in_peer.get_link("eth0").unwrap(), None);
    }

    #[test]
    fn kernel_defaults_without_options() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        let peer_ns = NetNs::new_unnamed().unwrap();
        nl.create_veth("vh0", "eth0", &peer_ns, &VethOptions::default())
            .unwrap();
        let host = nl.get_link("vh0").unwrap().unwrap();
        assert_eq!(host.mtu, 1500);
        assert!(host.mac.is_some_and(|m| m != MacAddr::default()));
        assert!(!host.is_up());
    }

    #[test]
    fn taken_names_are_exists_and_leave_nothing_behind() {
        let Some((_host, mut nl)) = sandbox() else {
            return;
        };
        let peer_ns = NetNs::new_unnamed().unwrap();
        let mut in_peer = Netlink::in_netns(&peer_ns).unwrap();
        let opts = VethOptions::default();
        nl.create_veth("vh0", "eth0", &peer_ns, &opts).unwrap();

        // The peer name is taken in the peer netns: no host end is left.
        let err = nl.create_veth("vh1", "eth0", &peer_ns, &opts).unwrap_err();
        assert!(err.is_exists(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("create veth vh1 with peer eth0 in netns /proc/"),
            "{err}"
        );
        assert_eq!(nl.get_link("vh1").unwrap(), None);

        // The host name is taken: no peer is left.
        let err = nl.create_veth("vh0", "eth1", &peer_ns, &opts).unwrap_err();
        assert!(err.is_exists(), "{err:?}");
        assert_eq!(in_peer.get_link("eth1").unwrap(), None);

        // The same name on both sides is fine: they are different namespaces.
        nl.create_veth("eth0", "eth0x", &peer_ns, &opts).unwrap();
        assert_eq!(nl.list_links().unwrap().len(), 3);
        assert_eq!(in_peer.list_links().unwrap().len(), 3);

        let err = nl
            .create_veth("sixteen-chars-xx", "eth2", &peer_ns, &opts)
            .unwrap_err();
        assert!(matches!(err, crate::Error::InvalidArgument(_)), "{err:?}");
    }

    #[test]
    fn peer_in_the_same_netns() {
        let Some((host, mut nl)) = sandbox() else {
            return;
        };
        nl.create_veth("va", "vb", &host, &VethOptions::default())
            .unwrap();
        let a = nl.get_link("va").unwrap().unwrap();
        let b = nl.get_link("vb").unwrap().unwrap();
        assert_eq!(a.veth_peer_index(), Some(b.index));
        assert_eq!(b.veth_peer_index(), Some(a.index));
        assert_eq!(a.link_netnsid, None);
    }
}
