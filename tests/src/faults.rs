//! Fault injection for the chains runtimes use: plugins SIGKILLed at a chosen moment of a
//! chosen call, and a census of everything an attachment can leave behind (address files,
//! links, nftables elements, iptables rules, state files, DNS records, cache entries).
//!
//! A kill is asked for through CNI_ARGS (`FAULT_KILL=<command>:<plugin>:<seconds>`), which
//! reaches every plugin of a chain and the IPAM plugin a main plugin runs: the plugin directory
//! of [`shim_dir`] holds one shell shim per plugin that runs the real binary under
//! `timeout -s KILL <seconds>` when the argument names it and the command it runs (libcni
//! caches CNI_ARGS with an ADD: its later DEL must not replay the ADD's kill). `timeout` kills its whole process
//! group, so an IPAM child or a helper the plugin started dies with it, as when a runtime's
//! unit is killed.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::bins::bin_dir;
use crate::sandbox::Sandbox;

/// The CNI_ARGS key of a kill.
pub const KILL_ARG: &str = "FAULT_KILL";

/// A small seeded generator (xorshift64*): decisions replay from the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Zero is xorshift's one fixed point.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (non-empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of this run: `FAULT_SEED` when set (to replay a run), else the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// A plugin directory for `plugins` (and `cni-dns`, which dnsname starts) whose entries are
/// shims: each runs our binary, under `timeout -s KILL` when CNI_ARGS asks to kill it.
pub fn shim_dir(sb: &Sandbox, plugins: &[&str]) -> PathBuf {
    let dir = sb.dir().join("fault-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let real = bin_dir();
    for name in plugins {
        let target = real.join(name);
        assert!(target.is_file(), "{} not built", target.display());
        let shim = format!(
            "#!/bin/sh\n\
             case \";$CNI_ARGS;\" in\n\
             *\";{KILL_ARG}=$CNI_COMMAND:{name}:\"*)\n\
             \tdelay=${{CNI_ARGS#*{KILL_ARG}=$CNI_COMMAND:{name}:}}\n\
             \tdelay=${{delay%%;*}}\n\
             \texec timeout -s KILL \"$delay\" '{target}'\n\
             \t;;\n\
             esac\n\
             exec '{target}'\n",
            target = target.display()
        );
        let path = dir.join(name);
        std::fs::write(&path, shim).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// The CNI_ARGS pair that kills `plugin` `micros` microseconds into its `command` (`ADD`,
/// `DEL`, ...).
pub fn kill_after(command: &str, plugin: &str, micros: u64) -> (String, String) {
    (
        KILL_ARG.to_string(),
        format!(
            "{command}:{plugin}:{}.{:06}",
            micros / 1_000_000,
            micros % 1_000_000
        ),
    )
}

/// What to look for: the container IDs share `id_marker`; container addresses lie in
/// `subnets` (their network address and the gateway `.1` are the network's own); `infra_links`
/// are links of the host that the test made or that a network keeps (bridges, a macvlan
/// master).
#[derive(Debug, Clone)]
pub struct Census<'a> {
    pub sb: &'a Sandbox,
    pub id_marker: &'a str,
    pub subnets: Vec<IpNetwork>,
    pub infra_links: Vec<String>,
}

impl Census<'_> {
    /// Everything of containers found, one line each. Empty when nothing is left.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        found.extend(self.files(&self.sb.data_dir()));
        found.extend(self.cache_entries());
        found.extend(self.links());
        found.extend(self.nft_elements());
        found.extend(self.iptables_rules());
        found
    }

    /// The container addresses named anywhere in the census (to compare with the live ones).
    pub fn addresses(&self) -> BTreeSet<IpAddr> {
        self.leftovers()
            .iter()
            .flat_map(|line| addresses_in(line))
            .filter(|ip| self.is_container_address(*ip))
            .collect()
    }

    fn is_container_address(&self, ip: IpAddr) -> bool {
        self.subnets.iter().any(|net| {
            let own = [net.network(), first_host(*net)];
            net.contains(ip) && !own.contains(&ip)
        })
    }

    fn mentions_container(&self, text: &str) -> bool {
        text.contains(self.id_marker)
            || addresses_in(text)
                .into_iter()
                .any(|ip| self.is_container_address(ip))
    }

    /// Address files, files named after an attachment (`<id>@<if>`, `<id>_<if>.json`, hashed
    /// `~…` names, tuning's or the cache's), and leftovers of killed writers.
    fn files(&self, dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                found.extend(self.files(&path));
                continue;
            }
            let of_attachment = name.parse::<IpAddr>().is_ok()
                || name.contains(self.id_marker)
                || name.starts_with('~')
                || name.starts_with(".tmp-");
            if of_attachment {
                let content = std::fs::read_to_string(&path).unwrap_or_default();
                found.push(format!(
                    "file {}: {}",
                    path.display(),
                    content.replace(['\r', '\n'], " ")
                ));
            }
        }
        found
    }

    fn cache_entries(&self) -> Vec<String> {
        let results = self.sb.cache_dir().join("results");
        let Ok(entries) = std::fs::read_dir(&results) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| format!("cache entry {}", e.path().display()))
            .collect()
    }

    /// veth and ifb links of the host the test did not make.
    fn links(&self) -> Vec<String> {
        let out = self.sb.host_run(&["ip", "-d", "-j", "link", "show"]);
        let links: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
        links
            .iter()
            .filter_map(|l| {
                let name = l["ifname"].as_str()?;
                let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or("");
                let ours = matches!(kind, "veth" | "ifb" | "macvlan" | "ipvlan");
                (ours && !self.infra_links.iter().any(|i| i == name)).then(|| {
                    format!(
                        "link {name} ({kind}, alias {})",
                        l["ifalias"].as_str().unwrap_or("-")
                    )
                })
            })
            .collect()
    }

    /// Elements of every nftables set and map of the host that name a container.
    fn nft_elements(&self) -> Vec<String> {
        let out = self.sb.host_run(&["nft", "-j", "list", "ruleset"]);
        let ruleset: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let mut found = Vec::new();
        for object in ruleset["nftables"].as_array().into_iter().flatten() {
            for kind in ["set", "map"] {
                let Some(set) = object.get(kind) else {
                    continue;
                };
                for elem in set["elem"].as_array().into_iter().flatten() {
                    let text = elem.to_string();
                    if self.mentions_container(&text) {
                        found.push(format!(
                            "nft {kind} {} {}: {text}",
                            set["table"].as_str().unwrap_or("?"),
                            set["name"].as_str().unwrap_or("?")
                        ));
                    }
                }
            }
        }
        found
    }

    /// Rules of every iptables flavour that name a container.
    fn iptables_rules(&self) -> Vec<String> {
        let mut found = Vec::new();
        for tool in ["iptables-save", "ip6tables-save", "iptables-legacy-save"] {
            let out = self.sb.host_exec(&[tool]);
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if !line.starts_with('#') && self.mentions_container(line) {
                    found.push(format!("{tool}: {line}"));
                }
            }
        }
        found
    }
}

fn first_host(net: IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNetwork::V6(n) => IpAddr::V6((u128::from(n.network()) + 1).into()),
    }
}

/// The IPv4 addresses written in `text` (dotted quads; a prefix length after one is fine).
pub fn addresses_in(text: &str) -> Vec<IpAddr> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|word| word.matches('.').count() == 3)
        .filter_map(|word| word.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_in_rules_and_elements() {
        let found =
            addresses_in(r#"{"elem":{"prefix":{"addr":"10.77.0.5","len":32}}} -s 10.77.3.4/32"#);
        assert_eq!(
            found,
            vec![
                "10.77.0.5".parse::<IpAddr>().unwrap(),
                "10.77.3.4".parse().unwrap()
            ]
        );
        assert!(addresses_in("version 1.2.3").is_empty());
    }

    #[test]
    fn the_generator_replays_from_its_seed() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.below(1000)))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.below(1000)))
            .collect();
        assert_eq!(a, b);
        assert_ne!(
            a,
            (0..5)
                .scan(Rng::new(8), |r, _| Some(r.below(1000)))
                .collect::<Vec<_>>()
        );
    }
}
