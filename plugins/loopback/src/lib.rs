//! The loopback plugin: brings `lo` up in the container's netns on ADD and down on DEL,
//! as the reference plugin does. `CNI_IFNAME` is not used: this only ever acts on `lo`.

use cni::{CniResult, Error, Interface, IpConfig, Plugin, Request};
use cni_netlink::{Address, Link, Netlink};
use plugin_kit::{kernel_error, open_netns};

/// The interface this plugin manages, whatever CNI_IFNAME says.
const LO: &str = "lo";

pub struct Loopback;

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let ns = open_netns(req.netns())?;
        let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
        let lo = find_lo(&mut nl)?;
        nl.set_link_up(lo.index).map_err(kernel_error)?;
        let addresses = nl.list_addresses(lo.index).map_err(kernel_error)?;
        if let Some(odd) = addresses.iter().find(|a| !a.addr.ip().is_loopback()) {
            return Err(Error::internal(format!(
                "loopback interface found with non-loopback address {}",
                odd.addr.ip()
            )));
        }
        // A chained loopback passes the previous result through untouched.
        if let Some(prev) = &req.conf.prev_result {
            return Ok(prev.clone());
        }
        Ok(loopback_result(req.netns(), &addresses))
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        // A netns that is gone (or none given) took lo with it: nothing left to do (kubernetes#43014).
        let Some(ns) = plugin_kit::netns_for_del(req.netns())? else {
            return Ok(());
        };
        let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
        match nl.set_link_down(LO) {
            Err(e) if !e.is_not_found() => Err(kernel_error(e)),
            _ => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let ns = open_netns(req.netns())?;
        let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
        let lo = find_lo(&mut nl)?;
        if !lo.is_loopback() {
            return Err(Error::check_failed(format!(
                "interface {LO} in {} is not a loopback interface",
                req.netns()
            )));
        }
        if !lo.is_up() {
            return Err(Error::check_failed("loopback interface is down"));
        }
        Ok(())
    }
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
///
/// loopback reads no key of its own, nor CNI_ARGS: a chained ADD passes `prevResult` on,
/// which the request already holds decoded.
pub fn read_request(_req: &Request) -> Result<(), Error> {
    Ok(())
}

/// The result of a first-in-chain ADD: `lo` in the sandbox, with the first IPv4 and first
/// IPv6 address it holds once up (127.0.0.1/8 and ::1/128).
fn loopback_result(netns: &str, addresses: &[Address]) -> CniResult {
    let first_of = |v4: bool| addresses.iter().find(|a| a.addr.is_ipv4() == v4);
    let ips = [first_of(true), first_of(false)]
        .into_iter()
        .flatten()
        .map(|a| IpConfig {
            address: a.addr,
            gateway: None,
            interface: Some(0),
        })
        .collect();
    CniResult {
        interfaces: vec![Interface {
            name: LO.into(),
            mac: "00:00:00:00:00:00".into(),
            sandbox: netns.into(),
            ..Interface::default()
        }],
        ips,
        ..CniResult::default()
    }
}

fn find_lo(nl: &mut Netlink) -> Result<Link, Error> {
    nl.get_link(LO)
        .map_err(kernel_error)?
        .ok_or_else(|| Error::internal(format!("link {LO} not found")))
}

#[cfg(test)]
mod tests;
