//! ADD: IPAM, the veth pair, the container's addresses and routes through the gateway, the
//! gateway and host routes on the host end, forwarding and masquerade; each step undone if a
//! later one fails.

use std::net::IpAddr;

use cni::delegate::IpamLease;
use cni::{CniResult, Error, IpConfig, Request, Undo};
use cni_netlink::{IpNetwork, Link, Netlink, SCOPE_LINK};
use plugin_kit::{
    KernelResultExt, MasqBackend, NftSession, add_route_if_missing, masq_iptables, open_netns,
    result_interface,
};

use crate::config::Config;
use crate::{AttachmentState, host_net, masq};

pub fn add(req: &Request) -> Result<CniResult, Error> {
    let cfg = Config::from_request(req)?;
    let ns = open_netns(req.netns())?;
    // IPAM runs while the pair is made; a pending lease dropped on error releases.
    let pending = IpamLease::start(&cfg.ipam_type, req)?;
    let mut host = Netlink::host().cni()?;
    let mut undo = Undo::new();
    // Recorded before each thing it names is made, so that DEL and GC find whatever a
    // killed ADD left: the host end's name first, the addresses before the masquerade.
    let mut state = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        netns_id: plugin_kit::netns_identity(req.netns()),
        host_veth: String::new(),
        addresses: Vec::new(),
        masq: cfg.ip_masq,
    };
    let states = crate::state_dir(req);
    let save = |state: &AttachmentState| {
        states
            .save(req.container_id(), req.ifname(), state)
            .map_err(plugin_kit::state_error)
    };
    states.restore_on_undo(req.container_id(), req.ifname(), &mut undo);
    let host_veth =
        plugin_kit::create_veth_pair(&mut host, &ns, req, cfg.mtu, None, &mut undo, |name| {
            state.host_veth = name.to_string();
            save(&state)
        })?;
    let (lease, mut result) = pending.wait()?;
    state.addresses = result.ips.iter().map(|ip| ip.address).collect();
    save(&state)?;
    let ips = gateways_of(&result)?;
    plugin_kit::enable_forwarding(ips.iter().map(|(ip, _)| ip.address.ip()))?;

    let mut ctr = Netlink::in_netns(&ns).cni()?;
    let ctr_link = ctr
        .get_link(req.ifname())
        .cni()?
        .ok_or_else(|| Error::internal(format!("{} vanished from the netns", req.ifname())))?;
    configure_container(&mut ctr, &ctr_link, &ips, &result)?;
    configure_host_end(&mut host, &host_veth, &ips)?;
    if let Some(backend) = cfg.ip_masq {
        masquerade(
            &cfg,
            backend,
            req.container_id(),
            &state.addresses,
            &mut undo,
        )?;
    }

    let host_veth = host.get_link(host_veth.index).cni()?.unwrap_or(host_veth);
    result.interfaces = vec![
        result_interface(&host_veth, ""),
        result_interface(&ctr_link, req.netns()),
    ];
    for ip in &mut result.ips {
        ip.interface = Some(1);
    }
    if let Some(dns) = &cfg.dns {
        result.dns = dns.clone();
    }
    lease.keep();
    undo.commit();
    Ok(result)
}

/// Each address with its gateway: ptp routes everything through it, so IPAM must give one
/// (host-local does by default: the subnet's first address).
fn gateways_of(result: &CniResult) -> Result<Vec<(IpConfig, IpAddr)>, Error> {
    if result.ips.is_empty() {
        return Err(Error::internal("IPAM plugin returned missing IP config"));
    }
    result
        .ips
        .iter()
        .map(|ip| match ip.gateway {
            Some(gw) if gw != ip.address.ip() => Ok((ip.clone(), gw)),
            Some(gw) => Err(Error::invalid_config(format!(
                "ipam: the gateway {gw} is the container's own address"
            ))),
            None => Err(Error::invalid_config(format!(
                "ipam: {} has no gateway; ptp routes everything through one",
                ip.address
            ))),
        })
        .collect()
}

/// The container side: each address with its real prefix but no route to its subnet; a
/// link route to the gateway alone; the subnet and every IPAM route via the gateway. All
/// traffic, to the container's own subnet too, goes to the host end.
fn configure_container(
    ctr: &mut Netlink,
    link: &Link,
    ips: &[(IpConfig, IpAddr)],
    result: &CniResult,
) -> Result<(), Error> {
    ctr.set_link_up(link.index).cni()?;
    for (ip, gw) in ips {
        ctr.add_address_without_prefix_route(link.index, ip.address)
            .cni_context(format!("add {} to {}", ip.address, link.name))?;
        let mut to_gw = cni_netlink::Route::new(host_net(*gw), None, Some(link.index));
        to_gw.scope = SCOPE_LINK;
        to_gw.pref_src = Some(ip.address.ip());
        add_route_if_missing(ctr, &to_gw)?;
        let subnet = IpNetwork::new(ip.address.network(), ip.address.prefix())
            .map_err(|e| Error::internal(format!("subnet of {}: {e}", ip.address)))?;
        let mut via_gw = cni_netlink::Route::new(subnet, Some(*gw), Some(link.index));
        via_gw.pref_src = Some(ip.address.ip());
        add_route_if_missing(ctr, &via_gw)?;
    }
    for route in &result.routes {
        plugin_kit::add_result_route(ctr, link.index, route, &result.ips)?;
    }
    Ok(())
}

/// The host side: the gateway as a single address on the host end (the host then answers
/// the container's ARP and neighbour solicitations for it; no proxy ARP), and a host route
/// to each container address over it. The route replaces one left by an attachment that
/// held the address before and was never deleted.
fn configure_host_end(
    host: &mut Netlink,
    veth: &Link,
    ips: &[(IpConfig, IpAddr)],
) -> Result<(), Error> {
    host.set_link_up(veth.index).cni()?;
    for (ip, gw) in ips {
        match host.add_address_nodad(veth.index, host_net(*gw)) {
            Err(e) if !e.is_exists() => {
                return Err(plugin_kit::kernel_error(e)
                    .context(format!("add gateway {gw} to {}", veth.name)));
            }
            _ => {}
        }
        let route = cni_netlink::Route::new(host_net(ip.address.ip()), None, Some(veth.index));
        host.replace_route(&route).cni_context(format!(
            "route {} to {}",
            ip.address.ip(),
            veth.name
        ))?;
    }
    Ok(())
}

fn masquerade(
    cfg: &Config,
    backend: MasqBackend,
    container_id: &str,
    addresses: &[IpNetwork],
    undo: &mut Undo,
) -> Result<(), Error> {
    let network = cfg.network.clone();
    match backend {
        MasqBackend::Nftables => {
            let mut nft = NftSession::default();
            for a in addresses {
                masq::ensure(nft.get()?, &cfg.data_dir, &cfg.network, *a)?;
            }
            nft.apply(&masq::ops(&cfg.network, addresses, true))?;
            nft.finish();
            let addresses = addresses.to_vec();
            undo.push("masquerade elements", move || {
                let mut nft = NftSession::default();
                let released = masq::release(&mut nft, &network, &addresses).map_err(|e| e.msg);
                nft.finish();
                released
            });
        }
        MasqBackend::Iptables => {
            let with_nets: Vec<_> = addresses.iter().map(|a| (a.ip(), *a)).collect();
            masq_iptables::add_masquerade(&cfg.network, container_id, &with_nets)?;
            let id = container_id.to_string();
            let ips: Vec<IpAddr> = addresses.iter().map(|a| a.ip()).collect();
            undo.push("iptables masquerade", move || {
                masq_iptables::delete_masquerade(&network, &id, &ips).map_err(|e| e.msg)
            });
        }
    }
    Ok(())
}
