//! DEL and GC: release IPAM, delete the container's interface, take its addresses out of the
//! masquerade sets and its port out of the spoof check, whatever is already gone.

use std::net::IpAddr;

use cni::{Command, Error, Request, delegate};
use cni_netlink::{MacAddr, NetNs, Netlink};

use crate::config::MasqBackend;
use crate::firewall::NftSession;
use crate::{AttachmentState, firewall, kernel_error, state_dir};
use plugin_kit::is_stale;
use plugin_kit::masq_iptables;

/// Every step runs even if an earlier one failed, so one missing piece cannot keep the others
/// alive; the state file goes only when everything succeeded, for the runtime's retry.
pub fn del(req: &Request) -> Result<(), Error> {
    let states = state_dir(req);
    let state: Option<AttachmentState> = states.load(req.container_id(), req.ifname());
    let ips = state
        .as_ref()
        .map(|s| s.ips.clone())
        .unwrap_or_else(|| prev_result_ips(req));
    let mut errors = Vec::new();
    if let Err(e) = delete_pair(req, state.as_ref()) {
        errors.push(e);
    }
    let mut nft = NftSession::default();
    let released = release_rules(
        &mut nft,
        &req.conf.name,
        req.container_id(),
        state.as_ref(),
        &ips,
    );
    nft.finish();
    if let Err(e) = released {
        errors.push(e);
    }
    // The addresses go back to IPAM last: handed out again before their masquerade entries
    // are gone, the next container would lose them to this DEL.
    if let Some(ipam) = &req.conf.ipam_type
        && let Err(e) = delegate::run(ipam, Command::Del, req)
    {
        errors.push(e);
    }
    match errors.len() {
        0 => states
            .remove(req.container_id(), req.ifname())
            .map_err(plugin_kit::state_error),
        1 => Err(errors.remove(0)),
        _ => {
            let msgs: Vec<String> = errors.iter().map(|e| e.msg.clone()).collect();
            Err(Error::new(errors[0].code, msgs.join("; ")))
        }
    }
}

/// Deleting the container end deletes the pair; without the netns (none given, or gone)
/// the host end the state names goes. A missing link is success.
fn delete_pair(req: &Request, state: Option<&AttachmentState>) -> Result<(), Error> {
    let host_end_only = || match state {
        Some(s) if !s.host_veth.is_empty() => {
            plugin_kit::delete_host_link_of_kind(&s.host_veth, "veth")
        }
        _ => Ok(()),
    };
    if req.netns().is_empty() {
        return host_end_only();
    }
    let ns = match NetNs::open(req.netns()) {
        Ok(ns) => ns,
        Err(e) if e.is_netns_gone() => return host_end_only(),
        Err(e) => return Err(Error::invalid_netns(e.to_string())),
    };
    let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
    // Unregistering a link waits for RCU (13 ms and more); this frees the name at once and
    // leaves that wait to a child, after the plugin has exited.
    if let Some(link) = nl.get_link(req.ifname()).map_err(kernel_error)? {
        nl.delete_link_after_exit(link.index)
            .map_err(kernel_error)?;
    }
    Ok(())
}

pub(crate) fn prev_result_ips(req: &Request) -> Vec<IpAddr> {
    req.conf
        .prev_result
        .iter()
        .flat_map(|r| r.ips.iter())
        .map(|ip| ip.address.ip())
        .collect()
}

/// Masquerade and spoof check entries of the attachment. Both nftables and iptables are
/// cleaned when the state does not say which one was used (as the reference tries both).
fn release_rules(
    nft: &mut NftSession,
    network: &str,
    container_id: &str,
    state: Option<&AttachmentState>,
    ips: &[IpAddr],
) -> Result<(), Error> {
    let backend = state.map(|s| s.masq);
    let mut ops = Vec::new();
    if matches!(backend, None | Some(Some(MasqBackend::Nftables))) {
        ops.extend(firewall::masq_ops(network, ips, false));
    }
    if let Some(s) = state.filter(|s| s.spoofchk)
        && let Ok(mac) = s.container_mac.parse::<MacAddr>()
    {
        ops.extend(firewall::spoofchk_ops(&s.host_veth, mac, false)?);
    }
    nft.apply(&ops)?;
    if matches!(backend, None | Some(Some(MasqBackend::Iptables))) && !ips.is_empty() {
        masq_iptables::delete_masquerade(network, container_id, ips)?;
    }
    Ok(())
}

/// GC: forget every attachment not in `cni.dev/valid-attachments` (without that key, those
/// whose netns is gone): its pair (its netns may live on), its rules; then forward GC to
/// IPAM.
pub fn gc(req: &Request) -> Result<(), Error> {
    let states = state_dir(req);
    let mut errors = Vec::new();
    let mut nft = NftSession::default();
    let all: Vec<AttachmentState> = states.list().map_err(plugin_kit::state_error)?;
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
        if !state.host_veth.is_empty()
            && let Err(e) = plugin_kit::delete_host_link_of_kind(&state.host_veth, "veth")
        {
            errors.push(e.msg);
            continue;
        }
        // As in DEL: the state stays until its rules are gone, so a later GC retries.
        match release_rules(
            &mut nft,
            &req.conf.name,
            &state.container_id,
            Some(&state),
            &state.ips,
        ) {
            Ok(()) => {
                let _ = states.remove(&state.container_id, &state.ifname);
            }
            Err(e) => errors.push(e.msg),
        }
    }
    nft.finish();
    if let Some(ipam) = &req.conf.ipam_type
        && let Err(e) = delegate::run(ipam, Command::Gc, req)
    {
        errors.push(e.msg);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!("gc: {}", errors.join("; "))))
    }
}
