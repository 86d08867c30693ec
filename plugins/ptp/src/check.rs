//! CHECK: everything ADD set up is still there, as `prevResult` describes it: the container
//! end (a veth with its MAC, addresses and routes), the host end (its peer, carrying the
//! gateways and the host routes), the masquerade entries.

use cni::{CniResult, Command, Error, Request, delegate};
use cni_netlink::{IpFamily, Link, Netlink, RouteFilter, TABLE_MAIN};
use plugin_kit::{
    KernelResultExt, MasqBackend, NftSession, expect_addresses_and_routes, expect_mac,
    expect_prev_interface, masq_iptables, open_netns, required_prev_result,
};

use crate::config::Config;
use crate::{host_net, masq};

fn fail(msg: impl Into<String>) -> Error {
    Error::check_failed(msg)
}

pub fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    let prev = required_prev_result(req)?;
    delegate::run(&cfg.ipam_type, Command::Check, req)?;
    let want = expect_prev_interface(prev, req)?;
    let ns = open_netns(req.netns())?;
    let mut ctr = Netlink::in_netns(&ns).cni()?;
    let link = ctr
        .get_link(req.ifname())
        .cni()?
        .ok_or_else(|| fail(format!("{} is missing from {}", req.ifname(), req.netns())))?;
    if link.kind.as_deref() != Some("veth") {
        return Err(fail(format!("{} is not a veth", req.ifname())));
    }
    expect_mac(&link, want)?;
    expect_addresses_and_routes(&mut ctr, &link, prev)?;
    let mut host = Netlink::host().cni()?;
    check_host_end(&mut host, &link, prev)?;
    check_masquerade(&cfg, req, prev)
}

/// The container end's peer is on the host, holds every gateway, and the host routes each
/// container address over it.
fn check_host_end(host: &mut Netlink, ctr_link: &Link, prev: &CniResult) -> Result<(), Error> {
    let peer = ctr_link
        .veth_peer_index()
        .ok_or_else(|| fail(format!("{} has no peer", ctr_link.name)))?;
    let veth = host
        .get_link(peer)
        .cni()?
        .ok_or_else(|| fail(format!("the host end of {} is missing", ctr_link.name)))?;
    if let Some(want) = prev.interfaces.iter().find(|i| i.sandbox.is_empty())
        && want.name != veth.name
    {
        return Err(fail(format!(
            "host end is {}, expected {}",
            veth.name, want.name
        )));
    }
    let addresses = host.list_addresses(veth.index).cni()?;
    for ip in &prev.ips {
        if let Some(gw) = ip.gateway
            && !addresses.iter().any(|a| a.addr == host_net(gw))
        {
            return Err(fail(format!("gateway {gw} is missing from {}", veth.name)));
        }
        let family = IpFamily::of(ip.address.ip());
        let routes = host
            .list_routes(&RouteFilter {
                family: Some(family),
                table: Some(TABLE_MAIN),
                oif: Some(veth.index),
            })
            .cni()?;
        let dst = host_net(ip.address.ip());
        if !routes.iter().any(|r| r.dst == dst) {
            return Err(fail(format!(
                "the host route to {} over {} is missing",
                ip.address.ip(),
                veth.name
            )));
        }
    }
    Ok(())
}

fn check_masquerade(cfg: &Config, req: &Request, prev: &CniResult) -> Result<(), Error> {
    let Some(backend) = cfg.ip_masq else {
        return Ok(());
    };
    let mut nft = NftSession::default();
    for ip in &prev.ips {
        let present = match backend {
            MasqBackend::Nftables => masq::present(nft.get()?, &cfg.network, ip.address)?,
            MasqBackend::Iptables => {
                masq_iptables::masquerade_present(&cfg.network, req.container_id(), ip.address.ip())
            }
        };
        if !present {
            return Err(fail(format!(
                "the masquerade rule of {} is missing",
                ip.address.ip()
            )));
        }
    }
    Ok(())
}
