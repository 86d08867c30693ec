//! Network namespace handles, and running code inside a namespace on a dedicated thread.
//!
//! A namespace is held by an open file, never by its path: a path can be unmounted
//! underneath us, the file keeps the namespace alive. Code runs inside a namespace on a
//! fresh thread that exits right afterwards ([`NetNs::run`]), so no thread of the process
//! (and no pooled thread) is left in a foreign namespace. The one exception is opening a
//! socket there ([`NetNs::open_inside`]): the calling thread enters, opens and comes back,
//! or the process aborts.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::statfs;

use crate::error::{Error, Result};

/// `ioctl(fd, NS_GET_NSTYPE)` = `_IO(0xb7, 0x3)` (linux/nsfs.h, kernel 4.11+): the
/// `CLONE_NEW*` type of a namespace file.
const NS_GET_NSTYPE: u32 = 0xb703;

/// Where the calling thread's own netns is found. `/proc/self/ns/net` would name the
/// main thread's netns, which differs from ours on a thread that has entered another one.
const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`).
    ///
    /// A path that does not exist is [`Error::NetnsNotFound`]; a path that is not a network
    /// namespace is [`Error::NotNetns`]: DEL treats both as "already gone"
    /// ([`Error::is_netns_gone`]).
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        // O_NONBLOCK: a FIFO at the path must not hang the plugin; nsfs files ignore it.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => Error::NetnsNotFound { path: path.into() },
                _ => Error::OpenNetns {
                    path: path.into(),
                    source,
                },
            })?;
        check_is_netns(&file, path)?;
        Ok(NetNs {
            file,
            path: path.into(),
        })
    }

    /// The calling thread's network namespace.
    pub fn current() -> Result<NetNs> {
        NetNs::open(THREAD_SELF_NETNS)
    }

    /// Creates a new network namespace with nothing but a down `lo`, alive as long as this
    /// handle. It has no name under /run/netns; [`NetNs::path`] is `/proc/<pid>/fd/<fd>`,
    /// which works for this process (and children it passes the fd to) while the handle
    /// lives. Meant for tests.
    pub fn new_unnamed() -> Result<NetNs> {
        let file = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns-new".into())
                .spawn_scoped(scope, || -> Result<File> {
                    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::EnterNetns {
                            path: "(new netns)".into(),
                            source: e.into(),
                        }
                    })?;
                    File::open(THREAD_SELF_NETNS).map_err(|source| Error::OpenNetns {
                        path: THREAD_SELF_NETNS.into(),
                        source,
                    })
                })
                .map_err(Error::SpawnThread)?;
            join(handle)
        })?;
        let path = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
        Ok(NetNs {
            file,
            path: path.into(),
        })
    }

    /// The path the namespace was opened from, for messages and for `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether both handles name the same namespace (same nsfs device and inode).
    pub fn same_as(&self, other: &NetNs) -> Result<bool> {
        Ok(self.id()? == other.id()?)
    }

    /// Whether this is the calling thread's namespace.
    pub fn is_current(&self) -> Result<bool> {
        self.same_as(&NetNs::current()?)
    }

    /// The namespace's identity: nsfs device and inode (what `ip netns identify` compares).
    fn id(&self) -> Result<(u64, u64)> {
        let meta = self.file.metadata().map_err(|source| Error::OpenNetns {
            path: self.path.clone(),
            source,
        })?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Runs `f` inside the namespace, on a fresh thread that enters it and is joined.
    ///
    /// Only the new thread changes namespace and it exits afterwards, so the caller's
    /// threads are never affected. A panic in `f` is propagated to the caller.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.file.as_fd();
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, move || -> Result<T> {
                    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::EnterNetns {
                            path: self.path.clone(),
                            source: e.into(),
                        }
                    })?;
                    Ok(f())
                })
                .map_err(Error::SpawnThread)?;
            join(handle)
        })
    }
}

impl NetNs {
    /// Runs `open`, which only opens descriptors (a socket keeps the namespace it was
    /// opened in), with the calling thread inside the namespace, then brings the thread
    /// back. Spawning and joining a thread for this costs 70 to 200 µs on a small VM, the
    /// two `setns` 20 µs. A thread that cannot come back aborts the process: nothing may
    /// go on in the wrong namespace.
    pub fn open_inside<T>(&self, open: impl FnOnce() -> T) -> Result<T> {
        let home = File::open(THREAD_SELF_NETNS).map_err(|source| Error::OpenNetns {
            path: THREAD_SELF_NETNS.into(),
            source,
        })?;
        nix::sched::setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::EnterNetns {
                path: self.path.clone(),
                source: e.into(),
            }
        })?;
        let _back = ComeBack(home);
        Ok(open())
    }
}

/// Brings the calling thread back to its own namespace when dropped (a panic in between
/// included).
struct ComeBack(File);

impl Drop for ComeBack {
    fn drop(&mut self) {
        if let Err(e) = nix::sched::setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET) {
            log::error!("cannot return to this thread's own network namespace: {e}");
            std::process::abort();
        }
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Joins a helper thread, re-raising its panic in the caller.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A netns file lives on nsfs and, asked for its type, says CLONE_NEWNET.
fn check_is_netns(file: &File, path: &Path) -> Result<()> {
    let fs = statfs::fstatfs(file).map_err(|e| Error::OpenNetns {
        path: path.into(),
        source: e.into(),
    })?;
    if fs.filesystem_type() != statfs::NSFS_MAGIC {
        return Err(Error::NotNetns { path: path.into() });
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which is open.
    let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if nstype >= 0 && nstype != libc::CLONE_NEWNET {
        return Err(Error::NotNetns { path: path.into() });
    }
    // nstype < 0: a kernel older than 4.11 cannot tell; nsfs is the best we know.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::skip_unless_root;

    #[test]
    fn missing_path_is_not_found_and_gone() {
        let err = NetNs::open("/nonexistent/netns/x").unwrap_err();
        assert!(matches!(err, Error::NetnsNotFound { .. }), "{err:?}");
        assert!(err.is_netns_gone());
        assert!(err.to_string().contains("/nonexistent/netns/x"));
    }

    #[test]
    fn files_and_other_namespaces_are_not_netns() {
        for path in [
            "/proc/self/status",
            "/",
            "/proc/self/ns/mnt",
            "/proc/self/ns/uts",
        ] {
            let err = NetNs::open(path).unwrap_err();
            assert!(matches!(err, Error::NotNetns { .. }), "{path}: {err:?}");
            assert!(err.is_netns_gone());
        }
    }

    #[test]
    fn current_is_same_as_itself() {
        let a = NetNs::current().unwrap();
        let b = NetNs::open("/proc/thread-self/ns/net").unwrap();
        assert!(a.same_as(&b).unwrap());
        assert!(a.is_current().unwrap());
    }

    #[test]
    fn run_enters_the_namespace_on_another_thread_only() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::new_unnamed().unwrap();
        let here = NetNs::current().unwrap();
        assert!(!ns.same_as(&here).unwrap());
        let caller = std::thread::current().id();
        let (inside, thread) = ns
            .run(|| {
                let cur = NetNs::current().unwrap();
                (cur.same_as(&ns).unwrap(), std::thread::current().id())
            })
            .unwrap();
        assert!(inside);
        assert_ne!(thread, caller);
        // The caller stayed where it was.
        assert!(here.is_current().unwrap());
    }

    #[test]
    fn unnamed_netns_can_be_reopened_by_its_path() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::new_unnamed().unwrap();
        let again = NetNs::open(ns.path()).unwrap();
        assert!(ns.same_as(&again).unwrap());
    }

    #[test]
    fn run_propagates_panics() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::current().unwrap();
        let caught = std::panic::catch_unwind(|| ns.run(|| panic!("boom")));
        assert!(caught.is_err());
    }
}
