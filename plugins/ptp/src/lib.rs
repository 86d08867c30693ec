//! The ptp plugin: a veth pair routed rather than bridged. The container end gets its
//! address with the real prefix and reaches everything, its own subnet included, through the
//! gateway; the host end carries the gateway address as a /32 (/128) and the host routes to
//! the container's addresses over it. This is the pod network of kind nodes (kindnetd writes
//! `ptp` + `host-local` + `portmap`).

mod add;
mod check;
mod config;
mod del;
mod gc;
mod masq;

use std::net::IpAddr;

use cni::{Command, Error, Request};
use cni_netlink::IpNetwork;
use plugin_kit::{MasqBackend, StateDir};
use serde::{Deserialize, Serialize};

pub use config::{Config, DEFAULT_DATA_DIR};

pub struct Ptp;

plugin_kit::delegate_plugin!(Ptp {
    add: add::add,
    del: del::del,
    check: check::check,
    // Ready when IPAM is: the plugin itself needs nothing to serve ADD.
    status: plugin_kit::ipam_status,
    gc: gc::gc,
});

/// What DEL and GC need about an attachment when the runtime sends nothing but its key
/// (kind's cniVersion 0.3.1 gets no prevResult on DEL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentState {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The netns's identity at ADD ([`plugin_kit::netns_identity`]): GC without a list
    /// tells a re-created netns at the same path from the container's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_id: String,
    pub host_veth: String,
    /// The container's addresses with their prefixes (the masquerade sets are per subnet).
    pub addresses: Vec<IpNetwork>,
    pub masq: Option<MasqBackend>,
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add => Config::from_request(req).map(drop),
        Command::Check => {
            Config::from_request(req)?;
            plugin_kit::required_prev_result(req).map(drop)
        }
        // DEL reads what it needs leniently, GC its dataDir: neither can fail on a config
        // that no longer validates. STATUS reads `ipam.type`.
        Command::Del => {
            Config::data_dir_of(req);
            Config::masq_wanted_for_del(req);
            del::prev_result_addresses(req);
            Ok(())
        }
        Command::Gc => {
            Config::data_dir_of(req);
            Ok(())
        }
        Command::Status | Command::Version => Ok(()),
    }
}

fn state_dir(req: &Request) -> StateDir {
    StateDir::new(&Config::data_dir_of(req), &req.conf.name)
}

/// `ip` as a host network (`ip/32`, `ip/128`).
fn host_net(ip: IpAddr) -> IpNetwork {
    IpNetwork::from(ip)
}
