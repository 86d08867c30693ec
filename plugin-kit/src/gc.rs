//! Which attachments GC may release.

use std::os::unix::fs::MetadataExt;

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
/// without that key, its netns is gone ([`netns_is_gone`]).
pub fn is_stale(
    req: &Request,
    container_id: &str,
    ifname: &str,
    netns: &str,
    netns_id: &str,
) -> bool {
    match &req.conf.valid_attachments {
        Some(valid) => !is_listed(valid, container_id, ifname),
        None => netns_is_gone(netns, netns_id),
    }
}

/// The identity of the netns at `path`: its nsfs device and inode (what `ip netns identify`
/// compares), as `dev:ino`; empty when it cannot be read. Recorded at ADD beside the path.
pub fn netns_identity(path: &str) -> String {
    std::fs::metadata(path)
        .map(|m| format!("{}:{}", m.dev(), m.ino()))
        .unwrap_or_default()
}

/// Whether the netns recorded as `path` with `identity` is gone: the path no longer exists,
/// or it now names another netns (`/proc/<pid>/ns/net` of a recycled pid, a re-created
/// `/run/netns/<name>`). Without a recorded identity (older state, the reference's) only the
/// path counts; without a recorded path nothing is known, so it is not gone.
pub fn netns_is_gone(path: &str, identity: &str) -> bool {
    if path.is_empty() {
        return false;
    }
    let now = netns_identity(path);
    now.is_empty() || (!identity.is_empty() && now != identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_netns_path_that_names_another_netns_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns");
        std::fs::write(&path, b"").unwrap();
        let path = path.to_str().unwrap();
        let id = netns_identity(path);
        assert!(!id.is_empty());
        assert!(!netns_is_gone(path, &id));
        // No identity recorded: the path alone decides.
        assert!(!netns_is_gone(path, ""));
        // The same path, another object (a re-created namespace); the first one lives on
        // elsewhere, so its inode cannot be handed out again.
        std::fs::hard_link(path, dir.path().join("first")).unwrap();
        std::fs::remove_file(path).unwrap();
        std::fs::write(path, b"").unwrap();
        assert_ne!(netns_identity(path), id);
        assert!(netns_is_gone(path, &id));
        std::fs::remove_file(path).unwrap();
        assert!(netns_is_gone(path, ""));
        assert!(!netns_is_gone("", ""));
    }
}
