//! DEL: take back one attachment's rules, whatever is already gone; without a recorded state
//! (the reference made them, or the state was lost), what prevResult names, in both backends.

use std::path::Path;

use cni::{Error, Request};
use cni_netlink::nft::Nft;
use plugin_kit::{Teardown, kernel_error};

use crate::config::{Config, IngressPolicy};
use crate::{
    AttachmentState, Backend, Origin, families, iptables, leave_member, lock, member_name,
    members_dir, nft, policies_needed, states,
};

pub fn del(req: &Request) -> Result<(), Error> {
    let data_dir = Config::data_dir_of(req);
    let _lock = lock(&data_dir)?;
    let dir = states(req, &data_dir);
    let state: Option<AttachmentState> = dir.load(req.container_id(), req.ifname());
    let (state, origin) = match state {
        Some(s) => (s, Origin::Recorded),
        None => {
            // Not added by us (the reference plugin, or a lost state): what prevResult
            // names, in both backends.
            let Some(prev) = &req.conf.prev_result else {
                return Ok(());
            };
            let state = AttachmentState {
                container_id: req.container_id().to_string(),
                ifname: req.ifname().to_string(),
                netns: req.netns().to_string(),
                netns_id: String::new(),
                backend: Backend::Nftables,
                ips: prev.ips.iter().map(|ip| ip.address.ip()).collect(),
                bridge: String::new(),
                policy: IngressPolicy::Open,
            };
            (state, Origin::PrevResult)
        }
    };
    release(&data_dir, &req.conf.name, &state, origin)?;
    dir.remove(req.container_id(), req.ifname())
        .map_err(plugin_kit::state_error)
}

/// Takes back one attachment's rules, whatever is already gone. Every step is tried.
pub fn release(
    data_dir: &Path,
    network: &str,
    state: &AttachmentState,
    origin: Origin,
) -> Result<(), Error> {
    let mut teardown = Teardown::new();
    let member = member_name(network, &state.container_id, &state.ifname);
    // Elements first, in one transaction.
    let mut ops = nft::allow_ops(&state.ips, false);
    let mut last_of: Vec<IngressPolicy> = Vec::new();
    for policy in policies_needed(state.policy) {
        if leave_member(&members_dir(data_dir, &state.bridge, policy), &member) {
            last_of.push(policy);
        }
    }
    if state.backend == Backend::Nftables {
        for policy in &last_of {
            match nft::isolation_ops(&state.bridge, *policy == IngressPolicy::Isolated, false) {
                Ok(o) => ops.extend(o),
                Err(e) => teardown.push(e),
            }
        }
    }
    match Nft::host() {
        Ok(mut n) => {
            if let Err(e) = nft::apply(&mut n, &ops) {
                teardown.push(e);
            }
            n.close_after_exit();
        }
        Err(e) => teardown.push(kernel_error(e)),
    }
    // iptables rules: those of our iptables backend (also what an ADD that had no nft
    // recorded), and, without a recorded state, those the reference may have left for these
    // addresses. An attachment recorded with nftables has none: its DEL does not list
    // CNI-FORWARD once per address.
    if (state.backend == Backend::Iptables || origin == Origin::PrevResult)
        && let Err(e) = iptables::del_container(&state.ips)
    {
        teardown.push(e);
    }
    if state.backend == Backend::Iptables {
        for policy in &last_of {
            for v6 in families(&state.ips) {
                let ipt = iptables::Ipt { v6 };
                let only_icc = *policy == IngressPolicy::Isolated;
                if let Err(e) = iptables::remove_isolation(ipt, &state.bridge, only_icc) {
                    teardown.push(e);
                }
            }
        }
    }
    teardown.finish()
}
