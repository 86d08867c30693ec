//! Files a plugin writes: replaced whole (never torn by a crash) and locked for work that
//! concurrent invocations must not interleave.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::state::{StateError, io};

/// The prefix of temporary files, which readers of a directory skip.
const TMP_PREFIX: &str = ".tmp-";

/// Replaces `path` with `bytes` in one step: a uniquely named temporary file in the same
/// directory (mode 0600), then a rename. A failure leaves the old file as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether a directory entry is a temporary file of [`write_atomic`].
pub fn is_temporary(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with(TMP_PREFIX)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        assert!(is_temporary(OsStr::new(".tmp-abc")));
        assert!(!is_temporary(OsStr::new("c1@eth0")));
    }

    #[test]
    fn write_atomic_into_a_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("no/such/f"), b"x").is_err());
    }
}
