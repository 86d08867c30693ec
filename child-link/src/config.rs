//! The configuration of a child link (macvlan or ipvlan), validated before anything touches
//! the kernel; each plugin reads its own keys into it.

use cni::{CniResult, Dns, Error, Request};
use cni_netlink::{IpvlanMode, MacAddr, MacvlanMode};

/// What differs between a macvlan and an ipvlan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Macvlan {
        mode: MacvlanMode,
        mac: Option<MacAddr>,
        bc_queue_len: Option<u32>,
    },
    Ipvlan {
        mode: IpvlanMode,
    },
}

impl Kind {
    /// The link kind the kernel reports, and the plugin's name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Macvlan { .. } => "macvlan",
            Kind::Ipvlan { .. } => "ipvlan",
        }
    }

    pub fn mode(&self) -> String {
        match self {
            Kind::Macvlan { mode, .. } => mode.to_string(),
            Kind::Ipvlan { mode } => mode.to_string(),
        }
    }
}

/// Where the master link comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// The `master` key.
    Named(String),
    /// No `master`: the link of the default route (in the container with `linkInContainer`).
    DefaultRoute,
    /// ipvlan chained without `master`: the single interface `prevResult` names.
    Chained(String),
}

/// Where the container's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// None: the link is only brought up (`"ipam": {}`, L2 only).
    None,
    /// An IPAM plugin, by type.
    Ipam(String),
    /// ipvlan chained without `ipam`: the addresses of `prevResult`.
    PrevResult,
}

/// A validated configuration of either plugin.
#[derive(Debug, Clone)]
pub struct Config {
    pub kind: Kind,
    pub master: Master,
    pub mtu: Option<u32>,
    /// The master lives in the container's namespace.
    pub link_in_container: bool,
    pub addressing: Addressing,
    pub dns: Option<Dns>,
}

impl Config {
    pub fn ipam_type(&self) -> Option<&str> {
        match &self.addressing {
            Addressing::Ipam(t) => Some(t),
            _ => None,
        }
    }

    /// Where the master is looked up, for messages.
    pub fn master_netns(&self) -> &'static str {
        if self.link_in_container {
            "the container's network namespace"
        } else {
            "the host network namespace"
        }
    }
}

pub fn invalid(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("{key}: {msg}"))
}

/// The keys both plugins share, as the reference reads them.
pub struct Common {
    pub master: Option<String>,
    pub mtu: Option<i64>,
    pub link_in_container: bool,
}

impl Common {
    /// Checks `master` and `mtu`; the mode and its kind's keys are the caller's.
    pub fn into_config(self, kind: Kind, req: &Request) -> Result<Config, Error> {
        let master = match self.master.filter(|m| !m.is_empty()) {
            Some(m) => {
                cni::env::validate_ifname(&m).map_err(|_| {
                    invalid("master", format!("{m:?} is not a valid interface name"))
                })?;
                Master::Named(m)
            }
            None => Master::DefaultRoute,
        };
        let mtu = plugin_kit::validate_mtu(self.mtu)?;
        let addressing = match &req.conf.ipam_type {
            Some(t) => Addressing::Ipam(t.clone()),
            None => Addressing::None,
        };
        Ok(Config {
            kind,
            master,
            mtu,
            link_in_container: self.link_in_container,
            addressing,
            dns: req.conf.dns.clone().filter(|d| !d.is_empty()),
        })
    }
}

/// The interface of `prevResult` an ipvlan chained without `master` hangs off: its single
/// interface, leaving out the container interface this plugin made (present when CHECK gets
/// the final result).
pub fn chained_master(prev: &CniResult, ifname: &str, netns: &str) -> Result<String, Error> {
    let others: Vec<&str> = prev
        .interfaces
        .iter()
        .filter(|i| !(i.name == ifname && i.sandbox == netns))
        .map(|i| i.name.as_str())
        .collect();
    match others.as_slice() {
        [name] if !name.is_empty() => Ok(name.to_string()),
        _ => Err(invalid(
            "master",
            format!(
                "not set, and prevResult does not name a single interface to use instead (it names {})",
                if others.is_empty() {
                    "none".to_string()
                } else {
                    others.join(", ")
                }
            ),
        )),
    }
}
