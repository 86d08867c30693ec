//! GC: every attachment of the network not in `cni.dev/valid-attachments` (without that key,
//! those whose netns is gone) loses its pair and its masquerade entries, then IPAM is asked
//! to forget the same.

use cni::{Command, Error, Request, delegate};
use plugin_kit::{Teardown, is_stale};

use crate::AttachmentState;
use crate::del::{delete_host_end, release_masquerade};

pub fn gc(req: &Request) -> Result<(), Error> {
    let states = crate::state_dir(req);
    let mut teardown = Teardown::new();
    let all: Vec<AttachmentState> = states.list().map_err(plugin_kit::state_error)?;
    for state in all {
        if !is_stale(
            req,
            &state.container_id,
            &state.ifname,
            &state.netns,
            &state.netns_id,
        ) {
            continue;
        }
        // A stale host end keeps a host route to an address IPAM is about to hand out again.
        let mut released = Teardown::new();
        released.step(&format!("{} host end", state.container_id), || {
            delete_host_end(&state.host_veth)
        });
        released.step(&format!("{} masquerade", state.container_id), || {
            let backends: Vec<_> = state.masq.into_iter().collect();
            release_masquerade(
                &req.conf.name,
                &state.container_id,
                &backends,
                &state.addresses,
            )
        });
        // As in DEL: the state stays until everything is gone, so a later GC retries.
        if released.is_clean() {
            let _ = states.remove(&state.container_id, &state.ifname);
        }
        if let Err(e) = released.finish() {
            teardown.push(e);
        }
    }
    if let Some(ipam) = &req.conf.ipam_type {
        teardown.step("ipam", || delegate::run(ipam, Command::Gc, req));
    }
    teardown.finish()
}
