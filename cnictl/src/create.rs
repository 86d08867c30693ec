//! `network create`: a conflist like the ones podman and nerdctl write, from Docker's options.
//!
//! bridge: `bridge` (isGateway, ipMasq, hairpinMode) with `host-local` (one range set per
//! subnet, a default route per family), then `portmap` (capability portMappings), `firewall`,
//! `tuning` and `dnsname` (capability aliases) unless `--no-dns`. macvlan/ipvlan: the driver
//! with its keys (`master` from `--opt parent`) and `host-local`, then `tuning`.
//!
//! Everything is checked before the file is written, plugins included (each must exist and
//! support the list's version), and the file appears whole (written aside, then renamed).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnetwork::{IpNetwork, Ipv4Network};
use libcni::NetworkConfigList;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::env::Env;
use crate::error::{CliError, Result};
use crate::netconf::{META_KEY, Meta, Network, list_networks};

/// The version of the lists cnictl writes (STATUS and GC need 1.1.0).
pub const CNI_VERSION: &str = "1.1.0";
/// The search domain dnsname gives containers (podman's).
pub const DNS_DOMAIN: &str = "dns.podman";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Bridge,
    Macvlan,
    Ipvlan,
}

impl Driver {
    pub fn parse(s: &str) -> Result<Driver> {
        match s {
            "bridge" => Ok(Driver::Bridge),
            "macvlan" => Ok(Driver::Macvlan),
            "ipvlan" => Ok(Driver::Ipvlan),
            other => Err(CliError::new(format!("unknown driver {other:?}"))
                .hint("use --driver bridge, macvlan or ipvlan")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
            Driver::Ipvlan => "ipvlan",
        }
    }

    /// The `--opt` keys it takes.
    fn options(self) -> &'static [&'static str] {
        match self {
            Driver::Bridge => &["mtu", "bridge", "isolate"],
            Driver::Macvlan | Driver::Ipvlan => &["parent", "mtu", "mode"],
        }
    }
}

/// What `network create` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub name: String,
    pub driver: Option<String>,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub internal: bool,
    pub opts: Vec<String>,
    pub no_dns: bool,
}

/// The first and last address of a network.
fn bounds(n: IpNetwork) -> (u128, u128) {
    match n {
        IpNetwork::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNetwork::V6(n) => {
            let first = u128::from(n.network());
            let host_bits = 128 - u32::from(n.prefix());
            let last = if host_bits == 128 {
                u128::MAX
            } else {
                first | ((1u128 << host_bits) - 1)
            };
            (first, last)
        }
    }
}

pub fn overlaps(a: IpNetwork, b: IpNetwork) -> bool {
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let (a0, a1) = bounds(a);
    let (b0, b1) = bounds(b);
    a0 <= b1 && b0 <= a1
}

fn addr(n: IpNetwork, value: u128) -> IpAddr {
    match n {
        IpNetwork::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpNetwork::V6(_) => IpAddr::V6(value.into()),
    }
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn parse_subnet(text: &str) -> Result<IpNetwork> {
    let n: IpNetwork = text.parse().map_err(|_| {
        CliError::new(format!("invalid subnet {text:?}"))
            .hint("write it in CIDR notation, e.g. --subnet 10.90.0.0/24 or --subnet fd00:1::/64")
    })?;
    if n.ip() != n.network() {
        return Err(
            CliError::new(format!("subnet {text} has host bits set")).hint(format!(
                "did you mean --subnet {}/{}?",
                n.network(),
                n.prefix()
            )),
        );
    }
    let max = if n.is_ipv4() { 30 } else { 126 };
    if n.prefix() > max {
        return Err(CliError::new(format!(
            "subnet {text} is too small: it leaves no address for containers"
        ))
        .hint(format!("use a /{max} or larger")));
    }
    Ok(n)
}

/// A bridge name for a network: `cni-<name>` when it fits in 15 bytes, else `cni-` and a
/// hash of the name.
pub fn bridge_name(network: &str) -> String {
    let plain = format!("cni-{network}");
    if plain.len() <= 15 && cni::env::validate_ifname(&plain).is_ok() {
        return plain;
    }
    let digest = Sha256::digest(network.as_bytes());
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("cni-{hex}")
}

/// The routes of the namespace the plugins run in (the subnets a new network must avoid).
fn host_networks(env: &Env) -> Vec<IpNetwork> {
    let read = || -> cni_netlink::Result<Vec<IpNetwork>> {
        let mut nl = match &env.exec_netns {
            Some(p) => cni_netlink::Netlink::in_netns(&cni_netlink::NetNs::open(p)?)?,
            None => cni_netlink::Netlink::host()?,
        };
        let routes = nl.list_routes(&cni_netlink::RouteFilter::default())?;
        Ok(routes
            .into_iter()
            .filter(|r| r.dst.prefix() > 0)
            .filter(|r| r.table == cni_netlink::TABLE_MAIN)
            .map(|r| r.dst)
            .collect())
    };
    read().unwrap_or_default()
}

/// The first free /24 from 10.89.0.0 on (podman's pool), avoiding `used`.
pub fn pick_subnet(used: &[IpNetwork]) -> Option<IpNetwork> {
    (89u32..=255)
        .flat_map(|b| (0u32..=255).map(move |c| (b, c)))
        .map(|(b, c)| {
            IpNetwork::V4(
                Ipv4Network::new(Ipv4Addr::new(10, b as u8, c as u8, 0), 24)
                    .unwrap_or_else(|_| Ipv4Network::from(Ipv4Addr::UNSPECIFIED)),
            )
        })
        .find(|n| !used.iter().any(|u| overlaps(*n, *u)))
}

/// The checked plan of a network: its ranges and the conflist.
#[derive(Debug, Clone)]
pub struct Plan {
    pub driver: Driver,
    pub ranges: Vec<Value>,
    pub conflist: Value,
    pub picked_subnet: bool,
}

fn parse_opts(driver: Driver, opts: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for o in opts {
        let Some((k, v)) = o.split_once('=') else {
            return Err(CliError::new(format!("invalid --opt {o:?}"))
                .hint("write options as KEY=VALUE, e.g. --opt mtu=1400"));
        };
        let key = match k {
            "com.docker.network.driver.mtu" => "mtu",
            "com.docker.network.bridge.name" => "bridge",
            "macvlan_mode" | "ipvlan_mode" => "mode",
            k => k,
        };
        if !driver.options().contains(&key) {
            return Err(CliError::new(format!(
                "the {} driver has no option {k:?}",
                driver.as_str()
            ))
            .hint(format!("its options: {}", driver.options().join(", "))));
        }
        out.insert(key.to_string(), v.to_string());
    }
    Ok(out)
}

/// Checks the options and builds the conflist (without writing anything).
pub fn plan(env: &Env, o: &CreateOpts, existing: &[Network]) -> Result<Plan> {
    check_new_name(&o.name, existing)?;
    let driver = Driver::parse(o.driver.as_deref().unwrap_or("bridge"))?;
    let opts = parse_opts(driver, &o.opts)?;
    let mtu = parse_mtu(&opts)?;
    let (subnets, picked_subnet) = plan_subnets(env, o, existing)?;
    let gateways = assign_gateways(&o.gateways, &subnets)?;
    let ranges_of = assign_ranges(&o.ip_ranges, &subnets)?;
    let (ipam, range_sets) = ipam_config(env, o, &subnets, &gateways, &ranges_of);
    let dns = driver == Driver::Bridge && !o.no_dns;
    let plugins = match driver {
        Driver::Bridge => bridge_plugins(env, o, &opts, existing, mtu, ipam, dns)?,
        Driver::Macvlan | Driver::Ipvlan => child_plugins(env, driver, &opts, mtu, ipam)?,
    };
    let meta = Meta {
        driver: driver.as_str().to_string(),
        created: now_rfc3339(),
        internal: o.internal,
        dns,
        options: opts,
    };
    let conflist = json!({
        "cniVersion": CNI_VERSION,
        "name": o.name,
        "plugins": plugins,
        META_KEY: meta,
    });
    Ok(Plan {
        driver,
        ranges: range_sets,
        conflist,
        picked_subnet,
    })
}

/// A valid name no network has yet.
fn check_new_name(name: &str, existing: &[Network]) -> Result<()> {
    cni::conf::validate_network_name(name).map_err(|e| {
        CliError::new(e.msg).hint(
            "network names are letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    })?;
    if let Some(n) = existing.iter().find(|n| n.name == name) {
        return Err(CliError::new(format!(
            "network {name} already exists ({})",
            n.file.display()
        ))
        .hint(format!(
            "pick another name, or remove it first with `cnictl network rm {name}`"
        )));
    }
    Ok(())
}

fn parse_mtu(opts: &BTreeMap<String, String>) -> Result<Option<u32>> {
    match opts.get("mtu") {
        None => Ok(None),
        Some(m) => match m.parse::<u32>() {
            Ok(v @ 68..=65535) => Ok(Some(v)),
            _ => Err(CliError::new(format!("invalid mtu {m:?}"))
                .hint("give a number from 68 to 65535, e.g. --opt mtu=1400")),
        },
    }
}

/// The subnets given (none overlapping each other or another network's), or a free one;
/// whether it was picked.
fn plan_subnets(env: &Env, o: &CreateOpts, existing: &[Network]) -> Result<(Vec<IpNetwork>, bool)> {
    let mut subnets = Vec::new();
    for s in &o.subnets {
        let n = parse_subnet(s)?;
        if let Some(prev) = subnets.iter().find(|p| overlaps(**p, n)) {
            return Err(CliError::new(format!("subnets {prev} and {n} overlap")));
        }
        subnets.push(n);
    }
    for n in &subnets {
        for net in existing {
            if let Some(r) = net.ranges().iter().find(|r| overlaps(r.subnet, *n)) {
                return Err(CliError::new(format!(
                    "subnet {n} overlaps network {} ({})",
                    net.name, r.subnet
                ))
                .hint("pick another --subnet, or leave it out to get a free one"));
            }
        }
    }
    if !subnets.is_empty() {
        return Ok((subnets, false));
    }
    if !o.gateways.is_empty() || !o.ip_ranges.is_empty() {
        return Err(CliError::new("--gateway and --ip-range need a --subnet")
            .hint("give the subnet they belong to with --subnet"));
    }
    let mut used: Vec<IpNetwork> = existing
        .iter()
        .flat_map(|n| n.ranges().into_iter().map(|r| r.subnet))
        .collect();
    used.extend(host_networks(env));
    let n = pick_subnet(&used).ok_or_else(|| {
        CliError::new("no free subnet left between 10.89.0.0/24 and 10.255.255.0/24")
            .hint("give one with --subnet")
    })?;
    Ok((vec![n], true))
}

/// Each `--gateway` to the subnet that holds it (one each, not the network or broadcast
/// address).
fn assign_gateways(given: &[String], subnets: &[IpNetwork]) -> Result<Vec<Option<IpAddr>>> {
    if given.len() > subnets.len() {
        return Err(CliError::new("more --gateway than --subnet"));
    }
    let mut gateways: Vec<Option<IpAddr>> = vec![None; subnets.len()];
    for g in given {
        let ip: IpAddr = g
            .parse()
            .map_err(|_| CliError::new(format!("invalid --gateway {g:?}: not an IP address")))?;
        let i = subnets.iter().position(|s| s.contains(ip)).ok_or_else(|| {
            CliError::new(format!("--gateway {ip} is in none of the subnets"))
                .hint("each --gateway must lie inside one --subnet")
        })?;
        let (first, last) = bounds(subnets[i]);
        if ip_value(ip) == first || (subnets[i].is_ipv4() && ip_value(ip) == last) {
            return Err(CliError::new(format!(
                "--gateway {ip} is the network or broadcast address of {}",
                subnets[i]
            )));
        }
        if gateways[i].replace(ip).is_some() {
            return Err(CliError::new(format!("two gateways for {}", subnets[i])));
        }
    }
    Ok(gateways)
}

/// Each `--ip-range` to the subnet that holds it, as its first and last usable address.
fn assign_ranges(given: &[String], subnets: &[IpNetwork]) -> Result<Vec<Option<(IpAddr, IpAddr)>>> {
    let mut ranges_of: Vec<Option<(IpAddr, IpAddr)>> = vec![None; subnets.len()];
    for r in given {
        let rn: IpNetwork = r.parse().map_err(|_| {
            CliError::new(format!("invalid --ip-range {r:?}"))
                .hint("write it in CIDR notation inside the subnet, e.g. --ip-range 10.90.0.128/25")
        })?;
        let i = subnets
            .iter()
            .position(|s| s.contains(rn.network()) && s.prefix() <= rn.prefix())
            .ok_or_else(|| {
                CliError::new(format!("--ip-range {r} is in none of the subnets"))
                    .hint("each --ip-range must lie inside one --subnet")
            })?;
        let (s_first, s_last) = bounds(subnets[i]);
        let (mut first, mut last) = bounds(rn);
        if first == s_first {
            first += 1;
        }
        if subnets[i].is_ipv4() && last == s_last {
            last -= 1;
        }
        if first > last {
            return Err(CliError::new(format!(
                "--ip-range {r} holds no usable address"
            )));
        }
        if ranges_of[i]
            .replace((addr(rn, first), addr(rn, last)))
            .is_some()
        {
            return Err(CliError::new(format!("two --ip-range for {}", subnets[i])));
        }
    }
    Ok(ranges_of)
}

/// host-local's config: a range set per subnet (its gateway, its range), a default route
/// per family unless the network is internal; and the range sets.
fn ipam_config(
    env: &Env,
    o: &CreateOpts,
    subnets: &[IpNetwork],
    gateways: &[Option<IpAddr>],
    ranges_of: &[Option<(IpAddr, IpAddr)>],
) -> (Value, Vec<Value>) {
    let mut range_sets = Vec::new();
    let mut routes = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        let gateway = gateways[i].unwrap_or_else(|| addr(*s, bounds(*s).0 + 1));
        let mut r = json!({"subnet": s.to_string(), "gateway": gateway.to_string()});
        if let Some((a, b)) = ranges_of[i] {
            r["rangeStart"] = json!(a.to_string());
            r["rangeEnd"] = json!(b.to_string());
        }
        range_sets.push(json!([r]));
        let dst = if s.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        if !o.internal && !routes.iter().any(|x: &Value| x["dst"] == dst) {
            routes.push(json!({"dst": dst}));
        }
    }
    let mut ipam = json!({"type": "host-local", "ranges": range_sets, "routes": routes});
    if let Some(d) = &env.data_dir {
        ipam["dataDir"] = json!(d.join("networks"));
    }
    (ipam, range_sets)
}

/// A bridge network's chain, as podman writes it: bridge, portmap, firewall, tuning, and
/// dnsname with DNS on; every plugin's state under the data dir, never in /run/cni.
fn bridge_plugins(
    env: &Env,
    o: &CreateOpts,
    opts: &BTreeMap<String, String>,
    existing: &[Network],
    mtu: Option<u32>,
    ipam: Value,
    dns: bool,
) -> Result<Vec<Value>> {
    let bridge = opts
        .get("bridge")
        .cloned()
        .unwrap_or_else(|| bridge_name(&o.name));
    cni::env::validate_ifname(&bridge).map_err(|_| {
        CliError::new(format!("invalid bridge name {bridge:?}"))
            .hint("interface names are 1 to 15 characters without '/', ':' or spaces")
    })?;
    if let Some(n) = existing
        .iter()
        .find(|n| n.bridge().as_deref() == Some(&bridge))
    {
        return Err(CliError::new(format!(
            "bridge {bridge} is already used by network {}",
            n.name
        ))
        .hint("pick another with --opt bridge=NAME"));
    }
    let mut b = json!({
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": !o.internal,
        "hairpinMode": true,
    });
    if let Some(m) = mtu {
        b["mtu"] = json!(m);
    }
    if let Some(iso) = opts.get("isolate") {
        let v: bool = iso.parse().map_err(|_| {
            CliError::new(format!("invalid isolate {iso:?}")).hint("use true or false")
        })?;
        b["isolate"] = json!(v);
    }
    b["ipam"] = ipam;
    let mut plugins = vec![
        b,
        json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        json!({"type": "firewall"}),
        json!({"type": "tuning"}),
    ];
    if dns {
        let mut d = json!({
            "type": "dnsname",
            "domainName": DNS_DOMAIN,
            "capabilities": {"aliases": true},
        });
        if let Some(up) = &env.dns_upstream {
            d["upstreamResolvConf"] = json!(up);
        }
        plugins.push(d);
    }
    if let Some(dir) = &env.data_dir {
        for (plugin, sub) in plugins
            .iter_mut()
            .zip(["bridge", "portmap", "firewall", "tuning", "dns"])
        {
            plugin["dataDir"] = json!(dir.join(sub));
        }
    }
    Ok(plugins)
}

/// A macvlan or ipvlan network: the child link on its parent, then tuning.
fn child_plugins(
    env: &Env,
    driver: Driver,
    opts: &BTreeMap<String, String>,
    mtu: Option<u32>,
    ipam: Value,
) -> Result<Vec<Value>> {
    let mut m = json!({"type": driver.as_str()});
    if let Some(parent) = opts.get("parent") {
        cni::env::validate_ifname(parent)
            .map_err(|_| CliError::new(format!("invalid parent interface name {parent:?}")))?;
        check_parent(env, parent)?;
        m["master"] = json!(parent);
    }
    if let Some(mode) = opts.get("mode") {
        let ok: &[&str] = if driver == Driver::Macvlan {
            &["bridge", "private", "vepa", "passthru"]
        } else {
            &["l2", "l3", "l3s"]
        };
        if !ok.contains(&mode.as_str()) {
            return Err(
                CliError::new(format!("invalid {} mode {mode:?}", driver.as_str()))
                    .hint(format!("use one of: {}", ok.join(", "))),
            );
        }
        m["mode"] = json!(mode);
    }
    if let Some(v) = mtu {
        m["mtu"] = json!(v);
    }
    m["ipam"] = ipam;
    Ok(vec![m, json!({"type": "tuning"})])
}

/// A macvlan/ipvlan parent must exist where the plugins run.
fn check_parent(env: &Env, parent: &str) -> Result<()> {
    let found = (|| -> cni_netlink::Result<bool> {
        let mut nl = match &env.exec_netns {
            Some(p) => cni_netlink::Netlink::in_netns(&cni_netlink::NetNs::open(p)?)?,
            None => cni_netlink::Netlink::host()?,
        };
        Ok(nl.get_link(parent.to_string())?.is_some())
    })();
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(
            CliError::new(format!("parent interface {parent} does not exist"))
                .hint("`ip link` lists the interfaces; pass one with --opt parent=IFACE"),
        ),
        Err(e) => Err(CliError::new(format!(
            "cannot look up parent interface {parent}: {e}"
        ))),
    }
}

/// Creates the network: plans it, checks its plugins, writes `<conf dir>/<name>.conflist`.
pub fn create(env: &Env, o: &CreateOpts) -> Result<Network> {
    env.check_exec_netns()?;
    let _lock = env.lock()?;
    let (existing, _) = list_networks(&env.conf_dir)?;
    let plan = plan(env, o, &existing)?;
    let bytes = serde_json::to_vec_pretty(&plan.conflist)
        .map_err(|e| CliError::new(format!("cannot encode the config: {e}")))?;
    let list = NetworkConfigList::from_bytes(&bytes)?;
    // Every plugin must be there and speak the list's version before anything is written.
    env.cni().validate_network_list(&list).map_err(|e| {
        let mut err = CliError::from(e).context(format!("cannot create network {}", o.name));
        if err.msg.contains("dnsname") && err.hint.is_some() {
            err = err.hint(
                "install the suite's plugins (scripts/install.sh) or set CNI_PATH; \
                 --no-dns leaves dnsname out",
            );
        }
        err
    })?;
    std::fs::create_dir_all(&env.conf_dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", env.conf_dir.display())))?;
    let path = env.conf_dir.join(format!("{}.conflist", o.name));
    if path.exists() {
        return Err(CliError::new(format!(
            "{} exists but holds another network",
            path.display()
        ))
        .hint("move that file away, or pick another name"));
    }
    write_atomically(&path, &bytes)?;
    Ok(Network {
        name: o.name.clone(),
        file: path,
        list,
        config: plan.conflist.clone(),
        meta: serde_json::from_value(plan.conflist[META_KEY].clone()).ok(),
    })
}

/// Writes a file under a temporary name (not a config extension) and renames it into place.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut text = bytes.to_vec();
    text.push(b'\n');
    let options = atomic_file::Options {
        mode: 0o644,
        sync: true,
    };
    atomic_file::write_atomic_with(path, &text, options)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

/// The current time as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The path a network would be written to.
pub fn conflist_path(env: &Env, name: &str) -> PathBuf {
    env.conf_dir.join(format!("{name}.conflist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &std::path::Path) -> Env {
        Env {
            conf_dir: dir.to_path_buf(),
            plugin_dirs: vec![],
            cache_dir: dir.join("cache"),
            data_dir: Some("/d".into()),
            exec_netns: Some("/nonexistent".into()),
            dns_upstream: Some("/r".into()),
        }
    }

    fn opts(name: &str) -> CreateOpts {
        CreateOpts {
            name: name.into(),
            ..CreateOpts::default()
        }
    }

    #[test]
    fn plans_a_bridge_network_like_podman() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let mut o = opts("app-net");
        o.subnets = vec!["10.90.0.0/24".into(), "fd00:90::/64".into()];
        o.gateways = vec!["10.90.0.254".into()];
        o.ip_ranges = vec!["10.90.0.0/25".into()];
        o.opts = vec!["mtu=1400".into()];
        let p = plan(&e, &o, &[]).unwrap();
        let c = &p.conflist;
        assert_eq!(c["cniVersion"], CNI_VERSION);
        let types: Vec<&str> = c["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["bridge", "portmap", "firewall", "tuning", "dnsname"]
        );
        let b = &c["plugins"][0];
        assert_eq!(b["bridge"], "cni-app-net");
        assert_eq!(b["isGateway"], true);
        assert_eq!(b["ipMasq"], true);
        assert_eq!(b["hairpinMode"], true);
        assert_eq!(b["mtu"], 1400);
        assert_eq!(b["dataDir"], "/d/bridge");
        assert_eq!(b["ipam"]["dataDir"], "/d/networks");
        assert_eq!(
            b["ipam"]["ranges"],
            json!([[{"subnet": "10.90.0.0/24", "gateway": "10.90.0.254",
                     "rangeStart": "10.90.0.1", "rangeEnd": "10.90.0.127"}],
                   [{"subnet": "fd00:90::/64", "gateway": "fd00:90::1"}]])
        );
        assert_eq!(
            b["ipam"]["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
        assert_eq!(c["plugins"][1]["capabilities"]["portMappings"], true);
        let d = &c["plugins"][4];
        assert_eq!(d["domainName"], DNS_DOMAIN);
        assert_eq!(d["capabilities"]["aliases"], true);
        assert_eq!(d["dataDir"], "/d/dns");
        for (i, name) in [(1, "portmap"), (2, "firewall"), (3, "tuning")] {
            assert_eq!(c["plugins"][i]["dataDir"], format!("/d/{name}"), "{name}");
        }
        assert_eq!(d["upstreamResolvConf"], "/r");
        assert_eq!(c["cnictl"]["driver"], "bridge");
        assert_eq!(c["cnictl"]["options"]["mtu"], "1400");
        // libcni reads it.
        NetworkConfigList::from_bytes(&serde_json::to_vec(c).unwrap()).unwrap();
    }

    #[test]
    fn internal_and_no_dns() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts("int");
        o.subnets = vec!["10.91.0.0/24".into()];
        o.internal = true;
        o.no_dns = true;
        let p = plan(&env(dir.path()), &o, &[]).unwrap();
        let b = &p.conflist["plugins"][0];
        assert_eq!(b["ipMasq"], false);
        assert_eq!(b["ipam"]["routes"], json!([]));
        assert_eq!(p.conflist["plugins"].as_array().unwrap().len(), 4);
        assert_eq!(p.conflist["cnictl"]["internal"], true);
        assert_eq!(p.conflist["cnictl"]["dns"], false);
    }

    #[test]
    fn macvlan_takes_parent_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env(dir.path());
        e.exec_netns = None;
        let mut o = opts("mv");
        o.driver = Some("macvlan".into());
        o.subnets = vec!["192.168.77.0/24".into()];
        o.opts = vec!["parent=lo".into(), "mode=private".into()];
        let p = plan(&e, &o, &[]).unwrap();
        let m = &p.conflist["plugins"][0];
        assert_eq!(m["type"], "macvlan");
        assert_eq!(m["master"], "lo");
        assert_eq!(m["mode"], "private");
        assert_eq!(p.conflist["plugins"][1]["type"], "tuning");
        o.opts = vec!["parent=nonexistent0".into()];
        let err = plan(&e, &o, &[]).unwrap_err();
        assert!(err.msg.contains("does not exist"), "{err}");
        o.opts = vec!["mode=l3".into()];
        assert!(plan(&e, &o, &[]).is_err());
        o.driver = Some("ipvlan".into());
        let p = plan(&e, &o, &[]).unwrap();
        assert_eq!(p.conflist["plugins"][0]["mode"], "l3");
        o.opts = vec!["bridge=x".into()];
        let err = plan(&e, &o, &[]).unwrap_err();
        assert!(err.msg.contains("no option"), "{err}");
    }

    #[test]
    fn rejects_bad_input_with_hints() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a str,
        );
        let cases: &[Case] = &[
            (&["10.0.0.1/24"], &[], &[], &[], "host bits"),
            (&["10.0.0.0/31"], &[], &[], &[], "too small"),
            (&["nonsense"], &[], &[], &[], "invalid subnet"),
            (&["10.0.0.0/24", "10.0.0.0/16"], &[], &[], &[], "overlap"),
            (
                &["10.0.0.0/24"],
                &["10.1.0.1"],
                &[],
                &[],
                "none of the subnets",
            ),
            (
                &["10.0.0.0/24"],
                &["10.0.0.0"],
                &[],
                &[],
                "network or broadcast",
            ),
            (&["10.0.0.0/24"], &["x"], &[], &[], "not an IP"),
            (
                &["10.0.0.0/24"],
                &[],
                &["10.1.0.0/25"],
                &[],
                "none of the subnets",
            ),
            (&[], &["10.0.0.1"], &[], &[], "need a --subnet"),
            (&["10.0.0.0/24"], &[], &[], &["mtu=9"], "invalid mtu"),
            (&["10.0.0.0/24"], &[], &[], &["parent=eth0"], "no option"),
            (&["10.0.0.0/24"], &[], &[], &["novalue"], "invalid --opt"),
        ];
        for (subnets, gws, ranges, opts_, want) in cases {
            let mut o = opts("n");
            o.subnets = subnets.iter().map(|s| s.to_string()).collect();
            o.gateways = gws.iter().map(|s| s.to_string()).collect();
            o.ip_ranges = ranges.iter().map(|s| s.to_string()).collect();
            o.opts = opts_.iter().map(|s| s.to_string()).collect();
            let err = plan(&e, &o, &[]).unwrap_err();
            assert!(err.msg.contains(want), "{subnets:?} {gws:?}: {err}");
        }
        assert!(plan(&e, &opts("bad/name"), &[]).is_err());
        let mut o = opts("n");
        o.driver = Some("overlay".into());
        assert!(
            plan(&e, &o, &[])
                .unwrap_err()
                .msg
                .contains("unknown driver")
        );
    }

    #[test]
    fn picks_free_subnets_and_refuses_overlaps() {
        let used: Vec<IpNetwork> = vec![
            "10.89.0.0/24".parse().unwrap(),
            "10.89.1.0/25".parse().unwrap(),
        ];
        assert_eq!(
            pick_subnet(&used).unwrap(),
            "10.89.2.0/24".parse::<IpNetwork>().unwrap()
        );
        assert_eq!(pick_subnet(&["10.0.0.0/8".parse().unwrap()]), None);
        assert!(overlaps(
            "10.0.0.0/8".parse().unwrap(),
            "10.3.0.0/16".parse().unwrap()
        ));
        assert!(!overlaps(
            "10.0.0.0/24".parse().unwrap(),
            "10.0.1.0/24".parse().unwrap()
        ));
        assert!(!overlaps(
            "10.0.0.0/8".parse().unwrap(),
            "::/0".parse().unwrap()
        ));
        assert!(overlaps(
            "fd00::/8".parse().unwrap(),
            "::/0".parse().unwrap()
        ));
    }

    #[test]
    fn bridge_names_fit_in_an_interface_name() {
        assert_eq!(bridge_name("app-net"), "cni-app-net");
        let long = bridge_name("a-rather-long-network-name");
        assert!(long.starts_with("cni-") && long.len() == 14, "{long}");
        assert_ne!(long, bridge_name("a-rather-long-network-nam3"));
    }

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
