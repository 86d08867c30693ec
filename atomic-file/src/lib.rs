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
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The prefix of temporary files.
pub const TMP_PREFIX: &str = ".tmp-";

mod lock;

pub use lock::{lock_shared_within, lock_within};

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
        writer_tag(),
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

/// How old a temporary file must be before [`remove_leftovers`] takes it for a killed
/// writer's when writers may be at work: a writer holds one for microseconds.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(60);

/// Removes the temporary files of `dir` that writers killed between writing and renaming
/// left: those whose writer (the pid in the name) is no process any more, and those last
/// written more than `older_than` ago (a pid used again by another process). [`Duration::ZERO`]
/// removes them all, for a caller that holds the lock every writer of `dir` takes; others pass
/// [`LEFTOVER_AGE`]. A missing directory has none. Returns how many went.
pub fn remove_leftovers(dir: &Path, older_than: Duration) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_temporary(&name) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|written| now.duration_since(written).unwrap_or_default());
        let left = writer_is_gone(&name) || age.is_ok_and(|age| age >= older_than);
        // Gone meanwhile (renamed by its writer): nothing to do.
        if left && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// This process in temporary file names: `<pid>.<start time>`, the start time (in clock
/// ticks since boot) telling it from a later process given the same pid.
fn writer_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        match start_time(pid) {
            Some(start) => format!("{pid}.{start}"),
            None => pid.to_string(),
        }
    })
}

/// Field 22 of `/proc/<pid>/stat`, counted after the command name (which may hold spaces
/// and parentheses); `None` when there is no such process or it has exited (a zombie
/// nobody reaped yet writes nothing more).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the process that named a temporary file `.tmp-<pid>.<start>-<n>` has exited (no
/// process of that pid, or one started at another time). A name without a start time is
/// judged by its pid alone; names of another shape not at all.
fn writer_is_gone(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let Some(tag) = name
        .strip_prefix(TMP_PREFIX)
        .and_then(|rest| rest.split('-').next())
    else {
        return false;
    };
    let (pid, start) = match tag.split_once('.') {
        Some((pid, start)) => (pid, start.parse::<u64>().ok()),
        None => (tag, None),
    };
    let Some(pid) = pid.parse::<u32>().ok().filter(|p| *p != 0) else {
        return false;
    };
    match (start_time(pid), start) {
        (None, _) => true,
        (Some(now), Some(then)) => now != then,
        (Some(_), None) => false,
    }
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
    fn leftovers_go_by_age_and_other_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("f"), b"kept").unwrap();
        // A writer killed between writing and renaming.
        let old = dir.path().join(".tmp-1-1");
        fs::write(&old, b"half").unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // A writer at work now (this process), one killed a moment ago (no such pid), and
        // one whose pid a later process has (this one's, started at another time).
        let at_work = format!(".tmp-{}-1", writer_tag());
        fs::write(dir.path().join(&at_work), b"fresh").unwrap();
        fs::write(dir.path().join(".tmp-4194304.5-1"), b"killed").unwrap();
        let reused = format!(".tmp-{}.1-1", std::process::id());
        fs::write(dir.path().join(reused), b"killed").unwrap();
        assert_eq!(remove_leftovers(dir.path(), LEFTOVER_AGE).unwrap(), 3);
        assert_eq!(names(dir.path()), vec![at_work.as_str(), "f"]);
        assert_eq!(remove_leftovers(dir.path(), Duration::ZERO).unwrap(), 1);
        assert_eq!(names(dir.path()), vec!["f"]);
        assert_eq!(
            remove_leftovers(&dir.path().join("none"), Duration::ZERO).unwrap(),
            0
        );
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
