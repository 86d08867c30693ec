//! Connections of containers to networks: read back from libcni's result cache (so cnictl
//! sees what any runtime on the node attached), made with `connect` and undone with
//! `disconnect`.
//!
//! A "container" is a network namespace. Its ID is cnitool's (`cnitool-` and a hash of the
//! netns path), kept across networks: connecting an already connected namespace (by PID, path,
//! `ip netns` name or container name) reuses the ID and picks the next free interface name.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cni::{CniResult, Version};
use ipnetwork::IpNetwork;
use libcni::{CacheEntry, RuntimeConf};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::env::{Env, NETNS_RUN_DIR, absolute_clean};
use crate::error::{CliError, Result};
use crate::netconf::{Network, find_network};
use crate::ports::{PortMapping, parse_port_specs};

/// The CNI_ARGS key runtimes pass the container's name in (dnsname reads it).
pub const NAME_ARG: &str = "K8S_POD_NAME";
/// A capability argument no plugin declares: the identity (`dev:inode`) of the namespace at
/// connect time, kept in the cache entry so `disconnect` never acts on another namespace that
/// took over the path (a reused PID).
pub const NETNS_ID_CAP: &str = "cnictl.netnsID";

/// One connection, as `network inspect` and `connect --json` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub ifname: String,
    pub netns: String,
    #[serde(rename = "ipAddresses")]
    pub ips: Vec<IpNetwork>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<IpAddr>,
    #[serde(rename = "macAddress", skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    #[serde(rename = "ports")]
    pub ports: Vec<PortMapping>,
    /// The DNS settings the network gave (what a runtime writes into resolv.conf).
    #[serde(skip_serializing_if = "cni::Dns::is_empty")]
    pub dns: cni::Dns,
    #[serde(skip)]
    pub netns_id: Option<String>,
    #[serde(skip)]
    pub entry: CacheEntry,
}

impl Attachment {
    pub fn from_entry(entry: CacheEntry) -> Attachment {
        let name = entry
            .cni_args
            .iter()
            .find(|(k, _)| k == NAME_ARG)
            .map(|(_, v)| v.clone());
        let aliases = match entry.capability_args.get("aliases") {
            Some(Value::Object(map)) => string_list(map.get(&entry.network_name)),
            other => string_list(other),
        };
        let ports = entry
            .capability_args
            .get("portMappings")
            .and_then(|v| serde_json::from_value::<Vec<PortMapping>>(v.clone()).ok())
            .unwrap_or_default();
        let netns_id = entry
            .capability_args
            .get(NETNS_ID_CAP)
            .and_then(Value::as_str)
            .map(str::to_string);
        let result = entry.result.as_ref().and_then(|r| {
            let version = r
                .get("cniVersion")
                .and_then(Value::as_str)
                .and_then(Version::parse)
                .unwrap_or(Version::LATEST);
            CniResult::from_value(r.clone(), version).ok()
        });
        let (mut ips, mut gateways, mut mac) = (Vec::new(), Vec::new(), None);
        let dns = result.as_ref().map(|r| r.dns.clone()).unwrap_or_default();
        if let Some(r) = &result {
            let in_container = |i: Option<usize>| match i {
                None => true,
                Some(i) => r.interfaces.get(i).is_none_or(|f| !f.sandbox.is_empty()),
            };
            for ip in r.ips.iter().filter(|ip| in_container(ip.interface)) {
                ips.push(ip.address);
                if let Some(gw) = ip.gateway
                    && !gateways.contains(&gw)
                {
                    gateways.push(gw);
                }
            }
            mac = r
                .interfaces
                .iter()
                .filter(|f| !f.sandbox.is_empty() && !f.mac.is_empty())
                .find(|f| f.name == entry.ifname)
                .or_else(|| {
                    r.interfaces
                        .iter()
                        .find(|f| !f.sandbox.is_empty() && !f.mac.is_empty())
                })
                .map(|f| f.mac.clone());
        }
        Attachment {
            network: entry.network_name.clone(),
            container_id: entry.container_id.clone(),
            name,
            ifname: entry.ifname.clone(),
            netns: entry.netns.clone(),
            ips,
            gateways,
            mac,
            aliases,
            ports,
            dns,
            netns_id,
            entry,
        }
    }

    /// The name, else the container ID.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.container_id)
    }

    /// The addresses without prefix lengths, comma-separated.
    pub fn ips_text(&self) -> String {
        self.ips
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How to run DEL for it: what ADD was given, except a namespace that is not the one
    /// connected any more (an exited process whose PID was reused) is left out.
    pub fn runtime_conf(&self) -> RuntimeConf {
        let mut netns = self.entry.netns.clone();
        if let Some(id) = &self.netns_id
            && netns_id(Path::new(&netns)).as_deref() != Some(id.as_str())
        {
            netns.clear();
        }
        RuntimeConf {
            container_id: self.entry.container_id.clone(),
            netns,
            ifname: self.entry.ifname.clone(),
            args: self.entry.cni_args.clone(),
            capability_args: self.entry.capability_args.clone(),
        }
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every cached attachment (of every network), oldest container ID first.
pub fn all_attachments(env: &Env) -> Result<Vec<Attachment>> {
    let entries = env.cni().cached_attachments(None).map_err(|e| {
        CliError::from(e).context(format!(
            "cannot read the result cache in {}",
            env.cache_dir.display()
        ))
    })?;
    let mut out: Vec<Attachment> = entries.into_iter().map(Attachment::from_entry).collect();
    out.sort_by(|a, b| {
        (a.network.as_str(), a.display_name(), a.ifname.as_str()).cmp(&(
            b.network.as_str(),
            b.display_name(),
            b.ifname.as_str(),
        ))
    });
    Ok(out)
}

/// The cached attachments of one network.
pub fn network_attachments(env: &Env, network: &str) -> Result<Vec<Attachment>> {
    Ok(all_attachments(env)?
        .into_iter()
        .filter(|a| a.network == network)
        .collect())
}

/// The identity of a namespace file (`dev:inode` of its nsfs inode), when it exists.
pub fn netns_id(path: &Path) -> Option<String> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    Some(format!("{}:{}", meta.dev(), meta.ino()))
}

/// What a container argument stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub container_id: String,
    pub netns: PathBuf,
    pub netns_id: Option<String>,
    /// The name it already has on another network.
    pub name: Option<String>,
}

/// The namespace of a PID, a path, or an `ip netns` name; checked to be a network namespace.
fn netns_of(arg: &str) -> Result<Option<PathBuf>> {
    let path = if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let path = PathBuf::from(format!("/proc/{arg}/ns/net"));
        if !Path::new(&format!("/proc/{arg}")).exists() {
            return Err(CliError::new(format!("no process with PID {arg}"))
                .hint("give the PID of a running process, a netns path or an `ip netns` name"));
        }
        path
    } else if arg.contains('/') {
        absolute_clean(Path::new(arg))
    } else {
        let path = Path::new(NETNS_RUN_DIR).join(arg);
        if !path.exists() {
            return Ok(None);
        }
        path
    };
    cni_netlink::NetNs::open(&path).map_err(|e| {
        let hint = if std::fs::symlink_metadata(&path).is_ok() {
            "give the PID of a process in the container, or a path such as /run/netns/NAME"
        } else {
            "create it first (`ip netns add NAME` makes /run/netns/NAME), or give a PID"
        };
        CliError::new(format!("cannot use {arg:?} as a container: {e}")).hint(hint)
    })?;
    Ok(Some(path))
}

/// Resolves a container argument: a name or container ID known from the cache, a PID, a
/// netns path, or an `ip netns` name.
pub fn resolve_container(arg: &str, known: &[Attachment]) -> Result<Container> {
    let numeric = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit());
    if !numeric
        && !arg.contains('/')
        && let Some(a) = known
            .iter()
            .find(|a| a.name.as_deref() == Some(arg) || a.container_id == arg)
    {
        return Ok(Container {
            container_id: a.container_id.clone(),
            netns: PathBuf::from(&a.netns),
            netns_id: a.netns_id.clone().or_else(|| netns_id(Path::new(&a.netns))),
            name: a.name.clone(),
        });
    }
    let Some(path) = netns_of(arg)? else {
        return Err(CliError::new(format!(
            "no container named {arg:?} and no network namespace {NETNS_RUN_DIR}/{arg}"
        ))
        .hint(
            "give a PID, a netns path or `ip netns` name, or the --name of a connected container \
             (`cnictl network inspect NETWORK` lists them)",
        ));
    };
    let id = netns_id(&path);
    // Never the host's own namespace (a PID of a host process, /proc/1/ns/net...).
    if id.is_some() && id == netns_id(Path::new("/proc/self/ns/net")) {
        return Err(CliError::new(format!(
            "{arg:?} is in cnictl's own network namespace, not a container's"
        ))
        .hint("give the PID of a process inside the container, or its netns path"));
    }
    // The same namespace already connected elsewhere (by another path) keeps its identity.
    if let Some(a) = known.iter().find(|a| {
        id.is_some()
            && (a.netns_id == id || (a.netns_id.is_none() && netns_id(Path::new(&a.netns)) == id))
    }) {
        return Ok(Container {
            container_id: a.container_id.clone(),
            netns: PathBuf::from(&a.netns),
            netns_id: id,
            name: a.name.clone(),
        });
    }
    Ok(Container {
        container_id: libcni::cnitool_container_id(&path),
        netns: path,
        netns_id: id,
        name: None,
    })
}

/// Names as dnsname takes them: labels of letters, digits, `-` and `_`, 1 to 63 characters,
/// separated by dots, starting with a letter or digit.
pub fn check_dns_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(CliError::new(format!("invalid {what} {name:?}")).hint(
            "use letters, digits, '-' and '_' (dots separate labels of at most 63 characters), \
             starting with a letter or digit",
        ))
    }
}

/// What `connect` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ConnectOpts {
    pub network: String,
    pub container: String,
    pub name: Option<String>,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
    pub ports: Vec<String>,
    pub ifname: Option<String>,
}

/// The interface names in a namespace.
fn links_in(netns: &Path) -> BTreeSet<String> {
    let Ok(ns) = cni_netlink::NetNs::open(netns) else {
        return BTreeSet::new();
    };
    cni_netlink::Netlink::in_netns(&ns)
        .and_then(|mut nl| nl.list_links())
        .map(|links| links.into_iter().map(|l| l.name).collect())
        .unwrap_or_default()
}

/// The first of eth0, eth1... not in `used`.
fn first_free_ifname(used: &BTreeSet<String>) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.contains(n))
        .unwrap_or_else(|| "eth0".into())
}

/// Connects a container to a network: checks everything it can first, runs ADD of the whole
/// list, and on failure runs DEL so nothing stays half-made. Returns the new attachment.
pub fn connect(env: &Env, o: &ConnectOpts) -> Result<Attachment> {
    env.check_exec_netns()?;
    let _lock = env.lock()?;
    let network = find_network(&env.conf_dir, &o.network)?;
    let known = all_attachments(env)?;
    let ctr = resolve_container(&o.container, &known)?;
    check_not_connected(env, o, &network, &known, &ctr)?;
    let name = container_name(o, &known, &ctr)?;
    check_aliases(o, &network)?;
    let ports = free_ports(o, &network, &known)?;
    let ip = match &o.ip {
        None => None,
        Some(text) => Some(check_static_ip(&network, text)?),
    };
    let ifname = pick_ifname(o, &known, &ctr)?;
    let rt = runtime_conf(o, &network, &ctr, &name, ip, &ports, ifname);
    add_or_clean_up(env, &network, &rt, &name)
}

/// The container is not the plugins' own namespace, nor connected to the network already.
fn check_not_connected(
    env: &Env,
    o: &ConnectOpts,
    network: &Network,
    known: &[Attachment],
    ctr: &Container,
) -> Result<()> {
    if let Some(exec) = &env.exec_netns
        && ctr.netns_id.is_some()
        && ctr.netns_id == netns_id(exec)
    {
        return Err(CliError::new(format!(
            "{:?} is the namespace the plugins run in (the host), not a container's",
            o.container
        ))
        .hint("give the PID of a process inside the container, or its netns path"));
    }
    if let Some(a) = known
        .iter()
        .find(|a| a.network == network.name && a.container_id == ctr.container_id)
    {
        return Err(CliError::new(format!(
            "{} is already connected to {} (as {}, {})",
            a.display_name(),
            network.name,
            a.ifname,
            a.ips_text()
        ))
        .hint(format!(
            "disconnect it first: `cnictl disconnect {} {}`",
            network.name,
            a.display_name()
        )));
    }
    Ok(())
}

/// The container's name: the one asked for or the one it has on another network (not two
/// different ones), a DNS name no other container has.
fn container_name(o: &ConnectOpts, known: &[Attachment], ctr: &Container) -> Result<String> {
    let name = match (&o.name, &ctr.name) {
        (Some(n), Some(old)) if n != old => {
            return Err(CliError::new(format!(
                "this container is already named {old:?} on another network"
            ))
            .hint(format!("leave out --name, or use --name {old}")));
        }
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => {
            return Err(CliError::new("a new container needs a name")
                .hint("pass --name NAME (its name in DNS, `disconnect` and `inspect`)"));
        }
    };
    check_dns_name("container name", &name)?;
    if let Some(other) = known
        .iter()
        .find(|a| a.name.as_deref() == Some(name.as_str()) && a.container_id != ctr.container_id)
    {
        return Err(CliError::new(format!(
            "the name {name:?} is taken by another container (on {}, netns {})",
            other.network, other.netns
        ))
        .hint("pick another --name"));
    }
    Ok(name)
}

/// Aliases are DNS names, on a network with DNS.
fn check_aliases(o: &ConnectOpts, network: &Network) -> Result<()> {
    for a in &o.aliases {
        check_dns_name("alias", a)?;
    }
    if !o.aliases.is_empty() && !network.has_capability("aliases") {
        return Err(CliError::new(format!(
            "network {} has no DNS (no plugin takes aliases)",
            network.name
        ))
        .hint("leave out --alias, or use a network created without --no-dns"));
    }

    Ok(())
}

/// The published ports, on a network that can publish them, no host port taken.
fn free_ports(
    o: &ConnectOpts,
    network: &Network,
    known: &[Attachment],
) -> Result<Vec<PortMapping>> {
    let ports = parse_port_specs(&o.ports)?;
    if !ports.is_empty() && !network.has_capability("portMappings") {
        return Err(CliError::new(format!(
            "network {} cannot publish ports (no plugin takes portMappings; {} networks have none)",
            network.name,
            network.driver()
        ))
        .hint("publish ports on a bridge network"));
    }
    for p in &ports {
        if let Some(a) = known
            .iter()
            .find(|a| a.ports.iter().any(|q| q.conflicts_with(p)))
        {
            return Err(CliError::new(format!(
                "host port {}/{} is already published by {} on {}",
                p.host_port,
                p.protocol,
                a.display_name(),
                a.network
            ))
            .hint("pick another host port"));
        }
    }

    Ok(ports)
}

/// The interface name asked for, if the container does not use it yet, else the first free
/// ethN: the names its cached attachments (on any network) and its namespace's links have.
fn pick_ifname(o: &ConnectOpts, known: &[Attachment], ctr: &Container) -> Result<String> {
    let mut used: BTreeSet<String> = known
        .iter()
        .filter(|a| a.container_id == ctr.container_id)
        .map(|a| a.ifname.clone())
        .collect();
    used.extend(links_in(&ctr.netns));
    let ifname = match &o.ifname {
        Some(i) => {
            cni::env::validate_ifname(i)
                .map_err(|e| CliError::new(format!("invalid --ifname: {}", e.msg)))?;
            if used.contains(i) {
                // ADD would fail on it, and the DEL after the failed ADD would remove it.
                let owner = known
                    .iter()
                    .find(|a| a.container_id == ctr.container_id && &a.ifname == i);
                let mut e = CliError::new(match owner {
                    Some(a) => format!(
                        "interface {i} is already in use in {} (its connection to {})",
                        a.display_name(),
                        a.network
                    ),
                    None => format!(
                        "interface {i} already exists in the namespace {}",
                        ctr.netns.display()
                    ),
                });
                let free = first_free_ifname(&used);
                e = match owner {
                    Some(a) => e.hint(format!(
                        "pick another --ifname (such as {free}), or disconnect it first: \
                         `cnictl disconnect {} {}`",
                        a.network,
                        a.display_name()
                    )),
                    None => e.hint(format!(
                        "pick another --ifname (such as {free}), or leave it out to get a free one"
                    )),
                };
                return Err(e);
            }
            i.clone()
        }
        None => first_free_ifname(&used),
    };

    Ok(ifname)
}

/// What the runtime passes: CNI_ARGS (the name, a static IP), the capabilities (ports,
/// aliases, the netns identity).
fn runtime_conf(
    o: &ConnectOpts,
    network: &Network,
    ctr: &Container,
    name: &str,
    ip: Option<IpAddr>,
    ports: &[PortMapping],
    ifname: String,
) -> RuntimeConf {
    let mut args = vec![
        ("IgnoreUnknown".to_string(), "1".to_string()),
        (NAME_ARG.to_string(), name.to_string()),
    ];
    if let Some(ip) = ip {
        args.push(("IP".to_string(), ip.to_string()));
    }
    let mut caps = Map::new();
    if !ports.is_empty() {
        caps.insert("portMappings".into(), json!(ports));
    }
    if !o.aliases.is_empty() {
        caps.insert("aliases".into(), json!({ network.name.clone(): o.aliases }));
    }
    if let Some(id) = &ctr.netns_id {
        caps.insert(NETNS_ID_CAP.into(), json!(id));
    }
    RuntimeConf {
        container_id: ctr.container_id.clone(),
        netns: ctr.netns.display().to_string(),
        ifname,
        args,
        capability_args: caps,
    }
}

/// ADD of the whole list; a failed ADD is followed by DEL so nothing stays half-made.
fn add_or_clean_up(
    env: &Env,
    network: &Network,
    rt: &RuntimeConf,
    name: &str,
) -> Result<Attachment> {
    let mut cni = env.cni();
    // libcni's checks before it runs a plugin (every plugin found, in a version that takes the
    // list's; the runtime arguments well-formed), made here: a failure there is reported alone,
    // and any failure of the ADD below comes after plugins ran.
    let refused = |e: CliError| e.context(format!("cannot connect {name} to {}", network.name));
    cni.validate_network_list(&network.list)
        .map_err(|e| refused(e.into()))?;
    cni.validate_versions = false;
    cni::env::validate_container_id(&rt.container_id).map_err(|e| refused(CliError::new(e.msg)))?;
    if let Err(e) = cni.add_network_list(&network.list, rt) {
        // Plugins ran: some may have made their part (one failed), or all did and writing the
        // result cache failed. ADD is followed by DEL even when it failed (the spec), so
        // nothing stays half-made; DEL of what was never made succeeds.
        let cleanup = cni.del_network_list(&network.list, rt).err();
        let mut err = refused(e.into());
        if let Some(c) = cleanup {
            err.msg.push_str(&format!(
                "\n  and cleaning up after it failed too: {c}\n  ({})",
                manual_del(&network.name, rt)
            ));
        }
        return Err(err);
    }
    let entry = cni
        .cache()
        .read(&network.name, &rt.container_id, &rt.ifname)?
        .ok_or_else(|| CliError::new("the connection was made but its cache entry is missing"))?;
    Ok(Attachment::from_entry(entry))
}

/// What to run to finish the DEL of a failed connect by hand. Nothing was cached, so
/// `disconnect` does not know it; `cnictl del` takes cnitool's inputs and derives the container
/// ID from the netns path, which is the ID connect used unless it reused the ID of the
/// container's connections made by another runtime.
fn manual_del(network: &str, rt: &RuntimeConf) -> String {
    let args: Vec<String> = rt.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args = sh_quote(&args.join(";"));
    let caps: Map<String, Value> = rt
        .capability_args
        .iter()
        .filter(|(k, _)| k.as_str() != NETNS_ID_CAP)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let caps = if caps.is_empty() {
        String::new()
    } else {
        format!(" CAP_ARGS={}", sh_quote(&Value::Object(caps).to_string()))
    };
    if libcni::cnitool_container_id(Path::new(&rt.netns)) == rt.container_id {
        format!(
            "once the cause is fixed, run `CNI_IFNAME={} CNI_ARGS={args}{caps} cnictl del {} {}` \
             with the same global options",
            sh_quote(&rt.ifname),
            sh_quote(network),
            sh_quote(&rt.netns)
        )
    } else {
        format!(
            "once the cause is fixed, run DEL of network {network} with \
             CNI_CONTAINERID={} CNI_NETNS={} CNI_IFNAME={} CNI_ARGS={args}{caps}: the container \
             ID of its other connections, which `cnictl del` cannot pass (it derives the ID \
             from the netns path); e.g. through the runtime that made them",
            sh_quote(&rt.container_id),
            sh_quote(&rt.netns),
            sh_quote(&rt.ifname)
        )
    }
}

/// A word for a POSIX shell: as is when it is plain, else in single quotes.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r#"'\''"#))
    }
}

/// `--ip`: an address inside one of the network's ranges, not its gateway.
fn check_static_ip(network: &Network, text: &str) -> Result<IpAddr> {
    let ip: IpAddr = text.parse().map_err(|_| {
        CliError::new(format!("invalid --ip {text:?}: not an IP address"))
            .hint("give one address without a prefix length, e.g. --ip 10.89.0.10")
    })?;
    let ranges = network.ranges();
    if ranges.is_empty() {
        return Ok(ip);
    }
    let Some(r) = ranges.iter().find(|r| r.subnet.contains(ip)) else {
        let subnets: Vec<String> = ranges.iter().map(|r| r.subnet.to_string()).collect();
        return Err(CliError::new(format!(
            "--ip {ip} is outside network {} ({})",
            network.name,
            subnets.join(", ")
        )));
    };
    if ip == r.subnet.network() || Some(ip) == r.gateway {
        return Err(CliError::new(format!(
            "--ip {ip} is the network or gateway address of {}",
            r.subnet
        )));
    }
    Ok(ip)
}

/// Disconnects a container (name, container ID, PID, netns path or `ip netns` name) from a
/// network: DEL of the whole list with what ADD was given.
pub fn disconnect(env: &Env, network: &str, container: &str) -> Result<Attachment> {
    env.check_exec_netns()?;
    let _lock = env.lock()?;
    let net = find_network(&env.conf_dir, network)?;
    let known = all_attachments(env)?;
    let here: Vec<&Attachment> = known.iter().filter(|a| a.network == net.name).collect();
    let by_name = here
        .iter()
        .find(|a| a.name.as_deref() == Some(container) || a.container_id == container);
    let found = match by_name {
        Some(a) => Some(*a),
        None => {
            let numeric = !container.is_empty() && container.bytes().all(|b| b.is_ascii_digit());
            let path = if numeric {
                PathBuf::from(format!("/proc/{container}/ns/net"))
            } else if container.contains('/') {
                absolute_clean(Path::new(container))
            } else {
                Path::new(NETNS_RUN_DIR).join(container)
            };
            let id = netns_id(&path);
            here.iter()
                .find(|a| {
                    a.netns == path.display().to_string() || (id.is_some() && (a.netns_id == id))
                })
                .copied()
        }
    };
    let Some(a) = found else {
        let elsewhere: Vec<&str> = known
            .iter()
            .filter(|a| a.name.as_deref() == Some(container) || a.container_id == container)
            .map(|a| a.network.as_str())
            .collect();
        let mut e = CliError::new(format!("{container:?} is not connected to {}", net.name));
        e = if elsewhere.is_empty() {
            e.hint(format!(
                "`cnictl network inspect {}` lists its containers",
                net.name
            ))
        } else {
            e.hint(format!("it is connected to: {}", elsewhere.join(", ")))
        };
        return Err(e);
    };
    let rt = a.runtime_conf();
    env.cni().del_network_list(&net.list, &rt).map_err(|e| {
        CliError::from(e).context(format!(
            "cannot disconnect {} from {}",
            a.display_name(),
            net.name
        ))
    })?;
    Ok(a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(result: Value, args: &[(&str, &str)], caps: Value) -> CacheEntry {
        CacheEntry {
            container_id: "cnitool-0123".into(),
            config: b"{}".to_vec(),
            ifname: "eth1".into(),
            network_name: "app".into(),
            netns: "/run/netns/x".into(),
            cni_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capability_args: caps.as_object().cloned().unwrap_or_default(),
            result: Some(result),
        }
    }

    #[test]
    fn reads_an_attachment_from_a_cache_entry() {
        let a = Attachment::from_entry(entry(
            json!({"cniVersion": "1.1.0",
                "interfaces": [{"name": "cni-app", "mac": "02:00:00:00:00:01"},
                               {"name": "veth1", "mac": "02:00:00:00:00:02"},
                               {"name": "eth1", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x"}],
                "ips": [{"address": "10.89.0.2/24", "gateway": "10.89.0.1", "interface": 2},
                        {"address": "10.99.0.9/24", "interface": 0}]}),
            &[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")],
            json!({"aliases": {"app": ["db", "www"], "other": ["x"]},
                   "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                   NETNS_ID_CAP: "1:2"}),
        ));
        assert_eq!(a.name.as_deref(), Some("web"));
        assert_eq!(a.ips, vec!["10.89.0.2/24".parse::<IpNetwork>().unwrap()]);
        assert_eq!(a.gateways, vec!["10.89.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:03"));
        assert_eq!(a.aliases, ["db", "www"]);
        assert_eq!(a.ports.len(), 1);
        assert_eq!(a.netns_id.as_deref(), Some("1:2"));
        // The namespace is not the one connected (it does not even exist): DEL without it.
        assert_eq!(a.runtime_conf().netns, "");
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["ipAddresses"], json!(["10.89.0.2/24"]));
        assert_eq!(v["macAddress"], "02:00:00:00:00:03");

        // A 0.4.0 result with an aliases list and no name.
        let a = Attachment::from_entry(entry(
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.5/16"}]}),
            &[],
            json!({"aliases": ["a1"]}),
        ));
        assert_eq!(a.name, None);
        assert_eq!(a.display_name(), "cnitool-0123");
        assert_eq!(a.aliases, ["a1"]);
        assert_eq!(a.ips_text(), "10.1.0.5/16");
        assert_eq!(a.runtime_conf().netns, "/run/netns/x");
    }

    #[test]
    fn tells_how_to_finish_a_failed_cleanup() {
        assert_eq!(sh_quote("eth0"), "eth0");
        assert_eq!(sh_quote("a;b"), "'a;b'");
        assert_eq!(sh_quote("it's"), r#"'it'\''s'"#);
        assert_eq!(sh_quote(""), "''");
        let netns = "/run/netns/x";
        let mut rt = RuntimeConf {
            container_id: libcni::cnitool_container_id(Path::new(netns)),
            netns: netns.into(),
            ifname: "eth1".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                (NAME_ARG.into(), "web".into()),
            ],
            capability_args: json!({NETNS_ID_CAP: "1:2", "aliases": {"app": ["db"]}})
                .as_object()
                .cloned()
                .unwrap(),
        };
        // The ID is the one `cnictl del` derives from the path: a command to run.
        assert_eq!(
            manual_del("app", &rt),
            "once the cause is fixed, run `CNI_IFNAME=eth1 \
             CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAME=web' CAP_ARGS='{\"aliases\":{\"app\":[\"db\"]}}' \
             cnictl del app /run/netns/x` with the same global options"
        );
        // A reused ID (another runtime's): `cnictl del` cannot pass it, so no such command.
        rt.container_id = "abc123".into();
        let m = manual_del("app", &rt);
        assert!(!m.contains("cnictl del app"), "{m}");
        assert!(
            m.contains("CNI_CONTAINERID=abc123 CNI_NETNS=/run/netns/x"),
            "{m}"
        );
    }

    #[test]
    fn checks_dns_names() {
        for good in ["web", "web-server", "db_1", "a.b", "x"] {
            check_dns_name("name", good).unwrap();
        }
        for bad in [
            "",
            "-web",
            "a..b",
            "a;b",
            "a=b",
            "with space",
            &"x".repeat(64),
        ] {
            assert!(check_dns_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_missing_containers_with_a_clear_message() {
        let e = resolve_container("no-such-netns-cnictl", &[]).unwrap_err();
        assert!(e.msg.contains("no container named"), "{e}");
        let e = resolve_container("999999999", &[]).unwrap_err();
        assert!(e.msg.contains("no process with PID"), "{e}");
        let e = resolve_container("/nonexistent/ns", &[]).unwrap_err();
        assert!(e.msg.contains("cannot use"), "{e}");
        let e = resolve_container("/proc/self/status", &[]).unwrap_err();
        assert!(e.msg.contains("cannot use"), "{e}");
        let own = std::process::id().to_string();
        let e = resolve_container(&own, &[]).unwrap_err();
        assert!(e.msg.contains("own network namespace"), "{e}");
        let e = resolve_container("/proc/self/ns/net", &[]).unwrap_err();
        assert!(e.msg.contains("own network namespace"), "{e}");
    }
}
