//! Descriptors whose last close can block: after an nftables transaction the final close of
//! its socket waits for the kernel to free what was deleted (an RCU grace period, 6 to 12 ms
//! on a small VM). A plugin need not make the runtime wait for that. Such a descriptor is
//! kept open until the process exits; at exit, once the plugin's output is written, the
//! standard streams are pointed at /dev/null (the runtime sees them end at once) and a forked
//! child holds copies of the descriptors until this process is gone, then exits: the child
//! pays the wait.
//!
//! The child first lets a grace period pass on its own. The kernel frees a transaction's
//! garbage after one; a close that finds garbage still queued flushes it holding the netns's
//! nftables commit lock, so the next plugin's transaction (the next DEL on a busy node)
//! would wait for it. Closed after the grace period, the socket finds nothing to flush.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, Once};

static KEPT: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

/// Keeps a copy of `fd` open until the process exits, then hands it to a child. The
/// caller's own descriptor can be closed at once: that close is no longer the last one.
pub fn close_after_exit(fd: BorrowedFd<'_>) {
    let Ok(copy) = fd.try_clone_to_owned() else {
        // No copy: the caller's close stays the last one and simply waits.
        return;
    };
    if let Ok(mut kept) = KEPT.lock() {
        kept.push(copy);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a plain extern "C" function that takes no arguments.
        unsafe { libc::atexit(hand_off) };
    });
}

/// The exit handler. The process is exiting on its main thread; only system calls on
/// descriptors it owns happen here, and the child leaves with `_exit`.
extern "C" fn hand_off() {
    let kept = match KEPT.lock() {
        Ok(mut kept) => std::mem::take(&mut *kept),
        Err(_) => return,
    };
    if kept.is_empty() {
        return;
    }
    // SAFETY: open/dup2/close/pipe2/fork/setsid/read/_exit with valid arguments on
    // descriptors this process owns; the child runs no destructor and no exit handler.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for stdio in 0..=2 {
                libc::dup2(null, stdio);
            }
            libc::close(null);
        }
        let mut pipe = [0 as libc::c_int; 2];
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return;
        }
        let [read_end, write_end] = pipe;
        match libc::fork() {
            0 => {
                libc::setsid();
                libc::close(write_end);
                // EOF once the parent is gone (its write end closes with it).
                let mut byte = 0u8;
                libc::read(read_end, (&mut byte as *mut u8).cast(), 1);
                await_grace_period();
                libc::_exit(0)
            }
            -1 => {
                libc::close(read_end);
                libc::close(write_end);
            }
            _ => {
                libc::close(read_end);
                // Not the last references any more: these closes return at once.
                for fd in &kept {
                    libc::close(fd.as_raw_fd());
                }
                std::mem::forget(kept);
            }
        }
    }
}

/// Waits for an RCU grace period: `membarrier(MEMBARRIER_CMD_GLOBAL)` is `synchronize_rcu()`
/// and holds no lock. Where it is unavailable (nohz_full CPUs), a sleep longer than a
/// grace period on a busy small machine does.
fn await_grace_period() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers; nanosleep gets a valid timespec.
    unsafe {
        if libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0 {
            let wait = libc::timespec {
                tv_sec: 0,
                tv_nsec: 30_000_000,
            };
            libc::nanosleep(&wait, std::ptr::null_mut());
        }
    }
}
