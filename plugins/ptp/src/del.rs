//! DEL: delete the pair (the host end, its gateway address and host routes go with it), take
//! the container's addresses out of the masquerade rules, release IPAM; whatever is already
//! gone is fine. Every step runs even if an earlier one failed, and the state file goes only
//! when all succeeded, for the runtime's retry.

use cni::{Command, Error, Request, delegate};
use cni_netlink::{IpNetwork, Netlink};
use plugin_kit::{KernelResultExt, MasqBackend, NftSession, Teardown, masq_iptables};

use crate::config::Config;
use crate::{AttachmentState, masq};

pub fn del(req: &Request) -> Result<(), Error> {
    let states = crate::state_dir(req);
    let state: Option<AttachmentState> = states.load(req.container_id(), req.ifname());
    let backends = match &state {
        Some(s) => s.masq.into_iter().collect(),
        None if Config::masq_wanted_for_del(req) => {
            vec![MasqBackend::Nftables, MasqBackend::Iptables]
        }
        None => Vec::new(),
    };
    let mut teardown = Teardown::new();
    // The addresses the masquerade rules were made for: recorded at ADD, else in prevResult,
    // else on the container's interface (kind's DEL has no prevResult).
    let mut addresses = state
        .as_ref()
        .map(|s| s.addresses.clone())
        .unwrap_or_else(|| prev_result_addresses(req));
    let find_addresses = addresses.is_empty() && !backends.is_empty();
    teardown.step("delete the container's interface", || {
        let found = delete_pair(req, state.as_ref(), find_addresses)?;
        if addresses.is_empty() {
            addresses = found;
        }
        Ok(())
    });
    teardown.step("masquerade", || {
        release_masquerade(&req.conf.name, req.container_id(), &backends, &addresses)
    });
    // The addresses go back to IPAM last: handed out again before their masquerade entries
    // went, the next container would lose its entries to this DEL. (Our host-local runs on
    // this thread; on a thread of its own, its start and join cost more than it overlaps.)
    if let Some(plugin) = &req.conf.ipam_type {
        teardown.step("ipam", || delegate::run(plugin, Command::Del, req));
    }
    if teardown.is_clean() {
        states
            .remove(req.container_id(), req.ifname())
            .map_err(plugin_kit::state_error)?;
    }
    teardown.finish()
}

pub(crate) fn prev_result_addresses(req: &Request) -> Vec<IpNetwork> {
    req.conf
        .prev_result
        .iter()
        .flat_map(|r| r.ips.iter())
        .map(|ip| ip.address)
        .collect()
}

/// Deletes the container end (which takes the host end along) and returns the addresses it
/// had when `find_addresses`. With the netns gone, the host end the state names is deleted
/// if it is still there.
fn delete_pair(
    req: &Request,
    state: Option<&AttachmentState>,
    find_addresses: bool,
) -> Result<Vec<IpNetwork>, Error> {
    let Some(ns) = plugin_kit::netns_for_del(req.netns())? else {
        if let Some(s) = state {
            delete_host_end(&s.host_veth)?;
        }
        return Ok(Vec::new());
    };
    let mut nl = Netlink::in_netns(&ns).cni()?;
    let Some(link) = nl.get_link(req.ifname()).cni()? else {
        return Ok(Vec::new());
    };
    let addresses = if find_addresses {
        nl.list_addresses(link.index)
            .cni()?
            .into_iter()
            .map(|a| a.addr)
            .filter(|a| !is_link_local(a))
            .collect()
    } else {
        Vec::new()
    };
    // Unregistering a link waits for RCU (13 ms and more); this frees the name at once and
    // leaves that wait to a child, after the plugin has exited.
    nl.delete_link_after_exit(link.index).cni()?;
    Ok(addresses)
}

fn is_link_local(a: &IpNetwork) -> bool {
    match a {
        IpNetwork::V4(v4) => v4.ip().is_link_local(),
        IpNetwork::V6(v6) => v6.ip().is_unicast_link_local(),
    }
}

/// The host end of a pair, if it is still there.
pub fn delete_host_end(name: &str) -> Result<(), Error> {
    plugin_kit::delete_host_link_of_kind(name, "veth")
}

/// Takes the addresses out of the masquerade rules of each backend that may hold them.
pub fn release_masquerade(
    network: &str,
    container_id: &str,
    backends: &[MasqBackend],
    addresses: &[IpNetwork],
) -> Result<(), Error> {
    if addresses.is_empty() {
        return Ok(());
    }
    for backend in backends {
        match backend {
            MasqBackend::Nftables => {
                let mut nft = NftSession::default();
                let released = masq::release(&mut nft, network, addresses);
                nft.finish();
                released?;
            }
            MasqBackend::Iptables => {
                let ips: Vec<_> = addresses.iter().map(|a| a.ip()).collect();
                masq_iptables::delete_masquerade(network, container_id, &ips)?;
            }
        }
    }
    Ok(())
}
