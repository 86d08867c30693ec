//! The daemon's life: the pid lock, loading the store, listeners following the networks'
//! gateways, the control socket, SIGHUP, the upstreams' resolv.conf, and exiting when the
//! last network is gone (unless `--persistent`, as under a service manager).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::LevelFilter;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::engine::Engine;
use super::forward::{Forwarder, read_resolv_conf};
use super::quota::Quota;
use super::records::Records;
use super::tcp::{TcpLimits, TcpServer};
use super::udp::UdpListener;
use crate::control::Request;
use crate::store::{self, Paths};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Paths,
    /// Where the upstream servers are read from (watched for changes).
    pub resolv_conf: PathBuf,
    /// `None`: log to stderr (under a service manager).
    pub log_file: Option<PathBuf>,
    pub log_level: LevelFilter,
    pub port: u16,
    pub ttl: u32,
    /// Keep running with no network (under a service manager).
    pub persistent: bool,
    /// Move to a cgroup of its own (started by a plugin, not by a service manager).
    pub own_cgroup: bool,
    pub upstream_timeout: Duration,
    pub tcp: TcpLimits,
}

impl Options {
    pub fn new(paths: Paths) -> Options {
        Options {
            paths,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            log_file: None,
            log_level: LevelFilter::Info,
            port: 53,
            ttl: 0,
            persistent: false,
            own_cgroup: false,
            upstream_timeout: Duration::from_millis(1500),
            tcp: TcpLimits {
                max_connections: 128,
                timeout: Duration::from_secs(3),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Runs the daemon until SIGTERM/SIGINT, or until no network is left. Returns at once (Ok)
/// if another instance holds the pid lock.
pub fn run(opts: Options) -> Result<(), DaemonError> {
    // Everything the sidecar creates (control socket, pid file, log) is its owner's alone
    // from the moment it exists: no window where another user can open or connect.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    opts.paths.create_root()?;
    init_logger(opts.log_file.as_deref(), opts.log_level)?;
    raise_open_file_limit(opts.tcp.max_connections);
    if opts.own_cgroup {
        for failure in super::cgroup::move_to_own_cgroup() {
            log::warn!("staying in the caller's cgroup: {failure}");
        }
    }
    let Some(pid_file) = take_pid_lock(&opts.paths.pid_file(), Duration::from_secs(3))? else {
        log::info!(
            "another cni-dns holds {}; exiting",
            opts.paths.pid_file().display()
        );
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cni-dns")
        .enable_all()
        .build()
        .map_err(io("start the async runtime"))?;
    let forwarder = Forwarder::new(opts.upstream_timeout);
    let shared = Arc::new(Shared::new(
        Engine::new(opts.ttl),
        forwarder,
        runtime.handle().clone(),
    ));
    let result = runtime.block_on(serve(&opts, shared));
    let _ = std::fs::remove_file(opts.paths.control_socket());
    let _ = std::fs::remove_file(opts.paths.pid_file());
    drop(pid_file);
    // Listener threads stop with their sockets; the runtime's tasks end here.
    runtime.shutdown_timeout(Duration::from_millis(200));
    log::info!("cni-dns {} exiting", std::process::id());
    result
}

/// Takes the exclusive flock on the pid file (released by the kernel whatever way we die),
/// waiting up to `wait` for an exiting instance; writes our pid.
///
/// An exiting instance removes the file before it lets go of the lock, so a waiter can end
/// up holding the lock of a file no longer there while a later starter locks the new one: two
/// sidecars. The lock counts only while the locked file is still the one at `path`.
fn take_pid_lock(path: &Path, wait: Duration) -> Result<Option<File>, DaemonError> {
    let deadline = Instant::now() + wait;
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io(format!("open {}", path.display())))?;
        match file.try_lock() {
            Ok(()) if is_still_at(&file, path) => {
                write_pid(&file).map_err(io(format!("write {}", path.display())))?;
                return Ok(Some(file));
            }
            // Removed by the instance we waited for: lock the file that is there now.
            Ok(()) => continue,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io(format!("lock {}", path.display()))(e));
            }
        }
    }
}

fn is_still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
        _ => false,
    }
}

fn write_pid(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.set_len(0)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
}

struct Listeners {
    port: u16,
    tcp: TcpLimits,
    slots: Arc<Quota>,
    bound: BTreeMap<IpAddr, (UdpListener, TcpServer)>,
    /// Addresses that could not be bound, and why (retried on every change).
    failed: BTreeMap<IpAddr, String>,
}

impl Listeners {
    fn new(port: u16, tcp: TcpLimits) -> Listeners {
        Listeners {
            port,
            tcp,
            slots: Quota::new(tcp.max_connections),
            bound: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Listens on exactly `wanted` (link-local IPv6 gateways, which need a scope, excepted).
    fn sync(&mut self, wanted: &BTreeSet<IpAddr>, shared: &Arc<Shared>) {
        let wanted: BTreeSet<IpAddr> = wanted
            .iter()
            .copied()
            .filter(|ip| !ip.is_unspecified() && !is_link_local_v6(ip))
            .collect();
        self.bound.retain(|ip, _| {
            let keep = wanted.contains(ip);
            if !keep {
                log::info!("stopped listening on {ip}");
            }
            keep
        });
        self.failed.clear();
        for ip in &wanted {
            if self.bound.contains_key(ip) {
                continue;
            }
            let addr = SocketAddr::new(*ip, self.port);
            let started = UdpListener::start(addr, shared.clone()).and_then(|udp| {
                TcpServer::start(addr, shared.clone(), self.slots.clone(), self.tcp)
                    .map(|tcp| (udp, tcp))
            });
            match started {
                Ok(pair) => {
                    log::info!("listening on {addr} (udp, tcp)");
                    self.bound.insert(*ip, pair);
                }
                Err(e) => {
                    log::error!("cannot listen on {addr}: {e}");
                    self.failed
                        .insert(*ip, format!("cannot listen on {addr}: {e}"));
                }
            }
        }
        shared.set_listening(self.bound.keys().copied().collect());
    }
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// The daemon's state, changed only by the main loop.
struct State {
    paths: Paths,
    records: Records,
    listeners: Listeners,
    shared: Arc<Shared>,
}

impl State {
    fn load_all(&mut self) {
        let networks = match self.paths.list_networks() {
            Ok(n) => n,
            Err(e) => {
                log::error!("{e}");
                return;
            }
        };
        let keep: BTreeSet<String> = networks.iter().cloned().collect();
        self.records.retain_networks(&keep);
        for net in &networks {
            match store::load_network(&self.paths, net) {
                Ok(attachments) => self.records.set_network(net, attachments),
                Err(e) => log::error!("{e}"),
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        let snap = self.records.snapshot();
        let wanted = snap.listen_addrs();
        self.shared.publish(snap);
        self.listeners.sync(&wanted, &self.shared);
    }

    fn apply(&mut self, request: Request) -> String {
        match request {
            Request::Ping => format!("ok {}", std::process::id()),
            Request::Reload => {
                self.load_all();
                "ok".into()
            }
            Request::Update { network, key } => {
                if !valid_name(&network) || !store::is_attachment_file(&key) || key.contains('/') {
                    return "error invalid network or attachment name".into();
                }
                let path = self.paths.network(&network).join(&key);
                let attachment = match store::read_attachment(&path) {
                    Ok(a) => a,
                    Err(e) => return format!("error {e}"),
                };
                let gateways = attachment
                    .as_ref()
                    .map(|a| a.gateways.clone())
                    .unwrap_or_default();
                self.records.update(&network, &key, attachment);
                self.publish();
                let failed: Vec<&String> = gateways
                    .iter()
                    .filter_map(|gw| self.listeners.failed.get(gw))
                    .collect();
                match failed.first() {
                    Some(msg) => format!("error {msg}"),
                    None => "ok".into(),
                }
            }
        }
    }
}

fn valid_name(network: &str) -> bool {
    let mut chars = network.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

type ControlMsg = (Request, oneshot::Sender<String>);

async fn serve(opts: &Options, shared: Arc<Shared>) -> Result<(), DaemonError> {
    let mut resolv = ResolvWatch::new(opts.resolv_conf.clone());
    resolv.check(&shared, true);
    let mut state = State {
        paths: opts.paths.clone(),
        records: Records::default(),
        listeners: Listeners::new(opts.port, opts.tcp),
        shared: shared.clone(),
    };
    state.load_all();
    let (tx, mut rx) = mpsc::channel::<ControlMsg>(256);
    let mut control = Some(ControlServer::start(&opts.paths, tx.clone())?);
    notify_ready();
    log::info!(
        "cni-dns {} ready: {} networks, {} attachments, upstreams {:?}",
        std::process::id(),
        state.records.snapshot().networks.len(),
        state.records.attachment_count(),
        shared.forwarder.upstream_addrs()
    );
    let mut hup = signal(SignalKind::hangup()).map_err(io("install SIGHUP handler"))?;
    let mut term = signal(SignalKind::terminate()).map_err(io("install SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("install SIGINT handler"))?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some((request, reply)) = rx.recv() => {
                log::debug!("control: {request:?}");
                let answer = state.apply(request);
                let _ = reply.send(answer);
            }
            _ = hup.recv() => {
                log::info!("SIGHUP: reloading the store and {}", opts.resolv_conf.display());
                state.load_all();
                resolv.check(&shared, true);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => resolv.check(&shared, false),
        }
        if state.records.attachment_count() == 0 && !opts.persistent {
            // Stop taking requests, then make sure nothing arrived meanwhile: a plugin that
            // finds no sidecar starts a new one, which waits for our pid lock.
            if let Some(c) = control.take() {
                c.stop(&opts.paths);
            }
            while let Ok((_, reply)) = rx.try_recv() {
                drop(reply);
            }
            state.load_all();
            if state.records.attachment_count() == 0 {
                log::info!("no network left");
                break;
            }
            control = Some(ControlServer::start(&opts.paths, tx.clone())?);
        }
    }
    if let Some(c) = control.take() {
        c.stop(&opts.paths);
    }
    Ok(())
}

struct ControlServer {
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    fn start(paths: &Paths, tx: mpsc::Sender<ControlMsg>) -> Result<ControlServer, DaemonError> {
        let path = paths.control_socket();
        // A socket file left by a dead instance (we hold the pid lock, so it is dead).
        let _ = std::fs::remove_file(&path);
        // Created owner-only (the umask, see `run`); callers are checked too (`control_connection`).
        let listener = UnixListener::bind(&path).map_err(io(format!("bind {}", path.display())))?;
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(control_connection(stream, tx.clone()));
                    }
                    Err(e) => {
                        log::warn!("control accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(ControlServer { task })
    }

    fn stop(self, paths: &Paths) {
        self.task.abort();
        let _ = std::fs::remove_file(paths.control_socket());
    }
}

async fn control_connection(stream: UnixStream, tx: mpsc::Sender<ControlMsg>) {
    if let Some(refusal) = refuse_peer(&stream) {
        let (_, mut write) = stream.into_split();
        let _ = write.write_all(format!("{refusal}\n").as_bytes()).await;
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take_limit());
    let got = tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line)).await;
    let answer = match got {
        Ok(Ok(n)) if n > 0 => match Request::parse(&line) {
            Some(request) => {
                let (reply, wait) = oneshot::channel();
                if tx.send((request, reply)).await.is_err() {
                    return;
                }
                match wait.await {
                    Ok(a) => a,
                    // Dropped unanswered: we are exiting; the client sees EOF.
                    Err(_) => return,
                }
            }
            None => "error unknown request".into(),
        },
        _ => return,
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

/// Only root (or the user the sidecar runs as) may change its records: a caller whose
/// credentials say otherwise gets an error line, whatever the socket's mode lets through.
fn refuse_peer(stream: &UnixStream) -> Option<String> {
    let own = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 || cred.uid() == own => None,
        Ok(cred) => {
            log::warn!(
                "control: refused a caller with uid {} (pid {:?})",
                cred.uid(),
                cred.pid()
            );
            Some(format!(
                "error permission denied: uid {} may not control the sidecar",
                cred.uid()
            ))
        }
        Err(e) => Some(format!("error cannot read the caller's credentials: {e}")),
    }
}

trait TakeLimit: Sized {
    fn take_limit(self) -> tokio::io::Take<Self>;
}

impl TakeLimit for tokio::net::unix::OwnedReadHalf {
    fn take_limit(self) -> tokio::io::Take<Self> {
        tokio::io::AsyncReadExt::take(self, 4096)
    }
}

/// The upstreams' resolv.conf, re-read when its inode, size or mtime changes.
struct ResolvWatch {
    path: PathBuf,
    seen: Option<(u64, u64, i64, i64)>,
}

impl ResolvWatch {
    fn new(path: PathBuf) -> ResolvWatch {
        ResolvWatch { path, seen: None }
    }

    fn check(&mut self, shared: &Shared, force: bool) {
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        if !force && now == self.seen {
            return;
        }
        self.seen = now;
        let servers = read_resolv_conf(&self.path);
        log::info!("upstream servers from {}: {servers:?}", self.path.display());
        shared.forwarder.set_upstreams(&servers);
    }
}

/// Tells systemd (`Type=notify`) we are ready, when started by it.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(b"READY=1", &addr))
    } else {
        socket.send_to(b"READY=1", Path::new(&path))
    };
    if let Err(e) = sent {
        log::warn!("sd_notify: {e}");
    }
}

/// The most a log file grows to before it is moved to `<file>.1` (replacing the one there):
/// the sidecar never holds more than twice this on disk, however long it runs.
const MAX_LOG_BYTES: u64 = 4 << 20;

struct FileLogger {
    level: LevelFilter,
    out: Mutex<LogOut>,
}

/// Where lines go: stderr, or a file rotated at [`MAX_LOG_BYTES`].
enum LogOut {
    Stderr,
    File {
        path: PathBuf,
        file: File,
        written: u64,
    },
}

impl LogOut {
    fn write_line(&mut self, line: &[u8]) {
        match self {
            LogOut::Stderr => {
                let _ = std::io::stderr().write_all(line);
            }
            LogOut::File {
                path,
                file,
                written,
            } => {
                if *written + line.len() as u64 > MAX_LOG_BYTES
                    && let Ok((fresh, _)) = rotate_and_open(path, 0)
                {
                    *file = fresh;
                    *written = 0;
                }
                if file.write_all(line).is_ok() {
                    *written += line.len() as u64;
                }
            }
        }
    }
}

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("cni_dns")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{}.{:06} cni-dns[{}] {}: {}\n",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            record.level(),
            record.args()
        );
        if let Ok(mut out) = self.out.lock() {
            out.write_line(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Opens `path` for appending, first moving it to `<path>.1` when it holds over `keep`
/// bytes; returns the file and its size.
fn rotate_and_open(path: &Path, keep: u64) -> std::io::Result<(File, u64)> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > keep) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// Logs to `file` (appended; moved to `<file>.1` whenever it would pass [`MAX_LOG_BYTES`]),
/// or to stderr.
fn init_logger(file: Option<&Path>, level: LevelFilter) -> Result<(), DaemonError> {
    let out = match file {
        None => LogOut::Stderr,
        Some(path) => {
            let (file, written) = rotate_and_open(path, MAX_LOG_BYTES)
                .map_err(io(format!("open {}", path.display())))?;
            LogOut::File {
                path: path.to_owned(),
                file,
                written,
            }
        }
    };
    if log::set_boxed_logger(Box::new(FileLogger {
        level,
        out: Mutex::new(out),
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
    Ok(())
}

/// Raises the soft limit on open files to what the limits can need at once (every TCP
/// connection, every forward's socket, the listeners), within the hard limit: at the usual
/// 1024 a busy sidecar would fail to accept before its own limits apply.
fn raise_open_file_limit(tcp_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = (tcp_connections + super::forward::MAX_IN_FLIGHT + 256) as u64;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < wanted => {
            let new = wanted.min(hard);
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
                log::warn!("cannot raise the open file limit to {new}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot read the open file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race two plugins starting sidecars while one exits: the exiting one removes its
    /// pid file and then lets go; a waiter and a newcomer must not both win.
    #[test]
    fn a_pid_file_removed_by_its_exiting_holder_is_not_locked_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni-dns.pid");
        let exiting = take_pid_lock(&path, Duration::ZERO).unwrap().unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || take_pid_lock(&path, Duration::from_secs(2)).unwrap())
        };
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_file(&path).unwrap();
        drop(exiting);
        let newcomer = take_pid_lock(&path, Duration::from_secs(2)).unwrap();
        let waited = waiter.join().unwrap();
        assert!(
            newcomer.is_some() != waited.is_some(),
            "newcomer won: {}, waiter won: {}",
            newcomer.is_some(),
            waited.is_some()
        );
    }

    #[test]
    fn callers_other_than_root_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        for (euid, refused) in [(0, false), (65534, true)] {
            let client = {
                let path = path.clone();
                std::thread::spawn(move || {
                    set_thread_euid(euid);
                    std::os::unix::net::UnixStream::connect(&path).unwrap()
                })
                .join()
                .unwrap()
            };
            let (server, _) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let verdict =
                rt.block_on(async { refuse_peer(&UnixStream::from_std(server).unwrap()) });
            assert_eq!(verdict.is_some(), refused, "euid {euid}: {verdict:?}");
            drop(client);
        }
    }

    /// This thread only: effective uid `euid`, file-system uid root (the socket's mode lets it
    /// connect, so only the credentials check stands in its way).
    fn set_thread_euid(euid: u32) {
        // SAFETY: raw syscalls changing this thread's credentials only (the libc wrappers
        // would change every thread's); nothing else is touched.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresuid, 0, euid, 0), 0);
            libc::syscall(libc::SYS_setfsuid, 0);
        }
    }

    #[test]
    fn the_log_is_rotated_while_running_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni-dns.log");
        let (file, written) = rotate_and_open(&path, MAX_LOG_BYTES).unwrap();
        let mut out = LogOut::File {
            path: path.clone(),
            file,
            written,
        };
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        for _ in 0..(9 << 10) {
            out.write_line(&line);
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let old = dir.path().join("cni-dns.log.1");
        assert!(size(&path) <= MAX_LOG_BYTES, "{}", size(&path));
        assert!(size(&old) <= MAX_LOG_BYTES, "{}", size(&old));
        // 9 MiB written: two rotations, the second replacing the first's file.
        assert_eq!((size(&old), size(&path)), (MAX_LOG_BYTES, 1 << 20));
    }
}
