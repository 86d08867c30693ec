//! The bridge plugin's configuration: every key of the reference bridge plugin plus this
//! suite's `isolate` and `dataDir`, validated before anything touches the kernel.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cni::{Dns, Error, Request};
use cni_netlink::MacAddr;
use serde::Deserialize;

/// The bridge the reference plugin uses when none is named.
pub const DEFAULT_BRIDGE: &str = "cni0";
/// Where per-attachment state is kept (cleared at boot, like the rules it describes).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/bridge";

pub use plugin_kit::MasqBackend;

#[derive(Debug, Clone)]
pub struct Config {
    pub network: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: Option<MasqBackend>,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    /// Access VLAN of the container's port (untagged, PVID).
    pub vlan: Option<u16>,
    /// Tagged VLANs of the container's port.
    pub vlan_trunk: BTreeSet<u16>,
    pub preserve_default_vlan: bool,
    pub macspoofchk: bool,
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// Drop traffic between this bridge and other isolated bridges (Docker's user-defined
    /// network behaviour). Default on.
    pub isolate: bool,
    pub ipam_type: Option<String>,
    pub dns: Option<Dns>,
    pub mac: Option<MacAddr>,
    pub data_dir: PathBuf,
}

impl Config {
    pub fn vlan_filtering(&self) -> bool {
        self.vlan.is_some() || !self.vlan_trunk.is_empty()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    ip_masq_backend: Option<String>,
    mtu: Option<i64>,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    vlan: Option<i64>,
    #[serde(default)]
    vlan_trunk: Vec<WireTrunk>,
    #[serde(default)]
    preserve_default_vlan: bool,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    disable_container_interface: bool,
    /// A bool; the reference docs show the string "true", so strings are taken too.
    port_isolation: Option<BoolOrString>,
    isolate: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    String(String),
}

#[derive(Deserialize)]
struct WireTrunk {
    id: Option<i64>,
    #[serde(rename = "minID")]
    min_id: Option<i64>,
    #[serde(rename = "maxID")]
    max_id: Option<i64>,
}

fn invalid(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("{key}: {msg}"))
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let wire: Wire = req.conf.parse_as()?;
        let bridge = wire
            .bridge
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_BRIDGE.into());
        cni::env::validate_ifname(&bridge).map_err(|_| {
            invalid(
                "bridge",
                format!("{bridge:?} is not a valid interface name"),
            )
        })?;
        if wire.hairpin_mode && wire.promisc_mode {
            return Err(Error::invalid_config(
                "cannot set hairpinMode and promiscMode at the same time",
            ));
        }
        let vlan = match wire.vlan {
            None | Some(0) => None,
            Some(v @ 1..=4094) => Some(v as u16),
            Some(v) => {
                return Err(invalid(
                    "vlan",
                    format!("invalid VLAN ID {v} (must be between 0 and 4094)"),
                ));
            }
        };
        let vlan_trunk = collect_trunk(&wire.vlan_trunk)?;
        if vlan.is_some() && !vlan_trunk.is_empty() {
            return Err(Error::invalid_config(
                "cannot set vlan and vlanTrunk at the same time",
            ));
        }
        if let Some(v) = vlan
            && wire.is_gateway | wire.is_default_gateway
            && bridge.len() + 1 + v.to_string().len() > 15
        {
            return Err(invalid(
                "bridge",
                format!("{bridge}.{v}, the gateway interface of vlan {v}, is longer than 15 bytes"),
            ));
        }
        let ipam_type = req.conf.ipam_type.clone();
        if wire.disable_container_interface && ipam_type.is_some() {
            return Err(Error::invalid_config(
                "disableContainerInterface cannot be used with an ipam plugin (it would leave addresses on a down interface)",
            ));
        }
        let ip_masq = plugin_kit::masq_backend(wire.ip_masq, wire.ip_masq_backend.as_deref())?;
        let mtu = plugin_kit::validate_mtu(wire.mtu)?;
        let port_isolation = match wire.port_isolation {
            None => false,
            Some(BoolOrString::Bool(b)) => b,
            Some(BoolOrString::String(s)) => s
                .parse()
                .map_err(|_| invalid("portIsolation", format!("{s:?} is not true or false")))?,
        };
        Ok(Config {
            network: req.conf.name.clone(),
            bridge,
            is_gateway: wire.is_gateway || wire.is_default_gateway,
            is_default_gateway: wire.is_default_gateway,
            force_address: wire.force_address,
            ip_masq,
            mtu,
            hairpin: wire.hairpin_mode,
            promisc: wire.promisc_mode,
            vlan,
            vlan_trunk,
            preserve_default_vlan: wire.preserve_default_vlan,
            macspoofchk: wire.macspoofchk,
            enable_dad: wire.enable_dad,
            disable_container_interface: wire.disable_container_interface,
            port_isolation,
            isolate: wire.isolate.unwrap_or(true),
            ipam_type,
            dns: req.conf.dns.clone().filter(|d| !d.is_empty()),
            mac: requested_mac(req)?,
            data_dir: plugin_kit::checked_data_dir(req, DEFAULT_DATA_DIR)?,
        })
    }

    /// Only what DEL and GC need, so a config that no longer validates can still clean up.
    pub fn data_dir_of(req: &Request) -> PathBuf {
        plugin_kit::data_dir(req, DEFAULT_DATA_DIR)
    }
}

/// The trunk's VLAN IDs, as the reference collects them.
fn collect_trunk(trunk: &[WireTrunk]) -> Result<BTreeSet<u16>, Error> {
    let in_range = |key: &str, v: i64| -> Result<u16, Error> {
        if (1..=4094).contains(&v) {
            Ok(v as u16)
        } else {
            Err(invalid(
                "vlanTrunk",
                format!("{key} {v} is outside 1..4094"),
            ))
        }
    };
    let mut vids = BTreeSet::new();
    for item in trunk {
        match (item.min_id, item.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (in_range("minID", min)?, in_range("maxID", max)?);
                if max < min {
                    return Err(invalid(
                        "vlanTrunk",
                        format!("minID {min} is greater than maxID {max}"),
                    ));
                }
                vids.extend(min..=max);
            }
            (None, Some(_)) => return Err(invalid("vlanTrunk", "maxID without minID")),
            (Some(_), None) => return Err(invalid("vlanTrunk", "minID without maxID")),
            (None, None) => {}
        }
        if let Some(id) = item.id {
            vids.insert(in_range("id", id)?);
        }
    }
    Ok(vids)
}

/// The container MAC: CNI_ARGS `MAC=`, then `args.cni.mac`, then `runtimeConfig.mac` (the
/// later wins, as in the reference).
fn requested_mac(req: &Request) -> Result<Option<MacAddr>, Error> {
    let args = req.cni_args(&["MAC"])?;
    let mut mac = None;
    if let Some(m) = args.get("MAC") {
        mac =
            Some(plugin_kit::parse_mac("CNI_ARGS MAC", m).map_err(|e| Error::invalid_env(e.msg))?);
    }
    if let Some(m) = req.conf.cni_arg::<String>("mac")? {
        mac = Some(plugin_kit::parse_mac("args.cni.mac", &m)?);
    }
    if let Some(m) = req.conf.runtime_config::<String>("mac")? {
        mac = Some(plugin_kit::parse_mac("runtimeConfig.mac", &m)?);
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn parse(extra: Value, cni_args: &str) -> Result<Config, Error> {
        let base = json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge",
                          "ipam": {"type": "host-local"}});
        let conf = cni::testing::merged(base, &extra);
        Config::from_request(&cni::testing::request("ADD", &conf, cni_args)?)
    }

    #[test]
    fn defaults_are_the_references() {
        let cfg = parse(json!({}), "").unwrap();
        assert_eq!(cfg.bridge, DEFAULT_BRIDGE);
        assert!(!cfg.is_gateway && !cfg.hairpin && cfg.ip_masq.is_none());
        assert_eq!(cfg.mtu, None);
        assert!(
            cfg.isolate,
            "isolation between bridge networks is on by default"
        );
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let cfg = parse(json!({"isDefaultGateway": true}), "").unwrap();
        assert!(cfg.is_gateway, "isDefaultGateway implies isGateway");
    }

    #[test]
    fn vlans_and_their_limits() {
        let cfg = parse(
            json!({"vlanTrunk": [{"id": 5}, {"minID": 10, "maxID": 12}]}),
            "",
        )
        .unwrap();
        assert_eq!(
            cfg.vlan_trunk.into_iter().collect::<Vec<_>>(),
            vec![5, 10, 11, 12]
        );
        for (extra, needle) in [
            (json!({"vlan": 4095}), "vlan"),
            (json!({"vlan": 10, "vlanTrunk": [{"id": 5}]}), "vlanTrunk"),
            (
                json!({"bridge": "a-long-bridge", "vlan": 100, "isGateway": true}),
                "longer than 15",
            ),
        ] {
            let e = parse(extra.clone(), "").unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{extra}");
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
    }

    #[test]
    fn conflicting_and_malformed_keys_are_refused() {
        for (extra, want, needle) in [
            (
                json!({"hairpinMode": true, "promiscMode": true}),
                code::INVALID_NETWORK_CONFIG,
                "hairpinMode",
            ),
            (
                json!({"disableContainerInterface": true}),
                code::INVALID_NETWORK_CONFIG,
                "disableContainerInterface",
            ),
            (json!({"mtu": 10}), code::INVALID_NETWORK_CONFIG, "mtu"),
            (
                json!({"bridge": "no/slash"}),
                code::INVALID_NETWORK_CONFIG,
                "bridge",
            ),
            (
                json!({"ipMasq": true, "ipMasqBackend": "pf"}),
                code::INVALID_NETWORK_CONFIG,
                "ipMasqBackend",
            ),
            (
                json!({"portIsolation": "maybe"}),
                code::INVALID_NETWORK_CONFIG,
                "portIsolation",
            ),
            (json!({"dataDir": 5}), code::DECODING_FAILURE, "dataDir"),
            (
                json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
                code::INVALID_NETWORK_CONFIG,
                "runtimeConfig.mac",
            ),
        ] {
            let e = parse(extra.clone(), "").unwrap_err();
            assert_eq!(e.code, want, "{extra}: {}", e.msg);
            assert!(e.msg.contains(needle), "{extra}: {}", e.msg);
        }
        assert!(
            parse(json!({"portIsolation": "true"}), "")
                .unwrap()
                .port_isolation
        );
    }

    #[test]
    fn mac_sources_the_later_wins() {
        let args = "IgnoreUnknown=1;MAC=02:00:00:00:00:01";
        let mac = |extra: Value| parse(extra, args).unwrap().mac.unwrap().to_string();
        assert_eq!(mac(json!({})), "02:00:00:00:00:01");
        let both = json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}});
        assert_eq!(mac(both.clone()), "02:00:00:00:00:02");
        let all = cni::testing::merged(
            both,
            &json!({"runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
        );
        assert_eq!(mac(all), "02:00:00:00:00:03");
        let e = parse(json!({}), "MAC=zz").unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV, "{}", e.msg);
    }
}
