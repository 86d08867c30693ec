//! Files replaced whole: a uniquely named temporary file in the same directory, written, then
//! renamed over the target, so a reader (or a crash) sees the old content or the new, never a
//! torn mix. Every crate of the suite that writes state writes it through here; directory
//! readers skip the temporary files with [`is_temporary`]. Lock files are taken with a bounded
//! wait ([`lock_within`]).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of temporary files.
pub const TMP_PREFIX: &str = ".tmp-";

mod lock;

pub use lock::lock_within;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How the file is written.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The new file's permission bits.
    pub mode: u32,
    /// `fsync` the data before the rename: for files that must survive a power loss with
    /// their content (configs, the result cache), not for state on tmpfs.
    pub sync: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: 0o600,
            sync: false,
        }
    }
}

/// Replaces `path` with `bytes` (mode 0600, no fsync). A failure leaves the old file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, Options::default())
}

/// Replaces `path` with `bytes` as `options` say. A failure leaves the old file and no
/// temporary one.
pub fn write_atomic_with(path: &Path, bytes: &[u8], options: Options) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(options.mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            if options.sync {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Whether a directory entry is a temporary file of this crate.
pub fn is_temporary(name: &OsStr) -> bool {
    name.to_string_lossy().starts_with(TMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn replaces_whole_with_the_mode_asked_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic_with(
            &path,
            b"two",
            Options {
                mode: 0o644,
                sync: true,
            },
        )
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(names(dir.path()), vec!["f"]);
        assert!(is_temporary(OsStr::new(".tmp-1-2")));
        assert!(!is_temporary(OsStr::new("c1@eth0")));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old").unwrap();
        // A non-empty directory in the way of the rename.
        let blocked = dir.path().join("d");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["d", "f"]);
        assert!(write_atomic(&dir.path().join("no/such/f"), b"x").is_err());
    }
}
