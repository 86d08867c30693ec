//! The networks in the config directory, read as libcni finds them, and what cnictl reads out
//! of them: driver, subnets, gateways, bridge, capabilities, and cnictl's own metadata.
//!
//! cnictl keeps no state of its own beside the configs and libcni's result cache: what it
//! knows about a network it created lives in the conflist under the top-level key `cnictl`
//! (libcni and the runtimes ignore unknown top-level keys), and what it knows about a
//! connection (name, aliases, ports, addresses) is in the cache entry every runtime writes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use libcni::NetworkConfigList;
use libcni::conf::{conf_files, plugin_capabilities, plugin_type};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CliError, Result};

/// The top-level conflist key holding cnictl's metadata.
pub const META_KEY: &str = "cnictl";

/// What `network create` records about a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    pub driver: String,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns: bool,
    /// The `--opt` values, as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// One address range of a network (a host-local range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub subnet: IpNetwork,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(rename = "rangeStart", skip_serializing_if = "Option::is_none")]
    pub range_start: Option<IpAddr>,
    #[serde(rename = "rangeEnd", skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
}

/// A network found in the config directory.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    pub list: NetworkConfigList,
    /// The file's JSON.
    pub config: Value,
    /// cnictl's metadata, when cnictl created it.
    pub meta: Option<Meta>,
}

impl Network {
    fn from_file(path: &Path) -> Result<Network> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
        let list = if ext == "conflist" {
            NetworkConfigList::from_file(path)?
        } else {
            NetworkConfigList::from_plugin_conf(&bytes)?
        };
        let config: Value = serde_json::from_slice(&bytes)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        let meta = config
            .get(META_KEY)
            .and_then(|m| serde_json::from_value(m.clone()).ok());
        Ok(Network {
            name: list.name.clone(),
            file: path.to_path_buf(),
            list,
            config,
            meta,
        })
    }

    /// Whether cnictl created it.
    pub fn managed(&self) -> bool {
        self.meta.is_some()
    }

    /// The plugin that makes the interface: the first with an `ipam` key, else the first.
    pub fn main_plugin(&self) -> Option<&Value> {
        self.list
            .plugins
            .iter()
            .find(|p| p.get("ipam").is_some())
            .or_else(|| self.list.plugins.first())
    }

    /// `bridge`, `macvlan`, `ipvlan`... (cnictl's record, else the main plugin's type).
    pub fn driver(&self) -> String {
        match &self.meta {
            Some(m) if !m.driver.is_empty() => m.driver.clone(),
            _ => self
                .main_plugin()
                .map(plugin_type)
                .unwrap_or("")
                .to_string(),
        }
    }

    /// The bridge of a bridge network (the plugin's default is `cni0`).
    pub fn bridge(&self) -> Option<String> {
        let p = self
            .list
            .plugins
            .iter()
            .find(|p| plugin_type(p) == "bridge")?;
        Some(
            p.get("bridge")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
                .unwrap_or("cni0")
                .to_string(),
        )
    }

    /// The host-local ranges of the main plugin's IPAM (legacy `subnet` first, as host-local
    /// reads them).
    pub fn ranges(&self) -> Vec<Range> {
        let Some(ipam) = self.main_plugin().and_then(|p| p.get("ipam")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(r) = parse_range(ipam) {
            out.push(r);
        }
        if let Some(sets) = ipam.get("ranges").and_then(Value::as_array) {
            for set in sets {
                for r in set.as_array().into_iter().flatten() {
                    if let Some(r) = parse_range(r) {
                        out.push(r);
                    }
                }
            }
        }
        out
    }

    /// Whether a plugin of the list declares capability `cap`.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.list
            .plugins
            .iter()
            .any(|p| plugin_capabilities(p).iter().any(|c| c == cap))
    }

    /// Whether the list has a plugin of type `ty`.
    pub fn has_plugin(&self, ty: &str) -> bool {
        self.list.plugins.iter().any(|p| plugin_type(p) == ty)
    }

    /// Whether containers get names in DNS here.
    pub fn dns(&self) -> bool {
        self.has_plugin("dnsname")
    }

    /// Whether the network leads nowhere beyond its subnet.
    pub fn internal(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.internal)
    }
}

fn parse_range(v: &Value) -> Option<Range> {
    let ip = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
    };
    let subnet = v.get("subnet")?.as_str()?.parse::<IpNetwork>().ok()?;
    Some(Range {
        subnet,
        gateway: ip("gateway"),
        range_start: ip("rangeStart"),
        range_end: ip("rangeEnd"),
    })
}

/// Every network of the directory in libcni's lookup order (`.conflist` files by name, then
/// `.conf`/`.json`); for a name defined twice only the first counts, as for libcni. Files that
/// do not parse are skipped and reported in the second list.
pub fn list_networks(dir: &Path) -> Result<(Vec<Network>, Vec<String>)> {
    let mut files = conf_files(dir, &["conflist"])?;
    files.extend(conf_files(dir, &["conf", "json"])?);
    let mut networks: Vec<Network> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match Network::from_file(&file) {
            Ok(n) if networks.iter().any(|m| m.name == n.name) => {}
            Ok(n) => networks.push(n),
            Err(e) => problems.push(format!("skipping {}: {}", file.display(), e.msg)),
        }
    }
    Ok((networks, problems))
}

/// The network `name`, with a message that says what to do when there is none.
pub fn find_network(dir: &Path, name: &str) -> Result<Network> {
    let (networks, _) = list_networks(dir)?;
    networks
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| unknown_network(dir, name))
}

pub fn unknown_network(dir: &Path, name: &str) -> CliError {
    CliError::new(format!(
        "no network named {name:?} in {}",
        dir.display()
    ))
    .hint(format!(
        "`cnictl network ls` lists the networks; create this one with `cnictl network create {name}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_networks_in_libcni_order_and_skips_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("20-a.conflist"),
            r#"{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"bridge","bridge":"br-a",
               "ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24","gateway":"10.1.0.1"}],
               [{"subnet":"fd00::/64"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}],
               "cnictl":{"driver":"bridge","created":"2024-01-01T00:00:00Z","dns":false}}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("10-a.conflist"),
            r#"{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"macvlan"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("30-old.conf"),
            r#"{"cniVersion":"0.4.0","name":"old","type":"bridge","ipam":{"type":"host-local","subnet":"10.2.0.0/16"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("40-bad.conflist"), "{").unwrap();
        let (nets, problems) = list_networks(d).unwrap();
        assert_eq!(
            nets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["a", "old"]
        );
        assert_eq!(problems.len(), 1);
        // 10-a shadows 20-a.
        assert_eq!(nets[0].driver(), "macvlan");
        assert!(!nets[0].managed());
        assert_eq!(nets[1].bridge().as_deref(), Some("cni0"));
        assert_eq!(
            nets[1].ranges()[0].subnet,
            "10.2.0.0/16".parse::<IpNetwork>().unwrap()
        );

        std::fs::remove_file(d.join("10-a.conflist")).unwrap();
        let a = find_network(d, "a").unwrap();
        assert!(a.managed());
        assert_eq!(a.bridge().as_deref(), Some("br-a"));
        assert_eq!(a.ranges().len(), 2);
        assert_eq!(a.ranges()[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert!(a.has_capability("portMappings"));
        assert!(!a.dns());
        let e = find_network(d, "zz").unwrap_err();
        assert!(e.msg.contains("no network named \"zz\""));
        assert!(e.hint.unwrap().contains("cnictl network create zz"));
    }
}
