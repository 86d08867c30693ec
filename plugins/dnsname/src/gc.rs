//! GC: the records of attachments not in `cni.dev/valid-attachments` go, in one pass under
//! the network's lock; a running sidecar forgets each. Like DEL it reads only where the
//! records are, so a config that no longer validates (a `domainName` changed since) still
//! collects.

use std::collections::HashSet;

use cni::{Attachment as GcAttachment, Error, Request};
use cni_dns::store::{Attachment, NetworkStore};

use crate::config::del_paths;
use crate::{forget, store_error};

pub fn gc(req: &Request) -> Result<(), Error> {
    let Some(valid) = &req.conf.valid_attachments else {
        return Ok(());
    };
    let Some(paths) = del_paths(req) else {
        return Ok(());
    };
    let network = &req.conf.name;
    let Some(store) = NetworkStore::open_existing(&paths, network).map_err(store_error)? else {
        return Ok(());
    };
    let keep: HashSet<String> = valid
        .iter()
        .map(
            |GcAttachment {
                 container_id,
                 ifname,
             }| Attachment::file_name(container_id, ifname),
        )
        .collect();
    let mut removed = Vec::new();
    {
        let locked = store.lock().map_err(store_error)?;
        locked.remove_stale_tmp().map_err(store_error)?;
        for key in locked.keys().map_err(store_error)? {
            if !keep.contains(&key) {
                locked.remove_key(&key).map_err(store_error)?;
                removed.push(key);
            }
        }
    }
    for key in removed {
        log::info!("gc: removed the DNS record {key} of {network}");
        forget(&paths, network, key)?;
    }
    Ok(())
}
