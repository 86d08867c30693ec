//! The bandwidth plugin, chained after a veth-based plugin (bridge, ptp): traffic into the
//! container is shaped by a token bucket (TBF) on the host end of its veth; traffic out of it
//! is redirected, on arrival at the host end, to an ifb whose own TBF shapes it. The ifb is
//! named from the network and container as the reference names it (`bwp<hash>`) and tagged
//! with its owner, so DEL finds it with nothing but the container ID and GC finds the ones
//! whose DEL never came; an ifb left untagged by an ADD killed while making it is down,
//! which no finished one is, and GC takes those too.

mod add;
mod check;
mod config;
mod del;
mod gc;

use cni::{CniResult, Command, Error, Request, Version};
use cni_netlink::{Link, Netlink};
use plugin_kit::{KernelResultExt, net_id};
use sha2::{Digest, Sha512};

pub use config::{Config, Limit};

pub struct Bandwidth;

plugin_kit::delegate_plugin!(Bandwidth {
    // As the reference: from 0.3.0 on, which has prevResult.
    versions: &Version::ALL[2..],
    add: add::add,
    del: del::del,
    check: check::check,
    gc: gc::gc,
});

/// The ifb of an attachment: "bwp" and a hash of network and container ID, 15 characters,
/// as the reference names it (so either plugin's DEL removes the other's).
pub fn ifb_name(network: &str, container_id: &str) -> String {
    format!("bwp{}", ifb_hash(network, container_id))
}

/// The name an attachment's ifb takes while it is deleted: a DEL killed after renaming it
/// finds it again on the next try.
fn dying_ifb_name(network: &str, container_id: &str) -> String {
    format!("bwd{}", ifb_hash(network, container_id))
}

fn ifb_hash(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..12].to_string()
}

/// The tag on an attachment's ifb; the network as its short id, so that it always fits.
fn ifb_alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{}{container_id} {ifname}", alias_prefix(network))
}

/// Where ADDs hold a shared lock while they make an ifb and GC an exclusive one, so that GC
/// never sees a creation in flight: an ifb still untagged then is one whose ADD was killed.
const IFB_LOCK_DIR: &str = "/run/cni/bandwidth";
const IFB_LOCK: &str = "ifb.lock";

fn alias_prefix(network: &str) -> String {
    format!("cni-bandwidth {} ", net_id(network))
}

/// The host end of the container's veth: the peer of CNI_IFNAME, which prevResult must name
/// as a host interface (the chain's main plugin made it).
fn host_end(req: &Request, prev: &CniResult, host: &mut Netlink) -> Result<Link, Error> {
    let ns = plugin_kit::open_netns(req.netns())?;
    let mut ctr = Netlink::in_netns(&ns).cni()?;
    let ctr_link = ctr.get_link(req.ifname()).cni()?.ok_or_else(|| {
        Error::invalid_config(format!("{} is missing from {}", req.ifname(), req.netns()))
    })?;
    let peer = ctr_link.veth_peer_index().ok_or_else(|| {
        Error::invalid_config(format!(
            "{} has no veth peer: bandwidth shapes veth-based attachments (bridge, ptp)",
            req.ifname()
        ))
    })?;
    let link = host.get_link(peer).cni()?.ok_or_else(|| {
        Error::invalid_config(format!(
            "the veth peer of {} is not in this netns",
            req.ifname()
        ))
    })?;
    if !prev
        .interfaces
        .iter()
        .any(|i| i.sandbox.is_empty() && i.name == link.name)
    {
        return Err(Error::invalid_config(format!(
            "prevResult does not name {}, the host end of {}",
            link.name,
            req.ifname()
        )));
    }
    Ok(link)
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add => {
            // Without limits ADD passes prevResult on, whatever it is.
            if !Config::from_request(req)?.is_empty() {
                chained_prev(req)?;
            }
            Ok(())
        }
        Command::Check => {
            Config::from_request(req)?;
            chained_prev(req).map(drop)
        }
        // DEL needs nothing but the ifb's names, GC the network's tag.
        Command::Del => {
            ifb_name(&req.conf.name, req.container_id());
            dying_ifb_name(&req.conf.name, req.container_id());
            Ok(())
        }
        Command::Gc => {
            alias_prefix(&req.conf.name);
            Ok(())
        }
        Command::Status | Command::Version => Ok(()),
    }
}

/// prevResult, which a chained plugin needs (code 7 without it).
fn chained_prev(req: &Request) -> Result<&CniResult, Error> {
    req.conf.prev_result.as_ref().ok_or_else(|| {
        Error::invalid_config("bandwidth must be called as a chained plugin: prevResult missing")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names_are_the_references() {
        // sha512("k8s" + "c1") starts with these 12 hex digits.
        let name = ifb_name("k8s", "c1");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("bwp"));
        assert_eq!(name, ifb_name("k8s", "c1"));
        assert_ne!(name, ifb_name("k8s", "c2"));
        assert!(ifb_alias("k8s", "c1", "eth0").starts_with(&alias_prefix("k8s")));
    }
}
