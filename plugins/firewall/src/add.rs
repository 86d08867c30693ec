//! ADD: the attachment's state is recorded first (a DEL after a half-done ADD then knows
//! what to take back), then its addresses are let through and its bridge isolated as the
//! ingress policy says; a failure takes everything back.

use cni::{CniResult, Error, Request, Undo};
use cni_netlink::nft::Nft;
use plugin_kit::{StateDir, kernel_error};

use crate::config::{Config, IngressPolicy};
use crate::del::release;
use crate::{
    AttachmentState, Backend, Chained, Origin, effective_backend, families, iptables, join_member,
    lock, member_name, members_dir, nft, policies_needed, states,
};

pub fn add(req: &Request) -> Result<CniResult, Error> {
    let Chained {
        cfg,
        result,
        bridge,
        ips,
    } = Chained::read(req)?;
    let backend = effective_backend(&cfg);
    let _lock = lock(&cfg.data_dir)?;
    let state = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        netns_id: plugin_kit::netns_identity(req.netns()),
        backend,
        ips: ips.clone(),
        bridge: bridge.clone(),
        policy: cfg.ingress_policy,
    };
    // Recorded first: a DEL after a half-done ADD then knows what to take back.
    states(req, &cfg.data_dir)
        .save(req.container_id(), req.ifname(), &state)
        .map_err(plugin_kit::state_error)?;
    let mut undo = Undo::new();
    let (data_dir, network, recorded) =
        (cfg.data_dir.clone(), req.conf.name.clone(), state.clone());
    undo.push("release the rules", move || {
        release(&data_dir, &network, &recorded, Origin::Recorded).map_err(|e| e.msg)?;
        StateDir::new(&data_dir, &network)
            .remove(&recorded.container_id, &recorded.ifname)
            .map_err(|e| e.to_string())
    });
    match backend {
        Backend::Nftables => add_nft(&cfg, req, &state)?,
        Backend::Iptables => add_iptables(&cfg, req, &state)?,
    }
    undo.commit();
    Ok(result)
}

fn add_nft(cfg: &Config, req: &Request, state: &AttachmentState) -> Result<(), Error> {
    let mut nft = Nft::host().map_err(kernel_error)?;
    nft::ensure_structure(&mut nft)?;
    nft::ensure_foreign_accepts()?;
    let mut ops = nft::allow_ops(&state.ips, true);
    if state.policy != IngressPolicy::Open {
        for policy in policies_needed(state.policy) {
            join_member(
                &members_dir(&cfg.data_dir, &state.bridge, policy),
                &member_name(&req.conf.name, req.container_id(), req.ifname()),
            )?;
            ops.extend(nft::isolation_ops(
                &state.bridge,
                policy == IngressPolicy::Isolated,
                true,
            )?);
        }
    }
    let applied = nft::apply(&mut nft, &ops);
    // The runtime need not wait for the kernel to free the transaction's garbage.
    nft.close_after_exit();
    applied
}

fn add_iptables(cfg: &Config, req: &Request, state: &AttachmentState) -> Result<(), Error> {
    iptables::add_container(&state.ips, &cfg.admin_chain)?;
    if state.policy != IngressPolicy::Open {
        for policy in policies_needed(state.policy) {
            join_member(
                &members_dir(&cfg.data_dir, &state.bridge, policy),
                &member_name(&req.conf.name, req.container_id(), req.ifname()),
            )?;
        }
        for v6 in families(&state.ips) {
            iptables::ensure_isolation(
                iptables::Ipt { v6 },
                &state.bridge,
                state.policy == IngressPolicy::Isolated,
            )?;
        }
    }
    Ok(())
}
