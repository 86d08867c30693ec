//! The DNS sidecar against dnsmasq (what the legacy dnsname plugin runs) and aardvark-dns
//! (podman's netavark stack), each holding the same 1,000 names, in the private host netns:
//! a bridge per server with the network's gateway address, a client netns on a veth, and
//! `dnsperf` (Debian's `dnsperf`) asking from the client. Each iteration measures, for each
//! server in turn:
//!
//! - `1/QPS`: `dnsperf` at full speed for [`BURST`] (A queries for the 1,000 names, bare and
//!   under the domain, 100 outstanding); the value is the time per query, 1 / queries per
//!   second, so the ratio column is ours QPS / theirs;
//! - `p50 @1k QPS`: the median of the per-query latencies `dnsperf -v` reports at 1,000
//!   queries per second for [`PACED`];
//! - `ADD→answer`: a new name is added the way each stack adds one (ours: the dnsname plugin's
//!   ADD; dnsmasq: a line in its hosts file and SIGHUP, as the legacy dnsname plugin; aardvark:
//!   a line in its network file and SIGHUP, as netavark) and the time from that returning to
//!   the first answer carrying the address is taken by a client asking every 100 µs. The
//!   name is removed again (not timed), so the count stays at 1,000.
//!
//! The reload rows hold [`RELOAD_NAMES`] names and measure what a SIGHUP (re-read everything)
//! does to queries: a client asks for one name after another, each waiting for its answer
//! (at most 1 s: a lost query counts 1 s), for [`RELOAD_WINDOW`]; the value is the slowest
//! answer of the window, once calm and once with a SIGHUP sent 20 ms into it.
//!
//! Each server's resident memory (VmRSS and peak VmHWM) is printed at the end of the row.
//! Nothing is asked of any upstream: every name asked exists, dnsmasq runs `--no-resolv`,
//! aardvark and our sidecar see a resolv.conf naming 127.0.0.1 of the private host netns.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CNI_VERSION, Instance, Row, container_id};
use crate::error::{Context, Error, Result};
use crate::exec::{Invocation, exec_plugin};
use crate::sandbox::{Netns, Sandbox};
use crate::side::{Impl, Side, path_str};
use crate::signals;

/// Names each server holds in the query rows...
const NAMES: usize = 1000;
/// ...and in the reload rows.
const RELOAD_NAMES: usize = 10_000;
/// How long the client asks around one SIGHUP.
const RELOAD_WINDOW: Duration = Duration::from_millis(600);
/// Longest wait for one answer in the reload rows.
const ANSWER_LIMIT: Duration = Duration::from_secs(1);
/// How long one full-speed dnsperf run lasts.
const BURST: &str = "0.15";
/// How long one run at 1,000 queries per second lasts (50 queries).
const PACED: &str = "0.05";
const DOMAIN: &str = "dns.podman";
const AARDVARK: &str = "/usr/lib/podman/aardvark-dns";

/// Which server the reference column is.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Dnsmasq,
    Aardvark,
}

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Peer::Dnsmasq => "dnsmasq",
            Peer::Aardvark => "aardvark-dns",
        }
    }

    fn index(self) -> u8 {
        match self {
            Peer::Dnsmasq => 0,
            Peer::Aardvark => 1,
        }
    }
}

/// What a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Throughput, latency, ADD→answer with [`NAMES`] names.
    Queries,
    /// The slowest answer around a SIGHUP with [`RELOAD_NAMES`] names.
    Reload,
}

pub struct Dns {
    peer: Peer,
    mode: Mode,
}

impl Dns {
    pub fn new(peer: Peer) -> Dns {
        Dns {
            peer,
            mode: Mode::Queries,
        }
    }

    pub fn reload(peer: Peer) -> Dns {
        Dns {
            peer,
            mode: Mode::Reload,
        }
    }

    fn names(&self) -> usize {
        match self.mode {
            Mode::Queries => NAMES,
            Mode::Reload => RELOAD_NAMES,
        }
    }
}

impl Row for Dns {
    fn name(&self) -> String {
        match self.mode {
            Mode::Queries => format!("dns vs {}", self.peer.label()),
            Mode::Reload => format!("dns reload vs {}", self.peer.label()),
        }
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Queries => format!(
                "cni-dns (reference column: {}) with {NAMES} names: dnsperf time per query at full speed, median latency at 1,000 QPS, new name ADD→answer; RSS printed",
                self.peer.label()
            ),
            Mode::Reload => format!(
                "cni-dns (reference column: {}) with {RELOAD_NAMES} names: the slowest of back-to-back queries over {} ms, calm and with a SIGHUP (reload everything) in it; a lost query counts 1 s",
                self.peer.label(),
                RELOAD_WINDOW.as_millis()
            ),
        }
    }

    /// None of the reference plugins: our binaries are found by [`find_ours`].
    fn plugins(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn ops(&self) -> Vec<&'static str> {
        match self.mode {
            Mode::Queries => vec!["1/QPS", "p50 @1k QPS", "ADD→answer"],
            Mode::Reload => vec!["slowest, calm", "slowest, SIGHUP"],
        }
    }

    fn setup(&self, sandbox: &Sandbox, side: &Side) -> Result<Box<dyn Instance>> {
        require_tools(self.peer)?;
        let host = sandbox.host()?;
        let names = self.names();
        let mode_slots = if self.mode == Mode::Reload { 4 } else { 0 };
        let slot = mode_slots + self.peer.index() * 2 + u8::from(side.which == Impl::Reference);
        let net = TestNet::create(sandbox, slot)?;
        let dir = sandbox.data_dir(&format!("dns-{slot}-{}", side.label()))?;
        let resolv = dir.join("resolv.conf");
        // Inside the private host netns nothing listens on 127.0.0.1:53: a forward would
        // fail at once and never leave the namespace (none is expected: every name exists).
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").context("write resolv.conf")?;
        let server: Box<dyn Server> = match (side.which, self.peer) {
            (Impl::Ours, _) => Box::new(Ours::start(sandbox, &net, &dir, &resolv, names)?),
            (Impl::Reference, Peer::Dnsmasq) => {
                Box::new(Dnsmasq::start(host.netns(), &net, &dir, names)?)
            }
            (Impl::Reference, Peer::Aardvark) => {
                Box::new(Aardvark::start(host.netns(), &net, &dir, &resolv, names)?)
            }
        };
        let queries = dir.join("queries");
        let mut text = String::new();
        for k in 0..NAMES {
            if k % 2 == 0 {
                text.push_str(&format!("{} A\n", name(k)));
            } else {
                text.push_str(&format!("{}.{DOMAIN} A\n", name(k)));
            }
        }
        std::fs::write(&queries, text).context("write the dnsperf queries")?;
        let client = udp_socket_in(net.client.path())?;
        let mut instance = DnsInstance {
            label: if side.which == Impl::Ours {
                "cni-dns"
            } else {
                self.peer.label()
            },
            row: self.name(),
            net,
            server,
            queries,
            client,
            lost: std::cell::Cell::new(0),
            lossy_runs: std::cell::Cell::new(0),
            mode: self.mode,
            names,
        };
        // Every name answers before measuring.
        for k in [0, names / 2, names - 1] {
            instance.wait_for(&name(k), instance.net.addr(k), Duration::from_secs(5))?;
        }
        Ok(Box::new(instance))
    }
}

fn name(k: usize) -> String {
    format!("ctr{k:04}")
}

/// The peers and the load generator, installed from Debian when missing (as the other
/// scripts install what they need).
fn require_tools(peer: Peer) -> Result<()> {
    let need: &[(&str, &str)] = match peer {
        Peer::Dnsmasq => &[
            ("/usr/bin/dnsperf", "dnsperf"),
            ("/usr/sbin/dnsmasq", "dnsmasq-base"),
        ],
        Peer::Aardvark => &[("/usr/bin/dnsperf", "dnsperf"), (AARDVARK, "aardvark-dns")],
    };
    let missing: Vec<&str> = need
        .iter()
        .filter(|(path, _)| !Path::new(path).is_file())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let install = |update: bool| -> bool {
        if update {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        }
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install(false) && !install(true) {
        return Err(Error::msg(format!(
            "cannot install {} (apt-get install dnsperf dnsmasq-base aardvark-dns)",
            missing.join(" ")
        )));
    }
    Ok(())
}

/// A network of one row's side: a bridge in the host netns with the gateway
/// 10.<60+slot>.0.1/16, and a client netns on a veth with .0.2. Removed on drop.
struct TestNet {
    host: String,
    bridge: String,
    subnet: u8,
    client: Netns,
}

impl TestNet {
    fn create(sandbox: &Sandbox, slot: u8) -> Result<TestNet> {
        let host = sandbox.host()?.netns().name().to_string();
        let client = sandbox.container_netns()?;
        let subnet = 60 + slot;
        let bridge = format!("dnsbr{slot}");
        let veth = format!("dnsve{slot}");
        let net = TestNet {
            host,
            bridge,
            subnet,
            client,
        };
        net.ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        net.ip(&[
            "addr",
            "add",
            &format!("{}/16", net.gateway()),
            "dev",
            &net.bridge,
        ])?;
        net.ip(&["link", "set", &net.bridge, "up"])?;
        net.ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            net.client.name(),
        ])?;
        net.ip(&["link", "set", &veth, "master", &net.bridge, "up"])?;
        run(
            "ip",
            &[
                "-n",
                net.client.name(),
                "addr",
                "add",
                &format!("10.{subnet}.0.2/16"),
                "dev",
                "eth0",
            ],
        )?;
        run(
            "ip",
            &["-n", net.client.name(), "link", "set", "eth0", "up"],
        )?;
        Ok(net)
    }

    fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.host.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, 1)
    }

    /// The address of name `k` (10.x.1.1 onwards; the client is 10.x.0.2).
    fn addr(&self, k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 1 + (k / 250) as u8, 1 + (k % 250) as u8)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // The veth goes with the client netns; the bridge is ours to remove.
        let _ = run("ip", &["-n", &self.host, "link", "del", &self.bridge]);
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A UDP socket of the netns at `netns` (made on a short-lived thread that enters it; the
/// socket stays in that netns wherever it is used from).
fn udp_socket_in(netns: &str) -> Result<UdpSocket> {
    let file = std::fs::File::open(netns).with_context(|| format!("open {netns}"))?;
    let fd = file.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(move || -> Result<UdpSocket> {
            // SAFETY: setns on this thread only, with a descriptor kept open by `file`.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(Error::msg(format!(
                    "setns {netns}: {}",
                    std::io::Error::last_os_error()
                )));
            }
            let socket = UdpSocket::bind("0.0.0.0:0").context("bind the client socket")?;
            socket
                .set_read_timeout(Some(Duration::from_micros(100)))
                .context("set the client timeout")?;
            Ok(socket)
        })
        .join()
        .unwrap_or_else(|_| Err(Error::msg("client socket thread panicked")))
    })
}

/// A server under test.
trait Server {
    /// Adds name `name` → `addr`; returns when the stack's own ADD would return.
    fn add(&mut self, id: &str, name: &str, addr: Ipv4Addr) -> Result<()>;
    /// Removes what `add` added.
    fn remove(&mut self, id: &str, name: &str) -> Result<()>;
    fn pid(&self) -> Option<u32>;
}

struct DnsInstance {
    label: &'static str,
    row: String,
    net: TestNet,
    server: Box<dyn Server>,
    queries: PathBuf,
    client: UdpSocket,
    lost: std::cell::Cell<u64>,
    lossy_runs: std::cell::Cell<u64>,
    mode: Mode,
    names: usize,
}

impl DnsInstance {
    fn dnsperf(&self, args: &[&str]) -> Result<String> {
        let server = self.net.gateway().to_string();
        let mut all = vec![
            "netns",
            "exec",
            self.net.client.name(),
            "dnsperf",
            "-s",
            &server,
            "-d",
            path_str_ref(&self.queries),
            "-t",
            "1",
        ];
        all.extend_from_slice(args);
        let out = Command::new("ip")
            .args(&all)
            .stdin(Stdio::null())
            .output()
            .context("run dnsperf")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(Error::msg(format!(
                "dnsperf failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        // A server that drops queries (aardvark-dns does while it reloads) is reported at the
        // end of the row, not stopped: its figures count the answered ones.
        let lost = field(&text, "Queries lost:").unwrap_or(0.0);
        if lost > 0.0 {
            self.lost.set(self.lost.get() + lost as u64);
            self.lossy_runs.set(self.lossy_runs.get() + 1);
        }
        Ok(text)
    }

    /// Asks for `name` every 100 µs until the answer carries `addr`.
    fn wait_for(&mut self, name: &str, addr: Ipv4Addr, limit: Duration) -> Result<Duration> {
        let server = SocketAddr::from((self.net.gateway(), 53));
        let start = Instant::now();
        let mut id: u16 = 1;
        let mut buf = [0u8; 1500];
        loop {
            id = id.wrapping_add(1);
            let query = encode_query(id, name);
            self.client
                .send_to(&query, server)
                .context("send a query")?;
            let sent = Instant::now();
            while sent.elapsed() < Duration::from_micros(200) {
                let Ok((n, _)) = self.client.recv_from(&mut buf) else {
                    break;
                };
                let reply = &buf[..n];
                if reply.len() >= 12
                    && reply[..2] == id.to_be_bytes()
                    && reply.windows(4).any(|w| w == addr.octets())
                {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > limit {
                return Err(Error::msg(format!(
                    "{}: {name} did not answer {addr} within {limit:?}",
                    self.label
                )));
            }
        }
    }
}

impl DnsInstance {
    /// Back-to-back queries for [`RELOAD_WINDOW`], with a SIGHUP to `hup` 20 ms in: the
    /// slowest answer ([`ANSWER_LIMIT`] for a lost one).
    fn slowest_answer(&self, hup: Option<u32>) -> Result<Duration> {
        let client = self.client.try_clone().context("clone the client socket")?;
        let server = SocketAddr::from((self.net.gateway(), 53));
        let names = self.names;
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let asker = scope.spawn(|| -> Result<Duration> {
                let mut slowest = Duration::ZERO;
                let mut buf = [0u8; 1500];
                for k in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let id = (k % 65_536) as u16;
                    let query = encode_query(id, &name(k % names));
                    let sent = Instant::now();
                    client.send_to(&query, server).context("send a query")?;
                    while sent.elapsed() < ANSWER_LIMIT {
                        if let Ok((n, _)) = client.recv_from(&mut buf)
                            && n >= 12
                            && buf[..2] == id.to_be_bytes()
                        {
                            break;
                        }
                    }
                    slowest = slowest.max(sent.elapsed().min(ANSWER_LIMIT));
                }
                Ok(slowest)
            });
            std::thread::sleep(Duration::from_millis(20));
            if let Some(pid) = hup {
                // SAFETY: plain system call, to the server this row started.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGHUP);
                }
            }
            std::thread::sleep(RELOAD_WINDOW);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            asker
                .join()
                .unwrap_or_else(|_| Err(Error::msg("the asking thread panicked")))
        })
    }
}

fn path_str_ref(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// A number after `label` in dnsperf's summary.
fn field(text: &str, label: &str) -> Option<f64> {
    let rest = text.split(label).nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn encode_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(40);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

impl Instance for DnsInstance {
    fn iterate(&mut self, _sandbox: &Sandbox, i: usize) -> Result<Vec<Duration>> {
        signals::check()?;
        if self.mode == Mode::Reload {
            let calm = self.slowest_answer(None)?;
            let pid = self
                .server
                .pid()
                .ok_or_else(|| Error::msg(format!("{}: the server is gone", self.label)))?;
            let reload = self.slowest_answer(Some(pid))?;
            return Ok(vec![calm, reload]);
        }
        let full = self.dnsperf(&["-l", BURST, "-q", "100"])?;
        let qps = field(&full, "Queries per second:")
            .filter(|q| *q > 0.0)
            .ok_or_else(|| Error::msg(format!("no QPS in dnsperf's output:\n{full}")))?;
        // dnsperf now and then sends nothing in so short a paced run ("Queries sent: 0"):
        // a quirk of the client, whatever the server; such a run is taken again.
        let mut attempts = 0;
        let mut latencies = loop {
            let paced = self.dnsperf(&["-l", PACED, "-Q", "1000", "-v"])?;
            let latencies: Vec<f64> = paced
                .lines()
                .filter(|l| l.starts_with("> NOERROR"))
                .filter_map(|l| l.split_whitespace().last()?.parse().ok())
                .collect();
            attempts += 1;
            if !latencies.is_empty() {
                break latencies;
            }
            if attempts == 3 || field(&paced, "Queries sent:").is_none_or(|n| n > 0.0) {
                return Err(Error::msg(format!(
                    "no latencies from dnsperf -v:\n{paced}"
                )));
            }
        };
        latencies.sort_by(f64::total_cmp);
        let median = latencies[latencies.len() / 2];
        let id = container_id(40 + u64::from(self.net.subnet), i);
        let new = format!("new{i}");
        let addr = Ipv4Addr::new(10, self.net.subnet, 200, 1 + (i % 250) as u8);
        self.server.add(&id, &new, addr)?;
        let answer = self.wait_for(&new, addr, Duration::from_secs(2))?;
        self.server.remove(&id, &new)?;
        Ok(vec![
            Duration::from_secs_f64(1.0 / qps),
            Duration::from_secs_f64(median),
            answer,
        ])
    }

    fn teardown(&mut self, _sandbox: &Sandbox) -> Result<()> {
        let Some(pid) = self.server.pid() else {
            return Err(Error::msg(format!("{}: the server is gone", self.label)));
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("{}: read /proc/{pid}/status", self.label))?;
        let kib = |key: &str| field(&status, key).unwrap_or(0.0);
        eprintln!(
            "[{}] {} (pid {pid}): RSS {:.1} MiB, peak {:.1} MiB with {} names",
            self.row,
            self.label,
            kib("VmRSS:") / 1024.0,
            kib("VmHWM:") / 1024.0,
            self.names
        );
        if self.lost.get() > 0 {
            eprintln!(
                "[{}] {} LOST {} queries (timed out after 1 s) in {} dnsperf runs",
                self.row,
                self.label,
                self.lost.get(),
                self.lossy_runs.get()
            );
        }
        Ok(())
    }
}

/// Our sidecar, fed by the dnsname plugin exactly as a runtime calls it.
struct Ours {
    plugin: PathBuf,
    enter: crate::exec::EnterNs,
    conf: serde_json::Value,
    client_netns: String,
    gateway: Ipv4Addr,
    pid_file: PathBuf,
}

/// Our `dnsname` and `cni-dns`: `$CNI_BENCH_DNS_DIR`, else next to cni-bench (where
/// `cargo build --release -p dnsname -p cni-dns` puts both).
fn find_ours() -> Result<(PathBuf, PathBuf)> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CNI_BENCH_DNS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(d);
    }
    for d in &dirs {
        let (plugin, sidecar) = (d.join("dnsname"), d.join("cni-dns"));
        if plugin.is_file() && sidecar.is_file() {
            return Ok((plugin, sidecar));
        }
    }
    Err(Error::msg(format!(
        "dnsname and cni-dns not found in {dirs:?}: build them (cargo build --release -p dnsname -p cni-dns) or set CNI_BENCH_DNS_DIR"
    )))
}

impl Ours {
    fn start(
        sandbox: &Sandbox,
        net: &TestNet,
        dir: &Path,
        resolv: &Path,
        names: usize,
    ) -> Result<Ours> {
        let (plugin, sidecar) = find_ours()?;
        let host = sandbox.host()?;
        let store = dir.join("store");
        let ours = Ours {
            plugin,
            enter: host.enter(),
            conf: json!({
                "cniVersion": CNI_VERSION,
                "name": format!("dnsbench{}", net.subnet),
                "type": "dnsname",
                "domainName": DOMAIN,
                "dataDir": path_str(&store),
                "sidecar": path_str(&sidecar),
                "upstreamResolvConf": path_str(resolv),
            }),
            client_netns: net.client.path().to_string(),
            gateway: net.gateway(),
            pid_file: store.join("cni-dns.pid"),
        };
        let mut ours = ours;
        for k in 0..names {
            signals::check()?;
            ours.add(
                &container_id(30 + u64::from(net.subnet), k),
                &name(k),
                net.addr(k),
            )
            .with_context(|| format!("ADD of name {k}"))?;
        }
        Ok(ours)
    }

    fn stdin(&self, addr: Option<Ipv4Addr>) -> Result<Vec<u8>> {
        let mut conf = self.conf.clone();
        if let Some(addr) = addr {
            conf["prevResult"] = json!({
                "cniVersion": CNI_VERSION,
                "interfaces": [
                    {"name": "cni0"}, {"name": "veth0"},
                    {"name": "eth0", "sandbox": self.client_netns},
                ],
                "ips": [{"address": format!("{addr}/16"), "gateway": self.gateway.to_string(), "interface": 2}],
            });
        }
        Ok(serde_json::to_vec(&conf)?)
    }

    fn call(&self, command: &str, id: &str, name: &str, addr: Option<Ipv4Addr>) -> Result<()> {
        let inv = Invocation::new(command)
            .container(id)
            .netns(&self.client_netns)
            .ifname("eth0")
            .args(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}"
            ));
        exec_plugin(&self.plugin, &inv, &self.stdin(addr)?, Some(self.enter))?;
        Ok(())
    }
}

impl Server for Ours {
    fn add(&mut self, id: &str, name: &str, addr: Ipv4Addr) -> Result<()> {
        self.call("ADD", id, name, Some(addr))
    }

    fn remove(&mut self, id: &str, name: &str) -> Result<()> {
        self.call("DEL", id, name, None)
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        // The sidecar the plugin started for this row (our child's child): by its pid.
        if let Some(pid) = self.pid() {
            // SAFETY: plain system call.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}

/// dnsmasq as the legacy dnsname plugin ran it: a hosts file, SIGHUP on change.
struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
    base: String,
}

impl Dnsmasq {
    fn start(host: &Netns, net: &TestNet, dir: &Path, names: usize) -> Result<Dnsmasq> {
        let hosts = dir.join("addnhosts");
        let base: String = (0..names)
            .map(|k| format!("{}\t{}\n", net.addr(k), name(k)))
            .collect();
        std::fs::write(&hosts, &base).context("write dnsmasq's hosts")?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                host.name(),
                "/usr/sbin/dnsmasq",
                "--keep-in-foreground",
            ])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--strict-order",
                "--expand-hosts",
            ])
            .arg(format!("--local=/{DOMAIN}/"))
            .arg(format!("--domain={DOMAIN}"))
            .arg(format!("--addn-hosts={}", path_str(&hosts)))
            .arg(format!("--interface={}", net.bridge))
            .args([
                "--bind-interfaces",
                "--user=root",
                "--group=root",
                "--log-facility=/dev/null",
            ])
            .arg(format!("--pid-file={}", path_str(&dir.join("dnsmasq.pid"))))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start dnsmasq")?;
        Ok(Dnsmasq { child, hosts, base })
    }

    fn hup(&self) -> Result<()> {
        // SAFETY: plain system call, to the dnsmasq we started.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) } != 0 {
            return Err(Error::msg("dnsmasq is gone"));
        }
        Ok(())
    }
}

impl Server for Dnsmasq {
    fn add(&mut self, _id: &str, name: &str, addr: Ipv4Addr) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.hosts)
            .context("open dnsmasq's hosts")?;
        writeln!(f, "{addr}\t{name}").context("append to dnsmasq's hosts")?;
        drop(f);
        self.hup()
    }

    fn remove(&mut self, _id: &str, _name: &str) -> Result<()> {
        std::fs::write(&self.hosts, &self.base).context("rewrite dnsmasq's hosts")?;
        self.hup()
    }

    fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// aardvark-dns as netavark runs it: a file per network, SIGHUP on change.
struct Aardvark {
    file: PathBuf,
    base: String,
    pid_file: PathBuf,
}

impl Aardvark {
    fn start(
        host: &Netns,
        net: &TestNet,
        dir: &Path,
        resolv: &Path,
        names: usize,
    ) -> Result<Aardvark> {
        let config = dir.join("aardvark");
        std::fs::create_dir_all(&config).context("mkdir aardvark's config")?;
        let file = config.join(format!("dnsbench{}", net.subnet));
        let mut base = format!("{}\n", net.gateway());
        for k in 0..names {
            base.push_str(&format!(
                "{} {}  {}\n",
                container_id(30 + u64::from(net.subnet), k),
                net.addr(k),
                name(k)
            ));
        }
        // `<id> <ipv4s> <ipv6s> <names>` lines, the IPv6 column empty.
        std::fs::write(&file, &base).context("write aardvark's network file")?;
        // It reads /etc/resolv.conf: in the mount namespace `ip netns exec` makes, ours is
        // bound over it first. It daemonizes once ready.
        let script = format!(
            "mount --bind {} /etc/resolv.conf && exec {AARDVARK} --config {} -p 53 run",
            path_str(resolv),
            path_str(&config)
        );
        let out = Command::new("ip")
            .args(["netns", "exec", host.name(), "sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .context("start aardvark-dns")?;
        if !out.status.success() {
            return Err(Error::msg(format!(
                "aardvark-dns failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let pid_file = config.join("aardvark.pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pid_file.exists() {
            if Instant::now() > deadline {
                return Err(Error::msg("aardvark-dns wrote no pid file"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let aardvark = Aardvark {
            file,
            base,
            pid_file,
        };
        Ok(aardvark)
    }

    fn hup(&self) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| Error::msg("aardvark-dns is gone"))?;
        // SAFETY: plain system call, to the aardvark-dns we started.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
            return Err(Error::msg("aardvark-dns is gone"));
        }
        Ok(())
    }
}

impl Server for Aardvark {
    fn add(&mut self, id: &str, name: &str, addr: Ipv4Addr) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.file)
            .context("open aardvark's network file")?;
        writeln!(f, "{id} {addr}  {name}").context("append to aardvark's network file")?;
        drop(f);
        self.hup()
    }

    fn remove(&mut self, _id: &str, _name: &str) -> Result<()> {
        std::fs::write(&self.file, &self.base).context("rewrite aardvark's network file")?;
        self.hup()
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Aardvark {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain system call, to the aardvark-dns we started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}
