//! CHECK: everything ADD set up is still there, as `prevResult` describes it.

use cni::{CniResult, Command, Error, Request, delegate};
use cni_netlink::{Link, MacAddr, Netlink};

use crate::config::{Config, MasqBackend};
use crate::firewall::NftSession;
use crate::{firewall, kernel_error, open_netns};
use plugin_kit::masq_iptables;
use plugin_kit::{expect_addresses_and_routes, expect_mac, prev_interface, required_prev_result};

fn fail(msg: impl Into<String>) -> Error {
    Error::check_failed(msg)
}

pub fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    let prev = required_prev_result(req)?;
    if let Some(ipam) = &cfg.ipam_type {
        delegate::run(ipam, Command::Check, req)?;
    }
    let mut host = Netlink::host().map_err(kernel_error)?;
    let bridge = check_bridge(&mut host, &cfg, prev)?;
    let ns = open_netns(req.netns())?;
    let mut ctr = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let ctr_link = ctr
        .get_link(req.ifname())
        .map_err(kernel_error)?
        .ok_or_else(|| fail(format!("{} is missing from {}", req.ifname(), req.netns())))?;
    if ctr_link.kind.as_deref() != Some("veth") {
        return Err(fail(format!("{} is not a veth", req.ifname())));
    }
    if let Some(want) = prev_interface(prev, req.ifname(), req.netns()) {
        expect_mac(&ctr_link, want)?;
    }
    let host_veth = check_host_veth(&mut host, &cfg, &bridge, &ctr_link, prev)?;
    expect_addresses_and_routes(&mut ctr, &ctr_link, prev)?;
    check_rules(&cfg, req, prev, &host_veth, &ctr_link)
}

fn check_bridge(host: &mut Netlink, cfg: &Config, prev: &CniResult) -> Result<Link, Error> {
    let bridge = host
        .get_link(&cfg.bridge)
        .map_err(kernel_error)?
        .ok_or_else(|| fail(format!("bridge {} is missing", cfg.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(fail(format!("{} is not a bridge", cfg.bridge)));
    }
    if let Some(want) = prev_interface(prev, &cfg.bridge, "") {
        expect_mac(&bridge, want)?;
    }
    if cfg.promisc && !bridge.is_promisc() {
        return Err(fail(format!("bridge {} is not promiscuous", cfg.bridge)));
    }
    Ok(bridge)
}

/// The container end's peer is on the host, enslaved to the bridge, with the port settings.
fn check_host_veth(
    host: &mut Netlink,
    cfg: &Config,
    bridge: &Link,
    ctr_link: &Link,
    prev: &CniResult,
) -> Result<Link, Error> {
    let peer = ctr_link
        .veth_peer_index()
        .ok_or_else(|| fail(format!("{} has no peer", ctr_link.name)))?;
    let veth = host
        .get_link(peer)
        .map_err(kernel_error)?
        .ok_or_else(|| fail(format!("the host end of {} is missing", ctr_link.name)))?;
    if let Some(want) = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_empty() && i.name != cfg.bridge)
        && want.name != veth.name
    {
        return Err(fail(format!(
            "host end is {}, expected {}",
            veth.name, want.name
        )));
    }
    if veth.master != Some(bridge.index) {
        return Err(fail(format!(
            "{} is not a port of {}",
            veth.name, cfg.bridge
        )));
    }
    if cfg.hairpin {
        let port = host.bridge_port(veth.index).map_err(kernel_error)?;
        if !port.is_some_and(|p| p.hairpin) {
            return Err(fail(format!("hairpin mode is off on {}", veth.name)));
        }
    }
    if cfg.vlan_filtering() {
        let vlans = host.bridge_vlans(veth.index).map_err(kernel_error)?;
        if let Some(vid) = cfg.vlan
            && !vlans.iter().any(|v| v.vid == vid && v.pvid && v.untagged)
        {
            return Err(fail(format!(
                "{} is not an access port of vlan {vid}",
                veth.name
            )));
        }
        if let Some(vid) = cfg
            .vlan_trunk
            .iter()
            .find(|vid| !vlans.iter().any(|v| v.vid == **vid))
        {
            return Err(fail(format!(
                "{} does not carry trunk vlan {vid}",
                veth.name
            )));
        }
    }
    Ok(veth)
}

fn check_rules(
    cfg: &Config,
    req: &Request,
    prev: &CniResult,
    veth: &Link,
    ctr_link: &Link,
) -> Result<(), Error> {
    let mut nft = NftSession::default();
    if let Some(backend) = cfg.ip_masq {
        for ip in prev.ips.iter().map(|ip| ip.address.ip()) {
            let present = match backend {
                MasqBackend::Nftables => firewall::masq_present(nft.get()?, &cfg.network, ip)?,
                MasqBackend::Iptables => {
                    masq_iptables::masquerade_present(&cfg.network, req.container_id(), ip)
                }
            };
            if !present {
                return Err(fail(format!("the masquerade rule of {ip} is missing")));
            }
        }
    }
    if cfg.macspoofchk {
        let mac: MacAddr = ctr_link
            .mac
            .ok_or_else(|| fail(format!("{} has no MAC", ctr_link.name)))?;
        if !firewall::spoofchk_present(nft.get()?, &veth.name, mac)? {
            return Err(fail(format!(
                "the MAC spoof check of {} is missing",
                veth.name
            )));
        }
    }
    Ok(())
}
