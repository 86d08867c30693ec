//! The container's network namespace, as ADD/CHECK need it and as DEL tolerates its absence.

use cni::Error;
use cni_netlink::NetNs;

/// The netns must open for ADD and CHECK: code 8 otherwise.
pub fn open_netns(path: &str) -> Result<NetNs, Error> {
    NetNs::open(path).map_err(|e| Error::invalid_netns(e.to_string()))
}

/// The netns for DEL: `None` when there is none to clean up in (`CNI_NETNS` empty, as
/// containerd's second DEL sends it, or the namespace already gone). Any other failure to
/// open it is code 8.
pub fn netns_for_del(path: &str) -> Result<Option<NetNs>, Error> {
    if path.is_empty() {
        return Ok(None);
    }
    match NetNs::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_netns_gone() => Ok(None),
        Err(e) => Err(Error::invalid_netns(e.to_string())),
    }
}
