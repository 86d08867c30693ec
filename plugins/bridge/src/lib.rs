//! The bridge plugin: a veth pair between the container and a host bridge, with the
//! reference plugin's keys, masquerade in nftables (or iptables), isolation between bridge
//! networks and MAC spoof checking.

mod add;
mod check;
mod config;
mod del;
mod firewall;

use std::net::IpAddr;

use cni::{Command, Error, Request};
use plugin_kit::StateDir;
pub(crate) use plugin_kit::{kernel_error, open_netns};
use serde::{Deserialize, Serialize};

pub use config::{Config, DEFAULT_BRIDGE, DEFAULT_DATA_DIR, MasqBackend};
pub use firewall::remove_network as remove_network_rules;

pub struct Bridge;

plugin_kit::delegate_plugin!(Bridge {
    add: add::add,
    del: del::del,
    check: check::check,
    // Ready when IPAM is: the bridge itself needs nothing to serve ADD.
    status: plugin_kit::ipam_status,
    gc: del::gc,
});

/// What DEL and GC need about an attachment when the runtime sends nothing but its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentState {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The netns's identity at ADD ([`plugin_kit::netns_identity`]): GC without a list
    /// tells a re-created netns at the same path from the container's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_id: String,
    pub bridge: String,
    pub host_veth: String,
    pub container_mac: String,
    pub ips: Vec<IpAddr>,
    pub masq: Option<MasqBackend>,
    pub spoofchk: bool,
}

impl AttachmentState {
    fn save(&self, cfg: &Config, req: &Request) -> Result<(), Error> {
        StateDir::new(&cfg.data_dir, &cfg.network)
            .save(req.container_id(), req.ifname(), self)
            .map_err(plugin_kit::state_error)
    }
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
        // DEL reads its dataDir and prevResult's addresses leniently, GC its dataDir:
        // neither can fail on a config that no longer validates. STATUS reads `ipam.type`.
        Command::Del => {
            Config::data_dir_of(req);
            del::prev_result_ips(req);
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
