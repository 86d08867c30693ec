//! The two link attributes cni-netlink does not offer yet: the all-multicast flag and the
//! transmit queue length, through the `SIOC[GS]IF{FLAGS,TXQLEN}` ioctls on a socket opened
//! inside the container's netns (a socket acts in the netns it was created in, whichever
//! thread uses it).
//!
//! TODO(netlink): move these into cni-netlink as `Netlink::set_allmulti` /
//! `Netlink::set_txqlen` (`IFF_ALLMULTI` in the header flags, `IFLA_TXQLEN`) and `Link::txqlen`.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use cni_netlink::NetNs;

const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const SIOCGIFTXQLEN: libc::c_ulong = 0x8942;
const SIOCSIFTXQLEN: libc::c_ulong = 0x8943;
/// `IFF_ALLMULTI`: receive all multicast packets.
pub const IFF_ALLMULTI: u32 = libc::IFF_ALLMULTI as u32;

/// `struct ifreq`: the name and a union, of which we use an int or a short.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    value: IfReqValue,
}

#[repr(C)]
union IfReqValue {
    int: c_int,
    flags: libc::c_short,
    /// The union's real size (`struct sockaddr` / `struct ifmap` are the largest members).
    _pad: [u8; 24],
}

/// A datagram socket in a given netns, to address its links by name.
pub struct IfSocket {
    fd: OwnedFd,
}

impl IfSocket {
    /// Opens the socket inside `ns`.
    pub fn in_netns(ns: &NetNs) -> io::Result<IfSocket> {
        ns.run(IfSocket::here)
            .map_err(|e| io::Error::other(e.to_string()))?
    }

    fn here() -> io::Result<IfSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor nobody else owns.
        Ok(IfSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn request(&self, ifname: &str, op: libc::c_ulong, req: &mut IfReq) -> io::Result<()> {
        if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {ifname:?}"),
            ));
        }
        for (dst, src) in req.name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: req is a properly sized, initialized struct ifreq with a NUL-terminated
        // name; the kernel reads and writes only within it.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), op as _, req as *mut IfReq) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn blank() -> IfReq {
        IfReq {
            name: [0; libc::IFNAMSIZ],
            value: IfReqValue { _pad: [0; 24] },
        }
    }

    /// The link's `IFF_*` flags (the low 16 bits, which hold `IFF_ALLMULTI`).
    pub fn flags(&self, ifname: &str) -> io::Result<u32> {
        let mut req = Self::blank();
        self.request(ifname, SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        Ok(u32::from(unsafe { req.value.flags } as u16))
    }

    /// Whether the link receives all multicast packets.
    pub fn allmulti(&self, ifname: &str) -> io::Result<bool> {
        Ok(self.flags(ifname)? & IFF_ALLMULTI != 0)
    }

    /// `ip link set DEV allmulticast on|off`.
    pub fn set_allmulti(&self, ifname: &str, on: bool) -> io::Result<()> {
        let flags = self.flags(ifname)?;
        let flags = if on {
            flags | IFF_ALLMULTI
        } else {
            flags & !IFF_ALLMULTI
        };
        let mut req = Self::blank();
        req.value.flags = flags as u16 as libc::c_short;
        self.request(ifname, SIOCSIFFLAGS, &mut req)
    }

    /// The transmit queue length.
    pub fn txqlen(&self, ifname: &str) -> io::Result<u32> {
        let mut req = Self::blank();
        self.request(ifname, SIOCGIFTXQLEN, &mut req)?;
        // SAFETY: SIOCGIFTXQLEN filled the int member.
        let len = unsafe { req.value.int };
        u32::try_from(len).map_err(|_| io::Error::other(format!("negative txqlen {len}")))
    }

    /// `ip link set DEV txqueuelen LEN`.
    pub fn set_txqlen(&self, ifname: &str, len: u32) -> io::Result<()> {
        let mut req = Self::blank();
        req.value.int = c_int::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("txqlen {len} too large"),
            )
        })?;
        self.request(ifname, SIOCSIFTXQLEN, &mut req)
    }
}
