//! The UDP fast path: the common query (one question, A, AAAA or PTR, class IN, opcode QUERY,
//! no EDNS or a plain OPT record) for a name of the asker's one network, answered straight
//! from the snapshot into the caller's buffer, without hickory's parse and encode and without
//! allocating.
//!
//! It answers only what it can answer exactly as [`Engine::handle`] does, byte for byte (same
//! header bits, RCODE, TTL, OPT record, and the same name compression hickory's encoder
//! applies: the first owner name written in full, the following ones as pointers to it);
//! everything else (unknown names, NXDOMAIN, forwards, several networks in the asker's view,
//! a reply that would not fit the client's size, anything unusual in the message) returns
//! `None` and takes the general path, which stays the reference.

use std::net::IpAddr;

use super::engine::{Engine, MAX_MESSAGE, OUR_UDP_PAYLOAD, reverse_ip};
use super::records::{NetView, Snapshot};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// hickory's encoder keeps at most this many compression candidates per message...
const COMPRESSION_CANDIDATES: usize = 64;
/// ...and compresses at most this many names per message.
const COMPRESSED_NAMES: usize = 120;
/// Addresses of one family a fast answer carries at most (shuffled on the stack).
const MAX_ADDRS: usize = 64;

/// Reusable memory of one answering thread: the compression candidates of the message being
/// written. Cleared per message; grows once, then never allocates again.
#[derive(Debug, Default)]
pub struct Scratch {
    arena: Vec<u8>,
    /// (offset in the message, start in `arena`, length).
    candidates: Vec<(usize, usize, usize)>,
}

/// The parts of a query the fast path answers.
struct Query<'q> {
    /// The question's name as received (labels, without the terminating zero).
    name: &'q [u8],
    /// The question section as received (name, type, class).
    question: &'q [u8],
    qtype: u16,
    /// The client's OPT record was there (we then answer with ours).
    edns: bool,
    /// The largest reply the client takes.
    max_payload: usize,
}

impl Engine {
    /// The reply to `bytes` from `src` when the fast path can give it, written at the start
    /// of `out`; its length. `None`: take [`Engine::handle`]. Never panics, whatever the bytes.
    pub fn answer_fast(
        &self,
        snap: &Snapshot,
        bytes: &[u8],
        src: IpAddr,
        out: &mut [u8],
        scratch: &mut Scratch,
    ) -> Option<usize> {
        let mut key = [0u8; 256];
        let (query, name) = parse(bytes, &mut key)?;
        let net = snap.sole_view(src)?;
        let header: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        scratch.arena.clear();
        scratch.candidates.clear();
        let mut w = Writer {
            out,
            len: 0,
            limit: query.max_payload.min(MAX_MESSAGE),
            scratch,
            compressed_names: 0,
        };
        // ID; QR, opcode QUERY, AA, RD as asked; RA, CD as asked, NOERROR.
        w.put(&[
            header[0],
            header[1],
            0x84 | (header[2] & 0x01),
            0x80 | (header[3] & 0x10),
        ])?;
        w.put(&[0, 1, 0, 0, 0, 0, 0, u8::from(query.edns)])?;
        let question_at = w.len;
        w.put(query.question)?;
        w.store(question_at, query.question);
        let answers = match query.qtype {
            TYPE_A | TYPE_AAAA => {
                // A reverse name is answered with its PTR whatever the type: not here.
                if reverse_ip(name).is_some() {
                    return None;
                }
                self.write_addresses(&mut w, net, name, &query)?
            }
            TYPE_PTR => self.write_ptr(&mut w, net, reverse_ip(name)?, &query)?,
            _ => return None,
        };
        if query.edns {
            // Our OPT record: root owner (still counted as a name by hickory), our UDP size,
            // extended RCODE 0, version 0, no flags, no options.
            w.name(&[])?;
            let [hi, lo] = OUR_UDP_PAYLOAD.to_be_bytes();
            w.put(&[0, TYPE_OPT as u8, hi, lo, 0, 0, 0, 0, 0, 0])?;
        }
        let count = u16::try_from(answers).ok()?.to_be_bytes();
        w.out.get_mut(6..8)?.copy_from_slice(&count);
        Some(w.len)
    }

    /// A/AAAA of a name of `net`; `None` when it is not one (NXDOMAIN or a forward).
    fn write_addresses(
        &self,
        w: &mut Writer<'_, '_>,
        net: &NetView,
        name: &str,
        query: &Query<'_>,
    ) -> Option<usize> {
        let found = net.lookup(name)?;
        let mut picked = [[0u8; 16]; MAX_ADDRS];
        let mut n = 0;
        for ip in found {
            let bytes = match (ip, query.qtype) {
                (IpAddr::V4(v4), TYPE_A) => &v4.octets()[..],
                (IpAddr::V6(v6), TYPE_AAAA) => &v6.octets()[..],
                _ => continue,
            };
            picked
                .get_mut(n)?
                .get_mut(..bytes.len())?
                .copy_from_slice(bytes);
            n += 1;
        }
        let picked = picked.get_mut(..n)?;
        // Every answer in its own order, as the general path does.
        fastrand::shuffle(picked);
        let rdlen: usize = if query.qtype == TYPE_A { 4 } else { 16 };
        for addr in picked.iter() {
            w.name(query.name)?;
            w.record_head(query.qtype, self.ttl)?;
            w.put(&(rdlen as u16).to_be_bytes())?;
            w.put(addr.get(..rdlen)?)?;
        }
        Some(n)
    }

    /// PTR of an address of `net`; `None` when it has no name there.
    fn write_ptr(
        &self,
        w: &mut Writer<'_, '_>,
        net: &NetView,
        ip: IpAddr,
        query: &Query<'_>,
    ) -> Option<usize> {
        let mut count = 0;
        for (i, target) in net.ptr(ip).enumerate() {
            // The same target twice is answered once (the first).
            if net.ptr(ip).take(i).any(|t| t == target) {
                continue;
            }
            let mut wire = [0u8; 256];
            let wire = target_wire(target, &mut wire)?;
            w.name(query.name)?;
            w.record_head(TYPE_PTR, self.ttl)?;
            let rdlen_at = w.len;
            w.put(&[0, 0])?;
            w.name(wire)?;
            let rdlen = u16::try_from(w.len - rdlen_at - 2).ok()?;
            w.out
                .get_mut(rdlen_at..rdlen_at + 2)?
                .copy_from_slice(&rdlen.to_be_bytes());
            count += 1;
        }
        (count > 0).then_some(count)
    }
}

/// Reads the query the fast path takes; the lowercase name text (as the general path's
/// lookups use it) goes to `key`. `None` for anything else.
fn parse<'q, 'k>(bytes: &'q [u8], key: &'k mut [u8; 256]) -> Option<(Query<'q>, &'k str)> {
    if bytes.len() < 12 || bytes.len() > MAX_MESSAGE {
        return None;
    }
    let u16_at = |at: usize| -> Option<u16> {
        let b = bytes.get(at..at + 2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let flags = *bytes.get(2)?;
    let flags2 = *bytes.get(3)?;
    // A query (not a response), opcode QUERY, not truncated; no RCODE or Z bit.
    if flags & 0xFA != 0 || flags2 & 0x4F != 0 {
        return None;
    }
    let additionals = u16_at(10)?;
    if u16_at(4)? != 1 || u16_at(6)? != 0 || u16_at(8)? != 0 || additionals > 1 {
        return None;
    }
    // The name: plain labels (no pointer), of printable bytes other than a dot.
    let mut at = 12;
    let mut key_len = 0;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = bytes.get(at + 1..at + 1 + len)?;
        if key_len > 0 {
            *key.get_mut(key_len)? = b'.';
            key_len += 1;
        }
        for &b in label {
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            *key.get_mut(key_len)? = b.to_ascii_lowercase();
            key_len += 1;
        }
        at += 1 + len;
    }
    // At most 255 bytes with the terminating zero.
    if at + 1 - 12 > 255 || key_len == 0 {
        return None;
    }
    let name = bytes.get(12..at)?;
    let qtype = u16_at(at + 1)?;
    if u16_at(at + 3)? != CLASS_IN {
        return None;
    }
    let question = bytes.get(12..at + 5)?;
    let mut end = at + 5;
    let mut max_payload = 512;
    if additionals == 1 {
        // A plain OPT record: root owner, version 0, no extended RCODE, no flags but DO,
        // no options.
        let opt: [u8; 11] = bytes.get(end..end + 11)?.try_into().ok()?;
        let [
            owner,
            t0,
            t1,
            size0,
            size1,
            ext_rcode,
            version,
            flags0,
            flags1,
            len0,
            len1,
        ] = opt;
        if owner != 0
            || u16::from_be_bytes([t0, t1]) != TYPE_OPT
            || ext_rcode != 0
            || version != 0
            || flags0 & 0x7F != 0
            || flags1 != 0
            || len0 != 0
            || len1 != 0
        {
            return None;
        }
        max_payload = usize::from(u16::from_be_bytes([size0, size1])).max(512);
        end += 11;
    }
    if end != bytes.len() {
        return None;
    }
    let name_text = std::str::from_utf8(key.get(..key_len)?).ok()?;
    Some((
        Query {
            name,
            question,
            qtype,
            edns: additionals == 1,
            max_payload,
        },
        name_text,
    ))
}

/// A PTR target (`web.dns.podman.`) in wire form without the terminating zero, when its
/// labels are the plain ones hickory's `Name::from_ascii` takes as they are (a letter, digit
/// or `_` first, then those and `-`; 1 to 63 bytes; at most 255 bytes in all). `None`
/// otherwise: escapes, wildcards, and names hickory would not take go the general path.
fn target_wire<'w>(target: &str, wire: &'w mut [u8; 256]) -> Option<&'w [u8]> {
    let text = target.strip_suffix('.')?;
    let mut len = 0;
    for label in text.split('.') {
        let bytes = label.as_bytes();
        let first = *bytes.first()?;
        if bytes.len() > 63
            || !(first.is_ascii_alphanumeric() || first == b'_')
            || !bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        *wire.get_mut(len)? = bytes.len() as u8;
        wire.get_mut(len + 1..len + 1 + bytes.len())?
            .copy_from_slice(bytes);
        len += 1 + bytes.len();
    }
    if len + 1 > 255 {
        return None;
    }
    wire.get(..len)
}

/// Writes a message as hickory's `BinEncoder` does, name compression included.
struct Writer<'o, 's> {
    out: &'o mut [u8],
    len: usize,
    /// The client's size: a reply that would pass it goes the general path (truncation).
    limit: usize,
    scratch: &'s mut Scratch,
    compressed_names: usize,
}

impl Writer<'_, '_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        if end > self.limit {
            return None;
        }
        self.out.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// A compression candidate: `content` at `at`.
    fn store(&mut self, at: usize, content: &[u8]) {
        if self.len < 0x3FFF && self.scratch.candidates.len() < COMPRESSION_CANDIDATES {
            let start = self.scratch.arena.len();
            self.scratch.arena.extend_from_slice(content);
            self.scratch.candidates.push((at, start, content.len()));
        }
    }

    /// Where `labels` were written already (the first candidate with these exact bytes).
    fn find(&self, labels: &[u8]) -> Option<usize> {
        self.scratch
            .candidates
            .iter()
            .find(|(_, start, len)| self.scratch.arena.get(*start..*start + *len) == Some(labels))
            .map(|(at, _, _)| *at)
    }

    /// A name (labels in wire form, no terminating zero), compressed as hickory does: each
    /// suffix, longest first, is looked up among the candidates, and stored as one until one
    /// is found, which is then written as a pointer.
    fn name(&mut self, labels: &[u8]) -> Option<()> {
        let start = self.len;
        self.put(labels)?;
        let compress = self.compressed_names < COMPRESSED_NAMES;
        if compress {
            self.compressed_names += 1;
        }
        let mut i = 0;
        while i < labels.len() {
            let suffix = labels.get(i..)?;
            if compress
                && let Some(at) = self.find(suffix)
                && at & 0xC000 == 0
            {
                self.len = start + i;
                return self.put(&(0xC000 | at as u16).to_be_bytes());
            }
            self.store(start + i, suffix);
            i += 1 + usize::from(*labels.get(i)?);
        }
        self.put(&[0])
    }

    /// Type, class IN and TTL of a record (its owner written before).
    fn record_head(&mut self, rtype: u16, ttl: u32) -> Option<()> {
        let [t0, t1] = rtype.to_be_bytes();
        let [c0, c1] = CLASS_IN.to_be_bytes();
        let [l0, l1, l2, l3] = ttl.to_be_bytes();
        self.put(&[t0, t1, c0, c1, l0, l1, l2, l3])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    use hickory_net::xfer::Protocol;
    use hickory_proto::op::{Message, Query as HQuery};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::server::Outcome;
    use crate::server::records::Records;
    use crate::store::Attachment;

    fn attachment(cid: &str, name: &str, aliases: &[&str], ips: &[&str]) -> Attachment {
        Attachment {
            container_id: cid.into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some(name.into()),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            gateways: vec!["10.1.0.1".parse().unwrap()],
        }
    }

    fn snapshot() -> Snapshot {
        let mut r = Records::default();
        let mut a = vec![
            attachment(
                "c1aaaaaaaaaaaaaa",
                "web",
                &["lb"],
                &["10.1.0.2/24", "fd01::2/64"],
            ),
            attachment("c2bbbbbbbbbbbbbb", "Api", &["lb", "lb2"], &["10.1.0.3/24"]),
            attachment("c4dddddddddddddd", "db", &["lb2"], &["10.1.0.4/24"]),
        ];
        // 40 containers under one alias: 40 answers pass 512 bytes.
        for k in 0..40 {
            a.push(attachment(
                &format!("m{k:015}"),
                &format!("many{k}"),
                &["many"],
                &[&format!("10.1.1.{}/16", k + 10)],
            ));
        }
        r.set_network("a", a);
        r.set_network("b", vec![attachment("c3", "other", &[], &["10.2.0.2/24"])]);
        // c5 is on c and d: its view holds both.
        r.set_network(
            "c",
            vec![attachment(
                "c5eeeeeeeeeeeeee",
                "multi",
                &[],
                &["10.3.0.2/24"],
            )],
        );
        r.set_network(
            "d",
            vec![attachment(
                "c5eeeeeeeeeeeeee",
                "multi",
                &[],
                &["10.4.0.2/24"],
            )],
        );
        r.snapshot()
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    /// `q` with a plain OPT record (UDP size `size`, DO bit as given).
    fn with_opt(mut q: Vec<u8>, size: u16, dnssec_ok: bool) -> Vec<u8> {
        q[11] += 1;
        let [hi, lo] = size.to_be_bytes();
        q.extend_from_slice(&[
            0,
            0,
            41,
            hi,
            lo,
            0,
            0,
            if dnssec_ok { 0x80 } else { 0 },
            0,
            0,
            0,
        ]);
        q
    }

    fn fast(snap: &Snapshot, src: &str, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; MAX_MESSAGE];
        let mut scratch = Scratch::default();
        let len = Engine::new(0).answer_fast(
            snap,
            bytes,
            src.parse().unwrap(),
            &mut out,
            &mut scratch,
        )?;
        out.truncate(len);
        Some(out)
    }

    fn slow(snap: &Snapshot, src: &str, bytes: &[u8]) -> Outcome {
        Engine::new(0).handle(
            snap,
            bytes,
            SocketAddr::new(src.parse().unwrap(), 5353),
            Protocol::Udp,
        )
    }

    fn slow_reply(snap: &Snapshot, src: &str, bytes: &[u8]) -> Vec<u8> {
        match slow(snap, src, bytes) {
            Outcome::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The fast answer is byte for byte one the general path gives (several addresses come
    /// out in any order: every order the general path gives over many tries).
    fn same_as_slow(snap: &Snapshot, src: &str, bytes: &[u8]) -> Vec<u8> {
        let f = fast(snap, src, bytes)
            .unwrap_or_else(|| panic!("no fast answer from {src} to {bytes:?}"));
        let slow: BTreeSet<Vec<u8>> = (0..200).map(|_| slow_reply(snap, src, bytes)).collect();
        assert!(
            slow.contains(&f),
            "fast {f:?}\nnot among the general path's {slow:?}"
        );
        f
    }

    #[test]
    fn answers_are_the_general_paths_byte_for_byte() {
        let snap = snapshot();
        let src = "10.1.0.9";
        for (name, qtype) in [
            ("web.", RecordType::A),
            ("web.dns.podman.", RecordType::A),
            ("web.dns.podman.", RecordType::AAAA),
            ("web.", RecordType::AAAA),
            ("api.", RecordType::A),
            ("c1aaaaaaaaaa.", RecordType::A),
            // A known name without an address of that type: NODATA.
            ("api.", RecordType::AAAA),
            ("2.0.1.10.in-addr.arpa.", RecordType::PTR),
            ("3.0.1.10.in-addr.arpa.", RecordType::PTR),
            (
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.d.f.ip6.arpa.",
                RecordType::PTR,
            ),
        ] {
            let q = query(name, qtype);
            same_as_slow(&snap, src, &q);
            same_as_slow(&snap, src, &with_opt(q.clone(), 1232, false));
            same_as_slow(&snap, src, &with_opt(q.clone(), 100, true));
            same_as_slow(&snap, src, &with_opt(q.clone(), 4096, false));
            // Without RD, with CD and AD: copied (CD) or not (AD) as the general path does.
            let mut q2 = q.clone();
            q2[2] &= !0x01;
            q2[3] |= 0x30;
            same_as_slow(&snap, src, &q2);
        }
        // Several addresses, every order.
        let q = query("lb.dns.podman.", RecordType::A);
        let orders: BTreeSet<Vec<u8>> = (0..200).map(|_| same_as_slow(&snap, src, &q)).collect();
        assert_eq!(orders.len(), 2, "both orders of lb's two addresses");
        let orders: BTreeSet<Vec<u8>> = (0..300)
            .map(|_| same_as_slow(&snap, src, &query("lb2.", RecordType::A)))
            .collect();
        assert_eq!(orders.len(), 2);
        // 40 answers fit with a large EDNS size, not in 512 bytes: the general path cuts.
        let q = query("many.", RecordType::A);
        assert!(fast(&snap, src, &q).is_none());
        let m = Message::from_vec(&fast(&snap, src, &with_opt(q, 4096, false)).unwrap()).unwrap();
        assert_eq!(m.answers.len(), 40);
    }

    #[test]
    fn the_case_of_the_question_is_kept() {
        let snap = snapshot();
        let q = query("WeB.DNS.podman.", RecordType::A);
        let f = same_as_slow(&snap, "10.1.0.9", &q);
        let m = Message::from_vec(&f).unwrap();
        assert_eq!(m.queries[0].name().to_ascii(), "WeB.DNS.podman.");
        assert_eq!(m.answers[0].name.to_ascii(), "WeB.DNS.podman.");
        assert_eq!(m.answers[0].data.to_string(), "10.1.0.2");
        assert!(m.metadata.authoritative && m.metadata.recursion_available);
        assert_eq!(m.metadata.id, 4242);
        // The PTR target is the container's name as the store keeps it (lowercase).
        let f = same_as_slow(
            &snap,
            "10.1.0.9",
            &query("3.0.1.10.IN-ADDR.arpa.", RecordType::PTR),
        );
        let m = Message::from_vec(&f).unwrap();
        assert_eq!(m.answers[0].data.to_string(), "api.dns.podman.");
    }

    #[test]
    fn what_the_fast_path_does_not_answer_falls_through() {
        let snap = snapshot();
        let src = "10.1.0.9";
        let none = |src: &str, q: &[u8]| assert_eq!(fast(&snap, src, q), None, "{q:?}");
        // Unknown names: NXDOMAIN under the domain, forwards elsewhere.
        none(src, &query("nope.dns.podman.", RecordType::A));
        none(src, &query("example.com.", RecordType::A));
        none(src, &query("99.0.1.10.in-addr.arpa.", RecordType::PTR));
        none(src, &query("1.1.1.1.in-addr.arpa.", RecordType::PTR));
        // A reverse name asked as A, a name asked as PTR, other types and classes.
        none(src, &query("2.0.1.10.in-addr.arpa.", RecordType::A));
        none(src, &query("web.", RecordType::PTR));
        none(src, &query("web.", RecordType::ANY));
        none(src, &query("web.", RecordType::MX));
        let mut q = query("web.", RecordType::A);
        let at = q.len() - 1;
        q[at] = 3; // class CH
        none(src, &q);
        // Strangers, another network's member, a container on two networks.
        none("192.168.7.7", &query("web.", RecordType::A));
        none("10.2.0.2", &query("web.", RecordType::A));
        none("10.3.0.2", &query("multi.", RecordType::A));
        assert!(matches!(
            slow(&snap, "10.3.0.2", &query("multi.", RecordType::A)),
            Outcome::Reply(_)
        ));
        // A member of c without a container there sees c alone: answered.
        same_as_slow(&snap, "10.3.0.77", &query("multi.", RecordType::A));
        // Header bits: a response, truncated, another opcode, an RCODE, Z.
        for (byte, bit) in [(2, 0x80), (2, 0x02), (2, 0x10), (3, 0x01), (3, 0x40)] {
            let mut q = query("web.", RecordType::A);
            q[byte] |= bit;
            none(src, &q);
        }
        // Counts: two questions, an answer, an authority, a non-OPT additional.
        let mut m = Message::query();
        m.add_query(HQuery::query(
            Name::from_ascii("web.").unwrap(),
            RecordType::A,
        ));
        m.add_query(HQuery::query(
            Name::from_ascii("api.").unwrap(),
            RecordType::A,
        ));
        none(src, &m.to_vec().unwrap());
        for count in [7, 9] {
            let mut q = query("web.", RecordType::A);
            q[count] = 1;
            none(src, &q);
        }
        // OPT records that are not plain: an option, version 1, an extended RCODE, and a
        // trailing byte.
        let q = with_opt(query("web.", RecordType::A), 1232, false);
        let mut o = q.clone();
        let l = o.len();
        o[l - 1] = 4;
        o.extend_from_slice(&[0, 10, 0, 0]);
        none(src, &o);
        let mut o = q.clone();
        o[l - 5] = 1;
        none(src, &o);
        let mut o = q.clone();
        o[l - 6] = 1;
        none(src, &o);
        let mut o = q.clone();
        o.push(0);
        none(src, &o);
        // A reply that does not fit the caller's buffer.
        let mut out = [0u8; 20];
        let q = query("web.", RecordType::A);
        assert_eq!(
            Engine::new(0).answer_fast(
                &snap,
                &q,
                src.parse().unwrap(),
                &mut out,
                &mut Scratch::default()
            ),
            None
        );
    }

    #[test]
    fn malformed_messages_fall_through_and_never_panic() {
        let snap = snapshot();
        let src = "10.1.0.9";
        let mut rng = fastrand::Rng::with_seed(11);
        let valid = [
            query("lb.dns.podman.", RecordType::A),
            with_opt(query("web.", RecordType::AAAA), 1232, true),
            query("2.0.1.10.in-addr.arpa.", RecordType::PTR),
        ];
        let mut answered = 0;
        for i in 0..30_000 {
            let bytes = if i % 3 == 0 {
                let len = rng.usize(0..80);
                (0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>()
            } else {
                let mut b = valid[i % valid.len()].clone();
                if rng.bool() {
                    b.truncate(rng.usize(0..=b.len()));
                }
                for _ in 0..rng.usize(0..3) {
                    if !b.is_empty() {
                        let at = rng.usize(0..b.len());
                        b[at] = rng.u8(..);
                    }
                }
                b
            };
            // Whatever the fast path answers, the general path answers the same (up to
            // the order of several addresses) and hickory reads it.
            if let Some(f) = fast(&snap, src, &bytes) {
                answered += 1;
                let fm = Message::from_vec(&f).expect("a fast answer parses");
                let sm = Message::from_vec(&slow_reply(&snap, src, &bytes)).unwrap();
                assert_eq!(fm.metadata, sm.metadata, "{bytes:?}");
                assert_eq!(fm.queries, sm.queries);
                let sorted = |m: &Message| {
                    let mut v: Vec<String> = m.answers.iter().map(|r| r.to_string()).collect();
                    v.sort();
                    v
                };
                assert_eq!(sorted(&fm), sorted(&sm), "{bytes:?}");
                assert_eq!(fm.edns.is_some(), sm.edns.is_some());
            }
        }
        assert!(answered > 100, "the valid ones still answered ({answered})");
    }
}
