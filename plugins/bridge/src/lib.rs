//! The bridge plugin: a veth pair between the container and a host bridge, with the
//! reference plugin's keys, masquerade in nftables (or iptables), isolation between bridge
//! networks and MAC spoof checking.

mod add;
mod check;
mod config;
mod del;
mod firewall;

use std::net::IpAddr;

use cni::{Error, Request};
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
            .map_err(|e| Error::io(e.to_string()))
    }
}

fn state_dir(req: &Request) -> StateDir {
    StateDir::new(&Config::data_dir_of(req), &req.conf.name)
}
