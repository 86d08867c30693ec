//! The rows of the benchmark table.
//!
//! A row is a name, the plugin binaries it needs, the operations it measures, and a `setup`
//! that builds one [`Instance`] per implementation (its own store, namespaces, configs). The
//! runner then calls each instance's [`Instance::iterate`] once per iteration, interleaving
//! ours and the reference (and the other rows of its [`Row::group`]), and finally
//! [`Instance::teardown`]; whatever an instance owns (namespaces, files) is removed when it
//! drops. To add a row: write a `Row` in a new module and list it in [`all`]. A chain of
//! plugins is run with [`crate::chain::Chain`] (see the loopback row). A row that measures
//! throughput rather than latency returns times per megabit and names the rates it should
//! reach in [`Row::rate_targets`] (see the bandwidth shaping row).

mod bandwidth;
mod bridge;
mod dns;
mod floor;
mod host_local;
mod loopback;
mod macvlan;
mod portmap;
mod ptp;
mod version;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::exec::Invocation;
use crate::sandbox::{HostNs, Netns, Sandbox};
use crate::side::{Impl, Side};

pub use floor::Floor;
pub use host_local::HostLocal;
pub use loopback::Loopback;
pub use version::Version;

/// The CNI version of every config shared with the reference (1.1.1 speaks up to 1.0.0).
pub const CNI_VERSION: &str = "1.0.0";

pub trait Row {
    /// Unique; what `--filter` matches.
    fn name(&self) -> String;

    /// One line for `--list` and BENCHMARKS.md.
    fn describe(&self) -> String;

    /// Plugin binaries (CNI `type` names) both implementations must have.
    fn plugins(&self) -> Vec<&'static str>;

    /// Names of the measured operations, in the order `Instance::iterate` returns them.
    fn ops(&self) -> Vec<&'static str>;

    /// Rows of the same group (consecutive in [`all`]) are set up together and measured
    /// interleaved, iteration by iteration; `None`: measured alone.
    fn group(&self) -> Option<&'static str> {
        None
    }

    /// For a row that measures throughput: its operations' durations are the time one
    /// megabit took (1 / rate), and these are the rates they should reach, which the report
    /// prints next to the achieved ones. Empty for rows that measure latency.
    fn rate_targets(&self) -> Vec<RateTarget> {
        Vec::new()
    }

    /// Everything one implementation needs before the first measured call.
    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>>;
}

/// A row set up for one implementation.
pub trait Instance {
    /// Iteration `i` (warm-up included; `i` is unique within the row, use it for container
    /// IDs): runs the calls and returns one duration per operation of `Row::ops`.
    fn iterate(&mut self, sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>>;

    /// Checks and cleanup after the last iteration (owned resources also go on drop).
    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        Ok(())
    }
}

/// A line computed from two rows: for each implementation, median(numerator's `op`) /
/// median(denominator's `op`).
#[derive(Debug, Clone)]
pub struct Derived {
    pub name: String,
    pub op: &'static str,
    pub numerator: String,
    pub denominator: String,
}

/// The rate an operation of a throughput row should reach (see [`Row::rate_targets`]).
#[derive(Debug, Clone)]
pub struct RateTarget {
    pub op: &'static str,
    /// What is measured, for the report ("ingress").
    pub what: &'static str,
    pub mbit_per_s: f64,
}

/// What `all` is built from.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Existing allocations in the "full" host-local store.
    pub allocations: usize,
}

/// Every row, in table order, and the derived lines.
pub fn all(params: Params) -> (Vec<Box<dyn Row>>, Vec<Derived>) {
    let empty = HostLocal::new(0);
    let full = HostLocal::new(params.allocations);
    let derived = ["ADD", "DEL"]
        .into_iter()
        .map(|op| Derived {
            name: format!("growth {}/0", params.allocations),
            op,
            numerator: full.name(),
            denominator: empty.name(),
        })
        .collect();
    let rows: Vec<Box<dyn Row>> = vec![
        Box::new(Floor),
        Box::new(Version::new("host-local")),
        Box::new(Version::new("loopback")),
        Box::new(empty),
        Box::new(full),
        Box::new(Loopback),
        Box::new(dns::Dns::new(dns::Peer::Dnsmasq)),
        Box::new(dns::Dns::new(dns::Peer::Aardvark)),
        Box::new(dns::Dns::reload(dns::Peer::Dnsmasq)),
        Box::new(dns::Dns::reload(dns::Peer::Aardvark)),
    ];
    let table = bridge::register(params, (rows, derived));
    let table = portmap::register(params, table);
    let table = macvlan::register(params, table);
    let table = ptp::register(params, table);
    bandwidth::register(params, table)
}

/// A container ID shaped like a real one (64 hex digits), distinct for each (`domain`, `n`).
pub fn container_id(domain: u64, n: usize) -> String {
    let mut state = domain.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n as u64;
    (0..4)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// The call for pod container `id` in `netns` on `eth0`, with the `CNI_ARGS` a Kubernetes
/// runtime passes.
pub fn pod_invocation(id: &str, netns: &Netns) -> Invocation {
    Invocation::new("ADD")
        .container(id)
        .netns(netns.path())
        .ifname("eth0")
        .args(format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{}",
            &id[..8.min(id.len())]
        ))
}

/// Waits, untimed, until what a DEL left behind is done: `container` holds nothing but `lo`
/// and no process is left in the node's `host` netns. Our plugins hand the kernel's slow
/// unregistration of a link (and the close of an nftables socket) to a child that outlives
/// them; waiting keeps that work out of the next measured call, of either implementation
/// (they share the kernel's RTNL lock). The reference does its work before exiting: a no-op.
pub fn settle(host: &HostNs, container: &Netns, label: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let links = run_text("ip", &["-n", container.name(), "-o", "link", "show"])?
            .lines()
            .count();
        let pids = host.netns().pids()?;
        if links == 1 && pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::msg(format!(
                "{label}: 2 s after DEL the container netns still has {links} links and the \
                 host netns {} processes ({pids:?})",
                pids.len()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How many addresses host-local's directory of a network (`<dataDir>/<network>`) holds.
pub fn addresses_in(store: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(store)
        .with_context(|| format!("list {}", store.display()))?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
        })
        .count())
}

/// How many DNAT targets in 10.`subnet_octet`.0.0/16 the port mappings of the host netns
/// `host` have: elements of our `dnat4_any` map, or the reference's DNAT rules.
pub fn dnat_targets(host: &str, which: Impl, subnet_octet: u8) -> Result<usize> {
    let target = format!("10.{subnet_octet}.");
    Ok(match which {
        Impl::Ours => run_text(
            "ip",
            &[
                "netns",
                "exec",
                host,
                "nft",
                "list",
                "map",
                "inet",
                "cni_portmap",
                "dnat4_any",
            ],
        )?
        .matches(&format!(": {target}"))
        .count(),
        Impl::Reference => run_text("ip", &["netns", "exec", host, "iptables-save", "-t", "nat"])?
            .lines()
            .filter(|l| l.contains(&format!("--to-destination {target}")))
            .count(),
    })
}

/// Runs a command (from the machine's namespaces) and returns its stdout; failing is an
/// error with its stderr.
pub fn run_text(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("cannot run {program}: {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_look_real_and_differ() {
        let a = container_id(1, 0);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let mut all: Vec<String> = (0..2000)
            .flat_map(|n| [container_id(1, n), container_id(2, n)])
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4000);
    }
}
