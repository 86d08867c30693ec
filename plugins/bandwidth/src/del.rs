//! DEL: the attachment's ifb goes (found by name: nothing else is needed, neither prevResult
//! nor the netns), and, while the container's netns is there, the qdiscs this plugin put on
//! the host end. Whatever is already gone is fine.

use cni::{Error, Request};
use cni_netlink::Netlink;
use cni_netlink::tc::{INGRESS_HANDLE, TBF_HANDLE};
use plugin_kit::{KernelResultExt, Teardown};

use crate::{dying_ifb_name, ifb_name};

pub fn del(req: &Request) -> Result<(), Error> {
    let mut teardown = Teardown::new();
    teardown.step("delete the ifb", || delete_ifb(req));
    teardown.step("remove the qdiscs of the host end", || {
        unshape_host_end(req)
    });
    teardown.finish()
}

/// The ifb, renamed to its dying name on its way out; one an earlier DEL killed after that
/// rename left goes too.
fn delete_ifb(req: &Request) -> Result<(), Error> {
    let (name, dying) = (
        ifb_name(&req.conf.name, req.container_id()),
        dying_ifb_name(&req.conf.name, req.container_id()),
    );
    let mut host = Netlink::host().cni()?;
    let is_ifb = |link: &cni_netlink::Link| link.kind.as_deref() == Some("ifb");
    if let Some(left) = host.get_link(dying.as_str()).cni()?.filter(is_ifb) {
        host.delete_link(left.index).cni()?;
    }
    if let Some(link) = host.get_link(name.as_str()).cni()?.filter(is_ifb) {
        host.delete_link_after_exit_as(link.index, &dying).cni()?;
    }
    Ok(())
}

/// The host end's TBF root and ingress qdisc, when they are the ones ADD makes. Without the
/// netns (or the interface) the veth pair is gone, and its qdiscs with it.
fn unshape_host_end(req: &Request) -> Result<(), Error> {
    let Some(ns) = plugin_kit::netns_for_del(req.netns())? else {
        return Ok(());
    };
    let mut ctr = Netlink::in_netns(&ns).cni()?;
    let Some(peer) = ctr
        .get_link(req.ifname())
        .cni()?
        .and_then(|l| l.veth_peer_index())
    else {
        return Ok(());
    };
    let mut host = Netlink::host().cni()?;
    if host.get_link(peer).cni()?.is_none() {
        return Ok(());
    }
    if let Some(q) = host.qdisc(peer, false).cni()?
        && q.kind == "tbf"
        && q.handle == TBF_HANDLE
    {
        host.delete_qdisc(peer, false).cni()?;
    }
    if let Some(q) = host.qdisc(peer, true).cni()?
        && q.handle == INGRESS_HANDLE
    {
        host.delete_qdisc(peer, true).cni()?;
    }
    Ok(())
}
