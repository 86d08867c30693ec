//! The rows of the benchmark table.
//!
//! A row is a name, the plugin binaries it needs, the operations it measures, and a `setup`
//! that builds one [`Instance`] per implementation (its own store, namespaces, configs). The
//! runner then calls each instance's [`Instance::iterate`] once per iteration, interleaving
//! ours and the reference (and the other rows of its [`Row::group`]), and finally
//! [`Instance::teardown`]; whatever an instance owns (namespaces, files) is removed when it
//! drops. To add a row: write a `Row` in a new module and list it in [`all`]. A chain of
//! plugins is run with [`crate::chain::Chain`] (see the loopback row).

mod bridge;
mod dns;
mod floor;
mod host_local;
mod loopback;
mod macvlan;
mod portmap;
mod version;

use std::time::Duration;

use crate::error::Result;
use crate::sandbox::Sandbox;
use crate::side::Side;

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
    ];
    macvlan::register(
        params,
        portmap::register(params, bridge::register(params, (rows, derived))),
    )
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
