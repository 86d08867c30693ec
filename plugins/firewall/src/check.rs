//! CHECK: the attachment's addresses are let through and its bridge isolated, in the backend
//! the config names.

use cni::{Error, Request};
use cni_netlink::nft::Nft;
use plugin_kit::kernel_error;

use crate::config::IngressPolicy;
use crate::{Backend, Chained, effective_backend, families, iptables, nft, policies_needed};

pub fn check(req: &Request) -> Result<(), Error> {
    let Chained {
        cfg, bridge, ips, ..
    } = Chained::read(req)?;
    match effective_backend(&cfg) {
        Backend::Nftables => {
            let mut nft = Nft::host().map_err(kernel_error)?;
            for ip in &ips {
                if !nft::allowed(&mut nft, *ip)? {
                    return Err(Error::check_failed(format!(
                        "{ip} is not in the firewall's nftables set"
                    )));
                }
            }
            if let Some(why) = nft::missing_foreign_accept()? {
                return Err(Error::check_failed(why));
            }
            for policy in policies_needed(cfg.ingress_policy) {
                if !nft::isolated(&mut nft, &bridge, policy == IngressPolicy::Isolated)? {
                    return Err(Error::check_failed(format!(
                        "bridge {bridge} lacks its isolation elements"
                    )));
                }
            }
        }
        Backend::Iptables => {
            iptables::check_container(&ips, &cfg.admin_chain)?;
            if cfg.ingress_policy != IngressPolicy::Open {
                for v6 in families(&ips) {
                    let icc_off = cfg.ingress_policy == IngressPolicy::Isolated;
                    if !iptables::isolation_present(iptables::Ipt { v6 }, &bridge, icc_off)? {
                        return Err(Error::check_failed(format!(
                            "bridge {bridge} lacks its isolation rules"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
