//! IP forwarding on the host, which routed and bridged container traffic needs.

use std::net::IpAddr;

use cni::Error;

use crate::KernelResultExt;

/// Turns on forwarding for the families of `addrs` (`net.ipv4.ip_forward`,
/// `net.ipv6.conf.all.forwarding`). Read before written: it is on from the first container
/// on, and writing would cost more than reading.
pub fn enable_forwarding(addrs: impl IntoIterator<Item = IpAddr>) -> Result<(), Error> {
    let mut keys: Vec<&str> = addrs
        .into_iter()
        .map(|ip| {
            if ip.is_ipv4() {
                "ipv4/ip_forward"
            } else {
                "ipv6/conf/all/forwarding"
            }
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        if cni_netlink::get_sysctl(None, key).cni()?.trim() != "1" {
            cni_netlink::set_sysctl(None, key, "1").cni()?;
        }
    }
    Ok(())
}
