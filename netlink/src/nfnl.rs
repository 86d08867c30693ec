//! NETLINK_NETFILTER requests portmap needs that [`crate::nft::Nft`] has no call for: reading
//! one set element with its data (so DEL and CHECK can tell whose a map element is without
//! listing the map), element changes that carry data and a comment, and deleting the UDP
//! conntrack entries of a destination port (what the reference does after adding rules, so
//! that a client's stale UDP flow is not kept away from the new mapping).
//!
//! Messages are built and read by hand: a netlink header, the `nfgenmsg`, attributes. The
//! element calls overlap with [`crate::nft::Nft`]'s and could merge into it.

use std::io;
use std::os::fd::AsFd;

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

const NFPROTO_INET: u8 = 1;

// nftables
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;

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

/// One change for [`NfSocket::apply`].
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub delete: bool,
    pub set: &'a str,
    pub key: &'a [u8],
    /// The value of a map element (adds only).
    pub data: Option<&'a [u8]>,
    /// The comment `nft` shows (adds only).
    pub comment: Option<&'a str>,
}

/// A set element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementInfo {
    pub data: Option<Vec<u8>>,
    pub comment: Option<String>,
}

/// A NETLINK_NETFILTER socket in the namespace of the thread that opened it.
pub struct NfSocket {
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

impl NfSocket {
    pub fn open() -> io::Result<NfSocket> {
        let mut sock = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        let _ = sock.set_ext_ack(true);
        Ok(NfSocket {
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

    /// Adds and deletes elements of inet-family sets in ONE transaction: all happen or
    /// none does. Adds are not exclusive (an element that exists with the same data
    /// stays; with other data the kernel answers EEXIST). A delete of an element that is
    /// not there fails the batch with ENOENT, as does any change to a set that does not
    /// exist.
    pub fn apply(&mut self, table: &str, changes: &[Change<'_>]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::new();
        let none = Attrs::default();
        self.message(
            &mut batch,
            NFNL_MSG_BATCH_BEGIN,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
            &none,
        );
        let mut seqs = Vec::with_capacity(changes.len());
        for change in changes {
            let mut key = Attrs::default();
            key.put(NFTA_DATA_VALUE, change.key);
            let mut elem = Attrs::default();
            elem.nest(NFTA_SET_ELEM_KEY, key);
            if let Some(data) = change.data {
                let mut value = Attrs::default();
                value.put(NFTA_DATA_VALUE, data);
                elem.nest(NFTA_SET_ELEM_DATA, value);
            }
            if let Some(comment) = change.comment {
                elem.put(NFTA_SET_ELEM_USERDATA, &encode_comment(comment));
            }
            let mut list = Attrs::default();
            list.nest(NFTA_LIST_ELEM, elem);
            let mut req = Attrs::default();
            req.put_str(NFTA_SET_ELEM_LIST_TABLE, table)
                .put_str(NFTA_SET_ELEM_LIST_SET, change.set)
                .nest(NFTA_SET_ELEM_LIST_ELEMENTS, list);
            let (kind, flags) = if change.delete {
                (NFT_MSG_DELSETELEM, NLM_F_ACK)
            } else {
                (NFT_MSG_NEWSETELEM, NLM_F_ACK | NLM_F_CREATE)
            };
            seqs.push(self.message(
                &mut batch,
                (NFNL_SUBSYS_NFTABLES << 8) | kind,
                flags,
                NFPROTO_INET,
                0,
                &req,
            ));
        }
        self.message(
            &mut batch,
            NFNL_MSG_BATCH_END,
            0,
            0,
            NFNL_SUBSYS_NFTABLES,
            &none,
        );
        self.sock.send(&batch, 0)?;
        self.receive_acks(&seqs)
    }

    /// Waits for the acknowledgement of every message in `seqs` (any order, any number to
    /// a datagram); the first error ends the wait.
    fn receive_acks(&mut self, seqs: &[u32]) -> io::Result<()> {
        let mut pending: Vec<u32> = seqs.to_vec();
        while !pending.is_empty() {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, 0)?;
            let mut data = self.buf.get(..n).unwrap_or_default();
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
                let Some(msg) = data.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                };
                data = data.get(align4(len)..).unwrap_or_default();
                if kind != NLMSG_ERROR || !pending.contains(&seq) {
                    continue;
                }
                let code = msg
                    .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if code < 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                pending.retain(|p| *p != seq);
            }
        }
        Ok(())
    }

    /// Closes the socket without making the caller wait for the kernel to free what its
    /// transactions deleted: the last close happens in a child after the process exits
    /// (see [`crate::close_after_exit`]).
    pub fn close_detached(self) {
        crate::close_after_exit(self.sock.as_fd());
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

    /// The element of `key` in an inet-family set, or `None` when it is not there (nor the
    /// set, nor the table).
    pub fn get_element(
        &mut self,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> io::Result<Option<ElementInfo>> {
        let mut value = Attrs::default();
        value.put(NFTA_DATA_VALUE, key);
        let mut elem = Attrs::default();
        elem.nest(NFTA_SET_ELEM_KEY, value);
        let mut list = Attrs::default();
        list.nest(NFTA_LIST_ELEM, elem);
        let mut req = Attrs::default();
        req.put_str(NFTA_SET_ELEM_LIST_TABLE, table)
            .put_str(NFTA_SET_ELEM_LIST_SET, set)
            .nest(NFTA_SET_ELEM_LIST_ELEMENTS, list);
        let seq = self.send(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM,
            NLM_F_ACK,
            NFPROTO_INET,
            &req,
        )?;
        let mut found = None;
        let result = self.receive(seq, |reply| {
            if found.is_none() {
                found = parse_element(reply.payload.get(NFGENMSG_LEN..).unwrap_or_default());
            }
        });
        match result {
            Ok(()) => Ok(found),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
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

/// The first element of a NEWSETELEM message's attributes.
fn parse_element(body: &[u8]) -> Option<ElementInfo> {
    let list = attr(body, NFTA_SET_ELEM_LIST_ELEMENTS)?;
    let elem = attr(list, NFTA_LIST_ELEM)?;
    let data = attr(elem, NFTA_SET_ELEM_DATA)
        .and_then(|d| attr(d, NFTA_DATA_VALUE))
        .map(<[u8]>::to_vec);
    let comment = attr(elem, NFTA_SET_ELEM_USERDATA).and_then(decode_comment);
    Some(ElementInfo { data, comment })
}

/// A comment as `nft` stores it: a libnftnl TLV holding the text and its NUL (the caller
/// keeps comments to 128 bytes).
fn encode_comment(comment: &str) -> Vec<u8> {
    let text = comment.as_bytes();
    let text = &text[..text.len().min(127)];
    let mut out = Vec::with_capacity(text.len() + 3);
    out.push(NFTNL_UDATA_SET_ELEM_COMMENT);
    out.push((text.len() + 1) as u8);
    out.extend_from_slice(text);
    out.push(0);
    out
}

/// The comment in libnftnl's element user data (TLVs of type, length, value).
fn decode_comment(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_SET_ELEM_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        udata = &rest[value.len()..];
    }
    None
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

    #[test]
    fn comments_encode_as_nft_does() {
        assert_eq!(encode_comment("ab"), [0, 3, b'a', b'b', 0]);
        assert_eq!(
            decode_comment(&encode_comment("x y")).as_deref(),
            Some("x y")
        );
    }

    #[test]
    fn comments_decode() {
        assert_eq!(
            decode_comment(&[0, 4, b'a', b'b', b'c', 0]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            decode_comment(&[1, 1, 9, 0, 3, b'x', b'y', 0]).as_deref(),
            Some("xy")
        );
        assert_eq!(decode_comment(&[0, 9, b'a']), None);
    }
}
