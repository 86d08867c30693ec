//! ADD: the ingress TBF on the host end; for egress, the ifb with its TBF, the host end's
//! ingress qdisc and the redirect to the ifb. Each step undone if a later one fails.

use std::path::Path;

use cni::{CniResult, Error, Interface, Request, Undo};
use cni_netlink::tc::Tbf;
use cni_netlink::{Link, Netlink};
use plugin_kit::KernelResultExt;

use crate::config::{Config, Limit};
use crate::{IFB_LOCK, IFB_LOCK_DIR, chained_prev, host_end, ifb_alias, ifb_name};

pub fn add(req: &Request) -> Result<CniResult, Error> {
    let cfg = Config::from_request(req)?;
    log::debug!("limits: {cfg:?}");
    if cfg.is_empty() {
        return Ok(req.conf.prev_result.clone().unwrap_or_default());
    }
    let mut result = chained_prev(req)?.clone();
    let mut host = Netlink::host().cni()?;
    let veth = host_end(req, &result, &mut host)?;
    let mut undo = Undo::new();
    if let Some(limit) = cfg.ingress {
        shape(&mut host, &veth, limit, &mut undo).map_err(|e| e.context("ingress"))?;
    }
    if let Some(limit) = cfg.egress {
        let ifb = redirect_to_ifb(&mut host, req, &veth, &mut undo)?;
        shape(&mut host, &ifb, limit, &mut undo).map_err(|e| e.context("egress"))?;
        result.interfaces.push(Interface {
            name: ifb.name.clone(),
            mac: ifb.mac.map(|m| m.to_string()).unwrap_or_default(),
            ..Interface::default()
        });
    }
    undo.commit();
    Ok(result)
}

/// A TBF root qdisc on `link`, taken back by `undo`.
fn shape(host: &mut Netlink, link: &Link, limit: Limit, undo: &mut Undo) -> Result<(), Error> {
    let tbf = tbf(limit)?;
    host.add_tbf_root(link.index, &tbf)
        .cni_context(format!("shape {}", link.name))?;
    let index = link.index;
    undo.push(format!("tbf on {}", link.name), move || {
        Netlink::host()
            .and_then(|mut nl| nl.delete_qdisc(index, false).map(drop))
            .map_err(|e| e.to_string())
    });
    Ok(())
}

pub(crate) fn tbf(limit: Limit) -> Result<Tbf, Error> {
    Tbf::for_rate(limit.rate, limit.burst).ok_or_else(|| {
        Error::invalid_config(format!("rate {} with burst {}", limit.rate, limit.burst))
    })
}

/// The attachment's ifb (the host end's MTU, tagged with its owner), the host end's ingress
/// qdisc and the filter that sends everything arriving there through the ifb.
fn redirect_to_ifb(
    host: &mut Netlink,
    req: &Request,
    veth: &Link,
    undo: &mut Undo,
) -> Result<Link, Error> {
    let name = ifb_name(&req.conf.name, req.container_id());
    let alias = ifb_alias(&req.conf.name, req.container_id(), req.ifname());
    let creating = plugin_kit::lock_shared_in(Path::new(IFB_LOCK_DIR), IFB_LOCK)
        .map_err(plugin_kit::state_error)?;
    let created = host.create_ifb(&name, veth.mtu, &alias);
    drop(creating);
    match created {
        Err(e) if e.is_not_supported() => {
            return Err(Error::internal(
                "egress limits need ifb links, which this kernel lacks (load the ifb module: modprobe ifb)",
            ));
        }
        other => other.cni()?,
    }
    let owned = name.clone();
    undo.push(format!("delete {name}"), move || {
        Netlink::host()
            .and_then(|mut nl| nl.delete_link(owned.as_str()).map(drop))
            .map_err(|e| e.to_string())
    });
    let ifb = host
        .get_link(name.as_str())
        .cni()?
        .ok_or_else(|| Error::internal(format!("{name} vanished")))?;
    host.add_ingress_qdisc(veth.index)
        .cni_context(format!("egress: ingress qdisc on {}", veth.name))?;
    let index = veth.index;
    undo.push(format!("ingress qdisc of {}", veth.name), move || {
        Netlink::host()
            .and_then(|mut nl| nl.delete_qdisc(index, true).map(drop))
            .map_err(|e| e.to_string())
    });
    host.add_redirect_filter(veth.index, ifb.index)
        .cni_context(format!("egress: redirect {} to {name}", veth.name))?;
    Ok(ifb)
}
