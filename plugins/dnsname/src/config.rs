//! The dnsname plugin's keys (`domainName`, and this suite's `dataDir`, `sidecar`,
//! `upstreamResolvConf`), and the record ADD makes from them, CNI_ARGS and prevResult.

use std::net::IpAddr;
use std::path::PathBuf;

use cni::{CniResult, Error, Request};
use cni_dns::control::{self, Launch};
use cni_dns::store::{Attachment, DEFAULT_DOMAIN, DEFAULT_ROOT, Paths};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;

use crate::START_TIMEOUT;

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

    pub fn launch(&self, req: &Request) -> Result<Launch, Error> {
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

/// The record store DEL works in: `dataDir` (default /run/cni-dns) and nothing else of the
/// config, read leniently, so that a config ADD rejected (an invalid `domainName`, say) does
/// not fail the DEL that follows. `None` when `dataDir` is not an absolute path: ADD records
/// nothing under such a config.
pub fn del_paths(req: &Request) -> Option<Paths> {
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
