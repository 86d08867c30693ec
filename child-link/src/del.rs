//! DEL: the container's link out of service and deleted, IPAM released, whatever is
//! already gone (netns, master, link) and however often it is called.

use cni::delegate::Pending;
use cni::{Command, Error, Request};
use cni_netlink::{NetNs, Netlink};

use crate::kernel_error;

/// Takes the link of kind `kind` named CNI_IFNAME out of the container and releases IPAM
/// (always, even when the link could not be dealt with: that error is reported after).
/// Needs nothing of the config but `ipam.type`, so a config that no longer validates, or a
/// master that is gone, still cleans up.
///
/// The link's addresses go first, so they are off it before IPAM hands them out again; then
/// IPAM's DEL runs while the link is renamed away; its deletion is sent once this process
/// has exited (the kernel's unregistration takes tens of ms of RCU grace periods; see
/// [`Netlink::delete_link_after_exit`]). A link of another kind under that name is not ours and
/// is left alone.
pub fn del(req: &Request, kind: &str) -> Result<(), Error> {
    let link = find_and_empty(req, kind);
    let ipam = req
        .conf
        .ipam_type
        .as_ref()
        .map(|ipam| Pending::start(ipam, Command::Del, req));
    let link = match link {
        Ok(Some((mut ctr, index))) => ctr
            .delete_link_after_exit(index)
            .map(drop)
            .map_err(|e| kernel_error(e).context(format!("delete {kind} {}", req.ifname()))),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    let ipam = match ipam {
        Some(Ok(pending)) => pending.wait().map(drop),
        Some(Err(e)) => Err(e),
        None => Ok(()),
    };
    link.and(ipam)
}

/// The container's socket and the index of our link, with its addresses deleted; `None`
/// when there is nothing of ours (no netns, no link, a link of another kind).
fn find_and_empty(req: &Request, kind: &str) -> Result<Option<(Netlink, u32)>, Error> {
    if req.netns().is_empty() {
        return Ok(None);
    }
    let ns = match NetNs::open(req.netns()) {
        Ok(ns) => ns,
        Err(e) if e.is_netns_gone() => return Ok(None),
        Err(e) => return Err(Error::invalid_netns(e.to_string())),
    };
    let ifname = req.ifname();
    let (mut ctr, link) =
        Netlink::in_netns_with(&ns, |ctr| ctr.get_link(ifname)).map_err(kernel_error)?;
    let Some(link) = link else {
        return Ok(None);
    };
    if link.kind.as_deref() != Some(kind) {
        log::warn!(
            "{ifname} in {} is a {}, not a {kind}: left alone",
            req.netns(),
            link.kind.as_deref().unwrap_or("link of unknown kind")
        );
        return Ok(None);
    }
    ctr.flush_addresses(link.index)
        .map_err(|e| kernel_error(e).context(format!("delete {kind} {ifname}")))?;
    Ok(Some((ctr, link.index)))
}
