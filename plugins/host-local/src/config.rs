//! host-local's configuration: every key the reference reads, validated before any write.

use std::net::IpAddr;
use std::path::PathBuf;

use cni::{Error, Request, Route, Version};
use ipam_store::{RangeSet, RangeSpec};
use ipnetwork::IpNetwork;
use serde::Deserialize;

/// Where the reference keeps its stores.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The validated configuration of one invocation.
#[derive(Debug)]
pub struct Config {
    pub network: String,
    pub data_dir: PathBuf,
    /// One address is handed out per range set, in this order.
    pub range_sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: Option<PathBuf>,
    /// Addresses asked for through CNI_ARGS `IP=`, `args.cni.ips` or `runtimeConfig.ips`.
    pub requested: Vec<IpAddr>,
}

#[derive(Deserialize)]
struct WireNet {
    ipam: Option<WireIpam>,
}

/// The `ipam` object. Unknown keys are ignored, as the reference does.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireIpam {
    #[serde(default)]
    ranges: Vec<Vec<WireRange>>,
    // The legacy single range, prepended to `ranges`.
    subnet: Option<IpNetwork>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
    data_dir: Option<String>,
    resolv_conf: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct WireRange {
    subnet: Option<IpNetwork>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
}

impl From<&WireRange> for RangeSpec {
    fn from(r: &WireRange) -> RangeSpec {
        RangeSpec {
            subnet: r.subnet,
            range_start: r.range_start,
            range_end: r.range_end,
            gateway: r.gateway,
        }
    }
}

impl Config {
    /// Reads and validates everything ADD, CHECK and STATUS need.
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let ipam = ipam_object(req)?;
        let mut wire_sets: Vec<Vec<WireRange>> = Vec::new();
        if let Some(runtime) = req.conf.runtime_config::<Vec<Vec<WireRange>>>("ipRanges")? {
            wire_sets.extend(runtime);
        }
        if ipam.subnet.is_some() {
            wire_sets.push(vec![WireRange {
                subnet: ipam.subnet,
                range_start: ipam.range_start,
                range_end: ipam.range_end,
                gateway: ipam.gateway,
            }]);
        }
        wire_sets.extend(ipam.ranges.iter().cloned());
        let range_sets = validate_range_sets(&wire_sets, req.version())?;
        Ok(Config {
            network: req.conf.name.clone(),
            data_dir: data_dir(&ipam),
            range_sets,
            routes: ipam.routes,
            resolv_conf: ipam
                .resolv_conf
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            requested: requested_ips(req)?,
        })
    }

    /// Only what DEL and GC need besides the name: `ipam.dataDir` when it is a non-empty
    /// string, else the default. Read from the raw config and never failing, so that a
    /// config whose `ipam` no longer decodes (a range or route mistyped since the ADD, no
    /// `ipam` at all) still releases what it holds; decoding `ipam` whole made such a DEL
    /// fail on every retry, and the addresses leak.
    pub fn data_dir_of(req: &Request) -> PathBuf {
        PathBuf::from(
            req.conf
                .raw
                .pointer("/ipam/dataDir")
                .and_then(|d| d.as_str())
                .filter(|d| !d.is_empty())
                .unwrap_or(DEFAULT_DATA_DIR),
        )
    }
}

fn ipam_object(req: &Request) -> Result<WireIpam, Error> {
    let net: WireNet = req.conf.parse_as()?;
    net.ipam
        .ok_or_else(|| Error::invalid_config("IPAM config missing 'ipam' key"))
}

fn data_dir(ipam: &WireIpam) -> PathBuf {
    PathBuf::from(
        ipam.data_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_DATA_DIR),
    )
}

/// Runtime ranges first, then the legacy range, then `ranges`, as the reference orders them.
fn validate_range_sets(wire: &[Vec<WireRange>], version: Version) -> Result<Vec<RangeSet>, Error> {
    if wire.is_empty() {
        return Err(Error::invalid_config("no IP ranges specified"));
    }
    let mut sets = Vec::with_capacity(wire.len());
    for (i, set) in wire.iter().enumerate() {
        let specs: Vec<RangeSpec> = set.iter().map(RangeSpec::from).collect();
        let set = RangeSet::from_specs(&specs)
            .map_err(|e| Error::invalid_config(format!("invalid range set {i}: {e}")))?;
        if let Some(j) = sets.iter().position(|s: &RangeSet| s.overlaps(&set)) {
            return Err(Error::invalid_config(format!(
                "range set {j} overlaps with range set {i}"
            )));
        }
        sets.push(set);
    }
    let v4 = sets.iter().filter(|s| s.is_ipv4()).count();
    if (v4 > 1 || sets.len() - v4 > 1) && !version.has_rich_result() {
        return Err(Error::invalid_config(format!(
            "CNI version {version} does not support more than 1 address per family"
        )));
    }
    Ok(sets)
}

/// Requested addresses from CNI_ARGS `IP=` (comma-separated), `args.cni.ips` and
/// `runtimeConfig.ips`, each `<ip>` or `<ip>/<prefix>` (the prefix is the range's anyway).
fn requested_ips(req: &Request) -> Result<Vec<IpAddr>, Error> {
    let mut ips = Vec::new();
    let cni_args = req.cni_args(&["IP"])?;
    if let Some(list) = cni_args.get("IP") {
        for item in list.split(',').filter(|s| !s.is_empty()) {
            ips.push(
                parse_requested(item)
                    .map_err(|m| Error::invalid_env(format!("CNI_ARGS IP: {m}")))?,
            );
        }
    }
    for (source, list) in [
        ("args.cni.ips", req.conf.cni_arg::<Vec<String>>("ips")?),
        (
            "runtimeConfig.ips",
            req.conf.runtime_config::<Vec<String>>("ips")?,
        ),
    ] {
        for item in list.unwrap_or_default() {
            ips.push(
                parse_requested(&item)
                    .map_err(|m| Error::invalid_config(format!("{source}: {m}")))?,
            );
        }
    }
    Ok(ips)
}

fn parse_requested(s: &str) -> Result<IpAddr, String> {
    let addr = s.split_once('/').map_or(s, |(ip, _)| ip);
    addr.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;
    use serde_json::{Value, json};

    fn parse_with(version: &str, ipam: Value, extra: Value, args: &str) -> Result<Config, Error> {
        let base = json!({"cniVersion": version, "name": "net", "type": "bridge", "ipam": ipam});
        let conf = cni::testing::merged(base, &extra);
        Config::from_request(&cni::testing::request("ADD", &conf, args)?)
    }

    fn parse(ipam: Value) -> Result<Config, Error> {
        parse_with("1.0.0", ipam, json!({}), "")
    }

    #[test]
    fn runtime_ranges_then_the_legacy_range_then_ranges() {
        let ipam = json!({"type": "host-local", "subnet": "10.1.0.0/24",
                          "ranges": [[{"subnet": "10.2.0.0/24"}], [{"subnet": "fd02::/64"}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "resolvConf": "/etc/r.conf"});
        let runtime = json!({"runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/24"}]]}});
        let cfg = parse_with("1.0.0", ipam, runtime, "").unwrap();
        let firsts: Vec<String> = cfg.range_sets.iter().map(|s| format!("{:?}", s)).collect();
        assert_eq!(cfg.range_sets.len(), 4, "{firsts:?}");
        assert!(firsts[0].contains("10.3.0.0"), "{firsts:?}");
        assert!(firsts[1].contains("10.1.0.0"), "{firsts:?}");
        assert_eq!(cfg.routes.len(), 1);
        assert_eq!(cfg.resolv_conf, Some(PathBuf::from("/etc/r.conf")));
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn requested_addresses_from_args_and_runtime_config() {
        let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.4.0.0/24"}]]});
        let extra = json!({"args": {"cni": {"ips": ["10.4.0.8/24"]}},
                           "runtimeConfig": {"ips": ["10.4.0.9"]}});
        let cfg = parse_with("1.0.0", ipam.clone(), extra, "IP=10.4.0.7").unwrap();
        let want: Vec<IpAddr> = ["10.4.0.7", "10.4.0.8", "10.4.0.9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(cfg.requested, want);
        let e = parse_with("1.0.0", ipam.clone(), json!({}), "IP=nope").unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV, "{}", e.msg);
        let bad = json!({"runtimeConfig": {"ips": ["x"]}});
        let e = parse_with("1.0.0", ipam, bad, "").unwrap_err();
        assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{}", e.msg);
        assert!(e.msg.contains("runtimeConfig.ips"), "{}", e.msg);
    }

    #[test]
    fn bad_ranges_are_refused() {
        for ipam in [
            json!({"type": "host-local"}),
            json!({"type": "host-local", "ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "10.5.0.128/25"}]]}),
            json!({"type": "host-local", "ranges": [[{"subnet": "10.6.0.0/24", "rangeStart": "10.7.0.1"}]]}),
            json!({"type": "host-local", "ranges": [[{"subnet": "10.8.0.0/31"}]]}),
        ] {
            let e = parse(ipam.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{ipam}: {}", e.msg);
        }
        let e = parse(json!({"type": "host-local", "ranges": [[{"subnet": "not-a-net"}]]}))
            .unwrap_err();
        assert_eq!(e.code, code::DECODING_FAILURE, "{}", e.msg);
        // Two IPv4 range sets need a result that can carry two addresses (0.3.0 and later).
        let two = json!({"type": "host-local",
                         "ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "10.10.0.0/24"}]]});
        let e = parse_with("0.2.0", two.clone(), json!({}), "").unwrap_err();
        assert!(
            e.msg.contains("more than 1 address per family"),
            "{}",
            e.msg
        );
        assert!(parse(two).is_ok());
    }

    #[test]
    fn del_and_gc_find_the_store_of_a_config_that_no_longer_decodes() {
        let data_dir = |conf: Value| {
            let req = cni::testing::request("DEL", &conf, "").unwrap();
            Config::data_dir_of(&req)
        };
        let base = json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge"});
        for ipam in [
            json!({"type": "host-local", "dataDir": "/run/ipam",
                   "ranges": [[{"subnet": "10.0.0.0/33"}]]}),
            json!({"type": "host-local", "dataDir": "/run/ipam", "routes": [{"dst": "x"}]}),
            json!({"type": "host-local", "dataDir": "/run/ipam", "ranges": "10.0.0.0/8"}),
        ] {
            let conf = cni::testing::merged(base.clone(), &json!({ "ipam": ipam }));
            assert_eq!(data_dir(conf), PathBuf::from("/run/ipam"), "{ipam}");
        }
        // No usable dataDir, no `ipam` even: the default store.
        for extra in [
            json!({"ipam": {"type": "host-local", "dataDir": 5}}),
            json!({"ipam": {"type": "host-local", "dataDir": ""}}),
            json!({}),
        ] {
            let conf = cni::testing::merged(base.clone(), &extra);
            assert_eq!(data_dir(conf), PathBuf::from(DEFAULT_DATA_DIR), "{extra}");
        }
    }
}
