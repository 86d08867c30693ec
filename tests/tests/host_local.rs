//! host-local, black box: every config key, bad input, concurrency and SIGKILL at random points.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cni_tests::{PluginCall, RawOutcome, TestNetns, plugin_bin};
use serde_json::{Value, json};

const NET: &str = "hl";

/// A temp data dir and a container netns; plugins run directly (host-local never enters a
/// netns, so no sandbox host is needed for it).
struct Store {
    dir: tempfile::TempDir,
    netns: TestNetns,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::Builder::new()
                .prefix("cnitest-hl-")
                .tempdir()
                .unwrap(),
            netns: TestNetns::new(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn net_dir(&self) -> PathBuf {
        self.data_dir().join(NET)
    }

    /// A config with these `ipam` keys (dataDir added unless given).
    fn conf(&self, version: &str, ipam: Value) -> Value {
        let mut ipam = ipam;
        ipam["type"] = json!("host-local");
        if ipam.get("dataDir").is_none() {
            ipam["dataDir"] = json!(self.data_dir());
        }
        json!({"cniVersion": version, "name": NET, "type": "host-local", "ipam": ipam})
    }

    fn call(&self, command: &str, id: &str, conf: &Value) -> PluginCall {
        PluginCall::new(plugin_bin("host-local"), command)
            .container(id, self.netns.path_str(), "eth0")
            .stdin_json(conf)
    }

    fn addresses(&self) -> Vec<IpAddr> {
        addresses_in(&self.net_dir())
    }

    /// Every file under the data dir (to prove bad input wrote nothing).
    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                }
                out.push(p);
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

fn addresses_in(dir: &Path) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    ips.sort();
    ips
}

fn ip_of(result: &Value, i: usize) -> String {
    result["ips"][i]["address"].as_str().unwrap().to_string()
}

fn subnet(s: &str) -> Value {
    json!({"ranges": [[{"subnet": s}]]})
}

#[test]
fn dual_stack_routes_resolv_conf_and_legacy_keys() {
    let s = Store::new();
    let resolv = s.dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.0.0.53\nsearch example.com\noptions ndots:2\n",
    )
    .unwrap();
    let conf = s.conf(
        "1.0.0",
        json!({
            "subnet": "10.80.0.0/24", "rangeStart": "10.80.0.100", "gateway": "10.80.0.254",
            "ranges": [[{"subnet": "fd80::/64", "rangeStart": "fd80::10", "rangeEnd": "fd80::20"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd80::1"}],
            "resolvConf": resolv,
        }),
    );
    let r = s.call("ADD", "c1", &conf).run().assert_ok();
    assert_eq!(ip_of(&r, 0), "10.80.0.100/24");
    assert_eq!(r["ips"][0]["gateway"], "10.80.0.254");
    assert_eq!(ip_of(&r, 1), "fd80::10/64");
    assert_eq!(r["ips"][1]["gateway"], "fd80::1");
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd80::1"}])
    );
    assert_eq!(r["dns"]["nameservers"], json!(["10.0.0.53"]));
    assert_eq!(r["dns"]["search"], json!(["example.com"]));
    assert_eq!(r["dns"]["options"], json!(["ndots:2"]));
    // The reference's file format: the owner on the first line, the ifname on the second.
    let content = std::fs::read_to_string(s.net_dir().join("fd80::10")).unwrap();
    assert_eq!(content, "c1\r\neth0");
    assert_eq!(
        std::fs::read_to_string(s.net_dir().join("last_reserved_ip.0")).unwrap(),
        "10.80.0.100"
    );
}

#[test]
fn requested_addresses_from_cni_args_args_and_runtime_config() {
    let s = Store::new();
    let conf = s.conf("1.0.0", subnet("10.81.0.0/24"));
    let r = s
        .call("ADD", "c1", &conf)
        .cni_args("IP=10.81.0.40")
        .run()
        .assert_ok();
    assert_eq!(ip_of(&r, 0), "10.81.0.40/24");

    let mut with_args = conf.clone();
    with_args["args"] = json!({"cni": {"ips": ["10.81.0.41"]}});
    let r = s.call("ADD", "c2", &with_args).run().assert_ok();
    assert_eq!(ip_of(&r, 0), "10.81.0.41/24");

    let mut with_runtime = conf.clone();
    with_runtime["runtimeConfig"] = json!({"ips": ["10.81.0.42/24"]});
    let r = s.call("ADD", "c3", &with_runtime).run().assert_ok();
    assert_eq!(ip_of(&r, 0), "10.81.0.42/24");

    // Taken, the gateway, outside every range, not an address: clear errors, nothing written.
    let before = s.addresses();
    for (args, code) in [
        ("IP=10.81.0.40", 100),
        ("IP=10.81.0.1", 100),
        ("IP=192.168.9.9", 100),
        ("IP=banana", 4),
    ] {
        s.call("ADD", "c9", &conf)
            .cni_args(args)
            .run()
            .assert_error(code);
    }
    assert_eq!(s.addresses(), before);
}

#[test]
fn ip_ranges_capability_comes_before_configured_ranges() {
    let s = Store::new();
    let mut conf = s.conf("1.0.0", subnet("10.82.0.0/24"));
    conf["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.83.0.0/24"}]]});
    let r = s.call("ADD", "c1", &conf).run().assert_ok();
    assert_eq!(ip_of(&r, 0), "10.83.0.2/24");
    assert_eq!(ip_of(&r, 1), "10.82.0.2/24");
}

#[test]
fn an_exhausted_range_is_a_clear_error() {
    let s = Store::new();
    let conf = s.conf("1.0.0", subnet("10.84.0.0/30"));
    s.call("ADD", "c1", &conf).run().assert_ok();
    s.call("ADD", "c2", &conf)
        .run()
        .assert_error_containing(101, "no IP addresses available");
    assert_eq!(s.addresses().len(), 1);
}

#[test]
fn bad_configs_are_rejected_before_anything_is_written() {
    let s = Store::new();
    let cases: Vec<(Value, u64, &str)> = vec![
        (
            json!({"ranges": [[{"subnet": "10.85.0.1/24"}]]}),
            7,
            "host bits",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/32"}]]}),
            7,
            "too small",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/31"}]]}),
            7,
            "too small",
        ),
        (
            json!({"ranges": [[{"subnet": "fd85::/128"}]]}),
            7,
            "too small",
        ),
        (
            json!({"ranges": [[{"subnet": "fd85::/127"}]]}),
            7,
            "too small",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24"}], [{"subnet": "10.85.0.128/25"}]]}),
            7,
            "overlaps",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24"}, {"subnet": "10.85.0.0/25"}]]}),
            7,
            "overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24", "gateway": "10.86.0.1"}]]}),
            7,
            "gateway",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24", "rangeStart": "10.86.0.1"}]]}),
            7,
            "rangeStart",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24", "rangeEnd": "10.86.0.1"}]]}),
            7,
            "rangeEnd",
        ),
        (
            json!({"ranges": [[{"subnet": "10.85.0.0/24"}, {"subnet": "fd85::/64"}]]}),
            7,
            "mixed",
        ),
        (json!({"ranges": []}), 7, "no IP ranges"),
        (
            json!({"ranges": [[{"subnet": 42}]]}),
            6,
            "ipam.ranges[0][0].subnet",
        ),
        (json!({"ranges": "10.85.0.0/24"}), 6, "ipam.ranges"),
        (json!({"ranges": [[{"subnet": "not-a-cidr"}]]}), 6, "subnet"),
        (
            json!({"subnet": "10.85.0.0/24", "routes": [{"dst": 1}]}),
            6,
            "routes",
        ),
    ];
    for (ipam, code, needle) in cases {
        let conf = s.conf("1.0.0", ipam.clone());
        s.call("ADD", "c1", &conf)
            .run()
            .assert_error_containing(code, needle);
    }
    let no_ipam = json!({"cniVersion": "1.0.0", "name": NET, "type": "host-local"});
    s.call("ADD", "c1", &no_ipam)
        .run()
        .assert_error_containing(7, "ipam");
    // Two addresses of one family need a version that can carry them.
    let two_v4 = s.conf(
        "0.2.0",
        json!({"ranges": [[{"subnet": "10.85.0.0/24"}], [{"subnet": "10.86.0.0/24"}]]}),
    );
    s.call("ADD", "c1", &two_v4).run().assert_error(7);
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn a_data_dir_through_another_users_symlink_is_refused() {
    let s = Store::new();
    let target = s.dir.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    let link = s.dir.path().join("planted");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let status = Command::new("chown")
        .args(["-h", "4242:4242"])
        .arg(&link)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::symlink_metadata(&link).unwrap().uid(), 4242);
    let mut conf = s.conf("1.0.0", subnet("10.87.0.0/24"));
    conf["ipam"]["dataDir"] = json!(link);
    s.call("ADD", "c1", &conf)
        .run()
        .assert_error_containing(7, "owned by uid 4242");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn check_verifies_the_exact_addresses() {
    let s = Store::new();
    let conf = s.conf("1.0.0", subnet("10.88.0.0/24"));
    let r = s.call("ADD", "c1", &conf).run().assert_ok();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.clone();
    s.call("CHECK", "c1", &with_prev).run().assert_ok_empty();
    // Same container, another address in the result: CHECK must notice.
    with_prev["prevResult"]["ips"][0]["address"] = json!("10.88.0.77/24");
    s.call("CHECK", "c1", &with_prev)
        .run()
        .assert_error_containing(103, "10.88.0.77");
    // Another container's address file is not ours.
    s.call("CHECK", "c2", &conf).run().assert_error(103);
}

#[test]
fn status_reports_an_unwritable_store() {
    let s = Store::new();
    let file = s.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let mut conf = s.conf("1.1.0", subnet("10.89.0.0/24"));
    conf["ipam"]["dataDir"] = json!(file.join("below"));
    PluginCall::new(plugin_bin("host-local"), "STATUS")
        .stdin_json(&conf)
        .run()
        .assert_error_containing(50, "store unusable");
}

#[test]
fn gc_without_a_valid_list_releases_only_attachments_whose_netns_is_gone() {
    let s = Store::new();
    let conf = s.conf("1.1.0", subnet("10.90.0.0/24"));
    let gone = TestNetns::new();
    let recreated = TestNetns::new();
    s.call("ADD", "alive", &conf).run().assert_ok();
    for (id, ns) in [("dead", &gone), ("recreated", &recreated)] {
        PluginCall::new(plugin_bin("host-local"), "ADD")
            .container(id, ns.path_str(), "eth0")
            .stdin_json(&conf)
            .run()
            .assert_ok();
    }
    // An allocation the reference made carries no netns: it is kept.
    std::fs::write(s.net_dir().join("10.90.0.200"), "reference-made\r\neth0").unwrap();
    drop(gone);
    // The path is there again, but it names another netns: the container is gone too.
    for args in [["netns", "del"], ["netns", "add"]] {
        let ok = std::process::Command::new("ip")
            .args(args)
            .arg(recreated.name())
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip {args:?} {}", recreated.name());
    }
    PluginCall::new(plugin_bin("host-local"), "GC")
        .stdin_json(&conf)
        .run()
        .assert_ok_empty();
    let left: Vec<String> = s.addresses().iter().map(|ip| ip.to_string()).collect();
    assert_eq!(left, vec!["10.90.0.2", "10.90.0.200"]);
}

#[test]
fn two_hundred_concurrent_adds_get_distinct_addresses_and_dels_empty_the_store() {
    let s = Store::new();
    let conf = s.conf("1.0.0", subnet("10.91.0.0/16"));
    let next = AtomicUsize::new(0);
    let results: Vec<(String, RawOutcome)> = parallel(16, 200, &next, |i| {
        let id = format!("par{i}");
        let out = s.call("ADD", &id, &conf).run();
        (id, out)
    });
    let mut seen = HashSet::new();
    for (id, out) in &results {
        let r = out.assert_ok();
        assert!(
            seen.insert(ip_of(&r, 0)),
            "{id} got a duplicate {}",
            ip_of(&r, 0)
        );
    }
    assert_eq!(s.addresses().len(), 200);
    let next = AtomicUsize::new(0);
    let dels = parallel(16, 200, &next, |i| {
        s.call("DEL", &format!("par{i}"), &conf).run()
    });
    for out in &dels {
        out.assert_ok_empty();
    }
    assert!(s.addresses().is_empty());
    let index = s.data_dir().join(".by-attachment").join(NET);
    let left: Vec<String> = std::fs::read_dir(index)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Runs `f(0..n)` on `threads` threads, returning the results in index order.
fn parallel<T: Send>(
    threads: usize,
    n: usize,
    next: &AtomicUsize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let mut out: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break mine;
                        }
                        mine.push((i, f(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs one plugin call, SIGKILLing it after `kill_after` if given. Returns the result of an
/// ADD that ran to completion.
fn run_maybe_killed(
    s: &Store,
    command: &str,
    id: &str,
    conf: &Value,
    kill_after: Option<Duration>,
) -> Option<Value> {
    let mut child = Command::new(plugin_bin("host-local"))
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", s.netns.path_str())
        .env("CNI_IFNAME", "eth0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&serde_json::to_vec(conf).unwrap());
    }
    if let Some(delay) = kill_after {
        std::thread::sleep(delay);
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn sigkill_at_random_points_leaves_no_duplicate_and_gc_reclaims_every_leak() {
    let s = Store::new();
    let conf = s.conf("1.1.0", subnet("10.92.0.0/16"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash loop seed {seed}");
    let mut rng = Rng(seed);
    // Live attachments: the runtime saw their ADD succeed and has not DELeted them.
    let mut live: HashMap<String, String> = HashMap::new();
    let mut killed = 0;
    for i in 0..1000 {
        let kill_after = (rng.below(3) != 0).then(|| Duration::from_micros(rng.below(2500)));
        let del_one = !live.is_empty() && rng.below(3) == 0;
        if del_one {
            let id = live
                .keys()
                .nth(rng.below(live.len() as u64) as usize)
                .unwrap()
                .clone();
            run_maybe_killed(&s, "DEL", &id, &conf, kill_after);
            // As a runtime does after a failed DEL: DEL again until it succeeds.
            let done = s.call("DEL", &id, &conf).run();
            done.assert_ok_empty();
            live.remove(&id);
        } else {
            let id = format!("crash{i}");
            match run_maybe_killed(&s, "ADD", &id, &conf, kill_after) {
                Some(r) => {
                    live.insert(id, ip_of(&r, 0));
                }
                None => killed += 1,
            }
        }
    }
    eprintln!("{killed} ADDs interrupted, {} attachments live", live.len());
    assert!(
        killed > 0,
        "no ADD was interrupted; the test proves nothing"
    );

    // No address is held twice, and every live one is owned by its container in the store.
    let mut holders: HashMap<&str, &str> = HashMap::new();
    for (id, ip) in &live {
        if let Some(other) = holders.insert(ip, id) {
            panic!("{ip} handed out to both {other} and {id}");
        }
        let addr = ip.split('/').next().unwrap();
        let content = std::fs::read_to_string(s.net_dir().join(addr)).unwrap();
        assert_eq!(content, format!("{id}\r\neth0"));
    }
    // No empty or torn address file, whatever was interrupted.
    for ip in s.addresses() {
        let content = std::fs::read_to_string(s.net_dir().join(ip.to_string())).unwrap();
        let (id, ifname) = content.split_once("\r\n").expect("torn address file");
        assert!(
            id.starts_with("crash") && ifname == "eth0",
            "{ip}: {content:?}"
        );
    }
    // ADD and DEL still work on the store as the crashes left it.
    s.call("ADD", "after", &conf).run().assert_ok();
    s.call("DEL", "after", &conf).run().assert_ok_empty();

    // GC with the live set reclaims every leaked address and nothing else.
    eprintln!(
        "{} addresses leaked by interrupted calls",
        s.addresses().len() - live.len()
    );
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = live
        .keys()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    PluginCall::new(plugin_bin("host-local"), "GC")
        .stdin_json(&gc)
        .run()
        .assert_ok_empty();
    let mut want: Vec<IpAddr> = live
        .values()
        .map(|ip| ip.split('/').next().unwrap().parse().unwrap())
        .collect();
    want.sort();
    assert_eq!(s.addresses(), want);
    let leftovers: Vec<String> = std::fs::read_dir(s.net_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
