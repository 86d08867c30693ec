//! The firewall plugin's configuration: the reference's keys (`backend`,
//! `iptablesAdminChainName`, `firewalldZone`, `ingressPolicy`) and this suite's `dataDir`.

use std::path::PathBuf;

use cni::{Error, Request};
use serde::{Deserialize, Serialize};

/// Where per-attachment state and the lock live (cleared at boot, like the rules).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/firewall";
/// The reference's admin chain.
pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";

/// Which packet filter holds the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Nftables,
    Iptables,
}

/// Who may open connections to the container (the reference's `ingressPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IngressPolicy {
    /// Anyone (the default).
    Open,
    /// Not containers of other isolating bridges (Docker's network isolation).
    SameBridge,
    /// Like `same-bridge`, and not the containers of its own bridge either (Docker's
    /// `enable_icc=false`).
    Isolated,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    pub admin_chain: String,
    pub ingress_policy: IngressPolicy,
    pub data_dir: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    backend: String,
    #[serde(default)]
    iptables_admin_chain_name: String,
    #[serde(default)]
    firewalld_zone: String,
    #[serde(default)]
    ingress_policy: String,
}

fn invalid(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("{key}: {msg}"))
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let wire: Wire = req.conf.parse_as()?;
        let backend = match wire.backend.as_str() {
            "" | "nftables" => Backend::Nftables,
            "iptables" => Backend::Iptables,
            "firewalld" => {
                log::info!(
                    "backend \"firewalld\" (zone {:?}) is not supported: this plugin does not \
                     talk to firewalld over D-Bus; using nftables, which firewalld's own \
                     rules do not override (see the README)",
                    if wire.firewalld_zone.is_empty() {
                        "trusted"
                    } else {
                        &wire.firewalld_zone
                    }
                );
                Backend::Nftables
            }
            other => {
                return Err(invalid(
                    "backend",
                    format!("unknown backend {other:?}: use iptables, nftables or firewalld"),
                ));
            }
        };
        let admin_chain = if wire.iptables_admin_chain_name.is_empty() {
            DEFAULT_ADMIN_CHAIN.to_string()
        } else {
            wire.iptables_admin_chain_name
        };
        // iptables' own limit; no whitespace or quotes, which would break the rule text.
        if admin_chain.len() > 28
            || admin_chain.starts_with('-')
            || !admin_chain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "iptablesAdminChainName",
                format!(
                    "{admin_chain:?} is not a valid chain name (at most 28 of A-Z a-z 0-9 - _ .)"
                ),
            ));
        }
        let ingress_policy = match wire.ingress_policy.as_str() {
            "" | "open" => IngressPolicy::Open,
            "same-bridge" => IngressPolicy::SameBridge,
            "isolated" => IngressPolicy::Isolated,
            other => {
                return Err(invalid(
                    "ingressPolicy",
                    format!("unknown ingress policy {other:?}: use open, same-bridge or isolated"),
                ));
            }
        };
        Ok(Config {
            backend,
            admin_chain,
            ingress_policy,
            data_dir: plugin_kit::checked_data_dir(req, DEFAULT_DATA_DIR)?,
        })
    }

    /// `dataDir` alone, for DEL and GC with a config that may no longer validate.
    pub fn data_dir_of(req: &Request) -> PathBuf {
        plugin_kit::data_dir(req, DEFAULT_DATA_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn parse(extra: Value) -> Result<Config, Error> {
        let base = json!({"cniVersion": "1.0.0", "name": "net", "type": "firewall"});
        let conf = cni::testing::merged(base, &extra);
        Config::from_request(&cni::testing::request("ADD", &conf, "")?)
    }

    #[test]
    fn defaults_and_every_policy_and_backend() {
        let cfg = parse(json!({})).unwrap();
        assert_eq!(cfg.backend, Backend::Nftables);
        assert_eq!(cfg.ingress_policy, IngressPolicy::Open);
        assert_eq!(cfg.admin_chain, DEFAULT_ADMIN_CHAIN);
        for (name, want) in [
            ("open", IngressPolicy::Open),
            ("same-bridge", IngressPolicy::SameBridge),
            ("isolated", IngressPolicy::Isolated),
        ] {
            let cfg = parse(json!({"ingressPolicy": name})).unwrap();
            assert_eq!(cfg.ingress_policy, want, "{name}");
        }
        assert_eq!(
            parse(json!({"backend": "iptables"})).unwrap().backend,
            Backend::Iptables
        );
        // firewalld is taken, served by nftables.
        assert_eq!(
            parse(json!({"backend": "firewalld"})).unwrap().backend,
            Backend::Nftables
        );
    }

    #[test]
    fn unknown_values_and_unsafe_chain_names_are_refused() {
        for (extra, needle) in [
            (json!({"backend": "pf"}), "backend"),
            (json!({"ingressPolicy": "closed"}), "ingressPolicy"),
            (
                json!({"iptablesAdminChainName": "-A FORWARD"}),
                "iptablesAdminChainName",
            ),
            (
                json!({"iptablesAdminChainName": "a\"b"}),
                "iptablesAdminChainName",
            ),
            (
                json!({"iptablesAdminChainName": "X".repeat(29)}),
                "iptablesAdminChainName",
            ),
        ] {
            let e = parse(extra.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
        let e = parse(json!({"ingressPolicy": 3})).unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE, "{}", e.msg);
    }
}
