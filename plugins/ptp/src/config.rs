//! The ptp plugin's configuration: every key of the reference ptp plugin (`ipMasq`,
//! `ipMasqBackend`, `mtu`, `ipam`, `dns`) plus this suite's `dataDir`, validated before
//! anything touches the kernel.

use std::path::PathBuf;

use cni::{Dns, Error, Request};
use plugin_kit::MasqBackend;
use serde::Deserialize;

/// Where per-attachment state is kept (cleared at boot, like the links it describes).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/ptp";

#[derive(Debug, Clone)]
pub struct Config {
    pub network: String,
    pub ip_masq: Option<MasqBackend>,
    pub mtu: Option<u32>,
    pub ipam_type: String,
    pub dns: Option<Dns>,
    pub data_dir: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    mtu: Option<i64>,
}

/// Only what DEL needs, read leniently: a config that no longer validates still cleans up.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireDel {
    #[serde(default)]
    ip_masq: Option<serde_json::Value>,
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let wire: Wire = req.conf.parse_as()?;
        let ipam_type = req.conf.ipam_type.clone().ok_or_else(|| {
            Error::invalid_config(
                "ipam: ptp needs an IPAM plugin (e.g. host-local) to get addresses",
            )
        })?;
        Ok(Config {
            network: req.conf.name.clone(),
            ip_masq: plugin_kit::masq_backend(wire.ip_masq, wire.ip_masq_backend.as_deref())?,
            mtu: plugin_kit::validate_mtu(wire.mtu)?,
            ipam_type,
            dns: req.conf.dns.clone().filter(|d| !d.is_empty()),
            data_dir: plugin_kit::checked_data_dir(req, DEFAULT_DATA_DIR)?,
        })
    }

    pub fn data_dir_of(req: &Request) -> PathBuf {
        plugin_kit::data_dir(req, DEFAULT_DATA_DIR)
    }

    /// Whether DEL must look for masquerade rules of an attachment it has no state of:
    /// when the config asks for masquerading (or cannot be read).
    pub fn masq_wanted_for_del(req: &Request) -> bool {
        let wire: WireDel = req.conf.parse_as().unwrap_or_default();
        !matches!(wire.ip_masq, Some(serde_json::Value::Bool(false)) | None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn request(conf: Value) -> Request {
        cni::testing::request("ADD", &conf, "").unwrap()
    }

    fn conf(extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "kindnet", "type": "ptp",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn kinds_config_parses() {
        let cfg =
            Config::from_request(&request(conf(json!({"ipMasq": false, "mtu": 1500})))).unwrap();
        assert_eq!(cfg.ip_masq, None);
        assert_eq!(cfg.mtu, Some(1500));
        assert_eq!(cfg.ipam_type, "host-local");
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let cfg = Config::from_request(&request(conf(json!({"ipMasq": true})))).unwrap();
        assert_eq!(cfg.ip_masq, Some(MasqBackend::Nftables));
    }

    #[test]
    fn bad_keys_are_config_errors_naming_the_key() {
        for (extra, needle) in [
            (json!({"mtu": 20}), "mtu"),
            (json!({"mtu": 70000}), "mtu"),
            (
                json!({"ipMasq": true, "ipMasqBackend": "pf"}),
                "ipMasqBackend",
            ),
            (json!({"ipam": {}}), "ipam"),
        ] {
            let e = Config::from_request(&request(conf(extra.clone()))).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
        let mut no_ipam = conf(json!({}));
        no_ipam.as_object_mut().unwrap().remove("ipam");
        let e = Config::from_request(&request(no_ipam)).unwrap_err();
        assert_eq!(e.code, code::INVALID_NETWORK_CONFIG);
        // Types the reference would not decode either.
        let e = Config::from_request(&request(conf(json!({"mtu": "big"})))).unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE, "{}", e.msg);
    }

    #[test]
    fn del_looks_for_masquerade_rules_unless_told_there_are_none() {
        assert!(!Config::masq_wanted_for_del(&request(conf(json!({})))));
        assert!(!Config::masq_wanted_for_del(&request(conf(
            json!({"ipMasq": false})
        ))));
        assert!(Config::masq_wanted_for_del(&request(conf(
            json!({"ipMasq": true})
        ))));
        assert!(Config::masq_wanted_for_del(&request(conf(
            json!({"ipMasq": "yes"})
        ))));
    }
}
