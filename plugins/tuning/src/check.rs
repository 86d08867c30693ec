//! CHECK: every configured value is what the container has.

use cni::{Error, Request};
use cni_netlink::{IFF_ALLMULTI, IFF_PROMISC, Netlink, get_sysctl};
use plugin_kit::{kernel_error, open_netns};

use crate::config::Config;
use crate::prev_result;

/// Compares every configured value with what the container has.
pub fn check(req: &Request) -> Result<(), Error> {
    let cfg = Config::from_request(req)?;
    prev_result(req)?;
    let ns = open_netns(req.netns())?;
    for s in &cfg.sysctls {
        let current = get_sysctl(Some(&ns), &s.path)
            .map_err(|e| Error::check_failed(format!("sysctl {}: {e}", s.key)))?;
        // The kernel prints multi-value sysctls with tabs (net.ipv4.tcp_rmem).
        let norm = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
        if norm(&current) != norm(&s.value) {
            return Err(Error::check_failed(format!(
                "sysctl {} is {current:?}, configured {:?}",
                s.key, s.value
            )));
        }
    }
    let mut nl = Netlink::in_netns(&ns).map_err(kernel_error)?;
    let name = req.ifname();
    let link = nl.get_link(name).map_err(kernel_error)?.ok_or_else(|| {
        Error::check_failed(format!("interface {name} not found in {}", req.netns()))
    })?;
    let differs = |what: &str, current: String, configured: String| {
        Err(Error::check_failed(format!(
            "{what} of {name} is {current}, configured {configured}"
        )))
    };
    if let Some(mac) = cfg.mac
        && link.mac != Some(mac)
    {
        let current = link.mac.map(|m| m.to_string()).unwrap_or_default();
        return differs("MAC address", current, mac.to_string());
    }
    if cfg.promisc != (link.flags & IFF_PROMISC != 0) {
        return differs(
            "promiscuous mode",
            link.is_promisc().to_string(),
            cfg.promisc.to_string(),
        );
    }
    if let Some(mtu) = cfg.mtu
        && link.mtu != mtu
    {
        return differs("MTU", link.mtu.to_string(), mtu.to_string());
    }
    if let Some(on) = cfg.allmulti {
        let current = link.flags & IFF_ALLMULTI != 0;
        if current != on {
            return differs("all-multicast mode", current.to_string(), on.to_string());
        }
    }
    if let Some(len) = cfg.txqlen
        && link.txqlen != len
    {
        return differs("txqueuelen", link.txqlen.to_string(), len.to_string());
    }
    Ok(())
}
