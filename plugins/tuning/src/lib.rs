//! The tuning plugin: sets network sysctls of the container's namespace and attributes of
//! the container interface (MAC, MTU, promiscuous and all-multicast mode, transmit queue
//! length), and puts the original values back on DEL.
//!
//! The originals are kept where the reference plugin keeps them, in the reference's format:
//! `<dataDir>/<containerID>_<ifname>.json` with `mac`, `mtu`, `promisc`, `allmulti` and
//! `txQLen`, so either implementation can restore what the other changed. This plugin adds
//! the original sysctl values (restored too) and the attachment's identity (for GC).

mod add;
mod backup;
mod check;
mod config;
mod del;
mod gc;

use cni::{CniResult, Error, Request};
use cni_netlink::{Link, Netlink};
use plugin_kit::kernel_error;

pub use backup::{Backup, backup_path};
pub use config::{Config, DEFAULT_DATA_DIR, Sysctl, sysctl_key};

pub struct Tuning;

plugin_kit::delegate_plugin!(Tuning {
    add: add::add,
    del: del::del,
    check: check::check,
    gc: gc::gc,
});

fn prev_result(req: &Request) -> Result<CniResult, Error> {
    req.conf.prev_result.clone().ok_or_else(|| {
        Error::invalid_config(
            "tuning must be chained after the plugin that creates the interface: \
             Required prevResult missing",
        )
    })
}

/// The container interface, which must exist.
fn container_link(nl: &mut Netlink, req: &Request) -> Result<Link, Error> {
    nl.get_link(req.ifname())
        .map_err(kernel_error)?
        .ok_or_else(|| {
            Error::internal(format!(
                "interface {} not found in {}",
                req.ifname(),
                req.netns()
            ))
        })
}
