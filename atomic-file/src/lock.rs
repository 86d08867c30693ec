//! File locks (flock), exclusive or shared, waited for a bounded time: a holder that hangs
//! must turn into a clear "try again later", not a runtime call that never returns.

use std::fs::{File, TryLockError};
use std::io;
use std::sync::mpsc;
use std::time::Duration;

/// Takes the exclusive lock of `file`, waiting at most `timeout` for another holder; a wait
/// past it fails with [`io::ErrorKind::TimedOut`].
///
/// The wait blocks in flock on a second descriptor of the same open file (the lock belongs to
/// the open file, so it is `file`'s when that returns) on a helper thread, so that it can
/// time out. After a timeout the helper stays blocked until the process exits, and takes the
/// lock if the holder lets go before then: callers give up on the file after a timeout (a
/// plugin exits with its error).
pub fn lock_within(file: &File, timeout: Duration) -> io::Result<()> {
    wait_for(file, timeout, File::try_lock, File::lock)
}

/// [`lock_within`] for a shared lock: held by any number of processes at once, and by none
/// of them while someone holds the exclusive one.
pub fn lock_shared_within(file: &File, timeout: Duration) -> io::Result<()> {
    wait_for(file, timeout, File::try_lock_shared, File::lock_shared)
}

fn wait_for(
    file: &File,
    timeout: Duration,
    try_lock: fn(&File) -> Result<(), TryLockError>,
    lock: fn(&File) -> io::Result<()>,
) -> io::Result<()> {
    match try_lock(file) {
        Ok(()) => return Ok(()),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(e),
    }
    let dup = file.try_clone()?;
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(lock(&dup));
    });
    match wait.recv_timeout(timeout) {
        Ok(locked) => locked,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "lock held by another process for over {} s",
                timeout.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> File {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn a_free_lock_is_taken_and_a_held_one_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open(&path);
        lock_within(&holder, Duration::from_secs(1)).unwrap();
        let waiter = open(&path);
        let err = lock_within(&waiter, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    #[test]
    fn a_lock_let_go_while_waiting_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open(&path);
        lock_within(&holder, Duration::from_secs(1)).unwrap();
        let waiter = open(&path);
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(holder);
        });
        lock_within(&waiter, Duration::from_secs(30)).unwrap();
        release.join().unwrap();
        // Held through the waiter's open file now.
        let third = open(&path);
        assert!(matches!(third.try_lock(), Err(TryLockError::WouldBlock)));
    }

    #[test]
    fn shared_locks_coexist_and_keep_the_exclusive_one_out() {
        // Two files: a waiter that timed out keeps waiting on its helper thread, and would
        // take the lock of the first file once the shared holders let go.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let first = open(&a);
        let second = open(&a);
        lock_shared_within(&first, Duration::from_secs(1)).unwrap();
        lock_shared_within(&second, Duration::from_secs(1)).unwrap();
        let exclusive = open(&a);
        let err = lock_within(&exclusive, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");

        let holder = open(&b);
        lock_within(&holder, Duration::from_secs(1)).unwrap();
        let shared = open(&b);
        let err = lock_shared_within(&shared, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }
}
