//! GC: the ifbs of this network (their tag says whose they are) that belong to no attachment
//! in `cni.dev/valid-attachments` go, including those of ADDs that died before their DEL.

use cni::{Error, Request};
use cni_netlink::Netlink;
use plugin_kit::{KernelResultExt, Teardown, is_listed};

use crate::alias_prefix;

pub fn gc(req: &Request) -> Result<(), Error> {
    // Without the list there is no telling which attachments live: nothing to collect.
    let Some(valid) = &req.conf.valid_attachments else {
        return Ok(());
    };
    let prefix = alias_prefix(&req.conf.name);
    let mut host = Netlink::host().cni()?;
    let mut teardown = Teardown::new();
    for link in host.list_links().cni()? {
        if link.kind.as_deref() != Some("ifb") {
            continue;
        }
        let Some(owner) = link.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((container_id, ifname)) = owner.split_once(' ') else {
            continue;
        };
        if !is_listed(valid, container_id, ifname) {
            teardown.step(&format!("delete {}", link.name), || {
                host.delete_link(link.index).map(drop).cni()
            });
        }
    }
    teardown.finish()
}
