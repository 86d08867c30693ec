//! Work a plugin need not make the runtime wait for, done by a child once the plugin has
//! exited: at exit, once the plugin's output is written, the standard streams are pointed at
//! /dev/null (the runtime sees them end at once) and a child, the heir, waits until this
//! process is gone, then pays the waits.
//!
//! - Requests to send ([`send_after_exit`]): deleting a link blocks its sender while the
//!   kernel unregisters it (RCU grace periods, 10 to 30 ms on a small VM). Sent after the
//!   plugin is gone, the unregistration also stops competing with the plugin's last steps
//!   for the CPUs and the locks.
//! - Descriptors whose last close can block ([`close_after_exit`]): after an nftables
//!   transaction the final close of its socket waits for the kernel to free what was
//!   deleted. The child first lets a grace period pass on its own. The kernel frees a
//!   transaction's garbage after one; a close that finds garbage still queued flushes it
//!   holding the netns's nftables commit lock, so the next plugin's transaction (the next
//!   DEL on a busy node) would wait for it. Closed after the grace period, the socket finds
//!   nothing to flush.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, Once};

/// What the child does once this process is gone: send each request (in order), then let
/// a grace period pass and close the kept descriptors.
#[derive(Default)]
struct Handoff {
    sends: Vec<(OwnedFd, Vec<u8>)>,
    kept: Vec<OwnedFd>,
}

static HANDOFF: Mutex<Handoff> = Mutex::new(Handoff {
    sends: Vec::new(),
    kept: Vec::new(),
});
static REGISTER: Once = Once::new();

/// Keeps a copy of `fd` open until the process exits, then hands it to a child. The
/// caller's own descriptor can be closed at once: that close is no longer the last one.
pub fn close_after_exit(fd: BorrowedFd<'_>) {
    let Ok(copy) = fd.try_clone_to_owned() else {
        // No copy: the caller's close stays the last one and simply waits.
        return;
    };
    if let Ok(mut handoff) = HANDOFF.lock() {
        handoff.kept.push(copy);
    }
    register();
}

/// Sends `message` on (a copy of) socket `fd` once this process has exited, from the child.
/// For requests whose answer nobody needs (sent without `NLM_F_ACK`). Returns false, having
/// arranged nothing, when no copy of `fd` can be made: the caller then sends it itself.
pub(crate) fn send_after_exit(fd: BorrowedFd<'_>, message: Vec<u8>) -> bool {
    let Ok(copy) = fd.try_clone_to_owned() else {
        return false;
    };
    match HANDOFF.lock() {
        Ok(mut handoff) => handoff.sends.push((copy, message)),
        Err(_) => return false,
    }
    register();
    true
}

fn register() {
    REGISTER.call_once(|| {
        // SAFETY: registers a plain extern "C" function that takes no arguments.
        unsafe { libc::atexit(hand_off) };
    });
}

/// The exit handler. The process is exiting on its main thread; only system calls on
/// descriptors and memory it owns happen here. Should no child be had, the requests are
/// sent here, waiting.
extern "C" fn hand_off() {
    let handoff = match HANDOFF.lock() {
        Ok(mut handoff) => std::mem::take(&mut *handoff),
        Err(_) => return,
    };
    if handoff.sends.is_empty() && handoff.kept.is_empty() {
        return;
    }
    // SAFETY: open/dup2/close on descriptors this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for stdio in 0..=2 {
                libc::dup2(null, stdio);
            }
            libc::close(null);
        }
    }
    // Never freed: the child reads it after this process is gone.
    let handoff: &'static Handoff = Box::leak(Box::new(handoff));
    if !spawn_heir(handoff) {
        send_all(&handoff.sends);
        return;
    }
    // Not the last references any more: these closes return at once.
    for fd in handoff.sends.iter().map(|(fd, _)| fd).chain(&handoff.kept) {
        // SAFETY: closes this process's copy; the child has its own descriptor table.
        unsafe { libc::close(fd.as_raw_fd()) };
    }
}

/// What the heir gets: the handoff and a pipe whose write end only this process keeps.
struct Heir {
    handoff: &'static Handoff,
    read_end: libc::c_int,
    write_end: libc::c_int,
}

/// Starts the heir: a process sharing this one's memory (`CLONE_VM`: nothing is copied,
/// which a fork of a whole plugin would), with its own descriptor table, on a stack of
/// its own that is never freed. Returns false, having started nothing, if it cannot.
fn spawn_heir(handoff: &'static Handoff) -> bool {
    const STACK: usize = 64 * 1024;
    let mut pipe: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 fills the array; mmap asks for fresh anonymous memory; clone gets a
    // function that only makes system calls, the top of that memory as its stack, and an
    // argument that lives forever (leaked).
    unsafe {
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return false;
        }
        let [read_end, write_end] = pipe;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        let heir = Box::leak(Box::new(Heir {
            handoff,
            read_end,
            write_end,
        }));
        let pid = if stack == libc::MAP_FAILED {
            -1
        } else {
            libc::clone(
                heir_main,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                (heir as *mut Heir).cast(),
            )
        };
        libc::close(read_end);
        if pid < 0 {
            libc::close(write_end);
            return false;
        }
        // The write end stays open until this process is gone.
        true
    }
}

/// The heir: waits until the plugin has exited, sends the requests, lets a grace period
/// pass, closes the kept descriptors (by exiting). System calls only: it shares the
/// memory of a process that is exiting.
extern "C" fn heir_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the leaked Heir of spawn_heir; only system calls follow.
    unsafe {
        let heir = &*arg.cast::<Heir>();
        libc::setsid();
        // Its own copy of the write end would keep the pipe open.
        libc::close(heir.write_end);
        // EOF once the parent is gone (its write end closes with it).
        let mut byte = 0u8;
        libc::read(heir.read_end, (&mut byte as *mut u8).cast(), 1);
        send_all(&heir.handoff.sends);
        await_grace_period();
        libc::_exit(0)
    }
}

/// Sends each request on its socket; the kernel handles a netlink request within the send.
fn send_all(sends: &[(OwnedFd, Vec<u8>)]) {
    for (fd, message) in sends {
        // SAFETY: a valid descriptor and a buffer of the given length.
        unsafe { libc::send(fd.as_raw_fd(), message.as_ptr().cast(), message.len(), 0) };
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
