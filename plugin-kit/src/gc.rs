//! Which attachments GC may release.

use std::path::Path;

use cni::{Attachment, Request};

/// STATUS of a plugin that needs nothing itself to serve ADD: its IPAM's, if it has one.
pub fn ipam_status(req: &Request) -> Result<(), cni::Error> {
    match &req.conf.ipam_type {
        Some(ipam) => cni::delegate::run(ipam, cni::Command::Status, req),
        None => Ok(()),
    }
}

/// Whether an attachment is among those GC was told are still in use.
pub fn is_listed(valid: &[Attachment], container_id: &str, ifname: &str) -> bool {
    valid
        .iter()
        .any(|a| a.container_id == container_id && a.ifname == ifname)
}

/// Whether GC may release an attachment: it is not in `cni.dev/valid-attachments`, or,
/// without that key, its netns is gone.
pub fn is_stale(req: &Request, container_id: &str, ifname: &str, netns: &str) -> bool {
    match &req.conf.valid_attachments {
        Some(valid) => !is_listed(valid, container_id, ifname),
        None => !netns.is_empty() && !Path::new(netns).exists(),
    }
}
