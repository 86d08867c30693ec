//! The network configuration a plugin receives on stdin: the keys every plugin shares.
//! Plugin-specific keys are read by each plugin from the same bytes with [`parse_as`].

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::result::{CniResult, Dns};
use crate::{Error, Version};

/// The shared part of a plugin's configuration, validated.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: Version,
    pub name: String,
    pub plugin_type: String,
    /// `ipam.type`, when an `ipam` object with a non-empty type is present.
    pub ipam_type: Option<String>,
    pub dns: Option<Dns>,
    pub prev_result: Option<CniResult>,
    pub runtime_config: Map<String, Value>,
    /// `cni.dev/valid-attachments` (or libcni's misspelt twin `cni.dev/attachments`), for GC.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole object as received.
    pub raw: Value,
}

/// One attachment a GC request names as still in use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The wire form of the shared keys; everything else is passed through untouched.
#[derive(Deserialize)]
struct WireConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    ipam: Option<WireIpam>,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<Map<String, Value>>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments", default)]
    attachments: Option<Vec<Attachment>>,
}

#[derive(Deserialize)]
struct WireIpam {
    #[serde(rename = "type", default)]
    ipam_type: String,
}

impl NetConf {
    /// Reads the shared keys from stdin bytes. Decoding problems are code 6, an unknown
    /// `cniVersion` is code 1 and a bad `name` is code 7.
    pub fn from_bytes(bytes: &[u8]) -> Result<NetConf, Error> {
        NetConf::read(bytes, false)
    }

    /// [`NetConf::from_bytes`] for DEL: a `prevResult` that does not decode is dropped (with a
    /// warning) instead of failing, as the reference's DEL never decodes it. DEL must clean up
    /// whatever the runtime cached, and every plugin's DEL works without a `prevResult`; a
    /// failing DEL would be retried forever and leak.
    pub fn from_bytes_for_del(bytes: &[u8]) -> Result<NetConf, Error> {
        NetConf::read(bytes, true)
    }

    fn read(bytes: &[u8], lenient_prev: bool) -> Result<NetConf, Error> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decoding(format!("decode network config: {e}")))?;
        if !raw.is_object() {
            return Err(Error::decoding(
                "decode network config: expected a JSON object",
            ));
        }
        let wire: WireConf = parse_value(&raw)?;
        let cni_version = Version::parse(&wire.cni_version).ok_or_else(|| {
            Error::incompatible_version(format!(
                "unsupported cniVersion {:?}; supported: {}",
                wire.cni_version,
                crate::version::list(&Version::ALL)
            ))
        })?;
        validate_network_name(&wire.name)?;
        let prev_result = match wire.prev_result {
            Some(Value::Null) | None => None,
            Some(v) => match CniResult::from_value(v, cni_version) {
                Ok(prev) => Some(prev),
                Err(e) if lenient_prev => {
                    log::warn!("ignoring a prevResult that does not decode: {}", e.msg);
                    None
                }
                Err(e) => return Err(e.context("decode prevResult")),
            },
        };
        Ok(NetConf {
            cni_version,
            name: wire.name,
            plugin_type: wire.plugin_type,
            ipam_type: wire.ipam.map(|i| i.ipam_type).filter(|t| !t.is_empty()),
            dns: wire.dns,
            prev_result,
            runtime_config: wire.runtime_config.unwrap_or_default(),
            valid_attachments: wire.valid_attachments.or(wire.attachments),
            raw,
        })
    }

    /// `runtimeConfig.<key>`, decoded; absent or null is `None`.
    pub fn runtime_config<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.runtime_config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::decoding(format!("decode runtimeConfig.{key}: {e}"))),
        }
    }

    /// `args.cni.<key>`, decoded; absent or null is `None`.
    pub fn cni_arg<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.raw.pointer(&format!("/args/cni/{key}")) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::decoding(format!("decode args.cni.{key}: {e}"))),
        }
    }

    /// The plugin's own typed view of the whole configuration.
    pub fn parse_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        parse_value(&self.raw)
    }
}

/// Decodes a value into `T`, naming the offending key path on failure:
/// `decode network config: ipam.ranges[0][0].subnet: invalid type: ...`.
pub fn parse_value<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Error::decoding(format!("decode network config: {path}: {}", e.inner()))
    })
}

/// Network names as libcni accepts them: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn validate_network_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid_config("missing network name"));
    }
    if !is_id_like(name) {
        return Err(Error::invalid_config(format!(
            "invalid network name {name:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
        )));
    }
    Ok(())
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the rule for network names and container IDs.
pub fn is_id_like(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    #[test]
    fn reads_shared_keys_and_tolerates_capabilities_and_cni_dev_keys() {
        let conf = NetConf::from_bytes(
            br#"{"cniVersion":"1.1.0","name":"net1","type":"bridge",
                "capabilities":{"portMappings":true},"cni.dev/foo":1,
                "ipam":{"type":"host-local"},
                "runtimeConfig":{"ips":["10.0.0.5"]},
                "cni.dev/attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(conf.cni_version, Version::V1_1_0);
        assert_eq!(conf.ipam_type.as_deref(), Some("host-local"));
        let ips: Vec<String> = conf.runtime_config("ips").unwrap().unwrap();
        assert_eq!(ips, vec!["10.0.0.5"]);
        assert_eq!(conf.valid_attachments.unwrap()[0].container_id, "c1");
    }

    #[test]
    fn errors_carry_the_spec_codes() {
        let bad = |s: &str| NetConf::from_bytes(s.as_bytes()).unwrap_err().code;
        assert_eq!(bad("{not json"), code::DECODING_FAILURE);
        assert_eq!(bad("[1]"), code::DECODING_FAILURE);
        assert_eq!(
            bad(r#"{"cniVersion":5,"name":"n"}"#),
            code::DECODING_FAILURE
        );
        assert_eq!(
            bad(r#"{"cniVersion":"9.9.9","name":"n"}"#),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            bad(r#"{"cniVersion":"1.0.0"}"#),
            code::INVALID_NETWORK_CONFIG
        );
        assert_eq!(
            bad(r#"{"cniVersion":"1.0.0","name":"a/b"}"#),
            code::INVALID_NETWORK_CONFIG
        );
    }

    #[test]
    fn a_prev_result_that_does_not_decode_fails_everything_but_del() {
        let bytes = br#"{"cniVersion":"1.0.0","name":"n","type":"bridge",
                        "prevResult":{"ips":"not a list"}}"#;
        let e = NetConf::from_bytes(bytes).unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE, "{}", e.msg);
        assert!(e.msg.contains("prevResult"), "{}", e.msg);
        let for_del = NetConf::from_bytes_for_del(bytes).unwrap();
        assert!(for_del.prev_result.is_none());
        // Everything else is as strict for DEL.
        assert!(NetConf::from_bytes_for_del(br#"{"cniVersion":"9","name":"n"}"#).is_err());
    }

    #[test]
    fn decode_errors_name_the_key_path() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            ipam: I,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct I {
            ranges: Vec<Vec<u32>>,
        }
        let v: Value = serde_json::from_str(r#"{"ipam":{"ranges":[["x"]]}}"#).unwrap();
        let err = parse_value::<P>(&v).unwrap_err();
        assert!(err.msg.contains("ipam.ranges[0][0]"), "{}", err.msg);
    }

    #[test]
    fn id_rule() {
        assert!(is_id_like("a1_b.c-d"));
        assert!(!is_id_like(".."));
        assert!(!is_id_like("a/b"));
        assert!(!is_id_like("-a"));
        assert!(!is_id_like(""));
    }
}
