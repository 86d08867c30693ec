//! DEL: the container's link out of service and deleted, IPAM released, whatever is
//! already gone (netns, master, link) and however often it is called.

use cni::{Command, Error, Request, delegate};
use cni_netlink::{NetNs, Netlink};

use crate::kernel_error;

/// Takes the link of kind `kind` named CNI_IFNAME out of the container and releases IPAM
/// (always, even when the link could not be dealt with: that error is reported after).
/// Needs nothing of the config but `ipam.type`, so a config that no longer validates, or a
/// master that is gone, still cleans up.
///
/// The link's addresses go first, so they are off it before IPAM hands them out again; its
/// deletion is sent once this process has exited (the kernel's unregistration takes tens of
/// ms of RCU grace periods; see [`Netlink::delete_link_after_exit`]). A link of another kind
/// under that name is not ours and is left alone.
pub fn del(req: &Request, kind: &str) -> Result<(), Error> {
    let link = take_out(req, kind);
    let ipam = match &req.conf.ipam_type {
        Some(ipam) => delegate::run(ipam, Command::Del, req),
        None => Ok(()),
    };
    link.and(ipam)
}

/// Our link out of service, its deletion handed on; nothing to do when there is nothing of
/// ours (no netns, no link, a link of another kind).
fn take_out(req: &Request, kind: &str) -> Result<(), Error> {
    if req.netns().is_empty() {
        return Ok(());
    }
    let ns = match NetNs::open(req.netns()) {
        Ok(ns) => ns,
        Err(e) if e.is_netns_gone() => return Ok(()),
        Err(e) => return Err(Error::invalid_netns(e.to_string())),
    };
    let ifname = req.ifname();
    let mut ctr = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let Some(link) = ctr.get_link(ifname).map_err(kernel_error)? else {
        return Ok(());
    };
    if link.kind.as_deref() != Some(kind) {
        log::warn!(
            "{ifname} in {} is a {}, not a {kind}: left alone",
            req.netns(),
            link.kind.as_deref().unwrap_or("link of unknown kind")
        );
        return Ok(());
    }
    ctr.delete_link_after_exit(link.index)
        .map(drop)
        .map_err(|e| kernel_error(e).context(format!("delete {kind} {ifname}")))
}
