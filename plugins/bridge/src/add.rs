//! ADD: bridge, veth pair, IPAM, container addresses and routes, gateway, masquerade,
//! isolation and spoof check, each step undone if a later one fails.

use std::net::IpAddr;

use cni::delegate::IpamLease;
use cni::{CniResult, Error, Request, Route, Undo};
use cni_netlink::{
    BridgeOptions, BridgePortOptions, BridgeVlanFlags, IpNetwork, Ipv4Conf, Link, MacAddr, NetNs,
    Netlink, VethOptions, random_link_name,
};

use crate::config::{Config, MasqBackend};
use crate::firewall::NftSession;
use crate::{AttachmentState, firewall, kernel_error, open_netns};
use plugin_kit::StateDir;
use plugin_kit::masq_iptables;
use plugin_kit::result_interface;

pub fn add(req: &Request) -> Result<CniResult, Error> {
    let cfg = Config::from_request(req)?;
    let ns = open_netns(req.netns())?;
    // IPAM runs in its own process while the links are made: its start-up and the kernel
    // work overlap. Dropping the pending lease on any error below waits for it and releases.
    let pending = match &cfg.ipam_type {
        Some(ipam) => Some(IpamLease::start(ipam, req)?),
        None => None,
    };
    let mut host = Netlink::host().map_err(kernel_error)?;
    let mut undo = Undo::new();
    let bridge = ensure_bridge(&mut host, &cfg)?;
    // Recorded before each thing it names is made, so that DEL and GC find whatever a
    // killed ADD left: the host end's name first, the container's MAC before the spoof
    // check, the addresses before the masquerade.
    let mut state = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        netns_id: plugin_kit::netns_identity(req.netns()),
        bridge: cfg.bridge.clone(),
        host_veth: String::new(),
        container_mac: String::new(),
        ips: Vec::new(),
        masq: cfg.ip_masq,
        spoofchk: cfg.macspoofchk,
    };
    StateDir::new(&cfg.data_dir, &cfg.network).restore_on_undo(
        req.container_id(),
        req.ifname(),
        &mut undo,
    );
    let host_veth =
        plugin_kit::create_veth_pair(&mut host, &ns, req, cfg.mtu, cfg.mac, &mut undo, |name| {
            state.host_veth = name.to_string();
            state.save(&cfg, req)
        })?;
    attach_port(&mut host, &cfg, &bridge, &host_veth)?;
    let (mut ctr, ctr_link) = open_container_side(&ns, &cfg, req.ifname())?;
    let ctr_mac = ctr_link
        .mac
        .ok_or_else(|| Error::internal("container interface has no MAC"))?;
    state.container_mac = ctr_mac.to_string();
    let mut nft = NftSession::default();
    if cfg.macspoofchk {
        state.save(&cfg, req)?;
        guard_mac(&mut nft, &cfg, &host_veth.name, ctr_mac, &mut undo)?;
    }

    let mut result = CniResult::default();
    let mut lease = None;
    if let Some(pending) = pending {
        let (l, r) = pending.wait()?;
        lease = Some(l);
        result = r;
    }
    complete_gateways(&cfg, &mut result);
    state.ips = result.ips.iter().map(|ip| ip.address.ip()).collect();
    state.save(&cfg, req)?;
    configure_container(&ns, &mut ctr, &cfg, req.ifname(), ctr_link.index, &result)?;
    if cfg.is_gateway {
        set_up_gateway(&mut host, &cfg, &bridge, &result)?;
    }
    if let Some(backend) = cfg.ip_masq
        && !state.ips.is_empty()
    {
        masquerade(
            &mut nft,
            &cfg,
            backend,
            req.container_id(),
            &result,
            &mut undo,
        )?;
    }
    if cfg.isolate {
        firewall::ensure_isolation(nft.get()?, &cfg.data_dir, &cfg.bridge)?;
    }

    let bridge = host
        .get_link(bridge.index)
        .map_err(kernel_error)?
        .unwrap_or(bridge);
    result.interfaces = vec![
        result_interface(&bridge, ""),
        result_interface(&host_veth, ""),
        result_interface(&ctr_link, req.netns()),
    ];
    for ip in &mut result.ips {
        ip.interface = Some(2);
    }
    if let Some(dns) = &cfg.dns {
        result.dns = dns.clone();
    }
    if let Some(lease) = lease {
        lease.keep();
    }
    undo.commit();
    nft.finish();
    Ok(result)
}

/// A bridge made by someone else may still take the lowest MAC of its ports, which changes
/// as containers come and go (and CHECK compares it): setting its MAC to itself pins it, as
/// the reference does. Only while it is not pinned yet (the kernel says so): every MAC
/// write, even of the same address, is announced, and the host then forgets its neighbour
/// entries on the bridge (every container's). Bridges this plugin creates get a fixed MAC
/// at creation.
fn pin_mac(nl: &mut Netlink, bridge: &Link) -> Result<(), Error> {
    if cni_netlink::mac_is_set(&bridge.name) == Some(true) {
        return Ok(());
    }
    if let Some(mac) = bridge.mac {
        nl.set_mac(bridge.index, mac).map_err(kernel_error)?;
    }
    Ok(())
}

/// Finds or creates the bridge, with vlan filtering and promiscuity as configured.
fn ensure_bridge(nl: &mut Netlink, cfg: &Config) -> Result<Link, Error> {
    let existing = nl.get_link(&cfg.bridge).map_err(kernel_error)?;
    let pre_existing = existing.is_some();
    let bridge = match existing {
        Some(link) => link,
        None => {
            let opts = BridgeOptions {
                mtu: cfg.mtu,
                vlan_filtering: cfg.vlan_filtering(),
                // A fixed MAC: otherwise the bridge takes its lowest port's and changes as
                // containers come and go.
                mac: Some(MacAddr::random_local().map_err(kernel_error)?),
            };
            match nl.create_bridge(&cfg.bridge, &opts) {
                Err(e) if !e.is_exists() => return Err(vlan_hint(cfg, e)),
                _ => {}
            }
            // Gateway addresses need no duplicate detection (they would stay tentative for a
            // second); without IPv6 the key is absent, which is fine.
            let key = format!("ipv6/conf/{}/accept_dad", cfg.bridge);
            match cni_netlink::set_sysctl(None, &key, "0") {
                Err(e) if !e.is_not_found() => return Err(kernel_error(e)),
                _ => {}
            }
            nl.get_link(&cfg.bridge)
                .map_err(kernel_error)?
                .ok_or_else(|| Error::internal(format!("bridge {} vanished", cfg.bridge)))?
        }
    };
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(Error::invalid_config(format!(
            "bridge: {} exists and is a {}, not a bridge",
            cfg.bridge,
            bridge.kind.as_deref().unwrap_or("device of unknown kind")
        )));
    }
    if pre_existing {
        pin_mac(nl, &bridge)?;
    }
    if cfg.vlan_filtering() && bridge.vlan_filtering != Some(true) {
        nl.set_vlan_filtering(bridge.index, true)
            .map_err(|e| vlan_hint(cfg, e))?;
    }
    if cfg.promisc && !bridge.is_promisc() {
        nl.set_promisc(bridge.index, true).map_err(kernel_error)?;
    }
    if !bridge.is_up() {
        nl.set_link_up(bridge.index).map_err(kernel_error)?;
    }
    Ok(bridge)
}

/// A kernel built without bridge VLAN filtering refuses it with EOPNOTSUPP: name the keys
/// that asked for it.
fn vlan_hint(cfg: &Config, e: cni_netlink::Error) -> Error {
    const EOPNOTSUPP: i32 = 95;
    let unsupported = cfg.vlan_filtering() && e.errno() == Some(EOPNOTSUPP);
    let err = kernel_error(e);
    if unsupported {
        err.context("vlan/vlanTrunk: this kernel has no bridge VLAN filtering")
    } else {
        err
    }
}

/// One trip into the container's netns: its socket and its end of the pair. `arp_notify`
/// goes over netlink and DAD is skipped per address (`nodad`): /proc/sys lookups get slower
/// with every network namespace on the machine. Only `enabledad` needs sysctls.
fn open_container_side(ns: &NetNs, cfg: &Config, ifname: &str) -> Result<(Netlink, Link), Error> {
    let enable_dad = cfg.enable_dad;
    let ifname_owned = ifname.to_string();
    let (mut ctr, link) = Netlink::in_netns_with(ns, move |ctr| {
        let ifname = ifname_owned.as_str();
        if enable_dad {
            let accept_dad = format!("ipv6/conf/{ifname}/accept_dad");
            let enhanced_dad = format!("ipv6/conf/{ifname}/enhanced_dad");
            // With IPv6 disabled in the container these keys do not exist: nothing to set.
            match cni_netlink::set_sysctls(None, &[(&accept_dad, "1"), (&enhanced_dad, "1")]) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        ctr.get_link(ifname)
    })
    .map_err(kernel_error)?;
    let link = link.ok_or_else(|| Error::internal(format!("{ifname} vanished from the netns")))?;
    ctr.enable_ipv4_conf(link.index, &[Ipv4Conf::ArpNotify])
        .map_err(kernel_error)?;
    Ok((ctr, link))
}

/// Enslaves the host end, sets its port flags and VLANs, and brings it up.
fn attach_port(host: &mut Netlink, cfg: &Config, bridge: &Link, veth: &Link) -> Result<(), Error> {
    host.set_master(veth.index, Some(bridge.index))
        .map_err(kernel_error)?;
    if cfg.hairpin || cfg.port_isolation {
        let opts = BridgePortOptions {
            hairpin: cfg.hairpin.then_some(true),
            isolated: cfg.port_isolation.then_some(true),
            learning: None,
        };
        host.set_bridge_port(veth.index, &opts)
            .map_err(kernel_error)?;
    }
    set_port_vlans(host, cfg, veth.index)?;
    // A bridge port needs no IPv6 of its own. With it, every port adds link-local and
    // multicast routes, and each port coming up walks the whole IPv6 table: with 1,000
    // containers that costs milliseconds per ADD and DEL.
    let key = format!("ipv6/conf/{}/disable_ipv6", veth.name);
    match cni_netlink::set_sysctl(None, &key, "1") {
        Err(e) if !e.is_not_found() => return Err(kernel_error(e)),
        _ => {}
    }
    host.set_link_up(veth.index).map_err(kernel_error)
}

fn set_port_vlans(host: &mut Netlink, cfg: &Config, port: u32) -> Result<(), Error> {
    if !cfg.vlan_filtering() {
        return Ok(());
    }
    if let Some(vid) = cfg.vlan {
        host.add_bridge_vlan(
            port,
            vid..=vid,
            BridgeVlanFlags {
                pvid: true,
                untagged: true,
            },
        )
        .map_err(|e| kernel_error(e).context("vlan"))?;
    }
    for range in ranges(&cfg.vlan_trunk) {
        host.add_bridge_vlan(port, range, BridgeVlanFlags::default())
            .map_err(|e| kernel_error(e).context("vlanTrunk"))?;
    }
    if !cfg.preserve_default_vlan && cfg.vlan != Some(1) && !cfg.vlan_trunk.contains(&1) {
        match host.del_bridge_vlan(port, 1..=1) {
            Err(e) if !e.is_not_found() => {
                return Err(kernel_error(e).context("remove default vlan"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Consecutive VLAN IDs grouped into ranges (one netlink attribute per range).
fn ranges(vids: &std::collections::BTreeSet<u16>) -> Vec<std::ops::RangeInclusive<u16>> {
    let mut out: Vec<std::ops::RangeInclusive<u16>> = Vec::new();
    for &v in vids {
        match out.last_mut() {
            Some(r) if *r.end() + 1 == v => *r = *r.start()..=v,
            _ => out.push(v..=v),
        }
    }
    out
}

fn guard_mac(
    nft: &mut NftSession,
    cfg: &Config,
    port: &str,
    mac: MacAddr,
    undo: &mut Undo,
) -> Result<(), Error> {
    firewall::ensure_spoofchk(nft.get()?, &cfg.data_dir)?;
    nft.apply(&firewall::spoofchk_ops(port, mac, true)?)?;
    let port = port.to_string();
    undo.push(format!("spoof check of {port}"), move || {
        let ops = firewall::spoofchk_ops(&port, mac, false).map_err(|e| e.msg)?;
        NftSession::default().apply(&ops).map_err(|e| e.msg)
    });
    Ok(())
}

/// With isGateway, addresses without a gateway get the first address of their subnet, as
/// the reference does; with isDefaultGateway, a default route per family is added unless
/// IPAM returned one.
fn complete_gateways(cfg: &Config, result: &mut CniResult) {
    if !cfg.is_gateway {
        return;
    }
    for ip in &mut result.ips {
        if ip.gateway.is_none() {
            ip.gateway = first_host(ip.address);
        }
    }
    if !cfg.is_default_gateway {
        return;
    }
    for v4 in [true, false] {
        let Some(gw) = result
            .ips
            .iter()
            .find(|ip| ip.address.is_ipv4() == v4)
            .and_then(|ip| ip.gateway)
        else {
            continue;
        };
        let has_default = result
            .routes
            .iter()
            .any(|r| r.dst.prefix() == 0 && r.dst.is_ipv4() == v4);
        if !has_default {
            let dst = if v4 { "0.0.0.0/0" } else { "::/0" };
            if let Ok(dst) = dst.parse() {
                result.routes.push(Route::new(dst, Some(gw)));
            }
        }
    }
}

fn first_host(net: IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) => Some(IpAddr::V4((u32::from(n.network()) + 1).into())),
        IpNetwork::V6(n) => Some(IpAddr::V6((u128::from(n.network()) + 1).into())),
    }
}

/// Link state, addresses and routes inside the container. With IPv6 addresses and no
/// `enabledad`, DAD is turned off on the interface (`accept_dad=0`, as the reference does,
/// also for its link-local address); IPv4-only attachments skip that /proc/sys write, which
/// gets slower with every netns on the machine, and rely on `nodad` addresses.
fn configure_container(
    ns: &NetNs,
    ctr: &mut Netlink,
    cfg: &Config,
    ifname: &str,
    index: u32,
    result: &CniResult,
) -> Result<(), Error> {
    if !cfg.enable_dad && result.ips.iter().any(|ip| ip.address.is_ipv6()) {
        let key = format!("ipv6/conf/{ifname}/accept_dad");
        match cni_netlink::set_sysctl(Some(ns), &key, "0") {
            Err(e) if !e.is_not_found() => return Err(kernel_error(e)),
            _ => {}
        }
    }
    if cfg.disable_container_interface {
        return Ok(());
    }
    ctr.set_link_up(index).map_err(kernel_error)?;
    for ip in &result.ips {
        let added = if cfg.enable_dad {
            ctr.add_address(index, ip.address)
        } else {
            ctr.add_address_nodad(index, ip.address)
        };
        match added {
            Err(e) if !e.is_exists() => {
                let mut err = kernel_error(e).context(format!("add {} to {ifname}", ip.address));
                // The kernel takes any MTU from 68 for the link but no IPv6 below 1280.
                if let Some(mtu) = cfg.mtu.filter(|m| *m < 1280 && ip.address.is_ipv6()) {
                    err.msg
                        .push_str(&format!(" (mtu {mtu}: IPv6 needs an mtu of at least 1280)"));
                }
                return Err(err);
            }
            _ => {}
        }
    }
    for route in &result.routes {
        plugin_kit::add_result_route(ctr, index, route, &result.ips)?;
    }
    Ok(())
}

/// Puts each gateway address on the bridge (or on its VLAN interface) and turns on
/// forwarding for that family.
fn set_up_gateway(
    host: &mut Netlink,
    cfg: &Config,
    bridge: &Link,
    result: &CniResult,
) -> Result<(), Error> {
    let target = match cfg.vlan {
        Some(vid) => ensure_vlan_gateway(host, cfg, bridge, vid)?,
        None => bridge.clone(),
    };
    let mut gateways = Vec::new();
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        let Ok(addr) = IpNetwork::new(gw, ip.address.prefix()) else {
            continue;
        };
        ensure_address(host, cfg, &target, addr)?;
        gateways.push(gw);
    }
    plugin_kit::enable_forwarding(gateways)
}

/// The reference's rule: one IPv4 address per bridge (another one is an error unless
/// forceAddress replaces it); IPv6 addresses accumulate unless their subnets overlap.
fn ensure_address(
    host: &mut Netlink,
    cfg: &Config,
    link: &Link,
    want: IpNetwork,
) -> Result<(), Error> {
    let have = host.list_addresses(link.index).map_err(kernel_error)?;
    for a in have.iter().filter(|a| a.addr.is_ipv4() == want.is_ipv4()) {
        if a.addr == want {
            return Ok(());
        }
        let conflicts = want.is_ipv4() || a.addr.contains(want.ip()) || want.contains(a.addr.ip());
        if !conflicts {
            continue;
        }
        if !cfg.force_address {
            return Err(Error::invalid_config(format!(
                "{} already has an IP address different from {want} (set forceAddress to replace it)",
                link.name
            )));
        }
        host.delete_address(link.index, a.addr)
            .map_err(kernel_error)?;
    }
    match host.add_address(link.index, want) {
        Err(e) if !e.is_exists() => {
            Err(kernel_error(e).context(format!("add {want} to {}", link.name)))
        }
        _ => Ok(()),
    }
}

/// `<bridge>.<vid>`: a veth whose other end is an access port of the VLAN; it carries the
/// gateway address of a VLAN network, as in the reference.
fn ensure_vlan_gateway(
    host: &mut Netlink,
    cfg: &Config,
    bridge: &Link,
    vid: u16,
) -> Result<Link, Error> {
    let name = format!("{}.{vid}", cfg.bridge);
    if let Some(link) = host.get_link(&name).map_err(kernel_error)? {
        return Ok(link);
    }
    let here = NetNs::current().map_err(kernel_error)?;
    let port_name = random_link_name("veth").map_err(kernel_error)?;
    let opts = VethOptions {
        mtu: cfg.mtu,
        host_mac: None,
        peer_mac: None,
    };
    host.create_veth(&port_name, &name, &here, &opts)
        .map_err(|e| kernel_error(e).context(format!("create vlan gateway {name}")))?;
    // A later ADD takes an existing gateway as it is: a half-made one must not stay.
    let made = attach_vlan_gateway(host, cfg, bridge, &port_name, &name);
    if made.is_err()
        && let Err(e) = host.delete_link(port_name.as_str())
    {
        log::warn!("delete {port_name} after a failed vlan gateway: {e}");
    }
    made
}

/// Enslaves the gateway pair's bridge end as an access port of the VLAN (`cfg.vlan`; config
/// validation keeps `vlanTrunk` out) and brings both ends up.
fn attach_vlan_gateway(
    host: &mut Netlink,
    cfg: &Config,
    bridge: &Link,
    port_name: &str,
    name: &str,
) -> Result<Link, Error> {
    let port = host
        .get_link(port_name)
        .map_err(kernel_error)?
        .ok_or_else(|| Error::internal(format!("{port_name} vanished")))?;
    host.set_master(port.index, Some(bridge.index))
        .map_err(kernel_error)?;
    set_port_vlans(host, cfg, port.index)?;
    host.set_link_up(port.index).map_err(kernel_error)?;
    host.set_link_up(name).map_err(kernel_error)?;
    host.get_link(name)
        .map_err(kernel_error)?
        .ok_or_else(|| Error::internal(format!("{name} vanished")))
}

fn masquerade(
    nft: &mut NftSession,
    cfg: &Config,
    backend: MasqBackend,
    container_id: &str,
    result: &CniResult,
    undo: &mut Undo,
) -> Result<(), Error> {
    let ips: Vec<IpAddr> = result.ips.iter().map(|ip| ip.address.ip()).collect();
    match backend {
        MasqBackend::Nftables => {
            firewall::ensure_masq(nft.get()?, &cfg.data_dir, &cfg.network, &cfg.bridge)?;
            nft.apply(&firewall::masq_ops(&cfg.network, &ips, true))?;
            let network = cfg.network.clone();
            undo.push("masquerade elements", move || {
                NftSession::default()
                    .apply(&firewall::masq_ops(&network, &ips, false))
                    .map_err(|e| e.msg)
            });
        }
        MasqBackend::Iptables => {
            let with_nets: Vec<_> = result
                .ips
                .iter()
                .map(|ip| (ip.address.ip(), ip.address))
                .collect();
            masq_iptables::add_masquerade(&cfg.network, container_id, &with_nets)?;
            let (network, id) = (cfg.network.clone(), container_id.to_string());
            undo.push("iptables masquerade", move || {
                masq_iptables::delete_masquerade(&network, &id, &ips).map_err(|e| e.msg)
            });
        }
    }
    Ok(())
}
