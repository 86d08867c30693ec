//! CHECK: the record is what ADD would write, and the sidecar answers for the container on
//! each gateway.

use std::net::SocketAddr;
use std::time::Duration;

use cni::{Error, Request};
use cni_dns::control;
use cni_dns::store::NetworkStore;
use ipnetwork::IpNetwork;

use crate::config::{Config, expected};
use crate::{CONTROL_TIMEOUT, store_error};

pub fn check(req: &Request) -> Result<(), Error> {
    let config = Config::from_request(req)?;
    let want = expected(req, &config)?;
    let store = NetworkStore::open_existing(&config.paths, &config.network)
        .map_err(store_error)?
        .ok_or_else(|| {
            Error::check_failed(format!("no DNS records for network {}", config.network))
        })?;
    let have = store
        .lock()
        .and_then(|l| l.read(req.container_id(), req.ifname()))
        .map_err(store_error)?
        .ok_or_else(|| {
            Error::check_failed(format!(
                "no DNS record for {}/{} on network {}",
                req.container_id(),
                req.ifname(),
                config.network
            ))
        })?;
    if have != want {
        return Err(Error::check_failed(format!(
            "the DNS record of {}/{} differs from the expected one: have {:?} {:?}, want {:?} {:?}",
            req.container_id(),
            req.ifname(),
            have.names(),
            have.ips,
            want.names(),
            want.ips
        )));
    }
    control::call(&config.paths, &control::Request::Ping, CONTROL_TIMEOUT)
        .map_err(|e| Error::check_failed(format!("the DNS sidecar does not answer: {e}")))?;
    // The sidecar must answer the container's short ID on each gateway.
    let qtype = if want.ips.iter().any(IpNetwork::is_ipv4) {
        1
    } else {
        28
    };
    for gw in &want.gateways {
        let server = SocketAddr::new(*gw, 53);
        match cni_dns::probe::query(server, want.short_id(), qtype, Duration::from_secs(2)) {
            Ok((0, n)) if n > 0 => {}
            Ok((rcode, n)) => {
                return Err(Error::check_failed(format!(
                    "{server} answered {} with rcode {rcode} and {n} records",
                    want.short_id()
                )));
            }
            Err(e) => {
                return Err(Error::check_failed(format!(
                    "no DNS answer from {server}: {e}"
                )));
            }
        }
    }
    Ok(())
}
