//! `Netlink`: an rtnetlink socket bound to one network namespace, with typed operations
//! (links, addresses, routes) implemented in their own modules.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::error::Result;
use crate::netns::NetNs;
use crate::socket::Socket;

/// A synchronous rtnetlink socket. Every operation acts in the namespace the socket was
/// opened in, whichever thread calls it.
pub struct Netlink {
    socket: Socket<RouteNetlinkMessage>,
}

impl Netlink {
    /// Opens a socket in the calling thread's netns (the host's, for a plugin's main
    /// thread).
    pub fn host() -> Result<Netlink> {
        Ok(Netlink {
            socket: Socket::open(NETLINK_ROUTE)?,
        })
    }

    /// Opens a socket inside `ns` ([`NetNs::open_inside`]). The socket stays in `ns` and
    /// can be used from any thread.
    pub fn in_netns(ns: &NetNs) -> Result<Netlink> {
        ns.open_inside(Netlink::host)?
    }

    /// Opens a socket inside `ns` and runs `f` there, in the same thread trip: `f` may do
    /// anything that must happen inside the namespace (sysctls with `ns = None`), with the
    /// new socket at hand. Returns the socket, still usable from any thread, and what `f`
    /// returned. One thread instead of one per step.
    pub fn in_netns_with<T, F>(ns: &NetNs, f: F) -> Result<(Netlink, T)>
    where
        F: FnOnce(&mut Netlink) -> Result<T> + Send,
        T: Send,
    {
        ns.run(|| {
            let mut nl = Netlink::host()?;
            let value = f(&mut nl)?;
            Ok((nl, value))
        })?
    }

    /// Sends a request and waits for its ACK; returns what the kernel answered before it.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.socket.request(msg, flags)
    }

    /// The socket's descriptor, for a request sent by a forked child.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.raw_fd()
    }

    /// Runs a dump, retrying if it is interrupted by concurrent changes.
    pub(crate) fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        self.socket.dump(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{in_new_netns, skip_unless_root};

    #[test]
    fn sockets_act_in_the_netns_they_were_opened_in() {
        if !skip_unless_root() {
            return;
        }
        let (a, b) = (NetNs::new_unnamed().unwrap(), NetNs::new_unnamed().unwrap());
        // Opened from this thread, which stays in its own netns throughout.
        let mut in_a = Netlink::in_netns(&a).unwrap();
        let mut in_b = Netlink::in_netns(&b).unwrap();
        in_a.create_link_of_kind("br-a", "bridge").unwrap();
        assert!(in_a.get_link("br-a").unwrap().is_some());
        assert!(in_b.get_link("br-a").unwrap().is_none());
        assert_eq!(in_b.list_links().unwrap().len(), 1);
        // Usable from another thread too.
        std::thread::spawn(move || {
            in_b.set_link_up("lo").unwrap();
            assert!(in_b.get_link("lo").unwrap().unwrap().is_up());
        })
        .join()
        .unwrap();
        assert!(!in_a.get_link("lo").unwrap().unwrap().is_up());
    }

    #[test]
    fn dumps_span_many_datagrams() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            for i in 0..100 {
                nl.create_link_of_kind(&format!("br{i}"), "bridge").unwrap();
            }
            let links = nl.list_links().unwrap();
            assert_eq!(links.len(), 101);
            for i in 0..100 {
                let name = format!("br{i}");
                assert!(links.iter().any(|l| l.name == name), "{name} missing");
            }
        });
    }

    #[test]
    fn in_netns_with_runs_inside_and_returns_the_socket() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::new_unnamed().unwrap();
        let caller = std::thread::current().id();
        let (mut nl, (thread, inside)) = Netlink::in_netns_with(&ns, |nl| {
            nl.create_link_of_kind("br0", "bridge")?;
            crate::set_sysctl(None, "ipv4/conf/br0/forwarding", "1")?;
            Ok((std::thread::current().id(), ns.is_current()?))
        })
        .unwrap();
        assert_ne!(thread, caller);
        assert!(inside);
        assert!(nl.get_link("br0").unwrap().is_some());
        assert_eq!(
            crate::get_sysctl(Some(&ns), "ipv4/conf/br0/forwarding").unwrap(),
            "1"
        );
        // An error inside comes out as is.
        let err = Netlink::in_netns_with(&ns, |nl| nl.create_link_of_kind("br0", "bridge"))
            .err()
            .unwrap();
        assert!(err.is_exists(), "{err:?}");
    }
}
