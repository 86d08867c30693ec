//! CHECK: the buckets on the host end and on the ifb have the configured rates, limits and
//! sizes, and the host end still redirects to the ifb's ingress qdisc.

use cni::{Error, Request};
use cni_netlink::Netlink;
use cni_netlink::tc::Tbf;
use plugin_kit::KernelResultExt;

use crate::add::tbf;
use crate::config::Config;
use crate::{chained_prev, host_end, ifb_name};

fn fail(msg: impl Into<String>) -> Error {
    Error::check_failed(msg)
}

pub fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    let prev = chained_prev(req)?;
    if cfg.is_empty() {
        return Ok(());
    }
    let mut host = Netlink::host().cni()?;
    let veth = host_end(req, prev, &mut host)?;
    if let Some(limit) = cfg.ingress {
        expect_tbf(&mut host, veth.index, &veth.name, tbf(limit)?)?;
    }
    if let Some(limit) = cfg.egress {
        let name = ifb_name(&req.conf.name, req.container_id());
        let ifb = host
            .get_link(name.as_str())
            .cni()?
            .filter(|l| l.kind.as_deref() == Some("ifb"))
            .ok_or_else(|| fail(format!("the ifb {name} is missing")))?;
        expect_tbf(&mut host, ifb.index, &name, tbf(limit)?)?;
        if host.qdisc(veth.index, true).cni()?.is_none() {
            return Err(fail(format!("{} has no ingress qdisc", veth.name)));
        }
    }
    Ok(())
}

fn expect_tbf(host: &mut Netlink, index: u32, name: &str, want: Tbf) -> Result<(), Error> {
    let have = host
        .qdisc(index, false)
        .cni()?
        .and_then(|q| q.tbf)
        .ok_or_else(|| fail(format!("{name} has no tbf qdisc")))?;
    if have != want {
        return Err(fail(format!(
            "the tbf qdisc of {name} is {have:?}, expected {want:?}"
        )));
    }
    Ok(())
}
