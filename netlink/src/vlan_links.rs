//! macvlan and ipvlan links: children of a master link, created directly in the namespace
//! they are for (`IFLA_NET_NS_FD`) under a random temporary name and renamed there, so their
//! final name never meets the names of the master's namespace. A child whose rename fails is
//! deleted again.
//!
//! Also what tearing such a link down fast needs: the default-route link (the master used
//! when none is named) and a deletion handed to a child process, because the kernel's
//! unregistration of a link waits for RCU grace periods (10 to 30 ms on a small VM).

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage,
};

use crate::IpNetwork;
use crate::address::IpFamily;
use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::link::{IpvlanMode, Link, LinkId, MacAddr, MacvlanMode, check_ifname, random_link_name};
use crate::netns::NetNs;
use crate::route::{RouteFilter, TABLE_MAIN};

/// Prefix of the temporary name a child link is created under.
const TMP_PREFIX: &str = "tmp";
/// Prefix of the name a link being deleted in the background is moved to.
/// The alias of a link whose deletion is on its way: [`Netlink::delete_link_after_exit`].
pub const DYING_ALIAS: &str = "cni-rs: deleted after its plugin exits";

/// Options of a new macvlan (`ip link add ... type macvlan mode M [bcqueuelen N]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvlanOptions {
    pub mode: MacvlanMode,
    /// The kernel's default (the master's MTU) if `None`.
    pub mtu: Option<u32>,
    /// Random if `None`. In passthru mode the kernel gives the link the master's address
    /// whatever is asked.
    pub mac: Option<MacAddr>,
    /// Length of the broadcast queue requested for the master (kernel 5.11+); the kernel
    /// uses the largest request of the master's macvlans. Its default (1000) if `None`.
    pub bc_queue_len: Option<u32>,
}

impl Default for MacvlanOptions {
    fn default() -> MacvlanOptions {
        MacvlanOptions {
            mode: MacvlanMode::Bridge,
            mtu: None,
            mac: None,
            bc_queue_len: None,
        }
    }
}

/// Options of a new ipvlan (`ip link add ... type ipvlan mode M`). The mode belongs to the
/// master: creating an ipvlan sets it for every ipvlan of the same master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvlanOptions {
    pub mode: IpvlanMode,
    /// The kernel's default (the master's MTU) if `None`.
    pub mtu: Option<u32>,
}

impl Default for IpvlanOptions {
    fn default() -> IpvlanOptions {
        IpvlanOptions {
            mode: IpvlanMode::L2,
            mtu: None,
        }
    }
}

/// Where a child link is created.
pub enum ChildTarget<'a> {
    /// The master's own namespace, the one the creating socket belongs to.
    Here,
    /// Another namespace, with a socket opened inside it (which does the rename).
    Netns { ns: &'a NetNs, nl: &'a mut Netlink },
}

impl Netlink {
    /// `ip link add TMP link MASTER [netns NS] type macvlan ...` then, inside the target
    /// namespace, `ip link set TMP name NAME`. `master` is an ifindex of this socket's
    /// namespace. Returns the new link as the target sees it, down.
    ///
    /// If `NAME` is taken in the target the rename fails with EEXIST
    /// ([`Error::is_exists`]) and the temporary link is deleted: nothing is left behind.
    /// The kernel refuses with EINVAL a second macvlan beside a passthru one (or a passthru
    /// one beside others), and with EBUSY a master that already has another kind of
    /// receive handler (an ipvlan master, a bridge port).
    pub fn create_macvlan(
        &mut self,
        master: u32,
        name: &str,
        target: ChildTarget<'_>,
        opts: &MacvlanOptions,
    ) -> Result<Link> {
        let mut data = vec![InfoMacVlan::Mode(opts.mode.to_raw().into())];
        if let Some(len) = opts.bc_queue_len {
            data.push(InfoMacVlan::BcQueueLen(len));
        }
        let info = vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(data)),
        ];
        self.create_child("macvlan", master, name, target, opts.mtu, opts.mac, info)
    }

    /// `ip link add TMP link MASTER [netns NS] type ipvlan mode M` then the rename, as
    /// [`Netlink::create_macvlan`] does. A kernel without ipvlan refuses with EOPNOTSUPP.
    /// ipvlans share their master's MAC address.
    pub fn create_ipvlan(
        &mut self,
        master: u32,
        name: &str,
        target: ChildTarget<'_>,
        opts: &IpvlanOptions,
    ) -> Result<Link> {
        let info = vec![
            LinkInfo::Kind(InfoKind::IpVlan),
            LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(
                opts.mode.to_raw().into(),
            )])),
        ];
        self.create_child("ipvlan", master, name, target, opts.mtu, None, info)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_child(
        &mut self,
        kind: &str,
        master: u32,
        name: &str,
        target: ChildTarget<'_>,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        info: Vec<LinkInfo>,
    ) -> Result<Link> {
        check_ifname(name)?;
        let ns_fd = match &target {
            ChildTarget::Here => None,
            ChildTarget::Netns { ns, .. } => Some(ns.as_fd().as_raw_fd()),
        };
        let mut attempts = 0;
        let tmp = loop {
            let tmp = random_link_name(TMP_PREFIX)?;
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::IfName(tmp.clone()));
            msg.attributes.push(LinkAttribute::Link(master));
            if let Some(fd) = ns_fd {
                msg.attributes.push(LinkAttribute::NetNsFd(fd));
            }
            if let Some(mtu) = mtu {
                msg.attributes.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(mac) = mac {
                msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
            }
            msg.attributes.push(LinkAttribute::LinkInfo(info.clone()));
            match self.create_link(msg) {
                Ok(()) => break tmp,
                // Only the random name can be taken; another one will do.
                Err(e) if e.is_exists() && attempts < 2 => attempts += 1,
                Err(e) => {
                    return Err(e.during(format!("create {kind} {tmp} on master index {master}")));
                }
            }
        };
        let nl: &mut Netlink = match target {
            ChildTarget::Here => self,
            ChildTarget::Netns { nl, .. } => nl,
        };
        let mut link = nl.get_link(&tmp)?.ok_or_else(|| {
            Error::protocol(format!("{kind} {tmp} vanished right after its creation"))
        })?;
        if let Err(e) = nl.rename_link(link.index, name) {
            if let Err(del) = nl.delete_link(link.index) {
                log::warn!("delete {kind} {tmp} after its rename failed: {del}");
            }
            return Err(e);
        }
        link.name = name.to_owned();
        Ok(link)
    }

    /// Like [`Netlink::in_netns_with`] (opens a socket inside `ns` and runs `f` there, on a
    /// fresh thread that exits afterwards), while the caller's thread runs `alongside`
    /// meanwhile: a process to start, say, which would otherwise keep the caller waiting
    /// before or after the trip. Returns the socket and both results.
    pub fn in_netns_alongside<T, U, F, G>(ns: &NetNs, f: F, alongside: G) -> Result<(Netlink, T, U)>
    where
        F: FnOnce(&mut Netlink) -> Result<T> + Send,
        T: Send,
        G: FnOnce() -> U,
    {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, || -> Result<(Netlink, T)> {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| Error::EnterNetns {
                            path: ns.path().into(),
                            source: e.into(),
                        },
                    )?;
                    let mut nl = Netlink::host()?;
                    let value = f(&mut nl)?;
                    Ok((nl, value))
                })
                .map_err(Error::SpawnThread)?;
            let other = alongside();
            match handle.join() {
                Ok(result) => result.map(|(nl, value)| (nl, value, other)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// The link of the first default route in the main table, IPv4 before IPv6 (the
    /// master the reference plugins use when none is configured); `None` without one.
    pub fn default_route_link(&mut self) -> Result<Option<Link>> {
        for family in [IpFamily::V4, IpFamily::V6] {
            let filter = RouteFilter {
                family: Some(family),
                table: Some(TABLE_MAIN),
                oif: None,
            };
            let routes = match self.list_routes(&filter) {
                Ok(routes) => routes,
                // A namespace that never had a route has no main table yet.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let oif = routes
                .into_iter()
                .filter(|r| r.dst.prefix() == 0)
                .find_map(|r| r.oif);
            if let Some(oif) = oif {
                return self.get_link(oif);
            }
        }
        Ok(None)
    }

    /// Deletes every address of link `index` but IPv6 link-local ones.
    fn flush_routable_addresses(&mut self, index: u32) -> Result<()> {
        let addresses = match self.list_addresses(index) {
            Ok(addresses) => addresses,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let routable = addresses.iter().filter(|a| match a.addr {
            IpNetwork::V6(v6) => !v6.ip().is_unicast_link_local(),
            IpNetwork::V4(_) => true,
        });
        for address in routable {
            self.delete_address(index, address.addr)?;
        }
        Ok(())
    }

    /// Takes link `index` out of service at once and deletes it once this process has
    /// exited: its addresses are removed (but an IPv6 link-local one, which no other link
    /// can clash with), it is tagged [`DYING_ALIAS`], and its `RTM_DELLINK` is sent by the
    /// child that outlives the process ([`crate::exit_handoff`]). Unregistering a link
    /// blocks its sender for RCU grace periods (10 to 30 ms on a small VM); a CNI plugin
    /// need not make the runtime wait for that, nor have it compete with the plugin's
    /// last steps. For processes that exit soon, as plugins do.
    ///
    /// The name stays taken until that request is sent, just after the exit. An ADD that
    /// finds its name taken meanwhile deletes the link itself
    /// ([`Netlink::remove_dying_link`]). (Renaming the link out of the way would free the
    /// name at once, but costs 0.3 to 1 ms: the kernel registers the link's sysctl tables
    /// again under the new name.)
    ///
    /// Falls back to an ordinary, waiting [`Netlink::delete_link`] when the request
    /// cannot be handed on. Returns whether a link was there.
    pub fn delete_link_after_exit(&mut self, index: u32) -> Result<bool> {
        let what = || format!("delete link index {index}");
        // Off before the addresses go back to IPAM: the next container in this netns may
        // get one of them. A link that is gone has none, and cannot be tagged.
        self.flush_routable_addresses(index)
            .map_err(|e| e.during(what()))?;
        let tagged = self.change_link(&LinkId::Index(index), |msg| {
            msg.attributes
                .push(LinkAttribute::IfAlias(DYING_ALIAS.to_owned()))
        });
        match tagged {
            Ok(()) => self.send_deletion_after_exit(index),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.during(what())),
        }
    }

    /// [`Netlink::delete_link_after_exit`] renaming the link to `dying` instead of tagging
    /// it: its name is free at once, and the caller can find it again under `dying`,
    /// should the process be killed before the deletion was sent. Falls back to a waiting
    /// delete when the link cannot be renamed while up (kernels before 6.x answer EBUSY).
    pub fn delete_link_after_exit_as(&mut self, index: u32, dying: &str) -> Result<bool> {
        let what = || format!("delete link index {index}");
        self.flush_routable_addresses(index)
            .map_err(|e| e.during(what()))?;
        match self.rename_link(index, dying) {
            Ok(()) => self.send_deletion_after_exit(index),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => {
                log::debug!("{}: {e}; deleting in the foreground", what());
                self.delete_link(index)
            }
        }
    }

    /// Hands link `index`'s deletion to the exit handoff, or deletes it now, waiting.
    fn send_deletion_after_exit(&mut self, index: u32) -> Result<bool> {
        // SAFETY: the socket's descriptor is open for the duration of the borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.raw_fd()) };
        if crate::exit_handoff::send_after_exit(fd, del_link_request(index)) {
            Ok(true)
        } else {
            self.delete_link(index)
        }
    }

    /// Deletes link `name`, waiting, if it is one whose deletion
    /// [`Netlink::delete_link_after_exit`] handed on (tagged [`DYING_ALIAS`]): for an ADD
    /// that finds the name it needs still taken. Returns whether there was such a link.
    pub fn remove_dying_link(&mut self, name: &str) -> Result<bool> {
        match self.get_link(name)? {
            Some(link) if link.alias.as_deref() == Some(DYING_ALIAS) => {
                self.delete_link(link.index)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// `RTM_DELLINK` of link `index`, without `NLM_F_ACK`: its sender exits without reading.
fn del_link_request(index: u32) -> Vec<u8> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(msg)),
    );
    packet.finalize();
    let mut bytes = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{eventually, sandbox};
    use crate::{SCOPE_LINK, VethOptions};

    /// A veth end as the master: this kernel has no dummy links.
    fn master(nl: &mut Netlink, ns: &NetNs, name: &str) -> Link {
        let peer = format!("{name}p");
        nl.create_veth(name, &peer, ns, &VethOptions::default())
            .unwrap();
        nl.set_link_up(name).unwrap();
        nl.set_link_up(peer.as_str()).unwrap();
        nl.get_link(name).unwrap().unwrap()
    }

    #[test]
    fn macvlan_is_created_in_the_target_under_its_final_name() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let m0 = master(&mut host, &host_ns, "m0");
        let ctr_ns = NetNs::new_unnamed().unwrap();
        let mut ctr = Netlink::in_netns(&ctr_ns).unwrap();
        let mac: MacAddr = "02:00:00:00:00:42".parse().unwrap();
        let opts = MacvlanOptions {
            mode: MacvlanMode::Private,
            mtu: Some(1400),
            mac: Some(mac),
            bc_queue_len: Some(500),
        };
        // The host has an eth0 too: no collision, the link never has that name here.
        let _eth0 = master(&mut host, &host_ns, "eth0");
        let target = ChildTarget::Netns {
            ns: &ctr_ns,
            nl: &mut ctr,
        };
        let link = host
            .create_macvlan(m0.index, "eth0", target, &opts)
            .unwrap();
        assert_eq!(link.name, "eth0");
        let seen = ctr.get_link("eth0").unwrap().unwrap();
        assert_eq!(seen.index, link.index);
        assert_eq!(seen.kind.as_deref(), Some("macvlan"));
        assert_eq!(seen.macvlan_mode, Some(MacvlanMode::Private));
        assert_eq!(seen.mtu, 1400);
        assert_eq!(seen.mac, Some(mac));
        assert_eq!(seen.link, Some(m0.index));
        assert!(seen.link_netnsid.is_some(), "{seen:?}");
        assert!(!seen.is_up());
        // Only lo and eth0 in the container; no temporary name left on either side.
        assert_eq!(ctr.list_links().unwrap().len(), 2);
        assert!(
            host.list_links()
                .unwrap()
                .iter()
                .all(|l| !l.name.starts_with(TMP_PREFIX))
        );
    }

    #[test]
    fn a_taken_name_is_exists_and_leaves_nothing_behind() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let m0 = master(&mut host, &host_ns, "m0");
        let ctr_ns = NetNs::new_unnamed().unwrap();
        let mut ctr = Netlink::in_netns(&ctr_ns).unwrap();
        let opts = MacvlanOptions::default();
        for _ in 0..2 {
            let target = ChildTarget::Netns {
                ns: &ctr_ns,
                nl: &mut ctr,
            };
            let result = host.create_macvlan(m0.index, "eth0", target, &opts);
            if let Err(e) = result {
                assert!(e.is_exists(), "{e:?}");
            }
        }
        assert_eq!(ctr.list_links().unwrap().len(), 2, "lo and one eth0");
    }

    #[test]
    fn macvlan_in_the_masters_own_netns_and_kernel_refusals() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let m0 = master(&mut host, &host_ns, "m0");
        let passthru = MacvlanOptions {
            mode: MacvlanMode::Passthru,
            ..MacvlanOptions::default()
        };
        let link = host
            .create_macvlan(m0.index, "mv0", ChildTarget::Here, &passthru)
            .unwrap();
        // passthru: the master's address.
        assert_eq!(link.mac, m0.mac);
        assert_eq!(link.macvlan_mode, Some(MacvlanMode::Passthru));
        // A second macvlan beside a passthru one: EINVAL, nothing left.
        let err = host
            .create_macvlan(
                m0.index,
                "mv1",
                ChildTarget::Here,
                &MacvlanOptions::default(),
            )
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL), "{err:?}");
        assert_eq!(host.get_link("mv1").unwrap(), None);
        // No such master.
        let err = host
            .create_macvlan(4242, "mv2", ChildTarget::Here, &MacvlanOptions::default())
            .unwrap_err();
        assert!(err.errno().is_some(), "{err:?}");
        assert!(err.to_string().contains("master index 4242"), "{err}");
    }

    #[test]
    fn ipvlan_or_eopnotsupp() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let m0 = master(&mut host, &host_ns, "m0");
        let ctr_ns = NetNs::new_unnamed().unwrap();
        let mut ctr = Netlink::in_netns(&ctr_ns).unwrap();
        let opts = IpvlanOptions {
            mode: IpvlanMode::L3,
            mtu: None,
        };
        let target = ChildTarget::Netns {
            ns: &ctr_ns,
            nl: &mut ctr,
        };
        match host.create_ipvlan(m0.index, "eth0", target, &opts) {
            Ok(link) => {
                let seen = ctr.get_link("eth0").unwrap().unwrap();
                assert_eq!(seen.index, link.index);
                assert_eq!(seen.kind.as_deref(), Some("ipvlan"));
                assert_eq!(seen.ipvlan_mode, Some(IpvlanMode::L3));
                // ipvlans share the master's MAC.
                assert_eq!(seen.mac, m0.mac);
            }
            Err(e) => {
                assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e:?}");
                assert_eq!(ctr.list_links().unwrap().len(), 1);
            }
        }
    }

    #[test]
    fn default_route_link_prefers_ipv4() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        assert_eq!(host.default_route_link().unwrap(), None);
        let m0 = master(&mut host, &host_ns, "m0");
        let m1 = master(&mut host, &host_ns, "m1");
        host.add_address(m0.index, "10.1.0.2/24".parse().unwrap())
            .unwrap();
        let via_m1 = crate::Route::new("::/0".parse().unwrap(), None, Some(m1.index));
        host.add_route(&via_m1).unwrap();
        assert_eq!(host.default_route_link().unwrap().unwrap().name, "m1");
        let via_m0 = crate::Route::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.1.0.1".parse().unwrap()),
            Some(m0.index),
        );
        host.add_route(&via_m0).unwrap();
        assert_eq!(host.default_route_link().unwrap().unwrap().name, "m0");
    }

    #[test]
    fn in_netns_alongside_runs_both_and_returns_the_socket() {
        let Some((ns, _host)) = sandbox() else {
            return;
        };
        let caller = std::thread::current().id();
        let (mut nl, (inside, thread), here) = Netlink::in_netns_alongside(
            &ns,
            |nl| {
                nl.set_link_up("lo")?;
                Ok((ns.is_current()?, std::thread::current().id()))
            },
            || std::thread::current().id(),
        )
        .unwrap();
        assert!(inside);
        assert_ne!(thread, caller);
        assert_eq!(here, caller);
        assert!(nl.get_link("lo").unwrap().unwrap().is_up());
        let err = Netlink::in_netns_alongside(&ns, |nl| nl.rename_link("nosuch0", "x"), || ())
            .err()
            .unwrap();
        assert!(err.is_not_found(), "{err:?}");
    }

    /// A macvlan with an address, up, in the sandbox's host netns.
    fn addressed_macvlan(host: &mut Netlink, host_ns: &NetNs, name: &str) -> Link {
        let m0 = master(host, host_ns, &format!("{name}m"));
        let link = host
            .create_macvlan(
                m0.index,
                name,
                ChildTarget::Here,
                &MacvlanOptions::default(),
            )
            .unwrap();
        host.set_link_up(link.index).unwrap();
        host.add_address(link.index, "10.2.0.2/24".parse().unwrap())
            .unwrap();
        link
    }

    fn assert_no_routable_address(host: &mut Netlink, index: u32) {
        let left = host.list_addresses(index).unwrap();
        assert!(
            left.iter()
                .all(|a| a.addr.is_ipv6() && a.scope == SCOPE_LINK),
            "{left:?}"
        );
    }

    #[test]
    fn a_link_deleted_after_exit_is_tagged_and_an_add_can_take_its_name() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let link = addressed_macvlan(&mut host, &host_ns, "mv0");
        assert!(host.delete_link_after_exit(link.index).unwrap());
        // Out of service at once, deleted only once this process has exited.
        let dying = host.get_link("mv0").unwrap().unwrap();
        assert_eq!(dying.alias.as_deref(), Some(DYING_ALIAS));
        assert_no_routable_address(&mut host, link.index);
        // An ADD needing the name takes it; a link without the tag is left alone.
        assert!(host.remove_dying_link("mv0").unwrap());
        assert_eq!(host.get_link("mv0").unwrap(), None);
        assert!(!host.remove_dying_link("mv0").unwrap());
        assert!(!host.remove_dying_link("mv0m").unwrap());
        assert!(host.get_link("mv0m").unwrap().is_some());
        assert!(!host.delete_link_after_exit(link.index).unwrap());
    }

    #[test]
    fn a_link_deleted_after_exit_under_another_name_frees_its_own() {
        let Some((host_ns, mut host)) = sandbox() else {
            return;
        };
        let link = addressed_macvlan(&mut host, &host_ns, "mv1");
        assert!(host.delete_link_after_exit_as(link.index, "gone1").unwrap());
        assert_eq!(host.get_link("mv1").unwrap(), None);
        // Renamed; or, on kernels that refuse to rename a link that is up (6.1), deleted in
        // the foreground.
        if let Some(dying) = host.get_link(link.index).unwrap() {
            assert_eq!(dying.name, "gone1");
            assert_no_routable_address(&mut host, link.index);
            // What the child will send deletes it.
            let request = del_link_request(link.index);
            // SAFETY: a valid socket and a buffer of the given length.
            let sent =
                unsafe { libc::send(host.raw_fd(), request.as_ptr().cast(), request.len(), 0) };
            assert_eq!(sent, request.len() as isize);
            assert!(eventually(|| host.get_link(link.index).unwrap().is_none()));
        }
        assert!(!host.delete_link_after_exit_as(link.index, "gone1").unwrap());
    }
}
