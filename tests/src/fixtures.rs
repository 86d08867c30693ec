//! What many black-box tests check, written once: reachability, the links of a namespace,
//! host-local's allocations, the address a result gave.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::TestNetns;

/// Whether `addr` answers a ping from `ns` within a few seconds: neighbour discovery, or an
/// IPv6 address still in duplicate address detection, may hold the first tries back; that is
/// no failure of the plugin.
pub fn pings(ns: &TestNetns, addr: &str) -> bool {
    for _ in 0..10 {
        if ns.succeeds(&["ping", "-c", "1", "-W", "1", addr]) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// One ping, for paths that must be blocked (the caller has shown the path's pieces work).
pub fn ping_once(ns: &TestNetns, addr: &str) -> bool {
    ns.succeeds(&["ping", "-c", "1", "-W", "1", addr])
}

/// The names of the links in `ns`.
pub fn link_names(ns: &TestNetns) -> Vec<String> {
    let out = ns.run(&["ip", "-j", "link", "show"]);
    let links: Value = serde_json::from_str(&out).expect("ip -j link show");
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

/// Waits (up to 3 s) until `ns` holds nothing but `lo`: DEL leaves the kernel's
/// unregistration of a link to a child process.
#[track_caller]
pub fn assert_only_lo(ns: &TestNetns) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let names = link_names(ns);
        if names == ["lo"] {
            return;
        }
        assert!(Instant::now() < deadline, "links left: {names:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The addresses host-local holds in a network's directory (file names that are IPs).
pub fn allocations(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ips: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    ips.sort();
    ips
}

/// The address (without prefix) of the `n`th IP of an ADD result.
#[track_caller]
pub fn ip_of(result: &Value, n: usize) -> String {
    let addr = result["ips"][n]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[{n}] in {result}"));
    addr.split('/').next().unwrap_or(addr).to_string()
}

/// Sets every key of the object `extra` on `conf`.
pub fn merge(conf: &mut Value, extra: Value) {
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            conf[k] = v.clone();
        }
    }
}
