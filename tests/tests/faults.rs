//! The fault suite: the chains runtimes use (podman's and nerdctl's bridge + portmap +
//! firewall + tuning + dnsname, macvlan + tuning, kind's ptp + portmap + bandwidth), with a
//! plugin SIGKILLed at a random moment in half the ADDs and half the DEL attempts, 4
//! containers at a time, some netns deleted before DEL, each failed ADD followed by DEL and
//! each failed DEL retried, as runtimes do. Afterwards nothing of any container may be left.
//! Then GC with `cni.dev/valid-attachments` must reclaim every attachment not listed,
//! including ones whose ADD was killed before it finished, and keep every listed one working.
//!
//! Decisions come from a seed printed with the figures; `FAULT_SEED=<seed>` replays them (the
//! kill moments themselves depend on timing). `FAULT_ROUNDS` sets containers per chain (the
//! soak, scripts/soak.sh, runs thousands).

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cni::Attachment;
use cni_tests::faults::{Census, Rng, kill_after, seed_from_env, shim_dir};
use cni_tests::{Sandbox, TestNetns};
use ipnetwork::IpNetwork;
use libcni::{CniConfig, NetworkConfigList, RuntimeConf};
use serde_json::{Map, Value, json};

/// Containers per chain in the test command's run.
const DEFAULT_ROUNDS: usize = 24;
const WORKERS: usize = 4;
/// Kills land within this many microseconds of the plugin's start (debug builds take a few
/// milliseconds per call).
const MAX_KILL_DELAY_US: u64 = 15_000;

/// One chain under test in its own sandbox.
struct Chain {
    name: &'static str,
    sb: Sandbox,
    cni: CniConfig,
    list: NetworkConfigList,
    /// The same list at 1.1.0, for CHECK and GC (kind writes 0.3.1).
    gc_list: NetworkConfigList,
    /// The plugins a kill may hit (the IPAM plugin included).
    killable: &'static [&'static str],
    subnet: IpNetwork,
    infra_links: Vec<String>,
    /// Capability arguments of container `n` (port mappings, bandwidth, aliases).
    caps: fn(usize) -> Map<String, Value>,
}

impl Chain {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &'static str,
        sb: Sandbox,
        bin: std::path::PathBuf,
        conf: Value,
        killable: &'static [&'static str],
        subnet: &str,
        infra_links: &[&str],
        caps: fn(usize) -> Map<String, Value>,
    ) -> Chain {
        let list = sb.conflist(&conf);
        let mut at_1_1 = conf;
        at_1_1["cniVersion"] = json!("1.1.0");
        let gc_list = sb.conflist(&at_1_1);
        let cni = sb.cni_config(vec![bin]);
        Chain {
            name,
            sb,
            cni,
            list,
            gc_list,
            killable,
            subnet: subnet.parse().unwrap(),
            infra_links: infra_links.iter().map(|l| l.to_string()).collect(),
            caps,
        }
    }

    fn census(&self) -> Census<'_> {
        Census {
            sb: &self.sb,
            id_marker: "fault-",
            subnets: vec![self.subnet],
            infra_links: self.infra_links.clone(),
        }
    }

    fn id(&self, n: usize) -> String {
        format!("fault-{}-{n}", self.name)
    }

    fn runtime_conf(&self, n: usize, ns: &TestNetns) -> RuntimeConf {
        let mut rt = RuntimeConf::new(self.id(n), ns.path_str(), "eth0");
        rt.args = vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), format!("pod{n}")),
        ];
        rt.capability_args = (self.caps)(n);
        rt
    }

    /// `rt` with a kill of a random plugin at a random moment of its `command`.
    fn with_kill(&self, rt: &RuntimeConf, command: &str, rng: &mut Rng) -> RuntimeConf {
        let mut rt = rt.clone();
        let plugin = rng.pick(self.killable);
        rt.args
            .push(kill_after(command, plugin, rng.below(MAX_KILL_DELAY_US)));
        rt
    }
}

fn ports(n: usize) -> Map<String, Value> {
    let port = 20_000 + n as u64;
    json!({"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}],
           "aliases": {"faultnet": [format!("alias{n}")]}})
    .as_object()
    .cloned()
    .unwrap()
}

fn no_caps(_: usize) -> Map<String, Value> {
    Map::new()
}

fn ports_and_bandwidth(n: usize) -> Map<String, Value> {
    let mut caps = ports(n);
    caps.remove("aliases");
    caps.insert(
        "bandwidth".into(),
        json!({"ingressRate": 1_000_000, "ingressBurst": 100_000,
               "egressRate": 2_000_000, "egressBurst": 100_000}),
    );
    caps
}

/// podman's chain for a network with a published port, with nerdctl's tuning and DNS.
fn podman_chain() -> Chain {
    let sb = Sandbox::new();
    let data = sb.data_dir();
    let resolv = sb.dir().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
    let killable = &[
        "bridge",
        "host-local",
        "portmap",
        "firewall",
        "tuning",
        "dnsname",
    ];
    let bin = shim_dir(&sb, &[killable.as_slice(), &["cni-dns"]].concat());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "faultnet",
        "plugins": [
            {"type": "bridge", "bridge": "fault0", "isGateway": true, "ipMasq": true,
             "hairpinMode": true, "dataDir": data.join("bridge"),
             "ipam": {"type": "host-local", "dataDir": data.join("ipam"),
                      "ranges": [[{"subnet": "10.77.0.0/16", "gateway": "10.77.0.1"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true},
             "dataDir": data.join("portmap")},
            {"type": "firewall", "dataDir": data.join("firewall")},
            {"type": "tuning", "mtu": 1400, "dataDir": data.join("tuning")},
            {"type": "dnsname", "domainName": "fault.test", "capabilities": {"aliases": true},
             "dataDir": data.join("dns"), "upstreamResolvConf": resolv}
        ]
    });
    Chain::new(
        "podman",
        sb,
        bin,
        conf,
        killable,
        "10.77.0.0/16",
        &["fault0"],
        ports,
    )
}

/// macvlan on a master of the host, with tuning.
fn macvlan_chain() -> Chain {
    let sb = Sandbox::new();
    sb.host_run(&[
        "ip", "link", "add", "fmaster", "type", "veth", "peer", "name", "fpeer",
    ]);
    sb.host_run(&["ip", "link", "set", "fmaster", "up"]);
    let data = sb.data_dir();
    let killable = &["macvlan", "host-local", "tuning"];
    let bin = shim_dir(&sb, killable);
    let conf = json!({
        "cniVersion": "1.0.0", "name": "faultmv",
        "plugins": [
            {"type": "macvlan", "master": "fmaster", "mode": "bridge",
             "ipam": {"type": "host-local", "dataDir": data.join("ipam"),
                      "ranges": [[{"subnet": "10.78.0.0/16"}]]}},
            {"type": "tuning", "mtu": 1400, "promisc": true, "dataDir": data.join("tuning")}
        ]
    });
    Chain::new(
        "macvlan",
        sb,
        bin,
        conf,
        killable,
        "10.78.0.0/16",
        &["fmaster", "fpeer"],
        no_caps,
    )
}

/// kind's chain (kindnet's ptp + portmap) with containerd's bandwidth.
fn kind_chain() -> Chain {
    let sb = Sandbox::new();
    let data = sb.data_dir();
    let killable = &["ptp", "host-local", "portmap", "bandwidth"];
    let bin = shim_dir(&sb, killable);
    let conf = json!({
        "cniVersion": "0.3.1", "name": "faultkind",
        "plugins": [
            {"type": "ptp", "ipMasq": true, "mtu": 1500, "dataDir": data.join("ptp"),
             "ipam": {"type": "host-local", "dataDir": data.join("ipam"),
                      "ranges": [[{"subnet": "10.79.0.0/16"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true},
             "dataDir": data.join("portmap")},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}
        ]
    });
    Chain::new(
        "kind",
        sb,
        bin,
        conf,
        killable,
        "10.79.0.0/16",
        &[],
        ports_and_bandwidth,
    )
}

#[derive(Debug, Default)]
struct Figures {
    containers: usize,
    add_kills: usize,
    adds_failed: usize,
    del_kills: usize,
    dels_failed: usize,
    netns_removed_first: usize,
}

/// One container's life: ADD (maybe killed), its netns maybe removed, DEL (maybe killed)
/// until it succeeds.
fn live_and_die(chain: &Chain, n: usize, seed: u64, figures: &Mutex<Figures>) {
    let mut rng = Rng::new(seed ^ (n as u64).wrapping_mul(0x1000_0000_01b3));
    let ns = TestNetns::new();
    let rt = chain.runtime_conf(n, &ns);
    let add_rt = if rng.chance(50) {
        figures.lock().unwrap().add_kills += 1;
        chain.with_kill(&rt, "ADD", &mut rng)
    } else {
        rt.clone()
    };
    if chain.cni.add_network_list(&chain.list, &add_rt).is_err() {
        figures.lock().unwrap().adds_failed += 1;
    }
    let ns = if rng.chance(25) {
        figures.lock().unwrap().netns_removed_first += 1;
        drop(ns);
        None
    } else {
        Some(ns)
    };
    for attempt in 0.. {
        let del_rt = if attempt < 4 && rng.chance(50) {
            figures.lock().unwrap().del_kills += 1;
            chain.with_kill(&rt, "DEL", &mut rng)
        } else {
            rt.clone()
        };
        match chain.cni.del_network_list(&chain.list, &del_rt) {
            Ok(()) => break,
            Err(e) => {
                figures.lock().unwrap().dels_failed += 1;
                assert!(
                    attempt < 8,
                    "{}: DEL keeps failing (seed {seed}): {e}",
                    chain.id(n)
                );
            }
        }
    }
    drop(ns);
}

fn rounds() -> usize {
    std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

/// `containers` lives on `chain`, `WORKERS` at a time; then nothing may be left.
fn churn(chain: &Chain, containers: usize, seed: u64) {
    let next = AtomicUsize::new(0);
    let figures = Mutex::new(Figures {
        containers,
        ..Figures::default()
    });
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= containers {
                        break;
                    }
                    live_and_die(chain, n, seed, &figures);
                }
            });
        }
    });
    let figures = figures.into_inner().unwrap();
    // A writer killed between writing and renaming leaves a temporary file that names no
    // attachment: GC's to remove (below), not DEL's.
    let (killed_writes, left): (Vec<String>, Vec<String>) = chain
        .census()
        .leftovers()
        .into_iter()
        .partition(|line| line.contains("/.tmp-"));
    println!(
        "faults: chain={} seed={seed} containers={} add_kills={} adds_failed={} \
         del_kills={} dels_failed={} netns_removed_first={} killed_writes={} leaks={}",
        chain.name,
        figures.containers,
        figures.add_kills,
        figures.adds_failed,
        figures.del_kills,
        figures.dels_failed,
        figures.netns_removed_first,
        killed_writes.len(),
        left.len()
    );
    assert!(
        figures.adds_failed > 0,
        "{}: no ADD was cut short: the kills miss (seed {seed})",
        chain.name
    );
    assert!(
        left.is_empty(),
        "{}: left behind after every DEL succeeded (seed {seed}):\n{}",
        chain.name,
        left.join("\n")
    );
    chain
        .cni
        .gc_network_list(&chain.gc_list, Some(&[]))
        .unwrap_or_else(|e| panic!("{}: GC failed (seed {seed}): {e}", chain.name));
    let left = chain.census().leftovers();
    assert!(
        left.is_empty(),
        "{}: left behind after GC (seed {seed}):\n{}",
        chain.name,
        left.join("\n")
    );
}

/// Live attachments, attachments whose ADD was killed and never deleted, attachments whose
/// container went without DEL: GC with the live ones listed leaves only those, working.
fn gc_keeps_only_the_listed(chain: &Chain, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x6763);
    let base = 10_000;
    let mut live = Vec::new();
    let mut namespaces = Vec::new();
    for n in base..base + 3 {
        let ns = TestNetns::new();
        let rt = chain.runtime_conf(n, &ns);
        chain.cni.add_network_list(&chain.list, &rt).unwrap();
        live.push(rt);
        namespaces.push(ns);
    }
    for n in base + 3..base + 9 {
        let ns = TestNetns::new();
        let rt = chain.with_kill(&chain.runtime_conf(n, &ns), "ADD", &mut rng);
        let _ = chain.cni.add_network_list(&chain.list, &rt);
        namespaces.push(ns);
    }
    for n in base + 9..base + 11 {
        let ns = TestNetns::new();
        let rt = chain.runtime_conf(n, &ns);
        chain.cni.add_network_list(&chain.list, &rt).unwrap();
        drop(ns);
    }
    let valid: Vec<Attachment> = live
        .iter()
        .map(|rt| Attachment {
            container_id: rt.container_id.clone(),
            ifname: rt.ifname.clone(),
        })
        .collect();
    chain
        .cni
        .gc_network_list(&chain.gc_list, Some(&valid))
        .unwrap_or_else(|e| panic!("{}: GC failed (seed {seed}): {e}", chain.name));
    // What names a live attachment: its ID, its addresses, its own host interfaces (its
    // host end; not the bridge, not eth0 in the container).
    let mut live_names: Vec<String> = Vec::new();
    for rt in &live {
        let result = chain
            .cni
            .cached_result(&chain.gc_list, rt)
            .unwrap()
            .unwrap();
        live_names.push(rt.container_id.clone());
        live_names.extend(result.ips.iter().map(|ip| ip.address.ip().to_string()));
        live_names.extend(
            result
                .interfaces
                .iter()
                .filter(|i| i.sandbox.is_empty())
                .filter(|i| !chain.infra_links.contains(&i.name))
                .map(|i| i.name.clone()),
        );
    }
    let strays: Vec<String> = chain
        .census()
        .leftovers()
        .into_iter()
        .filter(|line| !live_names.iter().any(|name| names(line, name)))
        .collect();
    assert!(
        strays.is_empty(),
        "{}: GC left attachments that are not listed (seed {seed}):\n{}",
        chain.name,
        strays.join("\n")
    );
    for rt in &live {
        chain
            .cni
            .check_network_list(&chain.gc_list, rt)
            .unwrap_or_else(|e| panic!("{}: GC broke {} : {e}", chain.name, rt.container_id));
        chain.cni.del_network_list(&chain.list, rt).unwrap();
    }
    drop(namespaces);
    let left = chain.census().leftovers();
    assert!(
        left.is_empty(),
        "{}: left after the live ones' DEL:\n{}",
        chain.name,
        left.join("\n")
    );
}

/// Whether `line` names `name`, not merely a longer name starting with it (`10.79.0.5` in
/// `10.79.0.50`, `veth1` in `veth12`).
fn names(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        line[at + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

fn run_chain(chain: Chain) {
    let seed = seed_from_env();
    churn(&chain, rounds(), seed);
    gc_keeps_only_the_listed(&chain, seed);
}

#[test]
fn podman_chain_leaks_nothing_under_kills() {
    run_chain(podman_chain());
}

#[test]
fn macvlan_chain_leaks_nothing_under_kills() {
    run_chain(macvlan_chain());
}

#[test]
fn kind_chain_leaks_nothing_under_kills() {
    run_chain(kind_chain());
}
