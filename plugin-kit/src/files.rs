//! Files a plugin writes: replaced whole (never torn by a crash) and locked for work that
//! concurrent invocations must not interleave.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::state::{StateError, io};

pub use atomic_file::{is_temporary, write_atomic};

/// An exclusive lock on a file of a plugin's data directory, held until dropped: for work
/// that concurrent invocations must not interleave (creating shared packet-filter
/// structure, rewriting a table).
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// How long a plugin waits for another invocation holding one of its locks, as the IPAM
/// store does; past it the invocation fails with "try again later" (11).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Locks `<dir>/<name>`, creating the directory and the file when missing; waits at most
/// [`LOCK_TIMEOUT`] for a holder in another process.
pub fn lock_in(dir: &Path, name: &str) -> Result<DirLock, StateError> {
    lock_in_within(dir, name, LOCK_TIMEOUT)
}

/// [`lock_in`] with a chosen wait; a wait past it is an error whose
/// [`StateError::is_timeout`] holds.
pub fn lock_in_within(dir: &Path, name: &str, timeout: Duration) -> Result<DirLock, StateError> {
    let (file, path) = open_lock_file(dir, name)?;
    atomic_file::lock_within(&file, timeout).map_err(|e| io("lock", &path, e))?;
    Ok(DirLock { _file: file })
}

/// [`lock_in`], shared: invocations doing the same kind of work hold it together, and
/// one that must see none of that work in flight takes it exclusively ([`lock_in`]).
pub fn lock_shared_in(dir: &Path, name: &str) -> Result<DirLock, StateError> {
    let (file, path) = open_lock_file(dir, name)?;
    atomic_file::lock_shared_within(&file, LOCK_TIMEOUT).map_err(|e| io("lock", &path, e))?;
    Ok(DirLock { _file: file })
}

fn open_lock_file(dir: &Path, name: &str) -> Result<(fs::File, PathBuf), StateError> {
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let path = dir.join(name);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_past_the_wait_is_try_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_in(dir.path(), "lock").unwrap();
        let err = lock_in_within(dir.path(), "lock", Duration::from_millis(100)).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let cni = crate::state_error(err);
        assert_eq!(cni.code, cni::error::code::TRY_AGAIN_LATER, "{cni:?}");
        drop(held);
        lock_in_within(dir.path(), "lock", Duration::from_millis(100)).unwrap();
    }
}
