//! Conntrack over NETLINK_NETFILTER: deleting the UDP conntrack entries of a destination port
//! (what the reference portmap does after adding rules, so that a client's stale UDP flow is
//! not kept away from the new mapping). nftables elements are [`crate::nft::Nft`]'s.
//!
//! Messages are built and read by hand: a netlink header, the `nfgenmsg`, attributes.

use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

// conntrack
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ID: u16 = 12;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
const CTA_FILTER_F_CTA_PROTO_NUM: u32 = 1 << 3;
const CTA_FILTER_F_CTA_PROTO_DST_PORT: u32 = 1 << 5;

/// A NETLINK_NETFILTER socket for conntrack, in the namespace of the thread that opened it.
pub struct Conntrack {
    sock: netlink_sys::Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Attributes being written.
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    #[cfg(test)]
    fn put_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v)
    }

    fn nest(&mut self, kind: u16, inner: Attrs) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.0)
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Walks the attributes of a buffer: (type without flags, value).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]));
        let kind = u16::from_ne_bytes([*buf.get(2)?, *buf.get(3)?]) & NLA_TYPE_MASK;
        let value = buf.get(4..len)?;
        buf = buf.get(align4(len)..).unwrap_or_default();
        Some((kind, value))
    })
}

fn attr(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// One message of a reply: its type and what follows the netlink header.
struct Reply<'a> {
    kind: u16,
    payload: &'a [u8],
}

impl Conntrack {
    pub fn open() -> io::Result<Conntrack> {
        let mut sock = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        let _ = sock.set_ext_ack(true);
        Ok(Conntrack {
            sock,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Appends one message to `out` under the next sequence number; returns that number.
    fn message(
        &mut self,
        out: &mut Vec<u8>,
        kind: u16,
        flags: u16,
        family: u8,
        res_id: u16,
        attrs: &Attrs,
    ) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.0.len();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&[family, 0]);
        out.extend_from_slice(&res_id.to_be_bytes());
        out.extend_from_slice(&attrs.0);
        out.resize(align4(out.len()), 0);
        self.seq
    }

    fn send(&mut self, kind: u16, flags: u16, family: u8, attrs: &Attrs) -> io::Result<u32> {
        let mut msg = Vec::new();
        let seq = self.message(&mut msg, kind, flags, family, 0, attrs);
        self.sock.send(&msg, 0)?;
        Ok(seq)
    }

    /// Reads the answer to request `seq` until its ACK, error or end of dump, handing each
    /// data message to `each`. A negative errno from the kernel is an `io::Error`.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(Reply<'_>)) -> io::Result<()> {
        loop {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, 0)?;
            let mut data = self.buf.get(..n).unwrap_or_default();
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let msg_seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                let Some(msg) = data.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                };
                data = data.get(align4(len)..).unwrap_or_default();
                if msg_seq != seq {
                    continue;
                }
                let payload = &msg[NLMSG_HDRLEN..];
                match kind {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        return if code < 0 {
                            Err(io::Error::from_raw_os_error(-code))
                        } else {
                            Ok(())
                        };
                    }
                    _ => each(Reply { kind, payload }),
                }
            }
        }
    }

    /// Deletes the conntrack entries of `family` (`AF_INET`, `AF_INET6`) whose original
    /// direction is UDP to one of the destination `ports`; returns how many went. One dump
    /// whatever the number of ports: the kernel walks its whole (global) conntrack table for
    /// a dump, ~4 ms with 262,144 buckets. It is asked to filter (Linux 5.8+) by protocol,
    /// and by port when there is one; what comes back is checked again here, so an older
    /// kernel that ignores the filter costs a longer dump, never a wrong delete.
    pub fn delete_udp_conntrack(&mut self, family: u8, ports: &[u16]) -> io::Result<usize> {
        if ports.is_empty() {
            return Ok(0);
        }
        let single = match ports {
            [port] => Some(*port),
            _ => None,
        };
        let mut proto = Attrs::default();
        proto.put(CTA_PROTO_NUM, &[17]);
        let mut flags = CTA_FILTER_F_CTA_PROTO_NUM;
        if let Some(port) = single {
            proto.put(CTA_PROTO_DST_PORT, &port.to_be_bytes());
            flags |= CTA_FILTER_F_CTA_PROTO_DST_PORT;
        }
        let mut tuple = Attrs::default();
        tuple.nest(CTA_TUPLE_PROTO, proto);
        let mut filter = Attrs::default();
        filter
            .put(CTA_FILTER_ORIG_FLAGS, &flags.to_ne_bytes())
            .put(CTA_FILTER_REPLY_FLAGS, &0u32.to_ne_bytes());
        let mut req = Attrs::default();
        req.nest(CTA_TUPLE_ORIG, tuple).nest(CTA_FILTER, filter);
        let seq = self.send(
            (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
            NLM_F_DUMP,
            family,
            &req,
        )?;
        // (original tuple as sent, id) of each matching entry.
        let mut victims: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        self.receive(seq, |reply| {
            if reply.kind & 0xff != 0 {
                return; // not IPCTNL_MSG_CT_NEW
            }
            let body = reply.payload.get(NFGENMSG_LEN..).unwrap_or_default();
            let Some(orig) = attr(body, CTA_TUPLE_ORIG) else {
                return;
            };
            let proto = attr(orig, CTA_TUPLE_PROTO);
            let num = proto.and_then(|p| attr(p, CTA_PROTO_NUM));
            let dport = proto.and_then(|p| attr(p, CTA_PROTO_DST_PORT));
            let dport = dport
                .and_then(|p| <[u8; 2]>::try_from(p).ok())
                .map(u16::from_be_bytes);
            if num == Some(&[17]) && dport.is_some_and(|p| ports.contains(&p)) {
                victims.push((orig.to_vec(), attr(body, CTA_ID).map(<[u8]>::to_vec)));
            }
        })?;
        let mut deleted = 0;
        for (orig, id) in victims {
            let mut req = Attrs::default();
            req.put(CTA_TUPLE_ORIG | NLA_F_NESTED, &orig);
            if let Some(id) = &id {
                req.put(CTA_ID, id);
            }
            let seq = self.send(
                (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
                NLM_F_ACK,
                family,
                &req,
            )?;
            match self.receive(seq, |_| {}) {
                Ok(()) => deleted += 1,
                // Expired or replaced in between.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut inner = Attrs::default();
        inner.put(1, &[1, 2, 3]).put_str(2, "ab");
        let mut outer = Attrs::default();
        outer.nest(7, inner).put(9, &[]);
        let all: Vec<(u16, Vec<u8>)> = attrs(&outer.0).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, 7);
        assert_eq!(all[1], (9, vec![]));
        assert_eq!(attr(&all[0].1, 1), Some(&[1u8, 2, 3][..]));
        assert_eq!(attr(&all[0].1, 2), Some(&b"ab\0"[..]));
        assert_eq!(attr(&all[0].1, 3), None);
        // Truncated input ends the walk instead of panicking.
        assert_eq!(attrs(&outer.0[..5]).count(), 0);
    }
}
