//! The tuning plugin's configuration: the reference plugin's keys (`sysctl`, `mac`, `mtu`,
//! `promisc`, `allmulti`, `txQLen`, `dataDir`), their `args.cni` overrides, CNI_ARGS `MAC`
//! and the `mac` capability, validated before anything touches the kernel.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cni::{Error, Request};
use cni_netlink::MacAddr;
use serde::Deserialize;

/// Where the original values are kept for DEL (the reference plugin's directory).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";

/// One sysctl to set: the key as configured, its path under /proc/sys/net and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    /// Relative to /proc/sys/net, `/`-separated, already checked by `sysctl_path`.
    pub path: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub sysctls: Vec<Sysctl>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// The reference only ever turns promiscuous mode on; `false` leaves it alone.
    pub promisc: bool,
    pub allmulti: Option<bool>,
    pub txqlen: Option<u32>,
    pub data_dir: PathBuf,
}

impl Config {
    /// Whether ADD changes anything at all.
    pub fn changes_anything(&self) -> bool {
        !self.sysctls.is_empty()
            || self.mac.is_some()
            || self.mtu.is_some()
            || self.promisc
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    sysctl: Option<BTreeMap<String, String>>,
    mac: Option<String>,
    #[serde(default)]
    promisc: bool,
    mtu: Option<i64>,
    allmulti: Option<bool>,
    #[serde(rename = "txQLen")]
    txqlen: Option<i64>,
    args: Option<WireArgs>,
}

#[derive(Deserialize, Default)]
struct WireArgs {
    cni: Option<WireCniArgs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireCniArgs {
    sysctl: Option<BTreeMap<String, String>>,
    mac: Option<String>,
    promisc: Option<bool>,
    mtu: Option<i64>,
    allmulti: Option<bool>,
    #[serde(rename = "txQLen")]
    txqlen: Option<i64>,
}

/// Only `dataDir`, for DEL and GC: a config that no longer validates must not keep DEL from
/// restoring what ADD changed.
fn invalid(key: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("{key}: {msg}"))
}

/// `dataDir` as configured, or the default; never fails.
pub fn data_dir_of(req: &Request) -> PathBuf {
    plugin_kit::data_dir(req, DEFAULT_DATA_DIR)
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let wire: Wire = req.conf.parse_as()?;
        let cni_args = req.cni_args(&["MAC"])?;
        let cni = wire.args.and_then(|a| a.cni).unwrap_or_default();

        let mut sysctl = wire.sysctl.unwrap_or_default();
        sysctl.extend(cni.sysctl.unwrap_or_default());
        let sysctls = sysctl
            .into_iter()
            .map(|(key, value)| {
                let path = sysctl_key(&key, req.ifname())?;
                Ok(Sysctl { key, path, value })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        // The reference's order: config, then CNI_ARGS MAC, then the capability, then args.
        let runtime_mac: Option<String> = req.conf.runtime_config("mac")?;
        let mac = cni
            .mac
            .or(runtime_mac.filter(|m| !m.is_empty()))
            .or(cni_args.get("MAC").map(str::to_string))
            .or(wire.mac)
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.parse::<MacAddr>()
                    .map_err(|e| invalid("mac", format!("{m:?}: {e}")))
            })
            .transpose()?;
        let mtu = match cni.mtu.or(wire.mtu) {
            None | Some(0) => None,
            Some(m @ 68..=65535) => Some(m as u32),
            Some(m) => return Err(invalid("mtu", format!("{m} is not between 68 and 65535"))),
        };
        let txqlen = match cni.txqlen.or(wire.txqlen) {
            None => None,
            Some(q) => Some(
                u32::try_from(q)
                    .map_err(|_| invalid("txQLen", format!("{q} is not a queue length")))?,
            ),
        };
        Ok(Config {
            sysctls,
            mac,
            mtu,
            promisc: cni.promisc.unwrap_or(wire.promisc),
            allmulti: cni.allmulti.or(wire.allmulti),
            txqlen,
            data_dir: plugin_kit::checked_data_dir(req, DEFAULT_DATA_DIR)?,
        })
    }
}

/// Turns a configured key into a path relative to /proc/sys/net.
///
/// Keys are written as sysctl(8) writes them: `net.ipv4.conf.IFNAME.arp_filter` (dots), or
/// `net/ipv4/conf/eth0.100/rp_filter` (slashes, for interface names with dots). A component
/// `IFNAME` stands for CNI_IFNAME. Only the container's network sysctls can be reached: the
/// first component must be `net`, and no component may be empty, `.` or `..`.
pub fn sysctl_key(key: &str, ifname: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid_config(format!("sysctl {key:?}: {why}"));
    let separator = if key.contains('/') { '/' } else { '.' };
    let mut parts = key.split(separator);
    if parts.next() != Some("net") {
        return Err(bad(
            "only network sysctls (net.*) of the container's namespace can be set",
        ));
    }
    let rest: Vec<&str> = parts
        .map(|part| if part == "IFNAME" { ifname } else { part })
        .collect();
    if rest.is_empty() {
        return Err(bad("names no sysctl under net."));
    }
    let path = rest.join("/");
    cni_netlink::sysctl_path(&path).map_err(|e| bad(&e.to_string()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_paths_under_net() {
        assert_eq!(
            sysctl_key("net.core.somaxconn", "eth0").unwrap(),
            "core/somaxconn"
        );
        assert_eq!(
            sysctl_key("net.ipv4.conf.IFNAME.arp_filter", "eth1").unwrap(),
            "ipv4/conf/eth1/arp_filter"
        );
        assert_eq!(
            sysctl_key("net/ipv4/conf/eth0.100/rp_filter", "eth0").unwrap(),
            "ipv4/conf/eth0.100/rp_filter"
        );
    }

    #[test]
    fn keys_outside_net_or_with_path_tricks_are_invalid_config() {
        for bad in [
            "kernel.hostname",
            "net",
            "net.",
            "net..ipv4.ip_forward",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel/hostname",
            "net/./ipv4/ip_forward",
            "/net/ipv4/ip_forward",
            "net/ipv4/ip_forward/",
            "net.ipv4.ip_forward.",
            "fs.file-max",
            "",
            "net/ipv4\0/ip_forward",
        ] {
            let err = sysctl_key(bad, "eth0").unwrap_err();
            assert_eq!(
                err.code,
                cni::error::code::INVALID_NETWORK_CONFIG,
                "{bad:?}"
            );
            assert!(err.msg.contains("sysctl"), "{bad:?}: {}", err.msg);
        }
        // An interface name cannot smuggle a path in either.
        assert!(sysctl_key("net.ipv4.conf.IFNAME.rp_filter", "..").is_err());
    }
}
