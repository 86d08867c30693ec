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

    /// Only what DEL and GC need (name and dataDir), so a config whose ranges no longer
    /// validate can still release what it holds.
    pub fn data_dir_of(req: &Request) -> Result<PathBuf, Error> {
        Ok(data_dir(&ipam_object(req)?))
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
