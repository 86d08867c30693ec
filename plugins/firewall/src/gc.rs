//! GC: releases the attachments of this network that are not in
//! `cni.dev/valid-attachments` (without the key: those whose netns is gone).

use cni::{Error, Request};
use plugin_kit::{Teardown, is_stale};

use crate::config::Config;
use crate::del::release;
use crate::{AttachmentState, Origin, lock, states};

/// GC: releases the attachments of this network that are not in
/// `cni.dev/valid-attachments` (without the key: those whose netns is gone).
pub fn gc(req: &Request) -> Result<(), Error> {
    let data_dir = Config::data_dir_of(req);
    let _lock = lock(&data_dir)?;
    let dir = states(req, &data_dir);
    let all: Vec<AttachmentState> = dir.list().map_err(plugin_kit::state_error)?;
    let mut teardown = Teardown::new();
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
        // The state stays until its rules are gone, so a later GC retries.
        match release(&data_dir, &req.conf.name, &state, Origin::Recorded) {
            Ok(()) => {
                let _ = dir.remove(&state.container_id, &state.ifname);
            }
            Err(e) => teardown.push(e),
        }
    }
    teardown.finish()
}
