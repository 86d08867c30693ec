//! The iptables backend (placeholder).

use cni::{Error, Request};
use ipnetwork::IpNetwork;

use crate::config::Config;
use crate::state::AttachmentState;

pub fn available() -> Result<(), Error> {
    Err(Error::not_available("iptables backend not built yet"))
}

pub fn add(
    _req: &Request,
    _cfg: &Config,
    _addrs: &[IpNetwork],
    _host_if: Option<&str>,
) -> Result<AttachmentState, Error> {
    Err(Error::internal("iptables backend not built yet"))
}

pub fn release(_network: &str, _saved: &AttachmentState) -> Result<(), Error> {
    Ok(())
}

pub fn release_unrecorded(_cfg: &Config, _req: &Request) -> Result<(), Error> {
    Ok(())
}

pub fn check(_cfg: &Config, _saved: &AttachmentState) -> Result<(), Error> {
    Ok(())
}
