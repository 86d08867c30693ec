//! Test helpers: run kernel tests in a private network namespace, never the host's.

use nix::sched::CloneFlags;

/// Whether kernel tests can run (root), by the tests' one skip policy.
pub(crate) fn skip_unless_root() -> bool {
    test_requires::root()
}

/// Runs `f` on a fresh thread that first moves into a new, empty network namespace, so the
/// test never touches the machine's own interfaces. The namespace dies with the thread.
pub(crate) fn in_new_netns<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    if !skip_unless_root() {
        return None;
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
                f()
            })
            .join()
            .map_err(std::panic::resume_unwind)
            .ok()
    })
}

/// A fresh namespace and a socket inside it: the "host" of a test, so the test never
/// touches the machine's own. `None` (skip) without root.
pub(crate) fn sandbox() -> Option<(crate::NetNs, crate::Netlink)> {
    if !skip_unless_root() {
        return None;
    }
    let ns = crate::NetNs::new_unnamed().expect("new netns");
    let nl = crate::Netlink::in_netns(&ns).expect("netlink socket in the new netns");
    Some((ns, nl))
}

/// Polls `f` every 20 ms for up to 3 s until it returns true (link state changes go
/// through the kernel's linkwatch, which may defer them by up to a second).
pub(crate) fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..150 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}
