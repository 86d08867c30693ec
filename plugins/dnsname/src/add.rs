//! ADD: the record goes into the network's store, the sidecar is told (started if it is not
//! running), and the result points the container at it.

use std::net::IpAddr;

use cni::{CniResult, Error, Request, Undo};
use cni_dns::control;
use cni_dns::store::{Attachment, NetworkStore};

use crate::config::{Config, expected};
use crate::{CONTROL_TIMEOUT, control_error, forget, store_error, update};

pub fn add(req: &Request) -> Result<CniResult, Error> {
    let config = Config::from_request(req)?;
    let attachment = expected(req, &config)?;
    let launch = config.launch(req)?;
    let store = NetworkStore::open(&config.paths, &config.network).map_err(store_error)?;
    {
        let locked = store.lock().map_err(store_error)?;
        locked.write(&attachment).map_err(store_error)?;
    }
    let key = attachment.key();
    // Leave nothing behind: the record goes, and a sidecar that took it forgets it.
    let mut undo = Undo::new();
    let (paths, network) = (config.paths.clone(), config.network.clone());
    let (id, ifname, forgotten) = (
        req.container_id().to_string(),
        req.ifname().to_string(),
        key.clone(),
    );
    undo.push("the DNS record", move || {
        if let Ok(Some(store)) = NetworkStore::open_existing(&paths, &network)
            && let Ok(locked) = store.lock()
        {
            let _ = locked.remove(&id, &ifname);
        }
        forget(&paths, &network, forgotten).map_err(|e| e.msg)
    });
    control::ensure(
        &config.paths,
        &update(&config.network, key),
        &launch,
        CONTROL_TIMEOUT,
    )
    .map_err(control_error)?;
    log::info!(
        "{}/{}: names {:?} on {} ({:?})",
        req.container_id(),
        req.ifname(),
        attachment.names(),
        config.network,
        attachment.ips
    );
    let prev = req.conf.prev_result.clone().unwrap_or_default();
    undo.commit();
    Ok(with_dns(&prev, &attachment))
}

/// prevResult with the gateways as nameservers and the domain first among the search domains.
fn with_dns(prev: &CniResult, attachment: &Attachment) -> CniResult {
    let mut result = prev.clone();
    result.dns.nameservers = attachment.gateways.iter().map(IpAddr::to_string).collect();
    if !attachment.domain.is_empty() {
        let mut search = vec![attachment.domain.clone()];
        for s in &prev.dns.search {
            if !search.contains(s) {
                search.push(s.clone());
            }
        }
        result.dns.search = search;
    }
    result
}
