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

use cni::{CniResult, Command, Error, Request};
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

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add | Command::Check => {
            Config::from_request(req)?;
            prev_result(req).map(drop)
        }
        // DEL and GC read their dataDir leniently (DEL its backup file in it).
        Command::Del => {
            backup_path(&config::data_dir_of(req), req.container_id(), req.ifname());
            Ok(())
        }
        Command::Gc => {
            config::data_dir_of(req);
            Ok(())
        }
        Command::Status | Command::Version => Ok(()),
    }
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
