//! The dnsname plugin, chained last: records the container's names and addresses for the DNS
//! sidecar (`cni-dns`), makes sure the sidecar serves the network, and points the container
//! at it (the gateways as nameservers, the domain as search domain).
//!
//! A drop-in for the config podman writes:
//! `{"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}}`,
//! with `runtimeConfig.aliases` as podman's map `{network: [names]}` or the CNI conventions'
//! list `[names]`, and the container's name in `CNI_ARGS` `K8S_POD_NAME`.

mod add;
mod check;
mod config;
mod del;
mod gc;
mod request;
mod status;
pub use request::read_request;

use std::time::Duration;

use cni::{Error, Version};
use cni_dns::control::{self, ControlError};
use cni_dns::store::{Paths, StoreError};

pub use config::{Config, expected};

/// How long a control request may take (the sidecar answers in well under a millisecond).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a freshly started sidecar may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(5);

pub struct DnsName;

plugin_kit::delegate_plugin!(DnsName {
    versions: &[
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ],
    add: add::add,
    del: del::del,
    check: check::check,
    status: status::status,
    gc: gc::gc,
});

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::LockTimeout { .. } => Error::try_again_later(e.to_string()),
        _ => Error::io(e.to_string()),
    }
}

fn control_error(e: ControlError) -> Error {
    match e {
        ControlError::Start { .. } | ControlError::NotRunning(_) => {
            Error::not_available(e.to_string())
        }
        _ => Error::io(e.to_string()),
    }
}

fn update(network: &str, key: String) -> control::Request {
    control::Request::Update {
        network: network.to_string(),
        key,
    }
}

/// Tells a running sidecar about a removed record; a sidecar that is not running has nothing
/// to forget.
fn forget(paths: &Paths, network: &str, key: String) -> Result<(), Error> {
    match control::call(paths, &update(network, key), CONTROL_TIMEOUT) {
        Ok(_) | Err(ControlError::NotRunning(_)) => Ok(()),
        Err(e) => Err(control_error(e)),
    }
}
