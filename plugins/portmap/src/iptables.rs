//! The iptables backend (`"backend": "iptables"`, or a config with iptables-only options),
//! laid out as the reference lays it out, so tools and runbooks written for it still apply:
//!
//! ```text
//! nat PREROUTING, OUTPUT   -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! CNI-HOSTPORT-DNAT        per container and protocol (15 ports a rule):
//!                          -m comment --comment "dnat name: ... id: ..." -m multiport
//!                          -p tcp --destination-ports 8080,8081 [conditions] -j CNI-DN-<hash>
//! CNI-DN-<hash>            per mapping: hairpin mark (-s <container subnet>, or everything
//!                          with masqAll), localhost mark (-s 127.0.0.1, IPv4), DNAT
//! CNI-HOSTPORT-SETMARK     MARK --set-xmark <1 << markMasqBit>
//! nat POSTROUTING          -j CNI-HOSTPORT-MASQ (first), which masquerades marked packets
//! ```
//!
//! Each ADD or DEL reads the nat table once (`iptables-save`) and changes it in one
//! `iptables-restore --noflush` transaction per family, under a lock so that concurrent
//! plugins create the shared chains once. What ADD wrote is recorded, so DEL needs nothing
//! from the runtime.

use std::net::IpAddr;
use std::path::Path;

use cni::{Error, Request, Undo};
use cni_netlink::iptables;
use ipnetwork::IpNetwork;
use sha2::{Digest, Sha512};

use crate::Backend;
use crate::config::{Config, Mapping};
use crate::state::{self, AttachmentState, IptablesState};

const TOP_DNAT: &str = "CNI-HOSTPORT-DNAT";
const SETMARK: &str = "CNI-HOSTPORT-SETMARK";
const MASQ: &str = "CNI-HOSTPORT-MASQ";
/// multiport takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// The reference's chain name for a container: `CNI-DN-` and a hash of network and
/// container ID (28 characters). For an interface other than `eth0` the hash covers the
/// interface too, so two attachments of one container never share a chain.
pub fn chain_name(network: &str, container_id: &str, ifname: &str) -> String {
    let input = if ifname == "eth0" {
        format!("{network}{container_id}")
    } else {
        format!("{network}{container_id}/{ifname}")
    };
    hashed_chain(&input)
}

fn hashed_chain(input: &str) -> String {
    let digest = Sha512::digest(input.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("CNI-DN-{}", &hex[..21])
}

/// STATUS: the tools are there.
pub fn available() -> Result<(), Error> {
    if iptables::restore_works(false) {
        Ok(())
    } else {
        Err(Error::not_available(
            "iptables-restore is not installed or does not run",
        ))
    }
}

/// The nat table as `iptables-save` prints it: chains, and rules as (chain, spec).
struct NatTable {
    chains: Vec<String>,
    rules: Vec<(String, String)>,
}

impl NatTable {
    fn read(v6: bool) -> Result<NatTable, Error> {
        let text = iptables::save(v6, "nat").map_err(|e| Error::internal(e.to_string()))?;
        let mut table = NatTable {
            chains: Vec::new(),
            rules: Vec::new(),
        };
        for line in text.lines() {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    table.chains.push(name.to_string());
                }
            } else if let Some(rule) = line.strip_prefix("-A ")
                && let Some((chain, spec)) = rule.split_once(' ')
            {
                table.rules.push((chain.to_string(), spec.to_string()));
            }
        }
        Ok(table)
    }

    fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    /// The rules of `chain` that jump to `target`.
    fn jumps<'a>(&'a self, chain: &'a str, target: &'a str) -> impl Iterator<Item = &'a str> {
        let suffix = format!("-j {target}");
        self.rules
            .iter()
            .filter(move |(c, spec)| c == chain && spec.ends_with(&suffix))
            .map(|(_, spec)| spec.as_str())
    }

    fn count(&self, chain: &str) -> usize {
        self.rules.iter().filter(|(c, _)| c == chain).count()
    }
}

fn restore(v6: bool, script: &str) -> Result<(), Error> {
    iptables::restore_noflush(v6, script).map_err(|e| Error::internal(e.to_string()))
}

/// Runs `f` holding the data dir's iptables lock (read, then write the nat table).
fn locked<T>(data_dir: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let _lock = plugin_kit::lock_in(data_dir, "iptables.lock").map_err(plugin_kit::state_error)?;
    f()
}

/// A word of an iptables-restore line, quoted when it holds blanks.
fn word(arg: &str) -> String {
    if arg.contains(char::is_whitespace) {
        format!("\"{arg}\"")
    } else {
        arg.to_string()
    }
}

/// The longest comment the kernel keeps (`XT_MAX_COMMENT_LEN` less its NUL).
const MAX_COMMENT_LEN: usize = 255;

/// The entry rule's comment as an iptables-restore word: the reference's text, cut to what
/// the kernel keeps before it is escaped, so that a cut never splits an escape (a `\` left
/// before the closing quote escapes it, and iptables-restore takes the rest of the line, the
/// match and the jump, for the comment).
fn comment(network: &str, container_id: &str) -> String {
    let mut text = format!("dnat name: \"{network}\" id: \"{container_id}\"");
    let mut cut = text.len().min(MAX_COMMENT_LEN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn mark(bit: u32) -> String {
    let value = 1u64 << bit;
    format!("{value:#x}/{value:#x}")
}

/// The rules of one family: (entry rules in CNI-HOSTPORT-DNAT, rules of the chain).
fn rules(
    cfg: &Config,
    container_id: &str,
    chain: &str,
    addr: &IpNetwork,
) -> (Vec<String>, Vec<String>) {
    let v6 = addr.is_ipv6();
    let mine: Vec<&Mapping> = cfg
        .mappings
        .iter()
        .filter(|m| m.applies_to_v6(v6))
        .collect();
    let conditions: Vec<String> = if v6 {
        &cfg.conditions_v6
    } else {
        &cfg.conditions_v4
    }
    .iter()
    .map(|c| word(c))
    .collect();
    let mut entries = Vec::new();
    let mut protocols: Vec<_> = mine.iter().map(|m| m.protocol).collect();
    protocols.sort();
    protocols.dedup();
    for proto in protocols {
        let mut ports: Vec<u16> = mine
            .iter()
            .filter(|m| m.protocol == proto)
            .map(|m| m.host_port)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        for chunk in ports.chunks(MULTIPORT_MAX) {
            let list: Vec<String> = chunk.iter().map(u16::to_string).collect();
            let mut rule = format!(
                "-m comment --comment {} -m multiport -p {proto} --destination-ports {}",
                comment(&cfg.network, container_id),
                list.join(",")
            );
            for c in &conditions {
                rule.push(' ');
                rule.push_str(c);
            }
            rule.push_str(&format!(" -j {chain}"));
            entries.push(rule);
        }
    }
    let setmark = cfg.external_set_mark_chain.as_deref().unwrap_or(SETMARK);
    let masq_source = if cfg.masq_all {
        if v6 { "::/0" } else { "0.0.0.0/0" }.to_string()
    } else {
        format!("{}/{}", addr.network(), addr.prefix())
    };
    let mut chain_rules = Vec::new();
    for m in mine {
        let mut base = format!("-p {} --dport {}", m.protocol, m.host_port);
        if let Some(ip) = m.specific_host_ip() {
            base.push_str(&format!(" -d {ip}"));
        }
        if cfg.snat {
            chain_rules.push(format!("{base} -s {masq_source} -j {setmark}"));
            if !v6 && !cfg.masq_all {
                chain_rules.push(format!("{base} -s 127.0.0.1 -j {setmark}"));
            }
        }
        let to = match addr.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", m.container_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", m.container_port),
        };
        chain_rules.push(format!("{base} -j DNAT --to-destination {to}"));
    }
    (entries, chain_rules)
}

/// The restore script that (re)creates a container's chain and its entry rules, and the
/// shared chains that are missing.
fn add_script(
    cfg: &Config,
    table: &NatTable,
    chain: &str,
    entries: &[String],
    chain_rules: &[String],
) -> String {
    let mut s = String::from("*nat\n");
    let own_setmark = cfg.snat && cfg.external_set_mark_chain.is_none();
    let new_top = !table.has_chain(TOP_DNAT);
    let new_setmark = own_setmark && !table.has_chain(SETMARK);
    let new_masq = own_setmark && !table.has_chain(MASQ);
    for (new, name) in [
        (new_top, TOP_DNAT),
        (new_setmark, SETMARK),
        (new_masq, MASQ),
    ] {
        if new {
            s.push_str(&format!(":{name} - [0:0]\n"));
        }
    }
    // Declaring the container's chain flushes it (an earlier ADD's rules go).
    s.push_str(&format!(":{chain} - [0:0]\n"));
    for spec in table.jumps(TOP_DNAT, chain) {
        s.push_str(&format!("-D {TOP_DNAT} {spec}\n"));
    }
    for entry in ["PREROUTING", "OUTPUT"] {
        if table.jumps(entry, TOP_DNAT).next().is_none() {
            s.push_str(&format!(
                "-A {entry} -m addrtype --dst-type LOCAL -j {TOP_DNAT}\n"
            ));
        }
    }
    if new_setmark {
        s.push_str(&format!(
            "-A {SETMARK} -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark {}\n",
            mark(cfg.mark_masq_bit)
        ));
    }
    if new_masq {
        s.push_str(&format!(
            "-A {MASQ} -m mark --mark {} -j MASQUERADE\n",
            mark(cfg.mark_masq_bit)
        ));
    }
    if own_setmark && table.jumps("POSTROUTING", MASQ).next().is_none() {
        s.push_str(&format!(
            "-I POSTROUTING 1 -m comment --comment \"CNI portfwd requiring masquerade\" -j {MASQ}\n"
        ));
    }
    for rule in chain_rules {
        s.push_str(&format!("-A {chain} {rule}\n"));
    }
    // Inserted first, as the reference does, so the newest container on a port wins over
    // rules of containers whose DEL never came.
    for rule in entries.iter().rev() {
        s.push_str(&format!("-I {TOP_DNAT} 1 {rule}\n"));
    }
    s.push_str("COMMIT\n");
    s
}

/// The script that removes a container's chain and every rule jumping to it.
fn teardown_script(table: &NatTable, chain: &str) -> Option<String> {
    if !table.has_chain(chain) {
        return None;
    }
    let mut s = String::from("*nat\n");
    for (from, spec) in &table.rules {
        if spec.ends_with(&format!("-j {chain}")) {
            s.push_str(&format!("-D {from} {spec}\n"));
        }
    }
    s.push_str(&format!("-F {chain}\n-X {chain}\nCOMMIT\n"));
    Some(s)
}

/// What a DNAT rule of a container chain forwards: (protocol, host port, host address).
fn dnat_key(spec: &str) -> Option<(String, u16, Option<IpAddr>)> {
    if !spec.contains("-j DNAT") {
        return None;
    }
    let words: Vec<&str> = spec.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1).copied())
    };
    let proto = after("-p")?.to_ascii_lowercase();
    let port = after("--dport")?.parse().ok()?;
    let dest = match after("-d") {
        None => None,
        Some(d) => Some(d.split('/').next()?.parse().ok()?),
    };
    Some((proto, port, dest))
}

/// A mapping another container's chain already holds: the reference lets the newest win
/// silently; here the second ADD fails and the first keeps its port.
fn conflict(table: &NatTable, chain: &str, mappings: &[&Mapping]) -> Result<(), Error> {
    for (other, spec) in &table.rules {
        if other == chain || !other.starts_with("CNI-DN-") {
            continue;
        }
        let Some((proto, port, dest)) = dnat_key(spec) else {
            continue;
        };
        let Some(m) = mappings.iter().find(|m| {
            m.protocol.as_str() == proto && m.host_port == port && m.specific_host_ip() == dest
        }) else {
            continue;
        };
        let to = spec.rsplit(' ').next().unwrap_or_default();
        let owner = table
            .jumps(TOP_DNAT, other)
            .find_map(|entry| {
                let start = entry.find("dnat name: ")?;
                let rest = &entry[start..];
                let end = rest.find("\" -m").or_else(|| rest.find(" -m"))?;
                Some(rest[..end].replace("\\\"", "\""))
            })
            .map(|c| format!(" ({c})"))
            .unwrap_or_else(|| format!(" (chain {other})"));
        return Err(Error::new(
            crate::PORT_IN_USE,
            format!(
                "host port {} is already mapped to {to}{owner}",
                m.host_side()
            ),
        ));
    }
    Ok(())
}

fn teardown(v6: bool, chain: &str) -> Result<(), Error> {
    let table = NatTable::read(v6)?;
    match teardown_script(&table, chain) {
        Some(script) => restore(v6, &script),
        None => Ok(()),
    }
}

pub fn add(
    req: &Request,
    cfg: &Config,
    addrs: &[IpNetwork],
    localnet: &[String],
) -> Result<AttachmentState, Error> {
    let chain = chain_name(&cfg.network, req.container_id(), req.ifname());
    let states = state::dir(&cfg.data_dir, &cfg.network);
    if let Some(old) = states.load::<AttachmentState>(req.container_id(), req.ifname())
        && old.backend == Backend::Nftables
    {
        crate::nft::release(&cfg.network, &old)?;
    }
    // Every family's rules, recorded before any is written, so that a DEL after a kill at
    // any point knows the chain and the families to take back.
    let mut recorded = IptablesState {
        chain: chain.clone(),
        entries_v4: Vec::new(),
        entries_v6: Vec::new(),
        rules_v4: Vec::new(),
        rules_v6: Vec::new(),
    };
    for addr in addrs {
        let (entries, chain_rules) = rules(cfg, req.container_id(), &chain, addr);
        if addr.is_ipv6() {
            recorded.entries_v6 = entries;
            recorded.rules_v6 = chain_rules;
        } else {
            recorded.entries_v4 = entries;
            recorded.rules_v4 = chain_rules;
        }
    }
    let saved = AttachmentState {
        container_id: req.container_id().to_string(),
        ifname: req.ifname().to_string(),
        netns: req.netns().to_string(),
        netns_id: plugin_kit::netns_identity(req.netns()),
        backend: Backend::Iptables,
        mappings: cfg.mappings.clone(),
        addresses: addrs.to_vec(),
        localnet: localnet.to_vec(),
        elements: Vec::new(),
        rules: Vec::new(),
        iptables: Some(recorded.clone()),
    };
    let mut undo = Undo::new();
    states.restore_on_undo(req.container_id(), req.ifname(), &mut undo);
    states
        .save(req.container_id(), req.ifname(), &saved)
        .map_err(plugin_kit::state_error)?;
    locked(&cfg.data_dir, || {
        let mut done: Vec<bool> = Vec::new();
        for v6 in [false, true] {
            let (entries, chain_rules) = if v6 {
                (&recorded.entries_v6, &recorded.rules_v6)
            } else {
                (&recorded.entries_v4, &recorded.rules_v4)
            };
            if chain_rules.is_empty() {
                continue;
            }
            let mine: Vec<&Mapping> = cfg
                .mappings
                .iter()
                .filter(|m| m.applies_to_v6(v6))
                .collect();
            let written = NatTable::read(v6).and_then(|table| {
                conflict(&table, &chain, &mine)?;
                restore(v6, &add_script(cfg, &table, &chain, entries, chain_rules))
            });
            if let Err(e) = written {
                for v6 in done {
                    let _ = teardown(v6, &chain);
                }
                return Err(if e.code == crate::PORT_IN_USE {
                    e
                } else {
                    e.context("set up iptables port mappings")
                });
            }
            done.push(v6);
        }
        Ok(())
    })?;
    undo.commit();
    Ok(saved)
}

/// Removes the chain ADD recorded and the rules jumping to it, in each family it used.
pub fn release(data_dir: &Path, saved: &AttachmentState) -> Result<(), Error> {
    let Some(ipt) = &saved.iptables else {
        return Ok(());
    };
    locked(data_dir, || {
        for (v6, used) in [
            (false, !ipt.rules_v4.is_empty()),
            (true, !ipt.rules_v6.is_empty()),
        ] {
            if used {
                teardown(v6, &ipt.chain)?;
            }
        }
        Ok(())
    })
}

/// DEL without state: the chain of this attachment (and the reference's chain of the
/// container, from a node that ran it before) is removed wherever it exists.
pub fn release_unrecorded(cfg: &Config, req: &Request) -> Result<(), Error> {
    let mut chains = vec![chain_name(&cfg.network, req.container_id(), req.ifname())];
    let legacy = hashed_chain(&format!("{}{}", cfg.network, req.container_id()));
    if !chains.contains(&legacy) {
        chains.push(legacy);
    }
    locked(&cfg.data_dir, || release_chains(&chains))
}

fn release_chains(chains: &[String]) -> Result<(), Error> {
    for v6 in [false, true] {
        let table = match NatTable::read(v6) {
            Ok(t) => t,
            // No ip6tables (or no IPv6): nothing of ours can be there either.
            Err(e) => {
                log::debug!("{e}");
                continue;
            }
        };
        for chain in chains {
            if let Some(script) = teardown_script(&table, chain) {
                restore(v6, &script)?;
            }
        }
    }
    Ok(())
}

/// CHECK: the shared chains' entry rules, the container's chain with all its rules and
/// DNAT targets, and its entry rules in CNI-HOSTPORT-DNAT.
pub fn check(saved: &AttachmentState) -> Result<(), Error> {
    let Some(ipt) = &saved.iptables else {
        return Err(Error::check_failed("no iptables rules recorded"));
    };
    for (v6, entries, rules) in [
        (false, &ipt.entries_v4, &ipt.rules_v4),
        (true, &ipt.entries_v6, &ipt.rules_v6),
    ] {
        if rules.is_empty() {
            continue;
        }
        let family = if v6 { "ip6tables" } else { "iptables" };
        let table = NatTable::read(v6)?;
        for entry in ["PREROUTING", "OUTPUT"] {
            if table.jumps(entry, TOP_DNAT).next().is_none() {
                return Err(Error::check_failed(format!(
                    "{family}: nat {entry} does not jump to {TOP_DNAT}"
                )));
            }
        }
        if !table.has_chain(&ipt.chain) {
            return Err(Error::check_failed(format!(
                "{family}: chain {} is missing",
                ipt.chain
            )));
        }
        let have = table.count(&ipt.chain);
        if have != rules.len() {
            return Err(Error::check_failed(format!(
                "{family}: chain {} has {have} rules, ADD wrote {}",
                ipt.chain,
                rules.len()
            )));
        }
        for rule in rules.iter().filter(|r| r.contains("-j DNAT")) {
            let to = rule.rsplit(' ').next().unwrap_or_default();
            let present = table.rules.iter().any(|(c, spec)| {
                c == &ipt.chain && spec.ends_with(&format!("--to-destination {to}"))
            });
            if !present {
                return Err(Error::check_failed(format!(
                    "{family}: no DNAT to {to} in chain {}",
                    ipt.chain
                )));
            }
        }
        let jumps = table.jumps(TOP_DNAT, &ipt.chain).count();
        if jumps != entries.len() {
            return Err(Error::check_failed(format!(
                "{family}: {jumps} rules of {TOP_DNAT} lead to {}, ADD wrote {}",
                ipt.chain,
                entries.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What iptables-restore makes of a quoted word: `\x` is `x`; `None` when the closing
    /// quote is missing or escaped.
    fn unquote(word: &str) -> Option<String> {
        let inner = word.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return chars.next().is_none().then_some(out),
                c => out.push(c),
            }
        }
        None
    }

    #[test]
    fn a_long_comment_is_cut_before_it_is_escaped() {
        let id = "c".repeat(221);
        for network in (1..40).map(|n| "n".repeat(n)) {
            let word = comment(&network, &id);
            let text = unquote(&word).unwrap_or_else(|| panic!("broken word {word}"));
            assert!(
                text.len() <= MAX_COMMENT_LEN,
                "{} bytes: {text}",
                text.len()
            );
            assert!(text.starts_with(&format!("dnat name: \"{network}\" id: \"cc")));
        }
        assert_eq!(
            comment("net", "first"),
            r#""dnat name: \"net\" id: \"first\"""#
        );
    }
    use crate::config::Protocol;
    use std::path::PathBuf;

    fn cfg() -> Config {
        Config {
            network: "net".into(),
            backend: Backend::Iptables,
            snat: true,
            masq_all: false,
            mark_masq_bit: 13,
            external_set_mark_chain: None,
            conditions_v4: vec!["-s".into(), "10.0.0.0/8".into()],
            conditions_v6: vec![],
            data_dir: PathBuf::from("/nonexistent"),
            mappings: (8000..8020)
                .map(|p| Mapping {
                    host_port: p,
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                })
                .chain([Mapping {
                    host_port: 53,
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                }])
                .collect(),
        }
    }

    #[test]
    fn chain_names_are_the_references() {
        let c = chain_name("net", "abc", "eth0");
        assert_eq!(c.len(), 28);
        assert!(c.starts_with("CNI-DN-"));
        assert_ne!(c, chain_name("net", "abc", "eth1"));
        assert_eq!(c, hashed_chain("netabc"));
    }

    #[test]
    fn rules_as_the_reference_writes_them() {
        let c = cfg();
        let addr: IpNetwork = "10.88.0.5/16".parse().unwrap();
        let (entries, chain_rules) = rules(&c, "abc", "CNI-DN-x", &addr);
        // 20 tcp ports in two multiport rules, one udp rule.
        assert_eq!(entries.len(), 3);
        assert!(entries[0].contains("-p tcp --destination-ports 8000,8001,"));
        assert!(
            entries[0].contains("-s 10.0.0.0/8 -j CNI-DN-x"),
            "{}",
            entries[0]
        );
        assert!(entries[2].contains("-p udp --destination-ports 53 "));
        assert_eq!(chain_rules.len(), 21 * 3);
        assert_eq!(
            chain_rules[0],
            "-p tcp --dport 8000 -s 10.88.0.0/16 -j CNI-HOSTPORT-SETMARK"
        );
        assert_eq!(
            chain_rules[1],
            "-p tcp --dport 8000 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK"
        );
        assert_eq!(
            chain_rules[2],
            "-p tcp --dport 8000 -j DNAT --to-destination 10.88.0.5:80"
        );
        assert_eq!(
            chain_rules[62],
            "-p udp --dport 53 -d 127.0.0.1 -j DNAT --to-destination 10.88.0.5:53"
        );
        let v6: IpNetwork = "fd00::5/64".parse().unwrap();
        let (_, rules6) = rules(&c, "abc", "CNI-DN-x", &v6);
        assert_eq!(rules6.len(), 20 * 2);
        assert!(rules6[1].ends_with("--to-destination [fd00::5]:80"));
    }

    #[test]
    fn the_script_creates_only_what_is_missing() {
        let c = cfg();
        let empty = NatTable {
            chains: vec![],
            rules: vec![],
        };
        let script = add_script(&c, &empty, "CNI-DN-x", &["E".into()], &["R".into()]);
        assert!(script.contains(":CNI-HOSTPORT-DNAT - [0:0]"));
        assert!(script.contains("-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT"));
        assert!(script.contains("--set-xmark 0x2000/0x2000"));
        assert!(script.contains("-I POSTROUTING 1"));
        let existing = NatTable {
            chains: vec![
                TOP_DNAT.into(),
                SETMARK.into(),
                MASQ.into(),
                "CNI-DN-x".into(),
            ],
            rules: vec![
                (
                    "PREROUTING".into(),
                    "-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".into(),
                ),
                (
                    "OUTPUT".into(),
                    "-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".into(),
                ),
                (
                    "POSTROUTING".into(),
                    "-m comment --comment x -j CNI-HOSTPORT-MASQ".into(),
                ),
                (
                    TOP_DNAT.into(),
                    "-m multiport -p tcp --dports 1 -j CNI-DN-x".into(),
                ),
            ],
        };
        let script = add_script(&c, &existing, "CNI-DN-x", &["E".into()], &["R".into()]);
        assert!(!script.contains(":CNI-HOSTPORT-DNAT"), "{script}");
        assert!(!script.contains("PREROUTING"), "{script}");
        assert!(script.contains("-D CNI-HOSTPORT-DNAT -m multiport -p tcp --dports 1 -j CNI-DN-x"));
        assert!(script.contains(":CNI-DN-x - [0:0]\n"));
        let teardown = teardown_script(&existing, "CNI-DN-x").unwrap();
        assert!(teardown.contains("-X CNI-DN-x"));
        assert!(teardown_script(&existing, "CNI-DN-y").is_none());
    }

    #[test]
    fn dnat_rules_are_recognised_as_iptables_save_prints_them() {
        assert_eq!(
            dnat_key(
                "-d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"
            ),
            Some(("tcp".into(), 8080, Some("127.0.0.1".parse().unwrap())))
        );
        assert_eq!(
            dnat_key("-p udp -m udp --dport 53 -j DNAT --to-destination [fd00::2]:53"),
            Some(("udp".into(), 53, None))
        );
        assert_eq!(
            dnat_key("-p tcp -m tcp --dport 1 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK"),
            None
        );
        let table = NatTable {
            chains: vec![],
            rules: vec![
                (TOP_DNAT.into(), r#"-m comment --comment "dnat name: \"net\" id: \"first\"" -m multiport -p tcp --dports 8080 -j CNI-DN-a"#.into()),
                ("CNI-DN-a".into(), "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80".into()),
            ],
        };
        let m = Mapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        let err = conflict(&table, "CNI-DN-b", &[&m]).unwrap_err();
        assert_eq!(err.code, crate::PORT_IN_USE);
        assert!(err.msg.contains("10.0.0.2:80"), "{}", err.msg);
        assert!(err.msg.contains("id: \"first\""), "{}", err.msg);
        assert!(conflict(&table, "CNI-DN-a", &[&m]).is_ok());
    }
}
