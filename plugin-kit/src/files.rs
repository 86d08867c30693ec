//! Files a plugin writes: replaced whole (never torn by a crash) and locked for work that
//! concurrent invocations must not interleave.

use std::fs;
use std::path::Path;

use crate::state::{StateError, io};

pub use atomic_file::{is_temporary, write_atomic};

/// An exclusive lock on a file of a plugin's data directory, held until dropped: for work
/// that concurrent invocations must not interleave (creating shared packet-filter
/// structure, rewriting a table).
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Locks `<dir>/<name>`, creating the directory and the file when missing; waits for a
/// holder in another process.
pub fn lock_in(dir: &Path, name: &str) -> Result<DirLock, StateError> {
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let path = dir.join(name);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    file.lock().map_err(|e| io("lock", &path, e))?;
    Ok(DirLock { _file: file })
}
