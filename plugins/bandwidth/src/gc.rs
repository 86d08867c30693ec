//! GC: the ifbs of this network (their tag says whose they are) that belong to no attachment
//! in `cni.dev/valid-attachments` go, including those of ADDs that died before their DEL,
//! and so do ifbs an ADD was killed while making: named as ours, untagged and down.

use std::path::Path;

use cni::{Error, Request};
use cni_netlink::{Link, Netlink};
use plugin_kit::{KernelResultExt, Teardown, is_listed};

use crate::{IFB_LOCK, IFB_LOCK_DIR, alias_prefix};

pub fn gc(req: &Request) -> Result<(), Error> {
    // Without the list there is no telling which attachments live: nothing to collect.
    let Some(valid) = &req.conf.valid_attachments else {
        return Ok(());
    };
    let prefix = alias_prefix(&req.conf.name);
    // No ADD is between making an ifb and tagging it while this is held.
    let _no_creation =
        plugin_kit::lock_in(Path::new(IFB_LOCK_DIR), IFB_LOCK).map_err(plugin_kit::state_error)?;
    let mut host = Netlink::host().cni()?;
    let mut teardown = Teardown::new();
    for link in host.list_links().cni()? {
        if link.kind.as_deref() != Some("ifb") {
            continue;
        }
        let unlisted = match link.alias.as_deref() {
            Some(alias) => alias
                .strip_prefix(&prefix)
                .and_then(|owner| owner.split_once(' '))
                .is_some_and(|(container_id, ifname)| !is_listed(valid, container_id, ifname)),
            None => is_half_made(&link),
        };
        if unlisted {
            teardown.step(&format!("delete {}", link.name), || {
                host.delete_link(link.index).map(drop).cni()
            });
        }
    }
    teardown.finish()
}

/// An ifb named as this plugin (or the reference) names them, that its maker never tagged
/// nor brought up: an ADD killed in between (every finished one, even the reference's,
/// is up).
fn is_half_made(link: &Link) -> bool {
    link.name.starts_with("bwp") && !link.is_up()
}
