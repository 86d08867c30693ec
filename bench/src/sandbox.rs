//! Where the plugins run: everything here is created by the bench and removed when it ends,
//! also on Ctrl-C and on errors (by `Drop`; the release profile aborts on panic, so the code
//! does not panic).
//!
//! - a temporary directory (`$TMPDIR/cnibench-<pid>-XXXX`) holding the copies of the plugin
//!   binaries and, under `data/`, every store (host-local's `dataDir`): nothing goes to
//!   `/var/lib/cni`. `data/` is on the temporary directory's own file system (`disk`, like
//!   `/var/lib/cni` on a node) or on a private tmpfs mounted there (`tmpfs`, which takes the
//!   disk's latency out of the figures);
//! - for rows that need one, a private "host" network namespace (`ip netns add
//!   cnibench-<pid>-host`, only `lo` in it) in which the plugin processes run, with a mount
//!   namespace prepared once where `/sys` shows that network namespace: each plugin process
//!   enters both with two `setns` calls before exec;
//! - container network namespaces (`cnibench-<pid>-<n>`), owned by the rows that use them.
//!
//! The machine's own interfaces, routes and firewall are never touched.

use std::cell::{Cell, OnceCell};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{Context, Error, Result};
use crate::exec::EnterNs;
use crate::signals;

const NETNS_DIR: &str = "/run/netns";
const PREFIX: &str = "cnibench-";

/// A named network namespace at `/run/netns/<name>`, deleted on drop (after stopping any
/// process the bench left inside).
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: String,
    /// Made with system calls (see [`Sandbox::container_netns_batch`]), removed the same way.
    direct: bool,
}

impl Netns {
    pub fn create(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let netns = Netns {
            name: name.to_string(),
            path: format!("{NETNS_DIR}/{name}"),
            direct: false,
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// What `ip netns add NAME` then `ip -n NAME link set lo up` do, for each name, without
    /// two execs per namespace: on one short-lived thread (the only one moved), `unshare` a
    /// new netns, bind-mount it on `/run/netns/NAME` and set its `lo` up. `/run/netns` must
    /// already be the shared mount `ip netns add` makes it (so that the mounts propagate to
    /// the host's mount namespace); [`Sandbox::container_netns_batch`] sees to that.
    fn create_direct(names: Vec<String>) -> Result<Vec<Netns>> {
        let work = move || -> Result<Vec<Netns>> {
            let mut made = Vec::with_capacity(names.len());
            for name in names {
                signals::check()?;
                let path = format!("{NETNS_DIR}/{name}");
                let c_path = cstring(&path)?;
                let self_ns = cstring("/proc/thread-self/ns/net")?;
                // SAFETY: system calls with valid C strings, on this thread only.
                unsafe {
                    let fd = libc::open(
                        c_path.as_ptr(),
                        libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                        0,
                    );
                    if fd < 0 {
                        return Err(os_error(&format!("create {path}")));
                    }
                    libc::close(fd);
                    if libc::unshare(libc::CLONE_NEWNET) != 0 {
                        let e = os_error("unshare(CLONE_NEWNET)");
                        libc::unlink(c_path.as_ptr());
                        return Err(e);
                    }
                    if libc::mount(
                        self_ns.as_ptr(),
                        c_path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        let e = os_error(&format!("bind-mount the new netns on {path}"));
                        libc::unlink(c_path.as_ptr());
                        return Err(e);
                    }
                }
                made.push(Netns {
                    name,
                    path,
                    direct: true,
                });
                set_lo_up()?;
            }
            Ok(made)
        };
        std::thread::scope(|s| {
            s.spawn(work)
                .join()
                .unwrap_or_else(|_| Err(Error::msg("netns creation thread panicked")))
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, for CNI_NETNS.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `work` on a short-lived thread moved into this network namespace, the only
    /// thread that ever enters it: sockets made by `work` stay in this netns wherever they
    /// are used from afterwards.
    pub fn run_inside<T: Send>(&self, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let file = File::open(&self.path).with_context(|| format!("open {}", self.path))?;
        let fd = file.as_raw_fd();
        let path = self.path.as_str();
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on this thread only, with a descriptor `file` keeps open.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(os_error(&format!("setns {path}")));
                }
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::msg(format!("the thread in {path} panicked"))))
        })
    }

    /// The processes living in this network namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<libc::pid_t>> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map_err(|e| Error::msg(format!("cannot run `ip` (package iproute2): {e}")))?;
        if !out.status.success() {
            return Err(Error::msg(format!(
                "ip netns pids {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    fn stop_processes(&self) {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        else {
            return;
        };
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
        {
            // Only our plugins (or daemons they started) can live in a namespace we made.
            // SAFETY: plain system call.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.direct {
            self.delete_direct();
            return;
        }
        self.stop_processes();
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}

impl Netns {
    /// What `ip netns delete` does (stop what runs inside, unmount, unlink), without execs.
    fn delete_direct(&self) {
        if let Ok(ns) = std::fs::metadata(&self.path) {
            use std::os::unix::fs::MetadataExt;
            let inside = |pid: &str| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
            };
            for pid in std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|p| inside(p))
                .filter_map(|p| p.parse::<libc::pid_t>().ok())
            {
                // Only our plugins (or daemons they started) can live in a namespace we made.
                // SAFETY: plain system call.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let Ok(path) = cstring(&self.path) else {
            return;
        };
        // SAFETY: valid C string.
        let ok = unsafe {
            libc::umount2(path.as_ptr(), libc::MNT_DETACH) == 0 && libc::unlink(path.as_ptr()) == 0
        };
        if !ok {
            eprintln!(
                "warning: delete netns {}: {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|e| Error::msg(e.to_string()))
}

fn os_error(what: &str) -> Error {
    Error::msg(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// `ip link set lo up` in the calling thread's network namespace (an ioctl on a socket
/// opened there).
fn set_lo_up() -> Result<()> {
    // SAFETY: an ifreq is plain data; the socket is ours and closed on every path.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(os_error("socket"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let result = if rc == 0 {
            Ok(())
        } else {
            Err(os_error("set lo up"))
        };
        libc::close(sock);
        result
    }
}

/// The private "host": a network namespace plus a mount namespace whose `/sys` belongs to it.
#[derive(Debug)]
pub struct HostNs {
    // Field order is drop order: close the namespaces before deleting the netns.
    mnt: File,
    net: File,
    netns: Netns,
}

impl HostNs {
    fn create(name: &str) -> Result<HostNs> {
        let netns = Netns::create(name)?;
        let net = File::open(netns.path()).with_context(|| format!("open {}", netns.path()))?;
        let mnt = prepare_mount_ns(&net)?;
        Ok(HostNs { mnt, net, netns })
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// What a plugin process must enter to run "on" this host.
    pub fn enter(&self) -> EnterNs {
        EnterNs {
            net: self.net.as_raw_fd(),
            mnt: self.mnt.as_raw_fd(),
        }
    }
}

/// Makes a mount namespace, slave of ours, where `/sys` is a sysfs mounted from inside `net`
/// (what `ip netns exec` does for each command; done once here). The work happens on a
/// short-lived thread, the only one ever moved into another namespace.
fn prepare_mount_ns(net: &File) -> Result<File> {
    let net = net.as_raw_fd();
    let work = move || -> Result<File> {
        let check = |rc: libc::c_int, what: &str| {
            if rc == 0 {
                Ok(())
            } else {
                Err(Error::msg(format!(
                    "{what}: {}",
                    std::io::Error::last_os_error()
                )))
            }
        };
        let root = CString::new("/").map_err(|e| Error::msg(e.to_string()))?;
        let sys = CString::new("/sys").map_err(|e| Error::msg(e.to_string()))?;
        let sysfs = CString::new("sysfs").map_err(|e| Error::msg(e.to_string()))?;
        // SAFETY: system calls on this thread only, with valid C strings and descriptors.
        unsafe {
            check(libc::setns(net, libc::CLONE_NEWNET), "setns(host netns)")?;
            check(libc::unshare(libc::CLONE_NEWNS), "unshare(CLONE_NEWNS)")?;
            check(
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ),
                "make / a recursive slave",
            )?;
            // Not mounted is fine; a sysfs that cannot be mounted is not.
            libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
            check(
                libc::mount(
                    sysfs.as_ptr(),
                    sys.as_ptr(),
                    sysfs.as_ptr(),
                    0,
                    std::ptr::null(),
                ),
                "mount sysfs",
            )?;
        }
        File::open("/proc/thread-self/ns/mnt").context("open /proc/thread-self/ns/mnt")
    };
    std::thread::scope(|s| {
        s.spawn(work)
            .join()
            .unwrap_or_else(|_| Err(Error::msg("mount namespace thread panicked")))
    })
}

/// Where the stores live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFs {
    Disk,
    Tmpfs,
}

impl StoreFs {
    pub fn parse(s: &str) -> Option<StoreFs> {
        match s {
            "disk" => Some(StoreFs::Disk),
            "tmpfs" => Some(StoreFs::Tmpfs),
            _ => None,
        }
    }
}

/// A tmpfs mounted by the bench, unmounted on drop.
#[derive(Debug)]
struct Tmpfs {
    path: CString,
}

impl Tmpfs {
    fn mount(path: &Path) -> Result<Tmpfs> {
        let c = |s: &str| CString::new(s).map_err(|e| Error::msg(e.to_string()));
        let path = c(&path.to_string_lossy())?;
        let fstype = c("tmpfs")?;
        let options = c("size=512m,mode=0700")?;
        // SAFETY: valid C strings; mounts a fresh tmpfs on a directory we created.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                path.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(Error::msg(format!(
                "mount tmpfs on {}: {}",
                path.to_string_lossy(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(Tmpfs { path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: valid C string.
        if unsafe { libc::umount2(self.path.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!(
                "warning: umount {}: {}",
                self.path.to_string_lossy(),
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The temporary directory and the namespaces of one bench run.
#[derive(Debug)]
pub struct Sandbox {
    // Field order is drop order: namespaces, then the tmpfs, then the files.
    host: OnceCell<HostNs>,
    _tmpfs: Option<Tmpfs>,
    _run: Tmpfs,
    dir: TempDir,
    data: PathBuf,
    run: PathBuf,
    counter: Cell<usize>,
}

impl Sandbox {
    pub fn new(store: StoreFs) -> Result<Sandbox> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir()
            .context("create the bench's temporary directory")?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).with_context(|| format!("mkdir {}", data.display()))?;
        let tmpfs = match store {
            StoreFs::Disk => None,
            StoreFs::Tmpfs => Some(Tmpfs::mount(&data)?),
        };
        let run = dir.path().join("run");
        std::fs::create_dir(&run).with_context(|| format!("mkdir {}", run.display()))?;
        Ok(Sandbox {
            host: OnceCell::new(),
            _tmpfs: tmpfs,
            _run: Tmpfs::mount(&run)?,
            dir,
            data,
            run,
            counter: Cell::new(0),
        })
    }

    /// A fresh directory for a store, `<tmp>/data/<name>`.
    pub fn data_dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.data.join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(path)
    }

    /// A fresh directory for our plugins' own state, `<tmp>/run/<name>`, on a tmpfs
    /// whatever `--store` says: that state lives under `/run` by default (bridge, ptp,
    /// portmap, firewall `dataDir`), a tmpfs on any node. The reference keeps none.
    pub fn run_dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.run.join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(path)
    }

    /// A fresh directory `<tmp>/<sub>` (e.g. a host-local `dataDir`).
    pub fn subdir(&self, sub: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(sub);
        std::fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(path)
    }

    /// Flushes the file system holding the stores (`syncfs`).
    pub fn sync(&self) -> Result<()> {
        let dir = File::open(&self.data).context("open the sandbox directory")?;
        // SAFETY: plain system call on a descriptor we own.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(Error::msg(format!(
                "syncfs: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// The private host, created on first use.
    pub fn host(&self) -> Result<&HostNs> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = HostNs::create(&format!("{PREFIX}{}-host", std::process::id()))?;
        eprintln!(
            "plugins that need a host run in the private netns {}",
            host.netns().name()
        );
        let _ = self.host.set(host);
        self.host
            .get()
            .ok_or_else(|| Error::msg("host namespace vanished"))
    }

    /// A fresh container network namespace, deleted when the handle drops.
    pub fn container_netns(&self) -> Result<Netns> {
        Netns::create(&self.next_name(""))
    }

    /// `n` fresh container network namespaces (each with `lo` up, as `container_netns`
    /// makes them), made with system calls rather than two `ip` execs each: a thousand
    /// take well under a second. Each is deleted when its handle drops.
    pub fn container_netns_batch(&self, n: usize) -> Result<Vec<Netns>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // The first through `ip`: it makes /run/netns the shared mount the others need.
        let mut all = vec![self.container_netns()?];
        let names = (1..n).map(|_| self.next_name("")).collect();
        all.extend(Netns::create_direct(names)?);
        Ok(all)
    }

    /// A private "host" of the caller's own, like [`Sandbox::host`] but not shared: for
    /// rows whose instances must not see each other's links and packet-filter rules (one
    /// node each). Deleted, with everything plugins created in it, when the handle drops.
    pub fn own_host(&self) -> Result<HostNs> {
        HostNs::create(&self.next_name("host"))
    }

    /// `cnibench-<pid>-<what><n>`, `n` unique within the run.
    fn next_name(&self, what: &str) -> String {
        let n = self.counter.get();
        self.counter.set(n + 1);
        format!("{PREFIX}{}-{what}{n}", std::process::id())
    }
}

/// Removes what an earlier bench killed with SIGKILL left behind: namespaces and temporary
/// directories named after a bench process that no longer exists.
pub fn remove_stale() {
    let dead = |name: &str| -> bool {
        name.strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
    };
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for name in entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            if dead(&name) {
                eprintln!("removing stale namespace {name}");
                if let Err(e) = ip(&["netns", "delete", &name]) {
                    eprintln!("warning: {e}");
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && entry.file_name().to_str().is_some_and(dead) {
                eprintln!("removing stale directory {}", entry.path().display());
                // Its data/ may be a tmpfs still mounted.
                if let Ok(data) =
                    CString::new(entry.path().join("data").as_os_str().as_encoded_bytes())
                {
                    // SAFETY: valid C string; failing (not mounted) is fine.
                    unsafe {
                        libc::umount2(data.as_ptr(), libc::MNT_DETACH);
                    }
                }
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Runs `ip ARGS` (from the machine's own namespaces, where the bench runs).
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("cannot run `ip` (package iproute2): {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
