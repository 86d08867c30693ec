//! The dnsname plugin, chained last: records the container's names and addresses for the DNS
//! sidecar (`cni-dns`), makes sure the sidecar serves the network, and points the container
//! at it (the gateways as nameservers, the domain as search domain).
//!
//! A drop-in for the config podman writes:
//! `{"type": "dnsname", "domainName": "dns.podman", "capabilities": {"aliases": true}}`,
//! with `runtimeConfig.aliases` as podman's map `{network: [names]}` or the CNI conventions'
//! list `[names]`, and the container's name in `CNI_ARGS` `K8S_POD_NAME`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cni::{Attachment as GcAttachment, CniResult, Error, Plugin, Request, Version};
use cni_dns::control::{self, ControlError, Launch};
use cni_dns::store::{Attachment, DEFAULT_DOMAIN, DEFAULT_ROOT, NetworkStore, Paths, StoreError};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

/// How long a control request may take (the sidecar answers in well under a millisecond).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a freshly started sidecar may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(5);

pub struct DnsName;

/// The plugin's own keys.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    domain_name: Option<String>,
    /// The record store and the sidecar's files (default /run/cni-dns).
    #[serde(default)]
    data_dir: Option<PathBuf>,
    /// The `cni-dns` binary (default: next to this plugin, then CNI_PATH).
    #[serde(default)]
    sidecar: Option<PathBuf>,
    /// The resolv.conf the sidecar forwards to (default /etc/resolv.conf), passed when this
    /// call starts it.
    #[serde(default)]
    upstream_resolv_conf: Option<PathBuf>,
}

/// The validated config.
#[derive(Debug)]
pub struct Config {
    pub network: String,
    pub domain: String,
    pub paths: Paths,
    sidecar: Option<PathBuf>,
    upstream_resolv_conf: Option<PathBuf>,
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let wire: Wire = req.conf.parse_as()?;
        let domain = wire
            .domain_name
            .unwrap_or_else(|| DEFAULT_DOMAIN.to_string())
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !domain.is_empty() && !cni_dns::probe::valid_name(&domain) {
            return Err(Error::invalid_config(format!(
                "invalid domainName {domain:?}: not a DNS name"
            )));
        }
        let data_dir = wire.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        if !data_dir.is_absolute() {
            return Err(Error::invalid_config(format!(
                "invalid dataDir {}: must be an absolute path",
                data_dir.display()
            )));
        }
        Ok(Config {
            network: req.conf.name.clone(),
            domain,
            paths: Paths::new(data_dir),
            sidecar: wire.sidecar,
            upstream_resolv_conf: wire.upstream_resolv_conf,
        })
    }

    fn launch(&self, req: &Request) -> Result<Launch, Error> {
        let bin = match &self.sidecar {
            Some(p) => p.clone(),
            None => {
                let own = std::env::current_exe().ok();
                control::find_sidecar(own.as_deref(), &req.cmd.path).ok_or_else(|| {
                    Error::not_available(
                        "cannot find the DNS sidecar cni-dns next to dnsname or in CNI_PATH; \
                         install it there or set \"sidecar\" in the config",
                    )
                })?
            }
        };
        let mut args = Vec::new();
        if let Some(resolv) = &self.upstream_resolv_conf {
            args.push("--resolv-conf".to_string());
            args.push(resolv.to_string_lossy().into_owned());
        }
        Ok(Launch {
            bin,
            args,
            ready_timeout: START_TIMEOUT,
        })
    }
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::LockTimeout { .. } => {
            Error::new(cni::error::code::TRY_AGAIN_LATER, e.to_string())
        }
        _ => Error::io(e.to_string()),
    }
}

fn control_error(e: ControlError) -> Error {
    match e {
        ControlError::Start { .. } | ControlError::NotRunning(_) => {
            Error::not_available(e.to_string())
        }
        _ => Error::io(e.to_string()),
    }
}

/// The aliases runtimeConfig gives this network: podman's map `{network: [names]}` or the
/// conventions' list.
fn aliases(req: &Request, network: &str) -> Result<Vec<String>, Error> {
    let value: Option<Value> = req.conf.runtime_config("aliases")?;
    let list = match value {
        None => return Ok(Vec::new()),
        Some(Value::Object(map)) => match map.get(network) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(v) => v.clone(),
        },
        Some(v) => v,
    };
    serde_json::from_value::<Vec<String>>(list)
        .map_err(|e| Error::decoding(format!("decode runtimeConfig.aliases: {e}")))
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if cni_dns::probe::valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_config(format!(
            "invalid {what} {name:?}: a DNS name is letters, digits, '-' and '_' in labels of \
             1 to 63 characters separated by dots"
        )))
    }
}

/// What ADD records for this attachment, from the config, CNI_ARGS and prevResult.
pub fn expected(req: &Request, config: &Config) -> Result<Attachment, Error> {
    let prev = req.conf.prev_result.as_ref().ok_or_else(|| {
        Error::invalid_config(
            "dnsname needs a prevResult: chain it after the plugin that sets the addresses (bridge)",
        )
    })?;
    let args = req.cni_args(&[])?;
    let name = args.get("K8S_POD_NAME").map(str::to_string);
    if let Some(n) = &name {
        check_name("container name (K8S_POD_NAME)", n)?;
    }
    let aliases = aliases(req, &config.network)?;
    for a in &aliases {
        check_name("alias", a)?;
    }
    let ips = container_ips(prev);
    if ips.is_empty() {
        return Err(Error::invalid_config(
            "prevResult has no address for the container: nothing to name",
        ));
    }
    let mut gateways: Vec<IpAddr> = Vec::new();
    for gw in prev.ips.iter().filter_map(|ip| ip.gateway) {
        if !gateways.contains(&gw) {
            gateways.push(gw);
        }
    }
    if gateways.is_empty() {
        return Err(Error::invalid_config(
            "prevResult has no gateway: the sidecar listens on the network's gateway addresses \
             (bridge with isGateway, host-local's gateway)",
        ));
    }
    Ok(Attachment {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        domain: config.domain.clone(),
        name,
        aliases,
        ips,
        gateways,
    })
}

/// The container's addresses: those on an interface inside a sandbox, or on no interface.
fn container_ips(prev: &CniResult) -> Vec<IpNetwork> {
    prev.ips
        .iter()
        .filter(|ip| match ip.interface {
            None => true,
            Some(i) => prev
                .interfaces
                .get(i)
                .is_none_or(|iface| !iface.sandbox.is_empty()),
        })
        .map(|ip| ip.address)
        .collect()
}

/// prevResult with the gateways as nameservers and the domain first among the search domains.
fn with_dns(prev: &CniResult, attachment: &Attachment) -> CniResult {
    let mut result = prev.clone();
    result.dns.nameservers = attachment.gateways.iter().map(IpAddr::to_string).collect();
    if !attachment.domain.is_empty() {
        let mut search = vec![attachment.domain.clone()];
        for s in &prev.dns.search {
            if !search.contains(s) {
                search.push(s.clone());
            }
        }
        result.dns.search = search;
    }
    result
}

fn update(network: &str, key: String) -> control::Request {
    control::Request::Update {
        network: network.to_string(),
        key,
    }
}

/// Tells a running sidecar about a removed record; a sidecar that is not running has nothing
/// to forget.
fn forget(config: &Config, key: String) -> Result<(), Error> {
    match control::call(
        &config.paths,
        &update(&config.network, key),
        CONTROL_TIMEOUT,
    ) {
        Ok(_) | Err(ControlError::NotRunning(_)) => Ok(()),
        Err(e) => Err(control_error(e)),
    }
}

/// The sidecar's answer to `update` when it rejects the network or key as names it never
/// loads from the store (dns/src/server/daemon.rs): nothing of them is served.
const REFUSED_NAME: &str = "invalid network or attachment name";

/// DEL's `forget`, once the record file is gone. A sidecar that is hung or unreachable
/// (timeout, I/O error) is logged, not an error: the file is gone, and the sidecar loads
/// the whole store again when it starts. Only a sidecar that answered and refused to drop
/// the record (it could not re-read the attachment, so it keeps serving the old one) fails
/// the DEL, so that the runtime retries.
fn forget_removed(paths: &Paths, network: &str, key: String) -> Result<(), Error> {
    match control::call(paths, &update(network, key.clone()), CONTROL_TIMEOUT) {
        Ok(_) | Err(ControlError::NotRunning(_)) => Ok(()),
        Err(ControlError::Refused { msg, .. }) if msg.starts_with(REFUSED_NAME) => {
            log::warn!("the DNS sidecar ignores {network}/{key}: {msg}");
            Ok(())
        }
        Err(e @ ControlError::Refused { .. }) => Err(control_error(e)),
        Err(e) => {
            log::warn!(
                "removed the DNS record {key} of {network}, but the sidecar was not told: {e}; \
                 it serves the name until it answers again or restarts"
            );
            Ok(())
        }
    }
}

/// The record store DEL works in: `dataDir` (default /run/cni-dns) and nothing else of the
/// config, read leniently, so that a config ADD rejected (an invalid `domainName`, say) does
/// not fail the DEL that follows. `None` when `dataDir` is not an absolute path: ADD records
/// nothing under such a config.
fn del_paths(req: &Request) -> Option<Paths> {
    let data_dir = match req.conf.raw.get("dataDir") {
        None | Some(Value::Null) => PathBuf::from(DEFAULT_ROOT),
        Some(Value::String(s)) => PathBuf::from(s),
        Some(other) => {
            log::info!("dataDir {other} is not a path: ADD recorded nothing, nothing to delete");
            return None;
        }
    };
    if !data_dir.is_absolute() {
        log::info!(
            "dataDir {} is not absolute: ADD recorded nothing, nothing to delete",
            data_dir.display()
        );
        return None;
    }
    Some(Paths::new(data_dir))
}

impl Plugin for DnsName {
    fn versions(&self) -> &'static [Version] {
        &[
            Version::V0_3_0,
            Version::V0_3_1,
            Version::V0_4_0,
            Version::V1_0_0,
            Version::V1_1_0,
        ]
    }

    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let config = Config::from_request(req)?;
        let attachment = expected(req, &config)?;
        let launch = config.launch(req)?;
        let store = NetworkStore::open(&config.paths, &config.network).map_err(store_error)?;
        {
            let locked = store.lock().map_err(store_error)?;
            locked.write(&attachment).map_err(store_error)?;
        }
        let key = attachment.key();
        if let Err(e) = control::ensure(
            &config.paths,
            &update(&config.network, key.clone()),
            &launch,
            CONTROL_TIMEOUT,
        ) {
            // Leave nothing behind: the record goes, and a sidecar that took it forgets it.
            if let Ok(locked) = store.lock() {
                let _ = locked.remove(req.container_id(), req.ifname());
            }
            let _ = forget(&config, key);
            return Err(control_error(e));
        }
        log::info!(
            "{}/{}: names {:?} on {} ({:?})",
            req.container_id(),
            req.ifname(),
            attachment.names(),
            config.network,
            attachment.ips
        );
        let prev = req.conf.prev_result.clone().unwrap_or_default();
        Ok(with_dns(&prev, &attachment))
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        // DEL succeeds when there is nothing to delete, whatever else is missing or invalid:
        // it reads only where the records are.
        let Some(paths) = del_paths(req) else {
            return Ok(());
        };
        let network = &req.conf.name;
        let Some(store) = NetworkStore::open_existing(&paths, network).map_err(store_error)? else {
            return Ok(());
        };
        let removed = {
            let locked = store.lock().map_err(store_error)?;
            locked
                .remove(req.container_id(), req.ifname())
                .map_err(store_error)?
        };
        if removed {
            forget_removed(
                &paths,
                network,
                Attachment::file_name(req.container_id(), req.ifname()),
            )?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let config = Config::from_request(req)?;
        let want = expected(req, &config)?;
        let store = NetworkStore::open_existing(&config.paths, &config.network)
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::check_failed(format!("no DNS records for network {}", config.network))
            })?;
        let have = store
            .lock()
            .and_then(|l| l.read(req.container_id(), req.ifname()))
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::check_failed(format!(
                    "no DNS record for {}/{} on network {}",
                    req.container_id(),
                    req.ifname(),
                    config.network
                ))
            })?;
        if have != want {
            return Err(Error::check_failed(format!(
                "the DNS record of {}/{} differs from the expected one: have {:?} {:?}, want {:?} {:?}",
                req.container_id(),
                req.ifname(),
                have.names(),
                have.ips,
                want.names(),
                want.ips
            )));
        }
        control::call(&config.paths, &control::Request::Ping, CONTROL_TIMEOUT)
            .map_err(|e| Error::check_failed(format!("the DNS sidecar does not answer: {e}")))?;
        // The sidecar must answer the container's short ID on each gateway.
        let qtype = if want.ips.iter().any(IpNetwork::is_ipv4) {
            1
        } else {
            28
        };
        for gw in &want.gateways {
            let server = SocketAddr::new(*gw, 53);
            match cni_dns::probe::query(server, want.short_id(), qtype, Duration::from_secs(2)) {
                Ok((0, n)) if n > 0 => {}
                Ok((rcode, n)) => {
                    return Err(Error::check_failed(format!(
                        "{server} answered {} with rcode {rcode} and {n} records",
                        want.short_id()
                    )));
                }
                Err(e) => {
                    return Err(Error::check_failed(format!(
                        "no DNS answer from {server}: {e}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn status(&self, req: &Request) -> Result<(), Error> {
        let config = Config::from_request(req)?;
        let launch = config.launch(req)?;
        if control::call(&config.paths, &control::Request::Ping, CONTROL_TIMEOUT).is_ok() {
            return Ok(());
        }
        // Not running: it can be started if the binary runs and the store is writable.
        let runs = std::process::Command::new(&launch.bin)
            .arg("--help")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !runs {
            return Err(Error::not_available(format!(
                "the DNS sidecar {} cannot run",
                launch.bin.display()
            )));
        }
        config.paths.create_root().map_err(|e| {
            Error::not_available(format!("the DNS record store is not writable: {e}"))
        })?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<(), Error> {
        let config = Config::from_request(req)?;
        let Some(valid) = &req.conf.valid_attachments else {
            return Ok(());
        };
        let Some(store) =
            NetworkStore::open_existing(&config.paths, &config.network).map_err(store_error)?
        else {
            return Ok(());
        };
        let keep: HashSet<String> = valid
            .iter()
            .map(
                |GcAttachment {
                     container_id,
                     ifname,
                 }| Attachment::file_name(container_id, ifname),
            )
            .collect();
        let mut removed = Vec::new();
        {
            let locked = store.lock().map_err(store_error)?;
            locked.remove_stale_tmp().map_err(store_error)?;
            for key in locked.keys().map_err(store_error)? {
                if !keep.contains(&key) {
                    locked.remove_key(&key).map_err(store_error)?;
                    removed.push(key);
                }
            }
        }
        for key in removed {
            log::info!("gc: removed the DNS record {key} of {}", config.network);
            forget(&config, key)?;
        }
        Ok(())
    }
}
