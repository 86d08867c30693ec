//! The ADD result, held in its 1.x shape and converted to and from every spec version.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Error, Version};

/// An ADD result in its 1.0.0/1.1.0 shape (the types did not change between the two).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; empty for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with the prefix length of its subnet, e.g. `10.22.0.5/16`.
    pub address: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; IPAM plugins leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, rename = "advmss", skip_serializing_if = "Option::is_none")]
    pub adv_mss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            adv_mss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The `ip4`/`ip6` object of 0.1.0 and 0.2.0 results.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct LegacyResult {
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// Reads a result written in `version`'s shape (a `prevResult`, a delegate's output or a
    /// cached result). Unknown keys, such as 0.4.0's `ips[].version`, are ignored.
    pub fn from_value(value: Value, version: Version) -> Result<CniResult, Error> {
        let rich = version.has_rich_result()
            || value.get("ips").is_some()
            || value.get("interfaces").is_some();
        if rich {
            return serde_json::from_value(value)
                .map_err(|e| Error::decoding(format!("decode result: {e}")));
        }
        let legacy: LegacyResult = serde_json::from_value(value)
            .map_err(|e| Error::decoding(format!("decode {version} result: {e}")))?;
        Ok(CniResult::from_legacy(legacy))
    }

    fn from_legacy(legacy: LegacyResult) -> CniResult {
        let mut result = CniResult {
            dns: legacy.dns,
            ..CniResult::default()
        };
        for ip in [legacy.ip4, legacy.ip6].into_iter().flatten() {
            result.ips.push(IpConfig {
                address: ip.ip,
                gateway: ip.gateway,
                interface: None,
            });
            result
                .routes
                .extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
        }
        result
    }

    /// Writes the result in `version`'s shape, with `cniVersion` set.
    pub fn to_value(&self, version: Version) -> Result<Value, Error> {
        let mut value = match version {
            Version::V1_0_0 | Version::V1_1_0 => {
                serde_json::to_value(self).map_err(|e| Error::internal(e.to_string()))?
            }
            Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0 => self.to_04x_value()?,
            Version::V0_1_0 | Version::V0_2_0 => self.to_legacy_value()?,
        };
        if let Value::Object(map) = &mut value {
            map.insert("cniVersion".into(), Value::String(version.as_str().into()));
        }
        Ok(value)
    }

    /// 0.3.x/0.4.0: `ips[].version` is added and interfaces keep only name, mac and sandbox.
    fn to_04x_value(&self) -> Result<Value, Error> {
        let mut map = Map::new();
        if !self.interfaces.is_empty() {
            let ifaces: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(i.name));
                    if !i.mac.is_empty() {
                        o.insert("mac".into(), json!(i.mac));
                    }
                    if !i.sandbox.is_empty() {
                        o.insert("sandbox".into(), json!(i.sandbox));
                    }
                    Value::Object(o)
                })
                .collect();
            map.insert("interfaces".into(), Value::Array(ifaces));
        }
        if !self.ips.is_empty() {
            let mut ips = Vec::with_capacity(self.ips.len());
            for ip in &self.ips {
                let mut v = serde_json::to_value(ip).map_err(|e| Error::internal(e.to_string()))?;
                let family = if ip.address.is_ipv4() { "4" } else { "6" };
                v["version"] = json!(family);
                ips.push(v);
            }
            map.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            map.insert("routes".into(), json!(self.routes));
        }
        if !self.dns.is_empty() {
            map.insert("dns".into(), json!(self.dns));
        }
        Ok(Value::Object(map))
    }

    /// 0.1.0/0.2.0 keep only the first IPv4 and the first IPv6 address; routes go to the
    /// object of their destination's family.
    fn to_legacy_value(&self) -> Result<Value, Error> {
        let legacy_for = |v4: bool| -> Option<LegacyIp> {
            let ip = self.ips.iter().find(|ip| ip.address.is_ipv4() == v4)?;
            let routes = self
                .routes
                .iter()
                .filter(|r| r.dst.is_ipv4() == v4)
                .map(|r| LegacyRoute {
                    dst: r.dst,
                    gw: r.gw,
                })
                .collect();
            Some(LegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes,
            })
        };
        let (ip4, ip6) = (legacy_for(true), legacy_for(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(Error::incompatible_version(
                "cannot convert result to 0.1.0/0.2.0: no valid IP addresses",
            ));
        }
        let mut map = Map::new();
        if let Some(ip4) = ip4 {
            map.insert("ip4".into(), json!(ip4));
        }
        if let Some(ip6) = ip6 {
            map.insert("ip6".into(), json!(ip6));
        }
        if !self.dns.is_empty() {
            map.insert("dns".into(), json!(self.dns));
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:16:00:05".into(),
                mtu: Some(1500),
                sandbox: "/run/netns/x".into(),
                ..Interface::default()
            }],
            ips: vec![
                IpConfig {
                    address: "10.22.0.5/16".parse().unwrap(),
                    gateway: Some("10.22.0.1".parse().unwrap()),
                    interface: Some(0),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
                IpConfig {
                    address: "10.23.0.5/16".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                },
            ],
            routes: vec![
                Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.22.0.1".parse().unwrap()),
                ),
                Route::new("::/0".parse().unwrap(), None),
            ],
            dns: Dns {
                nameservers: vec!["10.22.0.1".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn one_x_round_trips_unchanged() {
        for v in [Version::V1_0_0, Version::V1_1_0] {
            let value = sample().to_value(v).unwrap();
            assert_eq!(value["cniVersion"], v.as_str());
            assert!(value["ips"][0].get("version").is_none());
            assert_eq!(value["interfaces"][0]["mtu"], 1500);
            assert_eq!(CniResult::from_value(value, v).unwrap(), sample());
        }
    }

    #[test]
    fn zero_four_adds_ip_version_and_drops_new_interface_fields() {
        for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            let value = sample().to_value(v).unwrap();
            assert_eq!(value["ips"][0]["version"], "4");
            assert_eq!(value["ips"][1]["version"], "6");
            assert!(value["interfaces"][0].get("mtu").is_none());
            assert_eq!(value["interfaces"][0]["sandbox"], "/run/netns/x");
            let back = CniResult::from_value(value, v).unwrap();
            assert_eq!(back.ips, sample().ips);
            assert_eq!(back.interfaces[0].mtu, None);
        }
    }

    #[test]
    fn legacy_keeps_first_address_of_each_family_and_splits_routes() {
        let value = sample().to_value(Version::V0_2_0).unwrap();
        assert_eq!(value["ip4"]["ip"], "10.22.0.5/16");
        assert_eq!(value["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(value["ip6"]["ip"], "fd00::5/64");
        assert_eq!(value["ip6"]["routes"][0]["dst"], "::/0");
        assert!(value.get("ips").is_none());
        let back = CniResult::from_value(value, Version::V0_2_0).unwrap();
        assert_eq!(back.ips.len(), 2);
        assert_eq!(back.routes.len(), 2);
    }

    #[test]
    fn legacy_conversion_needs_an_address() {
        let err = CniResult::default().to_value(Version::V0_1_0).unwrap_err();
        assert_eq!(err.code, crate::error::code::INCOMPATIBLE_VERSION);
    }
}
