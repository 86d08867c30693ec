//! The firewall plugin: lets a container's forwarded traffic through a host whose forward
//! path drops by default (Docker's iptables FORWARD policy, a drop-policy nftables chain),
//! with the reference plugin's ingress policies (`open`, `same-bridge`, `isolated`).
//!
//! Backends: `nftables` (the default, also for `""`; see [`nft`]) and `iptables` (the
//! reference's CNI-FORWARD layout; see [`iptables`]). `firewalld` falls back to nftables
//! with a logged reason. DEL and GC remove what ADD added, using what ADD recorded in
//! `dataDir`, also when the runtime sends no `prevResult`; the isolation rules of a bridge go
//! with the last container that needed them (the reference never removes them).

mod add;
mod check;
mod config;
mod del;
mod gc;
pub mod iptables;
pub mod nft;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni::{CniResult, Command, Error, Request};

use plugin_kit::StateDir;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::{Backend, Config, DEFAULT_DATA_DIR, IngressPolicy};

pub struct Firewall;

plugin_kit::delegate_plugin!(Firewall {
    add: add::add,
    del: del::del,
    check: check::check,
    gc: gc::gc,
});

/// What DEL and GC need to take an attachment's rules back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentState {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The netns's identity at ADD ([`plugin_kit::netns_identity`]): GC without a list
    /// tells a re-created netns at the same path from the container's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_id: String,
    pub backend: Backend,
    pub ips: Vec<IpAddr>,
    pub bridge: String,
    pub policy: IngressPolicy,
}

/// Where the state [`release`] works from came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Recorded by our ADD: the backend is the one that ADD used.
    Recorded,
    /// Rebuilt from prevResult because no state was recorded (the reference plugin's ADD, or
    /// a lost state): the rules may be in either backend.
    PrevResult,
}

/// Holds the plugin's lock for the whole operation: ADD, DEL and GC of all networks change
/// shared structure (tables, chains, the members of a bridge).
fn lock(data_dir: &Path) -> Result<plugin_kit::DirLock, Error> {
    plugin_kit::lock_in(data_dir, "lock").map_err(plugin_kit::state_error)
}

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process. Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add | Command::Check => Chained::read(req).map(drop),
        // DEL and GC read their dataDir leniently, so that a config that no longer validates
        // still cleans up; without a state DEL takes the addresses of prevResult as they are.
        Command::Del | Command::Gc => {
            Config::data_dir_of(req);
            Ok(())
        }
        Command::Status | Command::Version => Ok(()),
    }
}

/// What ADD and CHECK read from a request: the config, prevResult, the bridge its first
/// interface names and its addresses.
struct Chained {
    cfg: Config,
    result: CniResult,
    bridge: String,
    ips: Vec<IpAddr>,
}

impl Chained {
    fn read(req: &Request) -> Result<Chained, Error> {
        let cfg = Config::from_request(req)?;
        let result = prev_result(req)?;
        let bridge = bridge_of(&result, cfg.ingress_policy)?;
        let ips = result.ips.iter().map(|ip| ip.address.ip()).collect();
        Ok(Chained {
            cfg,
            result,
            bridge,
            ips,
        })
    }
}

fn prev_result(req: &Request) -> Result<CniResult, Error> {
    req.conf.prev_result.clone().ok_or_else(|| {
        Error::invalid_config("firewall must be chained: missing prevResult from earlier plugin")
    })
}

/// The reference takes the first interface of the result as the bridge. Its name becomes a
/// file name and part of rules, so it must be an interface name.
fn bridge_of(result: &CniResult, policy: IngressPolicy) -> Result<String, Error> {
    let name = result
        .interfaces
        .first()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    if name.is_empty() && policy != IngressPolicy::Open {
        return Err(Error::invalid_config(
            "ingressPolicy needs the bridge as the first interface of prevResult: chain \
             \"firewall\" after \"bridge\"",
        ));
    }
    if let Some(problem) = (!name.is_empty())
        .then(|| cni::env::ifname_problem(&name))
        .flatten()
    {
        return Err(Error::invalid_config(format!(
            "prevResult's first interface {name:?} is no interface name: it {problem}"
        )));
    }
    Ok(name)
}

/// Members of a bridge under an isolating policy, one empty file per attachment:
/// `<dataDir>/bridges/<bridge>.<policy>/<hash of network, container, ifname>`. The rules of
/// the bridge stay while the directory has a file.
fn members_dir(data_dir: &Path, bridge: &str, policy: IngressPolicy) -> PathBuf {
    let policy = match policy {
        IngressPolicy::Open => "open",
        IngressPolicy::SameBridge => "same-bridge",
        IngressPolicy::Isolated => "isolated",
    };
    data_dir.join("bridges").join(format!("{bridge}.{policy}"))
}

fn member_name(network: &str, container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn join_member(dir: &Path, name: &str) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("create {}: {e}", dir.display())))?;
    std::fs::write(dir.join(name), b"")
        .map_err(|e| Error::io(format!("write {}: {e}", dir.join(name).display())))
}

/// Leaves the bridge; returns whether it was the last member (the directory is gone).
fn leave_member(dir: &Path, name: &str) -> bool {
    let _ = std::fs::remove_file(dir.join(name));
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn states(req: &Request, data_dir: &Path) -> StateDir {
    StateDir::new(&data_dir.join("attachments"), &req.conf.name)
}

/// Falls back to iptables when there is no `nft` to create the table with.
fn effective_backend(cfg: &Config) -> Backend {
    if cfg.backend == Backend::Nftables && !nft::available() {
        log::warn!("nft not found: using the iptables backend");
        return Backend::Iptables;
    }
    cfg.backend
}

/// `isolated` is `same-bridge` plus the drop within the bridge: a member of both sets.
fn policies_needed(policy: IngressPolicy) -> Vec<IngressPolicy> {
    match policy {
        IngressPolicy::Open => vec![],
        IngressPolicy::SameBridge => vec![IngressPolicy::SameBridge],
        IngressPolicy::Isolated => vec![IngressPolicy::SameBridge, IngressPolicy::Isolated],
    }
}

/// The families (`v6` flags) of the addresses; both when there are none (the reference's
/// `findProtos` without a result).
fn families(ips: &[IpAddr]) -> Vec<bool> {
    let mut v: Vec<bool> = ips.iter().map(IpAddr::is_ipv6).collect();
    v.sort();
    v.dedup();
    if v.is_empty() { vec![false, true] } else { v }
}
