//! The record store the dnsname plugin writes and the sidecar reads.
//!
//! ```text
//! <root>/                         default /run/cni-dns (a tmpfs: records die with the node)
//!   cni-dns.pid                   the sidecar's pid, flock'd by it while it runs
//!   cni-dns.log                   the sidecar's log
//!   control.sock                  the sidecar's control socket (see `control`)
//!   networks/<network>/lock       flock'd by the plugin around every change of the network
//!   networks/<network>/<containerID>@<ifname>   one file per attachment
//! ```
//!
//! An attachment file is written whole (temporary file, then rename), so a reader sees the old
//! or the new content, never a torn one, and a crash leaves at most a `.tmp-*` file that the
//! next GC removes. ADD writes one file and DEL removes one: their cost does not depend on
//! how many records the network holds. The format is line-oriented text, one `key value` per
//! line after a version line:
//!
//! ```text
//! cni-dns attachment v1
//! container 3f2a...      the container ID
//! ifname eth0
//! domain dns.podman      the network's search domain
//! name web               the container's name (K8S_POD_NAME), at most once
//! alias db               each alias, any number
//! ip 10.88.0.5/16        each address with its subnet's prefix length
//! gateway 10.88.0.1      each gateway (where the sidecar listens)
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;

/// The default root of the store, the sidecar's pid file, log and control socket.
pub const DEFAULT_ROOT: &str = "/run/cni-dns";
/// The default search domain, as podman writes it.
pub const DEFAULT_DOMAIN: &str = "dns.podman";

const MAGIC: &str = "cni-dns attachment v1";
const LOCK_FILE: &str = "lock";
/// How long a change waits for another one holding the network's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the record store {} stayed locked for {seconds}s; try again later", path.display())]
    LockTimeout { path: PathBuf, seconds: u64 },
    #[error("{}: {msg}", path.display())]
    Corrupt { path: PathBuf, msg: String },
}

impl StoreError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where everything lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("cni-dns.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("cni-dns.log")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
    pub fn networks(&self) -> PathBuf {
        self.root.join("networks")
    }
    pub fn network(&self, network: &str) -> PathBuf {
        self.networks().join(network)
    }

    /// The networks that have a directory (some may hold no attachment).
    pub fn list_networks(&self) -> Result<Vec<String>> {
        let dir = self.networks();
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_network_name(n))
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("list", dir, e)),
        }
    }

    /// Creates the root (mode 0755) if needed.
    pub fn create_root(&self) -> Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.root)
            .map_err(|e| StoreError::io("create", &self.root, e))
    }
}

/// Network names as libcni accepts them; anything else in `networks/` is not ours.
fn is_network_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// What one attachment (a container's interface on a network) contributes to DNS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    /// The network's search domain, lowercase, without a trailing dot.
    pub domain: String,
    /// The container's name, if the runtime gave one.
    pub name: Option<String>,
    pub aliases: Vec<String>,
    /// Addresses with the prefix length of their subnet.
    pub ips: Vec<IpNetwork>,
    pub gateways: Vec<IpAddr>,
}

impl Attachment {
    /// The file name of the attachment: `<containerID>@<ifname>`. Container IDs cannot hold
    /// `@` or `/` (the CNI rule for IDs) and interface names cannot hold `/`.
    pub fn file_name(container_id: &str, ifname: &str) -> String {
        format!("{container_id}@{ifname}")
    }

    pub fn key(&self) -> String {
        Attachment::file_name(&self.container_id, &self.ifname)
    }

    /// The first 12 characters of the container ID, as `podman ps` shows it.
    pub fn short_id(&self) -> &str {
        let end = self
            .container_id
            .char_indices()
            .nth(12)
            .map_or(self.container_id.len(), |(i, _)| i);
        &self.container_id[..end]
    }

    /// Every name the attachment answers to, lowercase and deduplicated: its name, its
    /// aliases, its short ID.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let all = self
            .name
            .iter()
            .chain(&self.aliases)
            .map(String::as_str)
            .chain(std::iter::once(self.short_id()));
        for n in all {
            let n = n.to_ascii_lowercase();
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    /// The file's content.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{MAGIC}\ncontainer {}\nifname {}\ndomain {}\n",
            self.container_id, self.ifname, self.domain
        );
        if let Some(name) = &self.name {
            s.push_str(&format!("name {name}\n"));
        }
        for alias in &self.aliases {
            s.push_str(&format!("alias {alias}\n"));
        }
        for ip in &self.ips {
            s.push_str(&format!("ip {ip}\n"));
        }
        for gw in &self.gateways {
            s.push_str(&format!("gateway {gw}\n"));
        }
        s
    }

    /// Parses a file's content. Unknown keys are skipped (a newer writer may add some).
    pub fn parse(text: &str) -> std::result::Result<Attachment, String> {
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a {MAGIC:?} file"));
        }
        let mut a = Attachment::default();
        for line in lines {
            let Some((key, value)) = line.split_once(' ') else {
                continue;
            };
            let bad = |what: &str| format!("invalid {what} {value:?}");
            match key {
                "container" => a.container_id = value.to_string(),
                "ifname" => a.ifname = value.to_string(),
                "domain" => a.domain = value.to_ascii_lowercase(),
                "name" => a.name = Some(value.to_string()),
                "alias" => a.aliases.push(value.to_string()),
                "ip" => a.ips.push(value.parse().map_err(|_| bad("ip"))?),
                "gateway" => a.gateways.push(value.parse().map_err(|_| bad("gateway"))?),
                _ => {}
            }
        }
        if a.container_id.is_empty() || a.ifname.is_empty() {
            return Err("no container or ifname line".into());
        }
        Ok(a)
    }
}

/// Reads one attachment file: `None` if it does not exist.
pub fn read_attachment(path: &Path) -> Result<Option<Attachment>> {
    match fs::read_to_string(path) {
        Ok(text) => Attachment::parse(&text)
            .map(Some)
            .map_err(|msg| StoreError::Corrupt {
                path: path.to_path_buf(),
                msg,
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// Whether a file name in a network directory is an attachment's.
pub fn is_attachment_file(name: &str) -> bool {
    name.contains('@') && !name.starts_with('.') && name != LOCK_FILE
}

/// The records of one network.
#[derive(Debug)]
pub struct NetworkStore {
    dir: PathBuf,
    lock_file: File,
}

impl NetworkStore {
    /// Opens (creating if needed) the network's directory and lock file.
    pub fn open(paths: &Paths, network: &str) -> Result<NetworkStore> {
        let dir = paths.network(network);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| StoreError::io("create", &dir, e))?;
        Self::open_dir(dir)
    }

    /// Opens the network's directory if it exists (DEL and GC create nothing).
    pub fn open_existing(paths: &Paths, network: &str) -> Result<Option<NetworkStore>> {
        let dir = paths.network(network);
        if !dir.is_dir() {
            return Ok(None);
        }
        Self::open_dir(dir).map(Some)
    }

    fn open_dir(dir: PathBuf) -> Result<NetworkStore> {
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, e))?;
        Ok(NetworkStore { dir, lock_file })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the network's exclusive lock, waiting at most [`LOCK_TIMEOUT`].
    pub fn lock(&self) -> Result<Locked<'_>> {
        self.lock_within(LOCK_TIMEOUT)
    }

    pub fn lock_within(&self, timeout: Duration) -> Result<Locked<'_>> {
        atomic_file::lock_within(&self.lock_file, timeout).map_err(|e| {
            let path = self.dir.join(LOCK_FILE);
            if e.kind() == ErrorKind::TimedOut {
                StoreError::LockTimeout {
                    path,
                    seconds: timeout.as_secs(),
                }
            } else {
                StoreError::io("lock", path, e)
            }
        })?;
        Ok(Locked { store: self })
    }
}

/// The network's store with its lock held; released on drop.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a NetworkStore,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.store.lock_file.unlock();
    }
}

impl Locked<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.store.dir.join(name)
    }

    /// Writes (or replaces) the attachment's file in one step.
    pub fn write(&self, attachment: &Attachment) -> Result<()> {
        let target = self.path(&attachment.key());
        let options = atomic_file::Options {
            mode: 0o644,
            sync: false,
        };
        atomic_file::write_atomic_with(&target, attachment.to_text().as_bytes(), options)
            .map_err(|e| StoreError::io("write", target, e))
    }

    pub fn read(&self, container_id: &str, ifname: &str) -> Result<Option<Attachment>> {
        read_attachment(&self.path(&Attachment::file_name(container_id, ifname)))
    }

    /// Removes the attachment's file; `false` if there was none.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<bool> {
        let path = self.path(&Attachment::file_name(container_id, ifname));
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", path, e)),
        }
    }

    /// The keys (`<containerID>@<ifname>`) of every attachment. Reads the directory: for GC.
    pub fn keys(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.store.dir)
            .map_err(|e| StoreError::io("list", &self.store.dir, e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_attachment_file(n))
            .collect())
    }

    /// Removes temporary files a crash left behind (only ours: no live process of that pid
    /// could still be writing, since we hold the lock).
    pub fn remove_stale_tmp(&self) -> Result<()> {
        atomic_file::remove_leftovers(&self.store.dir, Duration::ZERO)
            .map(drop)
            .map_err(|e| StoreError::io("list", &self.store.dir, e))
    }

    /// Removes the attachment with this key (as [`Locked::keys`] lists them).
    pub fn remove_key(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", path, e)),
        }
    }
}

/// Every attachment of a network, read without the lock (files are replaced whole). Files
/// that cannot be parsed are reported and skipped.
pub fn load_network(paths: &Paths, network: &str) -> Result<Vec<Attachment>> {
    let dir = paths.network(network);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut found = Vec::new();
    for name in entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_attachment_file(n))
    {
        match read_attachment(&dir.join(&name)) {
            Ok(Some(a)) => found.push(a),
            Ok(None) => {}
            Err(e) => log::warn!("skipping {e}"),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attachment {
        Attachment {
            container_id: "0123456789abcdef0123".into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some("Web".into()),
            aliases: vec!["db".into(), "web".into()],
            ips: vec![
                "10.88.0.5/16".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
            gateways: vec!["10.88.0.1".parse().unwrap()],
        }
    }

    #[test]
    fn text_round_trips_and_names_are_lowercase_and_unique() {
        let a = sample();
        assert_eq!(Attachment::parse(&a.to_text()).unwrap(), a);
        assert_eq!(a.short_id(), "0123456789ab");
        assert_eq!(a.names(), vec!["web", "db", "0123456789ab"]);
        assert!(Attachment::parse("garbage").is_err());
        assert!(Attachment::parse(&format!("{MAGIC}\nip nope\n")).is_err());
        assert!(
            Attachment::parse(&format!("{MAGIC}\nfuture key\ncontainer c\nifname e\n")).is_ok()
        );
    }

    #[test]
    fn write_read_remove_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let store = NetworkStore::open(&paths, "net1").unwrap();
        let locked = store.lock().unwrap();
        let a = sample();
        locked.write(&a).unwrap();
        assert_eq!(
            locked.read(&a.container_id, "eth0").unwrap(),
            Some(a.clone())
        );
        assert_eq!(locked.keys().unwrap(), vec![a.key()]);
        assert_eq!(load_network(&paths, "net1").unwrap(), vec![a.clone()]);
        assert_eq!(paths.list_networks().unwrap(), vec!["net1"]);
        assert!(locked.remove(&a.container_id, "eth0").unwrap());
        assert!(!locked.remove(&a.container_id, "eth0").unwrap());
        assert!(locked.keys().unwrap().is_empty());
        assert!(
            NetworkStore::open_existing(&paths, "other")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_held_lock_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let a = NetworkStore::open(&paths, "n").unwrap();
        let b = NetworkStore::open(&paths, "n").unwrap();
        let held = a.lock().unwrap();
        let err = b.lock_within(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout { .. }), "{err}");
        drop(held);
    }
}
