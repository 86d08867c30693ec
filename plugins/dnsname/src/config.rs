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

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::json;

    fn request(extra: Value, args: &str) -> Request {
        let base = json!({"cniVersion": "1.0.0", "name": "podman", "type": "dnsname",
            "prevResult": {"cniVersion": "1.0.0",
                "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/run/netns/c1"}],
                "ips": [{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 1}]}});
        cni::testing::request("ADD", &cni::testing::merged(base, &extra), args).unwrap()
    }

    #[test]
    fn the_record_of_an_attachment() {
        let req = request(
            json!({"domainName": "Example.Test.", "runtimeConfig": {"aliases": {"podman": ["db"]}}}),
            "IgnoreUnknown=1;K8S_POD_NAME=web",
        );
        let cfg = Config::from_request(&req).unwrap();
        assert_eq!(cfg.domain, "example.test");
        let a = expected(&req, &cfg).unwrap();
        assert_eq!(a.name.as_deref(), Some("web"));
        assert_eq!(a.aliases, vec!["db"]);
        assert_eq!(a.gateways, vec!["10.88.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.ips.len(), 1);
        // The conventions' list form of the aliases.
        let req = request(json!({"runtimeConfig": {"aliases": ["cache"]}}), "");
        let a = expected(&req, &Config::from_request(&req).unwrap()).unwrap();
        assert_eq!(a.aliases, vec!["cache"]);
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        for (extra, args, needle) in [
            (json!({"domainName": "bad domain"}), "", "domainName"),
            (json!({"dataDir": "relative/dir"}), "", "dataDir"),
            (json!({}), "K8S_POD_NAME=web..x", "container name"),
            (json!({"runtimeConfig": {"aliases": ["a b"]}}), "", "alias"),
        ] {
            let req = request(extra.clone(), args);
            let e = Config::from_request(&req)
                .and_then(|cfg| expected(&req, &cfg))
                .unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
        let mut no_prev = request(json!({}), "");
        no_prev.conf.prev_result = None;
        let e = expected(&no_prev, &Config::from_request(&no_prev).unwrap()).unwrap_err();
        assert!(e.msg.contains("prevResult"), "{}", e.msg);
    }

    #[test]
    fn del_reads_only_an_absolute_data_dir() {
        let default = del_paths(&request(json!({}), "")).unwrap();
        assert_eq!(default.root(), std::path::Path::new(DEFAULT_ROOT));
        assert!(del_paths(&request(json!({"dataDir": "rel"}), "")).is_none());
        assert!(del_paths(&request(json!({"dataDir": 7}), "")).is_none());
    }
}
