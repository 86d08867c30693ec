//! iptables, through the `iptables`/`ip6tables` tools (legacy or nft flavour alike).
//!
//! The iptables backend lays its rules out as the reference plugin does, so that either
//! implementation can remove what the other added:
//!
//! ```text
//! filter FORWARD    -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD  (first)
//! CNI-FORWARD       -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
//!                   -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//!                   -s <ip>/32 -j ACCEPT                           (per container address)
//! CNI-ISOLATION-STAGE-1 / -2                                        (ingressPolicy)
//! ```
//!
//! The nftables backend only needs one rule here, and only when FORWARD's policy is DROP:
//! accept what its nft chain marked ([`MARK_RULE`]).

use std::net::IpAddr;

use cni::Error;

pub const FORWARD_CHAIN: &str = "CNI-FORWARD";
pub const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
pub const STAGE2: &str = "CNI-ISOLATION-STAGE-2";
const FILTER_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";

/// One of the two tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipt {
    pub v6: bool,
}

impl Ipt {
    pub fn for_ip(ip: &IpAddr) -> Ipt {
        Ipt { v6: ip.is_ipv6() }
    }

    fn name(self) -> &'static str {
        if self.v6 { "ip6tables" } else { "iptables" }
    }

    /// Whether the tool is installed.
    pub fn available(self) -> bool {
        cni_netlink::iptables::is_installed(self.v6)
    }

    /// Runs `<tool> -w ARGS`; returns whether it succeeded, its stdout and its stderr.
    fn run(self, args: &[&str]) -> Result<(bool, String, String), Error> {
        let out = cni_netlink::iptables::run(self.v6, args)
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok((out.success, out.stdout, out.stderr))
    }

    /// Runs a command that must succeed.
    fn must(self, args: &[&str]) -> Result<String, Error> {
        let (ok, stdout, stderr) = self.run(args)?;
        if ok {
            Ok(stdout)
        } else {
            Err(Error::internal(format!(
                "{} {}: {stderr}",
                self.name(),
                args.join(" ")
            )))
        }
    }

    pub fn chain_exists(self, chain: &str) -> Result<bool, Error> {
        Ok(self.run(&["-t", "filter", "-S", chain])?.0)
    }

    /// `-S CHAIN`: the chain's policy and rules, as `iptables-save` writes them.
    pub fn list(self, chain: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .must(&["-t", "filter", "-S", chain])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    pub fn ensure_chain(self, chain: &str) -> Result<(), Error> {
        if self.chain_exists(chain)? {
            return Ok(());
        }
        let (ok, _, stderr) = self.run(&["-t", "filter", "-N", chain])?;
        // Another plugin may have created it in between.
        if ok || self.chain_exists(chain)? {
            Ok(())
        } else {
            Err(Error::internal(format!(
                "{} -N {chain}: {stderr}",
                self.name()
            )))
        }
    }

    pub fn exists(self, chain: &str, rule: &[&str]) -> Result<bool, Error> {
        let mut args = vec!["-t", "filter", "-C", chain];
        args.extend_from_slice(rule);
        Ok(self.run(&args)?.0)
    }

    /// Inserts the rule first in the chain, or appends it, unless it is there already.
    pub fn ensure_rule(self, chain: &str, first: bool, rule: &[&str]) -> Result<(), Error> {
        if self.exists(chain, rule)? {
            return Ok(());
        }
        let mut args = vec!["-t", "filter", if first { "-I" } else { "-A" }, chain];
        if first {
            args.push("1");
        }
        args.extend_from_slice(rule);
        self.must(&args).map(drop)
    }

    /// Deletes every copy of the rule; a missing rule or chain is fine.
    pub fn delete_rule(self, chain: &str, rule: &[&str]) -> Result<(), Error> {
        for _ in 0..16 {
            if !self.exists(chain, rule)? {
                return Ok(());
            }
            let mut args = vec!["-t", "filter", "-D", chain];
            args.extend_from_slice(rule);
            self.must(&args)?;
        }
        Ok(())
    }

    /// Whether the built-in FORWARD chain drops what no rule accepts.
    pub fn forward_policy_drops(self) -> bool {
        match self.run(&["-t", "filter", "-S", "FORWARD"]) {
            Ok((true, out, _)) => out.lines().any(|l| l.trim() == "-P FORWARD DROP"),
            _ => false,
        }
    }
}

fn host_net(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// The reference's two rules for a container address, in CNI-FORWARD.
pub fn container_rules(ip: &IpAddr) -> [Vec<String>; 2] {
    let net = host_net(ip);
    [
        [
            "-d",
            &net,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ]
        .map(String::from)
        .to_vec(),
        ["-s", &net, "-j", "ACCEPT"].map(String::from).to_vec(),
    ]
}

fn strs(rule: &[String]) -> Vec<&str> {
    rule.iter().map(String::as_str).collect()
}

/// FORWARD → CNI-FORWARD → admin chain, created once.
pub fn ensure_structure(ipt: Ipt, admin_chain: &str) -> Result<(), Error> {
    ipt.ensure_chain(FORWARD_CHAIN)?;
    ipt.ensure_chain(admin_chain)?;
    ipt.ensure_rule(
        "FORWARD",
        true,
        &[
            "-m",
            "comment",
            "--comment",
            FILTER_COMMENT,
            "-j",
            FORWARD_CHAIN,
        ],
    )?;
    ipt.ensure_rule(
        FORWARD_CHAIN,
        true,
        &[
            "-m",
            "comment",
            "--comment",
            ADMIN_COMMENT,
            "-j",
            admin_chain,
        ],
    )
}

pub fn add_container(ips: &[IpAddr], admin_chain: &str) -> Result<(), Error> {
    for v6 in [false, true] {
        let ipt = Ipt { v6 };
        let mine: Vec<&IpAddr> = ips.iter().filter(|ip| ip.is_ipv6() == v6).collect();
        if mine.is_empty() {
            continue;
        }
        ensure_structure(ipt, admin_chain)?;
        for ip in mine {
            for rule in container_rules(ip) {
                ipt.ensure_rule(FORWARD_CHAIN, false, &strs(&rule))?;
            }
        }
    }
    Ok(())
}

/// Removes the container's rules; what is gone already (or an absent tool) is skipped.
pub fn del_container(ips: &[IpAddr]) -> Result<(), Error> {
    for ip in ips {
        let ipt = Ipt::for_ip(ip);
        if !ipt.available() || !ipt.chain_exists(FORWARD_CHAIN)? {
            continue;
        }
        for rule in container_rules(ip) {
            ipt.delete_rule(FORWARD_CHAIN, &strs(&rule))?;
        }
    }
    Ok(())
}

/// CHECK: the chain layout and the container's rules are in place.
pub fn check_container(ips: &[IpAddr], admin_chain: &str) -> Result<(), Error> {
    for ip in ips {
        let ipt = Ipt::for_ip(ip);
        let jump = [
            "-m",
            "comment",
            "--comment",
            FILTER_COMMENT,
            "-j",
            FORWARD_CHAIN,
        ];
        if !ipt.exists("FORWARD", &jump)? {
            return Err(Error::check_failed(format!(
                "{}: FORWARD does not jump to {FORWARD_CHAIN}",
                ipt.name()
            )));
        }
        let admin = [
            "-m",
            "comment",
            "--comment",
            ADMIN_COMMENT,
            "-j",
            admin_chain,
        ];
        if !ipt.exists(FORWARD_CHAIN, &admin)? {
            return Err(Error::check_failed(format!(
                "{}: {FORWARD_CHAIN} does not jump to {admin_chain}",
                ipt.name()
            )));
        }
        for rule in container_rules(ip) {
            if !ipt.exists(FORWARD_CHAIN, &strs(&rule))? {
                return Err(Error::check_failed(format!(
                    "{}: rule {} missing from {FORWARD_CHAIN}",
                    ipt.name(),
                    rule.join(" ")
                )));
            }
        }
    }
    Ok(())
}

fn stage1_rule(bridge: &str) -> Vec<String> {
    [
        "-i",
        bridge,
        "!",
        "-o",
        bridge,
        "-j",
        STAGE2,
        "-m",
        "comment",
        "--comment",
        ISOLATION_COMMENT,
    ]
    .map(String::from)
    .to_vec()
}

fn stage2_rule(bridge: &str) -> Vec<String> {
    [
        "-o",
        bridge,
        "-j",
        "DROP",
        "-m",
        "comment",
        "--comment",
        ISOLATION_COMMENT,
    ]
    .map(String::from)
    .to_vec()
}

fn icc_rule(bridge: &str) -> Vec<String> {
    [
        "-i",
        bridge,
        "-o",
        bridge,
        "-j",
        "DROP",
        "-m",
        "comment",
        "--comment",
        ISOLATION_COMMENT,
    ]
    .map(String::from)
    .to_vec()
}

const RETURN_RULE: [&str; 6] = [
    "-j",
    "RETURN",
    "-m",
    "comment",
    "--comment",
    ISOLATION_COMMENT,
];
const JUMP_STAGE1: [&str; 6] = [
    "-j",
    STAGE1,
    "-m",
    "comment",
    "--comment",
    ISOLATION_COMMENT,
];

/// The reference's isolation chains for `bridge` (`same-bridge`), plus the rule that also
/// drops traffic within the bridge (`isolated`).
pub fn ensure_isolation(ipt: Ipt, bridge: &str, icc_off: bool) -> Result<(), Error> {
    ipt.ensure_chain(STAGE1)?;
    ipt.ensure_chain(STAGE2)?;
    // Before CNI-FORWARD, whose accepts would otherwise win.
    ipt.ensure_rule("FORWARD", true, &JUMP_STAGE1)?;
    ipt.ensure_rule(STAGE1, true, &strs(&stage1_rule(bridge)))?;
    ipt.ensure_rule(STAGE1, false, &RETURN_RULE)?;
    ipt.ensure_rule(STAGE2, true, &strs(&stage2_rule(bridge)))?;
    ipt.ensure_rule(STAGE2, false, &RETURN_RULE)?;
    if icc_off {
        ipt.ensure_rule(STAGE1, true, &strs(&icc_rule(bridge)))?;
    }
    Ok(())
}

/// Removes `bridge`'s isolation rules (all of them, or only the `isolated` one).
pub fn remove_isolation(ipt: Ipt, bridge: &str, only_icc: bool) -> Result<(), Error> {
    if !ipt.available() || !ipt.chain_exists(STAGE1)? {
        return Ok(());
    }
    ipt.delete_rule(STAGE1, &strs(&icc_rule(bridge)))?;
    if !only_icc {
        ipt.delete_rule(STAGE1, &strs(&stage1_rule(bridge)))?;
        ipt.delete_rule(STAGE2, &strs(&stage2_rule(bridge)))?;
    }
    Ok(())
}

pub fn isolation_present(ipt: Ipt, bridge: &str, icc_off: bool) -> Result<bool, Error> {
    Ok(ipt.chain_exists(STAGE1)?
        && ipt.exists("FORWARD", &JUMP_STAGE1)?
        && ipt.exists(STAGE1, &strs(&stage1_rule(bridge)))?
        && ipt.exists(STAGE2, &strs(&stage2_rule(bridge)))?
        && (!icc_off || ipt.exists(STAGE1, &strs(&icc_rule(bridge)))?))
}

/// For the nftables backend: FORWARD accepts what the nft chain marked.
pub fn mark_rule(mark: u32) -> Vec<String> {
    let mark = format!("{mark:#x}/{mark:#x}");
    [
        "-m",
        "mark",
        "--mark",
        &mark,
        "-m",
        "comment",
        "--comment",
        crate::nft::FOREIGN_COMMENT,
        "-j",
        "ACCEPT",
    ]
    .map(String::from)
    .to_vec()
}

/// Ensures the mark rule first in FORWARD of each family whose policy is DROP.
pub fn ensure_mark_accept(mark: u32) -> Result<(), Error> {
    for v6 in [false, true] {
        let ipt = Ipt { v6 };
        if ipt.available() && ipt.forward_policy_drops() {
            ipt.ensure_rule("FORWARD", true, &strs(&mark_rule(mark)))?;
        }
    }
    Ok(())
}

/// CHECK: a FORWARD chain with policy DROP that lacks the mark rule.
pub fn missing_mark_accept(mark: u32) -> Result<Option<String>, Error> {
    for v6 in [false, true] {
        let ipt = Ipt { v6 };
        if ipt.available()
            && ipt.forward_policy_drops()
            && !ipt.exists("FORWARD", &strs(&mark_rule(mark)))?
        {
            return Ok(Some(format!(
                "{} FORWARD drops by policy and lacks the accept rule for marked container \
                 traffic",
                ipt.name()
            )));
        }
    }
    Ok(None)
}
