//! DEL: the record goes; a running sidecar forgets it.

use cni::{Error, Request};
use cni_dns::control::{self, ControlError};
use cni_dns::store::{Attachment, NetworkStore, Paths};

use crate::config::del_paths;
use crate::{CONTROL_TIMEOUT, control_error, store_error, update};

pub fn del(req: &Request) -> Result<(), Error> {
    // DEL succeeds when there is nothing to delete, whatever else is missing or invalid:
    // it reads only where the records are.
    let Some(paths) = del_paths(req) else {
        return Ok(());
    };
    let network = &req.conf.name;
    let Some(store) = NetworkStore::open_existing(&paths, network).map_err(store_error)? else {
        return Ok(());
    };
    let removed = {
        let locked = store.lock().map_err(store_error)?;
        locked
            .remove(req.container_id(), req.ifname())
            .map_err(store_error)?
    };
    if removed {
        forget_removed(
            &paths,
            network,
            Attachment::file_name(req.container_id(), req.ifname()),
        )?;
    }
    Ok(())
}

/// The sidecar's answer to `update` when it rejects the network or key as names it never
/// loads from the store (dns/src/server/daemon.rs): nothing of them is served.
const REFUSED_NAME: &str = "invalid network or attachment name";

/// DEL's `forget`, once the record file is gone. A sidecar that is hung or unreachable
/// (timeout, I/O error) is logged, not an error: the file is gone, and the sidecar loads
/// the whole store again when it starts. Only a sidecar that answered and refused to drop
/// the record (it could not re-read the attachment, so it keeps serving the old one) fails
/// the DEL, so that the runtime retries.
fn forget_removed(paths: &Paths, network: &str, key: String) -> Result<(), Error> {
    match control::call(paths, &update(network, key.clone()), CONTROL_TIMEOUT) {
        Ok(_) | Err(ControlError::NotRunning(_)) => Ok(()),
        Err(ControlError::Refused { msg, .. }) if msg.starts_with(REFUSED_NAME) => {
            log::warn!("the DNS sidecar ignores {network}/{key}: {msg}");
            Ok(())
        }
        Err(e @ ControlError::Refused { .. }) => Err(control_error(e)),
        Err(e) => {
            log::warn!(
                "removed the DNS record {key} of {network}, but the sidecar was not told: {e}; \
                 it serves the name until it answers again or restarts"
            );
            Ok(())
        }
    }
}
