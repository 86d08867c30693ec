//! The on-disk store, in the reference host-local's format so either implementation can take
//! over a node: `<dataDir>/<network>/` holds one file per allocated address (named by the
//! address, holding `<containerID>\r\n<ifname>`), `last_reserved_ip.<rangeSet>` and the
//! flock'd `lock` file.
//!
//! The reference reads every file of the network on each ADD, DEL and CHECK. We keep an index
//! beside it, `<dataDir>/.by-attachment/<network>/`, one small file per attachment listing its
//! addresses, so those operations cost the same with 1,000 allocations as with none. The
//! index is only a cache: every address it names is verified against the address file before
//! use, and it is rebuilt from the address files whenever the `last_reserved_ip.*` files
//! differ from what we last wrote (another implementation allocated, or we crashed between
//! steps); the stamp of those files is kept in `.stamp`.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::safe_path::{ensure_trusted, ensure_trusted_below};

const LOCK_FILE: &str = "lock";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const INDEX_ROOT: &str = ".by-attachment";
const STAMP_FILE: &str = ".stamp";
const TMP_PREFIX: &str = atomic_file::TMP_PREFIX;
const ENTRY_MAGIC: &str = "cni-rs-attachment v1";

/// Who an allocation belongs to: a container and one of its interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachmentKey {
    pub container_id: String,
    /// Empty for allocations written by old host-local versions, which stored only the ID.
    pub ifname: String,
}

impl AttachmentKey {
    pub fn new(container_id: &str, ifname: &str) -> AttachmentKey {
        AttachmentKey {
            container_id: container_id.trim().to_string(),
            ifname: ifname.to_string(),
        }
    }

    /// Whether an address file's owner is this attachment (or, for old files holding only a
    /// container ID, this container), as the reference matches them.
    fn owns(&self, owner: &AttachmentKey) -> bool {
        owner.container_id == self.container_id
            && (owner.ifname == self.ifname || owner.ifname.is_empty())
    }

    /// The content of an address file: `<containerID>\r\n<ifname>`.
    fn file_content(&self) -> String {
        format!("{}\r\n{}", self.container_id, self.ifname)
    }

    fn parse_file_content(content: &str) -> AttachmentKey {
        let content = content.trim();
        match content.split_once("\r\n") {
            Some((id, ifname)) => AttachmentKey::new(id, ifname.trim()),
            None => AttachmentKey::new(content, ""),
        }
    }

    /// The index file name: `<id>@<ifname>` when that is a safe, short file name (IDs cannot
    /// contain `@`), otherwise a hash.
    fn index_name(&self) -> String {
        let plain = format!("{}@{}", self.container_id, self.ifname);
        let safe_id = self
            .container_id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && self
                .container_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        let safe_ifname = !self.ifname.contains(['/', '\0']) && !self.ifname.starts_with('.');
        if safe_id && safe_ifname && plain.len() <= 200 {
            plain
        } else {
            format!(
                "~{:016x}{:016x}",
                fnv1a(&plain, 0xcbf2_9ce4_8422_2325),
                fnv1a(&plain, 0x8422_2325_cbf2_9ce4)
            )
        }
    }
}

fn fnv1a(s: &str, basis: u64) -> u64 {
    s.bytes().fold(basis, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An address file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub owner: AttachmentKey,
}

/// Where an attachment's netns was at ADD (`CNI_NETNS`) and which one it was then: an
/// identity the caller chooses (host-local records the nsfs device and inode), so that GC can
/// tell a path that now names another netns. Both may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsRecord {
    pub path: String,
    pub id: String,
}

/// An attachment's index entry.
#[derive(Debug, Clone, Default)]
struct Entry {
    netns: NetnsRecord,
    ips: Vec<IpAddr>,
}

/// The index line holding the netns identity (older entries have none; older readers skip
/// it as it is no address).
const NETNS_ID_PREFIX: &str = "nsid ";

/// The store of one network. Every operation happens under [`Store::lock`].
pub struct Store {
    net_dir: PathBuf,
    index_dir: PathBuf,
    lock_file: File,
}

impl Store {
    /// Opens (creating if needed) the store of `network` under `data_dir`, refusing a
    /// directory another user could redirect.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        let net_dir = data_dir.join(network);
        let index_below = Path::new(INDEX_ROOT).join(network);
        let index_dir = data_dir.join(&index_below);
        // The data dir is walked once; both directories exist on every call but the first.
        if !ensure_trusted(&net_dir)? {
            create_dir(&net_dir, 0o755)?;
        }
        if !ensure_trusted_below(data_dir, &index_below)? {
            create_dir(&index_dir, 0o700)?;
        }
        let lock_path = net_dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, e))?;
        Ok(Store {
            net_dir,
            index_dir,
            lock_file,
        })
    }

    /// Takes the network's exclusive lock (the same flock the reference takes), waiting at
    /// most [`LOCK_TIMEOUT`], and brings the index up to date.
    pub fn lock(&self) -> Result<Locked<'_>> {
        self.lock_within(LOCK_TIMEOUT)
    }

    /// [`Store::lock`] with a chosen wait.
    pub fn lock_within(&self, timeout: Duration) -> Result<Locked<'_>> {
        self.lock_file_within(timeout)?;
        let locked = Locked { store: self };
        locked.refresh_index()?;
        Ok(locked)
    }

    /// Takes the lock file's flock; the caller makes the [`Locked`] that releases it.
    fn lock_file_within(&self, timeout: Duration) -> Result<()> {
        atomic_file::lock_within(&self.lock_file, timeout).map_err(|e| {
            let path = self.net_dir.join(LOCK_FILE);
            if e.kind() == ErrorKind::TimedOut {
                StoreError::LockTimeout {
                    path,
                    seconds: timeout.as_secs(),
                }
            } else {
                StoreError::io("lock", path, e)
            }
        })
    }

    /// DEL's release: [`Locked::release`] under the lock, without first bringing the index
    /// up to date when the attachment has an entry (the common case: every ADD writes
    /// one, and each address it lists is checked against its file). Only an attachment
    /// without one (made by the reference, or before a rebuild) costs the refresh.
    pub fn release(&self, key: &AttachmentKey) -> Result<Vec<IpAddr>> {
        self.lock_file_within(LOCK_TIMEOUT)?;
        let locked = Locked { store: self };
        let has_entry = locked
            .entry_keys(key)
            .iter()
            .any(|k| self.index_dir.join(k.index_name()).exists());
        if !has_entry {
            locked.refresh_index()?;
        }
        locked.release(key)
    }

    pub fn net_dir(&self) -> &Path {
        &self.net_dir
    }
}

/// Creates `dir` and its missing parents with `mode`.
fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| StoreError::io("create", dir, e))
}

/// How long an operation waits for another one holding the store's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The store with its lock held; released on drop.
pub struct Locked<'a> {
    store: &'a Store,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the file at exit would release it too; an error here changes nothing.
        let _ = self.store.lock_file.unlock();
    }
}

impl Locked<'_> {
    fn net_path(&self, name: &str) -> PathBuf {
        self.store.net_dir.join(name)
    }

    /// Rebuilds the index when the `last_reserved_ip.*` files are not as we left them. Costs a
    /// stat and a small read per range set when nothing changed.
    fn refresh_index(&self) -> Result<()> {
        let seen = self.observe_last_reserved()?;
        let recorded =
            fs::read_to_string(self.store.index_dir.join(STAMP_FILE)).unwrap_or_default();
        if recorded != seen {
            log::info!(
                "rebuilding the attachment index of {}",
                self.store.net_dir.display()
            );
            self.rebuild_index()?;
            write_in_place(&self.store.index_dir.join(STAMP_FILE), seen.as_bytes())?;
        }
        Ok(())
    }

    /// One line per `last_reserved_ip.<n>` file, n = 0, 1, ... up to the first missing one:
    /// its content, mtime and inode. Every allocation, ours or the reference's, changes one.
    fn observe_last_reserved(&self) -> Result<String> {
        let mut seen = String::new();
        for set in 0.. {
            let path = self.net_path(&format!("{LAST_RESERVED_PREFIX}{set}"));
            let (meta, content) =
                match fs::metadata(&path).and_then(|m| Ok((m, fs::read_to_string(&path)?))) {
                    Ok(found) => found,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) => return Err(StoreError::io("read", path, e)),
                };
            seen.push_str(&format!(
                "{set} {} {}.{} {}\n",
                content.trim().escape_default(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ino()
            ));
        }
        Ok(seen)
    }

    /// Replaces the index with one derived from the address files, keeping the netns records
    /// the old entries knew.
    fn rebuild_index(&self) -> Result<()> {
        let mut netns_of: HashMap<String, NetnsRecord> = HashMap::new();
        for name in list_dir(&self.store.index_dir)? {
            if name == STAMP_FILE {
                continue;
            }
            let path = self.store.index_dir.join(&name);
            if let Some((key, entry)) = read_entry(&path) {
                netns_of.insert(key.index_name(), entry.netns);
            }
            remove_if_exists(&path)?;
        }
        let mut entries: HashMap<AttachmentKey, Entry> = HashMap::new();
        for alloc in self.scan()? {
            entries.entry(alloc.owner).or_default().ips.push(alloc.ip);
        }
        for (key, mut entry) in entries {
            entry.netns = netns_of.remove(&key.index_name()).unwrap_or_default();
            self.write_entry(&key, &entry)?;
        }
        Ok(())
    }

    /// Every address file of the network and its owner. Reads the whole directory: only for
    /// GC, STATUS and index rebuilds, never on the ADD/DEL path.
    pub fn scan(&self) -> Result<Vec<Allocation>> {
        let mut found = Vec::new();
        for name in list_dir(&self.store.net_dir)? {
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            if let Some(owner) = self.owner_of(ip)? {
                found.push(Allocation { ip, owner });
            }
        }
        Ok(found)
    }

    /// The owner written in `ip`'s address file, if the file exists.
    pub fn owner_of(&self, ip: IpAddr) -> Result<Option<AttachmentKey>> {
        let path = self.net_path(&ip.to_string());
        match fs::read_to_string(&path) {
            Ok(content) => Ok(Some(AttachmentKey::parse_file_content(&content))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", path, e)),
        }
    }

    pub fn is_allocated(&self, ip: IpAddr) -> Result<bool> {
        let path = self.net_path(&ip.to_string());
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("inspect", path, e)),
        }
    }

    /// The addresses `key` holds, each verified against its address file.
    pub fn owned_by(&self, key: &AttachmentKey) -> Result<Vec<IpAddr>> {
        let mut owned = Vec::new();
        for candidate in self.entry_keys(key) {
            let Some(entry) =
                read_entry(&self.store.index_dir.join(candidate.index_name())).map(|(_, e)| e)
            else {
                continue;
            };
            for ip in entry.ips {
                if !owned.contains(&ip) && self.owner_of(ip)?.is_some_and(|o| key.owns(&o)) {
                    owned.push(ip);
                }
            }
        }
        Ok(owned)
    }

    /// The attachment's own entry, then the container's ID-only entry from old stores.
    fn entry_keys(&self, key: &AttachmentKey) -> Vec<AttachmentKey> {
        let mut keys = vec![key.clone()];
        if !key.ifname.is_empty() {
            keys.push(AttachmentKey::new(&key.container_id, ""));
        }
        keys
    }

    /// The last address handed out from range set `set`, as the reference records it.
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.net_path(&format!("{LAST_RESERVED_PREFIX}{set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records `picks` (range set, address) for `key`. The index entry is written first, so
    /// a crash at any later point leaves nothing the index does not know of; each address
    /// file appears whole or not at all. Fails with `Unavailable` if an address was taken.
    pub fn reserve(
        &self,
        key: &AttachmentKey,
        netns: &NetnsRecord,
        picks: &[(usize, IpAddr)],
    ) -> Result<()> {
        let mut entry = Entry {
            netns: netns.clone(),
            ips: self.owned_by(key)?,
        };
        entry.ips.extend(picks.iter().map(|(_, ip)| *ip));
        self.write_entry(key, &entry)?;
        let content = key.file_content();
        for (done, (_, ip)) in picks.iter().enumerate() {
            if !create_file_whole(&self.store.net_dir, &ip.to_string(), content.as_bytes())? {
                self.release_ips(key, &picks[..done].iter().map(|p| p.1).collect::<Vec<_>>())?;
                return Err(StoreError::Unavailable {
                    ip: *ip,
                    reason: "already allocated".into(),
                });
            }
        }
        for (set, ip) in picks {
            let path = self.net_path(&format!("{LAST_RESERVED_PREFIX}{set}"));
            write_in_place(&path, ip.to_string().as_bytes())?;
        }
        let seen = self.observe_last_reserved()?;
        write_in_place(&self.store.index_dir.join(STAMP_FILE), seen.as_bytes())
    }

    /// Releases every address `key` holds; returns them. Missing files are not an error.
    pub fn release(&self, key: &AttachmentKey) -> Result<Vec<IpAddr>> {
        let owned = self.owned_by(key)?;
        // owned_by read each address file under this lock: every one is still `key`'s.
        for ip in &owned {
            remove_if_exists(&self.net_path(&ip.to_string()))?;
        }
        for k in self.entry_keys(key) {
            remove_if_exists(&self.store.index_dir.join(k.index_name()))?;
        }
        Ok(owned)
    }

    /// Releases the given addresses of `key` (those it still owns) and updates its entry.
    pub fn release_ips(&self, key: &AttachmentKey, ips: &[IpAddr]) -> Result<()> {
        for ip in ips {
            if self.owner_of(*ip)?.is_some_and(|o| key.owns(&o)) {
                remove_if_exists(&self.net_path(&ip.to_string()))?;
            }
        }
        let entry_path = self.store.index_dir.join(key.index_name());
        if let Some((_, mut entry)) = read_entry(&entry_path) {
            entry.ips.retain(|ip| !ips.contains(ip));
            if entry.ips.is_empty() {
                remove_if_exists(&entry_path)?;
            } else {
                self.write_entry(key, &entry)?;
            }
        }
        Ok(())
    }

    /// Releases every allocation `keep` rejects, removes leftovers of interrupted writes and
    /// rebuilds the index. Returns what was released.
    pub fn retain(&self, keep: impl Fn(&Allocation) -> bool) -> Result<Vec<Allocation>> {
        let mut released = Vec::new();
        for alloc in self.scan()? {
            if !keep(&alloc) {
                remove_if_exists(&self.net_path(&alloc.ip.to_string()))?;
                released.push(alloc);
            }
        }
        for name in list_dir(&self.store.net_dir)? {
            if name.starts_with(TMP_PREFIX) {
                remove_if_exists(&self.net_path(&name))?;
            }
        }
        self.rebuild_index()?;
        Ok(released)
    }

    /// The attachments whose recorded netns `is_gone` says is gone (their containers are
    /// gone). Attachments with no recorded netns, such as the reference's, are not listed.
    pub fn attachments_with_dead_netns(
        &self,
        is_gone: impl Fn(&NetnsRecord) -> bool,
    ) -> Result<Vec<AttachmentKey>> {
        let mut dead = Vec::new();
        for name in list_dir(&self.store.index_dir)? {
            if name.starts_with('.') {
                continue;
            }
            if let Some((key, entry)) = read_entry(&self.store.index_dir.join(&name))
                && !entry.netns.path.is_empty()
                && is_gone(&entry.netns)
            {
                dead.push(key);
            }
        }
        Ok(dead)
    }

    /// Addresses with a file in the network directory (names only, no reads).
    pub fn allocated_addresses(&self) -> Result<Vec<IpAddr>> {
        Ok(list_dir(&self.store.net_dir)?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// Proves the store is writable by creating and removing a file in it.
    pub fn probe_writable(&self) -> Result<()> {
        let name = format!("{TMP_PREFIX}probe-{}", std::process::id());
        let path = self.net_path(&name);
        fs::write(&path, b"").map_err(|e| StoreError::io("write", &path, e))?;
        remove_if_exists(&path)
    }

    fn write_entry(&self, key: &AttachmentKey, entry: &Entry) -> Result<()> {
        let mut text = format!(
            "{ENTRY_MAGIC}\n{}\n{}\n{}\n",
            key.container_id, key.ifname, entry.netns.path
        );
        if !entry.netns.id.is_empty() {
            text.push_str(&format!("{NETNS_ID_PREFIX}{}\n", entry.netns.id));
        }
        for ip in &entry.ips {
            text.push_str(&format!("{ip}\n"));
        }
        write_atomic(&self.store.index_dir, &key.index_name(), text.as_bytes())
    }
}

fn read_entry(path: &Path) -> Option<(AttachmentKey, Entry)> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != ENTRY_MAGIC {
        return None;
    }
    let key = AttachmentKey::new(lines.next()?, lines.next()?);
    let mut netns = NetnsRecord {
        path: lines.next()?.to_string(),
        id: String::new(),
    };
    let mut ips = Vec::new();
    for line in lines {
        match line.strip_prefix(NETNS_ID_PREFIX) {
            Some(id) => netns.id = id.to_string(),
            None => ips.extend(line.parse::<IpAddr>().ok()),
        }
    }
    Some((key, Entry { netns, ips }))
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

fn tmp_name() -> String {
    format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Overwrites `path` with `bytes` in place: the file keeps its inode and data block, so no
/// block is freed and allocated again (on a file system mounted with `discard` a freed block
/// waits for a TRIM). Used for the cursor and the stamp, which a torn write only makes
/// mismatch: the cursor then restarts at the range start, the stamp triggers a rebuild.
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .and_then(|f| {
            f.set_len(bytes.len() as u64)?;
            f.write_all_at(bytes, 0)
        })
        .map_err(|e| StoreError::io("write", path, e))
}

/// Replaces `dir/name` with `bytes` in one step (write a temporary file, rename it).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    atomic_file::write_atomic(&target, bytes).map_err(|e| StoreError::io("write", target, e))
}

/// Creates `dir/name` holding `bytes`, unless it exists (then `false`). The file is written
/// unnamed (O_TMPFILE) and linked into place, so a crash never leaves it empty or torn.
fn create_file_whole(dir: &Path, name: &str, bytes: &[u8]) -> Result<bool> {
    let target = dir.join(name);
    let linked = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(mut file) => {
            file.write_all(bytes)
                .map_err(|e| StoreError::io("write", &target, e))?;
            link_unnamed(&file, &target)
        }
        // Filesystems without O_TMPFILE: a named temporary file, hard-linked into place.
        Err(_) => link_named_tmp(dir, &target, bytes)?,
    };
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StoreError::io("create", target, e)),
    }
}

fn link_unnamed(file: &File, target: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        source.as_str(),
        nix::fcntl::AT_FDCWD,
        target,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(std::io::Error::from)
}

fn link_named_tmp(dir: &Path, target: &Path, bytes: &[u8]) -> Result<std::io::Result<()>> {
    let tmp = dir.join(tmp_name());
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    let linked = fs::hard_link(&tmp, target);
    remove_if_exists(&tmp)?;
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reserve_writes_the_reference_format_and_release_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net1").unwrap();
        let locked = store.lock().unwrap();
        let key = AttachmentKey::new("c1", "eth0");
        locked
            .reserve(
                &key,
                &NetnsRecord {
                    path: "/run/netns/x".into(),
                    id: "4:4026532000".into(),
                },
                &[(0, ip("10.0.0.2"))],
            )
            .unwrap();
        let net = dir.path().join("net1");
        assert_eq!(
            fs::read_to_string(net.join("10.0.0.2")).unwrap(),
            "c1\r\neth0"
        );
        assert_eq!(
            fs::read_to_string(net.join("last_reserved_ip.0")).unwrap(),
            "10.0.0.2"
        );
        assert_eq!(locked.owned_by(&key).unwrap(), vec![ip("10.0.0.2")]);
        assert_eq!(locked.release(&key).unwrap(), vec![ip("10.0.0.2")]);
        assert!(!net.join("10.0.0.2").exists());
        assert!(locked.release(&key).unwrap().is_empty());
    }

    #[test]
    fn foreign_allocations_are_found_after_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net1").unwrap();
        let locked = store.lock().unwrap();
        // What the reference writes: an address file and the cursor.
        let net = dir.path().join("net1");
        fs::write(net.join("10.0.0.7"), "c9\r\neth0").unwrap();
        fs::write(net.join("10.0.0.8"), "old-style").unwrap();
        fs::write(net.join("last_reserved_ip.0"), "10.0.0.8").unwrap();
        drop(locked);
        let locked = store.lock().unwrap();
        assert_eq!(
            locked.owned_by(&AttachmentKey::new("c9", "eth0")).unwrap(),
            vec![ip("10.0.0.7")]
        );
        assert_eq!(
            locked
                .owned_by(&AttachmentKey::new("old-style", "eth1"))
                .unwrap(),
            vec![ip("10.0.0.8")]
        );
    }

    #[test]
    fn dels_release_finds_what_the_reference_allocated_and_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net1").unwrap();
        let ours = AttachmentKey::new("ours", "eth0");
        store
            .lock()
            .unwrap()
            .reserve(&ours, &NetnsRecord::default(), &[(0, ip("10.0.0.2"))])
            .unwrap();
        // The reference's allocation: no index entry until a refresh.
        let net = dir.path().join("net1");
        fs::write(net.join("10.0.0.7"), "c9\r\neth0").unwrap();
        fs::write(net.join("last_reserved_ip.0"), "10.0.0.7").unwrap();
        let theirs = AttachmentKey::new("c9", "eth0");
        assert_eq!(store.release(&theirs).unwrap(), vec![ip("10.0.0.7")]);
        assert_eq!(store.release(&ours).unwrap(), vec![ip("10.0.0.2")]);
        assert!(store.release(&ours).unwrap().is_empty());
        assert!(store.lock().unwrap().scan().unwrap().is_empty());
    }

    #[test]
    fn stale_index_entries_never_release_someone_elses_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net1").unwrap();
        let locked = store.lock().unwrap();
        let a = AttachmentKey::new("a", "eth0");
        locked
            .reserve(&a, &NetnsRecord::default(), &[(0, ip("10.0.0.2"))])
            .unwrap();
        // The address changes hands behind the index's back.
        fs::write(dir.path().join("net1/10.0.0.2"), "b\r\neth0").unwrap();
        assert!(locked.owned_by(&a).unwrap().is_empty());
        locked.release(&a).unwrap();
        assert!(dir.path().join("net1/10.0.0.2").exists());
    }

    #[test]
    fn a_lock_held_elsewhere_times_out_and_a_released_one_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let holder = Store::open(dir.path(), "net1").unwrap();
        let waiter = Store::open(dir.path(), "net1").unwrap();
        let held = holder.lock().unwrap();
        let err = waiter.lock_within(Duration::from_millis(50)).err().unwrap();
        assert!(matches!(err, StoreError::LockTimeout { .. }), "{err}");
        // The timed-out waiter's helper still waits; once the holder lets go it takes the lock
        // and, its store being gone, releases it on exit.
        drop(waiter);
        drop(held);
        let again = Store::open(dir.path(), "net1").unwrap();
        again.lock_within(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn gc_without_a_list_asks_about_each_recorded_netns_kept_through_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "net1").unwrap();
        let locked = store.lock().unwrap();
        let record = |path: &str, id: &str| NetnsRecord {
            path: path.into(),
            id: id.into(),
        };
        let (a, b, c) = (
            AttachmentKey::new("a", "eth0"),
            AttachmentKey::new("b", "eth0"),
            AttachmentKey::new("c", "eth0"),
        );
        locked
            .reserve(&a, &record("/run/netns/a", "4:1"), &[(0, ip("10.0.0.2"))])
            .unwrap();
        locked
            .reserve(&b, &record("/run/netns/b", "4:2"), &[(0, ip("10.0.0.3"))])
            .unwrap();
        // No netns recorded (the reference's entries): never asked about.
        locked
            .reserve(&c, &NetnsRecord::default(), &[(0, ip("10.0.0.4"))])
            .unwrap();
        // A rebuild (as GC with a list does) keeps the records.
        locked.retain(|_| true).unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let dead = locked
            .attachments_with_dead_netns(|netns| {
                asked.borrow_mut().push(netns.clone());
                netns.id == "4:2"
            })
            .unwrap();
        assert_eq!(dead, vec![b]);
        let mut asked = asked.into_inner();
        asked.sort_by(|x, y| x.path.cmp(&y.path));
        assert_eq!(
            asked,
            vec![record("/run/netns/a", "4:1"), record("/run/netns/b", "4:2")]
        );
    }

    #[test]
    fn long_ids_get_hashed_index_names() {
        let long = "x".repeat(300);
        let name = AttachmentKey::new(&long, "eth0").index_name();
        assert!(name.starts_with('~') && name.len() == 33);
        assert_eq!(AttachmentKey::new("abc", "eth0").index_name(), "abc@eth0");
    }
}
