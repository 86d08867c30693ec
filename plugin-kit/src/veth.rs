//! The veth pair of a veth-based plugin (bridge, ptp): the container end made directly in the
//! container's netns under CNI_IFNAME, the host end under a random `veth<hex>` name.

use cni::{Error, Request, Undo};
use cni_netlink::{Link, MacAddr, NetNs, Netlink, VethOptions, random_link_name};

use crate::KernelResultExt;

/// Creates the pair and records its deletion in `undo`; returns the host end. `record` is
/// told each host name before the pair is made under it, so that the attachment's state can
/// name it first (a kill right after the creation must not leave a pair nobody knows of). An
/// existing CNI_IFNAME in the container is the runtime's error (code 4: the spec asks ADD to
/// fail), unless it is the link of a DEL whose deletion is still on its way, which goes
/// first; a random host name that happens to be taken is retried.
#[allow(clippy::too_many_arguments)]
pub fn create_veth_pair(
    host: &mut Netlink,
    ns: &NetNs,
    req: &Request,
    mtu: Option<u32>,
    container_mac: Option<MacAddr>,
    undo: &mut Undo,
    mut record: impl FnMut(&str) -> Result<(), Error>,
) -> Result<Link, Error> {
    let opts = VethOptions {
        mtu,
        host_mac: None,
        peer_mac: container_mac,
    };
    let mut attempts = 0;
    let name = loop {
        let name = random_link_name("veth").cni()?;
        record(&name)?;
        match host.create_veth(&name, req.ifname(), ns, &opts) {
            Ok(()) => break name,
            Err(e) if e.is_exists() => {
                let host_name_taken = host.get_link(&name).cni()?.is_some();
                // The container's name is taken: by the link of a DEL that has just returned
                // (its deletion comes once that plugin has exited), or by something else.
                if !host_name_taken && !remove_dying_link(ns, req.ifname())? {
                    return Err(Error::invalid_env(format!(
                        "CNI_IFNAME {}: an interface of that name already exists in {}",
                        req.ifname(),
                        req.netns()
                    )));
                }
                attempts += 1;
                if attempts == 3 {
                    return Err(crate::kernel_error(e).context("create veth pair"));
                }
            }
            Err(e) => {
                let mut err = crate::kernel_error(e)
                    .context(format!("create veth pair {name}/{}", req.ifname()));
                if let Some(mtu) = mtu {
                    err.msg.push_str(&format!(" (mtu {mtu} refused?)"));
                }
                return Err(err);
            }
        }
    };
    let host_name = name.clone();
    undo.push(format!("delete veth {host_name}"), move || {
        Netlink::host()
            .and_then(|mut nl| nl.delete_link(host_name.as_str()).map(|_| ()))
            .map_err(|e| e.to_string())
    });
    host.get_link(&name)
        .cni()?
        .ok_or_else(|| Error::internal(format!("veth {name} vanished")))
}

/// Deletes the link `ifname` of `ns` if a DEL handed its deletion on
/// ([`Netlink::delete_link_after_exit`]) and it is still there; returns whether it did.
pub fn remove_dying_link(ns: &NetNs, ifname: &str) -> Result<bool, Error> {
    Netlink::in_netns(ns)
        .and_then(|mut ctr| ctr.remove_dying_link(ifname))
        .cni()
}
