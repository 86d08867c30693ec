//! The portmap configuration: every key of the reference plugin, read as Go reads it (key
//! names case-insensitively, so containerd's PascalCase `HostPort` and podman's camelCase
//! `hostPort` are the same key), validated before anything touches the kernel.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use cni::{Error, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where per-attachment state is kept (cleared at boot, like the rules it describes).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/portmap";
/// The reference's default mark bit for masquerading (iptables backend).
pub const DEFAULT_MARK_BIT: u32 = 13;

/// Which packet filter carries the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Nftables,
    Iptables,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        })
    }
}

/// A transport protocol a host port can be mapped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            // Docker and podman default to tcp; the CRI always names it.
            "" | "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `runtimeConfig.portMappings`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None`: every local address of the container's families. An unspecified address
    /// (`0.0.0.0`, `::`) stays here: it means every local address of its own family only.
    pub host_ip: Option<IpAddr>,
}

impl Mapping {
    /// Whether the mapping applies to a container address of this family.
    pub fn applies_to_v6(&self, v6: bool) -> bool {
        self.host_ip.is_none_or(|ip| ip.is_ipv6() == v6)
    }

    /// The address the mapping is restricted to, if any (unspecified = none).
    pub fn specific_host_ip(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }

    /// `tcp/8080` or `tcp/[::1]:8080`.
    pub fn host_side(&self) -> String {
        match self.specific_host_ip() {
            None => format!("{}/{}", self.protocol, self.host_port),
            Some(IpAddr::V4(ip)) => format!("{}/{ip}:{}", self.protocol, self.host_port),
            Some(IpAddr::V6(ip)) => format!("{}/[{ip}]:{}", self.protocol, self.host_port),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub network: String,
    pub backend: Backend,
    pub snat: bool,
    pub masq_all: bool,
    /// iptables: the mark bit of the masquerade mark.
    pub mark_masq_bit: u32,
    /// iptables: an external chain that sets the masquerade mark (e.g. `KUBE-MARK-MASQ`).
    pub external_set_mark_chain: Option<String>,
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
    pub data_dir: PathBuf,
    pub mappings: Vec<Mapping>,
}

fn invalid(key: &str, msg: impl fmt::Display) -> Error {
    Error::invalid_config(format!("{key}: {msg}"))
}

fn decoding(key: &str, msg: impl fmt::Display) -> Error {
    Error::decoding(format!("decode network config: {key}: {msg}"))
}

/// The value of `key` in `obj`, matched as Go's encoding/json matches struct fields: the
/// exact name first, else any name equal to it ignoring ASCII case. `null` counts as
/// absent.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, Error> {
    match get_ci(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(decoding(key, format!("expected a boolean, got {other}"))),
    }
}

fn get_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match get_ci(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decoding(key, format!("expected a string, got {other}"))),
    }
}

fn get_int(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, Error> {
    match get_ci(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| decoding(path, format!("expected an integer, got {v}"))),
    }
}

fn get_strings(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, Error> {
    match get_ci(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    decoding(
                        &format!("{key}[{i}]"),
                        format!("expected a string, got {v}"),
                    )
                })
            })
            .collect(),
        Some(other) => Err(decoding(
            key,
            format!("expected a list of strings, got {other}"),
        )),
    }
}

/// Whether a conditions list is written for iptables (`-s 10.0.0.0/8`, `! -d ...`) rather
/// than as nft expressions; decided by its first token, as the reference does.
fn iptables_style(conditions: &[String]) -> Option<bool> {
    let first = conditions.first()?.trim_start();
    Some(first.starts_with('-') || first.starts_with('!'))
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let Some(obj) = req.conf.raw.as_object() else {
            return Err(Error::decoding(
                "decode network config: expected a JSON object",
            ));
        };
        let mark_masq_bit = get_int(obj, "markMasqBit", "markMasqBit")?;
        let external_set_mark_chain = get_string(obj, "externalSetMarkChain")?;
        if mark_masq_bit.is_some() && external_set_mark_chain.is_some() {
            return Err(Error::invalid_config(
                "cannot specify externalSetMarkChain and markMasqBit",
            ));
        }
        let mark_masq_bit = match mark_masq_bit {
            None => DEFAULT_MARK_BIT,
            Some(b @ 0..=31) => b as u32,
            Some(b) => return Err(invalid("markMasqBit", format!("{b} is outside 0..31"))),
        };
        if let Some(chain) = &external_set_mark_chain {
            validate_chain_name("externalSetMarkChain", chain)?;
        }
        let conditions_v4 = get_strings(obj, "conditionsV4")?;
        let conditions_v6 = get_strings(obj, "conditionsV6")?;
        let styles: Vec<bool> = [&conditions_v4, &conditions_v6]
            .into_iter()
            .filter_map(|c| iptables_style(c))
            .collect();
        let ipt_conditions = styles.iter().any(|s| *s);
        let nft_conditions = styles.iter().any(|s| !*s);
        if ipt_conditions && nft_conditions {
            return Err(Error::invalid_config(
                "conditionsV4 and conditionsV6 must both be iptables arguments or both nft expressions",
            ));
        }
        let backend = match get_string(obj, "backend")?.as_deref() {
            None | Some("") => {
                if ipt_conditions || external_set_mark_chain.is_some() {
                    Backend::Iptables
                } else {
                    Backend::Nftables
                }
            }
            Some("nftables") => Backend::Nftables,
            Some("iptables") => Backend::Iptables,
            Some(other) => {
                return Err(invalid(
                    "backend",
                    format!("unknown backend {other:?} (iptables or nftables)"),
                ));
            }
        };
        match backend {
            Backend::Nftables if ipt_conditions || external_set_mark_chain.is_some() => {
                let mut keys = Vec::new();
                if external_set_mark_chain.is_some() {
                    keys.push("externalSetMarkChain");
                }
                if ipt_conditions {
                    keys.extend(["conditionsV4", "conditionsV6"]);
                }
                return Err(Error::invalid_config(format!(
                    "nftables backend was requested but the configuration contains iptables-specific options [{}]",
                    keys.join(" ")
                )));
            }
            Backend::Iptables if nft_conditions => {
                return Err(Error::invalid_config(
                    "iptables backend was requested but conditionsV4/conditionsV6 are nft expressions (iptables conditions start with - or !)",
                ));
            }
            _ => {}
        }
        for (key, conds) in [
            ("conditionsV4", &conditions_v4),
            ("conditionsV6", &conditions_v6),
        ] {
            match backend {
                Backend::Nftables => validate_nft_conditions(key, conds)?,
                Backend::Iptables => validate_iptables_conditions(key, conds)?,
            }
        }
        Ok(Config {
            network: req.conf.name.clone(),
            backend,
            snat: get_bool(obj, "snat")?.unwrap_or(true),
            masq_all: get_bool(obj, "masqAll")?.unwrap_or(false),
            mark_masq_bit,
            external_set_mark_chain,
            conditions_v4,
            conditions_v6,
            data_dir: plugin_kit::checked_data_dir(req, DEFAULT_DATA_DIR)?,
            mappings: parse_mappings(&req.conf.runtime_config)?,
        })
    }
}

/// Only what DEL and GC need, so a config that no longer validates can still clean up.
pub fn data_dir_of(req: &Request) -> PathBuf {
    plugin_kit::data_dir(req, DEFAULT_DATA_DIR)
}

/// `runtimeConfig.portMappings`, each entry validated. Identical entries are merged; two
/// entries for the same host port and address with different container ports are an error.
pub fn parse_mappings(runtime_config: &Map<String, Value>) -> Result<Vec<Mapping>, Error> {
    const KEY: &str = "runtimeConfig.portMappings";
    let entries = match get_ci(runtime_config, "portMappings") {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(decoding(KEY, format!("expected a list, got {other}"))),
    };
    let mut seen: BTreeMap<(Protocol, u16, Option<IpAddr>), Mapping> = BTreeMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("{KEY}[{i}]");
        let Value::Object(obj) = entry else {
            return Err(decoding(&path, format!("expected an object, got {entry}")));
        };
        let port = |key: &str| -> Result<u16, Error> {
            let key_path = format!("{path}.{key}");
            match get_int(obj, key, &key_path)? {
                None => Err(invalid(&key_path, "missing")),
                Some(p @ 1..=65535) => Ok(p as u16),
                Some(p) => Err(invalid(&key_path, format!("{p} is not a port (1-65535)"))),
            }
        };
        let host_port = port("hostPort")?;
        let container_port = port("containerPort")?;
        let protocol = match get_ci(obj, "protocol") {
            None => Protocol::Tcp,
            Some(Value::String(s)) => Protocol::parse(s).ok_or_else(|| {
                invalid(
                    &format!("{path}.protocol"),
                    format!("unknown protocol {s:?} (tcp, udp or sctp)"),
                )
            })?,
            Some(other) => {
                return Err(decoding(
                    &format!("{path}.protocol"),
                    format!("expected a string, got {other}"),
                ));
            }
        };
        let host_ip = match get_ci(obj, "hostIP") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.parse::<IpAddr>().map_err(|_| {
                invalid(
                    &format!("{path}.hostIP"),
                    format!("{s:?} is not an IP address"),
                )
            })?),
            Some(other) => {
                return Err(decoding(
                    &format!("{path}.hostIP"),
                    format!("expected a string, got {other}"),
                ));
            }
        };
        let mapping = Mapping {
            host_port,
            container_port,
            protocol,
            host_ip,
        };
        match seen.get(&(protocol, host_port, host_ip)) {
            Some(prev) if *prev == mapping => continue,
            Some(prev) => {
                return Err(invalid(
                    &path,
                    format!(
                        "host port {} is mapped twice (to container ports {} and {})",
                        mapping.host_side(),
                        prev.container_port,
                        container_port
                    ),
                ));
            }
            None => {
                seen.insert((protocol, host_port, host_ip), mapping);
                out.push(mapping);
            }
        }
    }
    Ok(out)
}

/// nft expressions go into a rule as they are: no statement separators, comments or line
/// breaks that would smuggle in more than a condition, and balanced braces and quotes.
fn validate_nft_conditions(key: &str, conditions: &[String]) -> Result<(), Error> {
    for (i, c) in conditions.iter().enumerate() {
        let bad = |why: &str| {
            Err(invalid(
                &format!("{key}[{i}]"),
                format!("{c:?} is not a valid nft expression: {why}"),
            ))
        };
        if c.trim().is_empty() {
            return bad("empty");
        }
        if c.contains(['\n', '\r', ';', '#', '\0']) {
            return bad("line breaks, ';' and '#' are not allowed");
        }
        let mut depth = 0i32;
        for ch in c.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return bad("unbalanced braces");
            }
        }
        if depth != 0 {
            return bad("unbalanced braces");
        }
        if c.matches('"').count() % 2 != 0 {
            return bad("unbalanced quotes");
        }
    }
    Ok(())
}

/// iptables arguments are written into an iptables-restore line: one line, quotable.
fn validate_iptables_conditions(key: &str, conditions: &[String]) -> Result<(), Error> {
    for (i, c) in conditions.iter().enumerate() {
        if c.is_empty() || c.contains(['\n', '\r', '"', '\0']) {
            return Err(invalid(
                &format!("{key}[{i}]"),
                format!("{c:?} is not a valid iptables argument"),
            ));
        }
    }
    Ok(())
}

fn validate_chain_name(key: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 28
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{name:?} is not an iptables chain name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::json;

    fn request(conf: Value) -> Request {
        cni::testing::request("ADD", &conf, "").unwrap()
    }

    fn base(extra: Value) -> Value {
        let mut conf = json!({"cniVersion": "1.0.0", "name": "net", "type": "portmap"});
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        conf
    }

    fn parse(extra: Value) -> Result<Config, Error> {
        Config::from_request(&request(base(extra)))
    }

    fn mappings(list: Value) -> Result<Vec<Mapping>, Error> {
        parse(json!({"runtimeConfig": {"portMappings": list}})).map(|c| c.mappings)
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.backend, Backend::Nftables);
        assert!(c.snat);
        assert!(!c.masq_all);
        assert_eq!(c.mark_masq_bit, 13);
        assert!(c.mappings.is_empty());
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn camel_and_pascal_case_are_the_same_keys() {
        let podman = mappings(json!([
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}
        ]))
        .unwrap();
        let cri = mappings(json!([
            {"HostPort": 8080, "ContainerPort": 80, "Protocol": "TCP", "HostIP": "127.0.0.1"}
        ]))
        .unwrap();
        assert_eq!(podman, cri);
        assert_eq!(podman[0].host_ip, Some("127.0.0.1".parse().unwrap()));
        let c = parse(json!({"SNAT": false, "MasqAll": true})).unwrap();
        assert!(!c.snat);
        assert!(c.masq_all);
    }

    #[test]
    fn bad_ports_protocols_and_addresses_are_config_errors() {
        for bad in [
            json!([{"hostPort": 0, "containerPort": 80}]),
            json!([{"hostPort": 8080, "containerPort": 65536}]),
            json!([{"hostPort": -1, "containerPort": 80}]),
            json!([{"containerPort": 80}]),
            json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "300.1.1.1"}]),
            json!([
                {"hostPort": 80, "containerPort": 80},
                {"hostPort": 80, "containerPort": 81, "protocol": "tcp"}
            ]),
        ] {
            let err = mappings(bad.clone()).unwrap_err();
            assert_eq!(err.code, code::INVALID_NETWORK_CONFIG, "{bad}: {err:?}");
        }
        let err = mappings(json!([{"hostPort": "80", "containerPort": 80}])).unwrap_err();
        assert_eq!(err.code, code::DECODING_FAILURE);
        assert!(err.msg.contains("portMappings[0].hostPort"), "{}", err.msg);
    }

    #[test]
    fn duplicates_merge_and_empty_protocol_is_tcp() {
        let m = mappings(json!([
            {"hostPort": 80, "containerPort": 80, "protocol": ""},
            {"hostPort": 80, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 80, "containerPort": 80, "protocol": "udp"},
            {"hostPort": 80, "containerPort": 81, "hostIP": "::1"},
        ]))
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].protocol, Protocol::Tcp);
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert!(!m[2].applies_to_v6(false));
        assert!(m[2].applies_to_v6(true));
    }

    #[test]
    fn backend_selection() {
        let c = parse(json!({"conditionsV4": ["-s", "10.0.0.0/8"]})).unwrap();
        assert_eq!(c.backend, Backend::Iptables);
        let c = parse(json!({"externalSetMarkChain": "KUBE-MARK-MASQ"})).unwrap();
        assert_eq!(c.backend, Backend::Iptables);
        let c = parse(json!({"conditionsV4": ["ip saddr 10.0.0.0/8"]})).unwrap();
        assert_eq!(c.backend, Backend::Nftables);
        let c = parse(json!({"markMasqBit": 5})).unwrap();
        assert_eq!(c.backend, Backend::Nftables);
        assert_eq!(c.mark_masq_bit, 5);
        for bad in [
            json!({"backend": "nftables", "externalSetMarkChain": "KUBE-MARK-MASQ"}),
            json!({"backend": "iptables", "conditionsV4": ["ip saddr 1.2.3.4"]}),
            json!({"backend": "ebtables"}),
            json!({"markMasqBit": 32}),
            json!({"markMasqBit": 1, "externalSetMarkChain": "X"}),
            json!({"conditionsV4": ["-s", "1.2.3.4"], "conditionsV6": ["ip6 saddr ::1"]}),
            json!({"conditionsV4": ["ip saddr 1.2.3.4; flush ruleset"]}),
            json!({"conditionsV4": ["ip saddr { 1.2.3.4"]}),
            json!({"conditionsV4": [""]}),
        ] {
            let err = parse(bad.clone()).unwrap_err();
            assert_eq!(err.code, code::INVALID_NETWORK_CONFIG, "{bad}: {err:?}");
        }
    }
}
