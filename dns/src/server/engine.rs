//! What the sidecar does with one DNS message, whatever transport brought it: the bytes in,
//! a reply, a forward to the upstream servers, or nothing. Pure and synchronous, so that
//! UDP, TCP, the tests and the fuzz target all go through the same entry point
//! ([`Engine::handle`]).
//!
//! Parsing and encoding are hickory-server's: [`Request::from_bytes`] (queries lowercased,
//! so names match case-insensitively) and [`MessageResponseBuilder`] (EDNS, truncation to the
//! client's UDP size with the TC bit).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_net::xfer::Protocol;
use hickory_proto::op::{Edns, Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use super::records::{NetView, Snapshot};

/// The largest message accepted (a query is a few dozen bytes; EDNS allows 4096 on UDP).
pub const MAX_MESSAGE: usize = 4096;
/// The UDP payload size we advertise in our OPT record.
pub(crate) const OUR_UDP_PAYLOAD: u16 = 1232;

/// What to do with a message.
#[derive(Debug)]
pub enum Outcome {
    Reply(Vec<u8>),
    Forward(ForwardJob),
    /// Nothing to answer (not a query, too short to carry an ID, too big).
    Drop,
}

/// A query to send upstream, with what the reply to the client needs.
#[derive(Debug, Clone)]
pub struct ForwardJob {
    /// The client's message as received.
    pub query: Vec<u8>,
    pub id: u16,
    /// The largest UDP reply the client accepts (512 without EDNS).
    pub max_payload: u16,
    pub protocol: Protocol,
    /// The upstream's failure answer, ready to send if every upstream fails.
    pub servfail: Vec<u8>,
}

/// How names are answered.
#[derive(Debug, Clone)]
pub struct Engine {
    pub ttl: u32,
}

enum Answer {
    Records(Vec<Record>),
    Code(ResponseCode),
}

impl Engine {
    pub fn new(ttl: u32) -> Engine {
        Engine { ttl }
    }

    /// Handles one message from `src`. Never panics, whatever the bytes.
    pub fn handle(
        &self,
        snap: &Snapshot,
        bytes: &[u8],
        src: SocketAddr,
        protocol: Protocol,
    ) -> Outcome {
        if bytes.len() < 12 || bytes.len() > MAX_MESSAGE {
            return Outcome::Drop;
        }
        let request = match Request::from_bytes(bytes.to_vec(), src, protocol) {
            Ok(r) => r,
            Err(_) => return formerr(bytes),
        };
        if request.metadata.message_type != MessageType::Query {
            return Outcome::Drop;
        }
        let max_payload = request.max_payload().max(512);
        let respond = |code: ResponseCode, records: &[Record], authoritative: bool| {
            encode(
                &request,
                code,
                records,
                authoritative,
                protocol,
                max_payload,
            )
        };
        if request.metadata.op_code != OpCode::Query {
            return respond(ResponseCode::NotImp, &[], false);
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            return respond(ResponseCode::FormErr, &[], false);
        };
        // Only the members of our networks are served: never an open resolver.
        let view = snap.view(src.ip());
        if view.is_empty() {
            return respond(ResponseCode::Refused, &[], false);
        }
        if query.query_class() != DNSClass::IN
            || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            return respond(ResponseCode::Refused, &[], false);
        }
        let mut key = [0u8; 256];
        let Some(name) = lower_text(query.name(), &mut key) else {
            return respond(ResponseCode::FormErr, &[], false);
        };
        let owner = query.original().name();
        let answer = match reverse_ip(name) {
            Some(ip) => self.answer_ptr(&view, ip, owner),
            None => self.answer_name(&view, name, query.query_type(), owner),
        };
        match answer {
            Some(Answer::Records(records)) => respond(ResponseCode::NoError, &records, true),
            Some(Answer::Code(code)) => respond(code, &[], true),
            None => match respond(ResponseCode::ServFail, &[], false) {
                Outcome::Reply(servfail) => Outcome::Forward(ForwardJob {
                    query: bytes.to_vec(),
                    id: request.metadata.id,
                    max_payload,
                    protocol,
                    servfail,
                }),
                other => other,
            },
        }
    }

    /// `None`: not ours, forward it.
    fn answer_name(
        &self,
        view: &[&NetView],
        name: &str,
        qtype: RecordType,
        owner: &Name,
    ) -> Option<Answer> {
        let mut known = false;
        let mut in_domain = false;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for net in view {
            match net.lookup(name) {
                Some(found) => {
                    known = true;
                    for ip in found {
                        if !addrs.contains(ip) {
                            addrs.push(*ip);
                        }
                    }
                }
                None => in_domain |= net.in_domain(name),
            }
        }
        if !known {
            // Names under a network's domain are ours alone: never asked upstream.
            return in_domain.then_some(Answer::Code(ResponseCode::NXDomain));
        }
        fastrand::shuffle(&mut addrs);
        let records = addrs
            .into_iter()
            .filter_map(|ip| {
                let rdata = match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
                    _ => return None,
                };
                Some(Record::from_rdata(owner.clone(), self.ttl, rdata))
            })
            .collect();
        // A known name without records of the type asked is NODATA, never forwarded.
        Some(Answer::Records(records))
    }

    fn answer_ptr(&self, view: &[&NetView], ip: IpAddr, owner: &Name) -> Option<Answer> {
        let mut targets: Vec<&str> = Vec::new();
        for net in view {
            for t in net.ptr(ip) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        if targets.is_empty() {
            // Addresses of our subnets are ours to answer, even unknown ones.
            return view
                .iter()
                .any(|n| n.contains(ip))
                .then_some(Answer::Code(ResponseCode::NXDomain));
        }
        let records = targets
            .into_iter()
            .filter_map(|t| Name::from_ascii(t).ok())
            .map(|target| Record::from_rdata(owner.clone(), self.ttl, RData::PTR(PTR(target))))
            .collect();
        Some(Answer::Records(records))
    }
}

/// Encodes the reply to `request`: its question, `records` as answers, our OPT record if the
/// client sent one, RA set (we recurse through the upstreams), AA for our own answers. UDP
/// replies are cut to the client's size with TC set.
fn encode(
    request: &Request,
    code: ResponseCode,
    records: &[Record],
    authoritative: bool,
    protocol: Protocol,
    max_payload: u16,
) -> Outcome {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    metadata.authoritative = authoritative;
    metadata.recursion_available = true;
    let edns = request.edns.as_ref().map(|_| {
        let mut e = Edns::new();
        e.set_max_payload(OUR_UDP_PAYLOAD);
        e
    });
    let mut builder = MessageResponseBuilder::new(&request.queries, None);
    if let Some(e) = &edns {
        builder.edns(e);
    }
    let response = builder.build(metadata, records.iter(), [], [], []);
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_max_size(match protocol {
        Protocol::Udp => max_payload,
        _ => u16::MAX,
    });
    match response.destructive_emit(&mut encoder) {
        Ok(_) => Outcome::Reply(buf),
        Err(e) => {
            log::debug!("cannot encode a reply: {e}");
            Outcome::Drop
        }
    }
}

/// FORMERR for a message whose header reads but whose body does not; nothing for a
/// response or a header that does not read.
fn formerr(bytes: &[u8]) -> Outcome {
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        return Outcome::Drop;
    };
    if header.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return Outcome::Drop;
    };
    let mut metadata = Metadata::response_from_request(&header.metadata);
    metadata.response_code = ResponseCode::FormErr;
    metadata.recursion_available = true;
    let response = MessageResponseBuilder::new(&queries, None).build_no_records(metadata);
    let mut buf = Vec::with_capacity(12);
    let mut encoder = BinEncoder::new(&mut buf);
    match response.destructive_emit(&mut encoder) {
        Ok(_) => Outcome::Reply(buf),
        Err(_) => Outcome::Drop,
    }
}

/// The name as lowercase text without the trailing dot, in `buf`; `None` if a label holds
/// a byte that is not printable ASCII or a dot (such names are never ours).
fn lower_text<'b>(name: &hickory_proto::rr::LowerName, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let mut len = 0usize;
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(len)? = b'.';
            len += 1;
        }
        for &b in label {
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            *buf.get_mut(len)? = b.to_ascii_lowercase();
            len += 1;
        }
    }
    std::str::from_utf8(buf.get(..len)?).ok()
}

/// The address of a reverse name (`4.3.2.1.in-addr.arpa`, 32 nibbles `.ip6.arpa`).
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut parts = rest.split('.');
        for o in octets.iter_mut().rev() {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
                return None;
            }
            *o = p.parse().ok()?;
        }
        return parts
            .next()
            .is_none()
            .then(|| IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let mut value: u128 = 0;
    let mut count = 0;
    for (i, nibble) in rest.split('.').enumerate() {
        let mut chars = nibble.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return None;
        };
        // More than 32 nibbles is not an address (and would shift past the u128).
        if i >= 32 {
            return None;
        }
        let digit = u128::from(c.to_digit(16)?);
        value |= digit << (4 * i);
        count = i + 1;
    }
    (count == 32).then(|| IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::records::Records;
    use crate::store::Attachment;
    use hickory_proto::op::{Message, Query};

    fn snapshot() -> Snapshot {
        let a = |cid: &str, name: &str, aliases: &[&str], ips: &[&str]| Attachment {
            container_id: cid.into(),
            ifname: "eth0".into(),
            domain: "dns.podman".into(),
            name: Some(name.into()),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            gateways: vec!["10.1.0.1".parse().unwrap()],
        };
        let mut r = Records::default();
        r.set_network(
            "a",
            vec![
                a(
                    "c1aaaaaaaaaaaaaa",
                    "web",
                    &["lb"],
                    &["10.1.0.2/24", "fd01::2/64"],
                ),
                a("c2bbbbbbbbbbbbbb", "api", &["lb"], &["10.1.0.3/24"]),
            ],
        );
        r.set_network("b", vec![a("c3", "other", &[], &["10.2.0.2/24"])]);
        r.snapshot()
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn ask(src: &str, name: &str, qtype: RecordType) -> Outcome {
        Engine::new(0).handle(
            &snapshot(),
            &query(name, qtype),
            SocketAddr::new(src.parse().unwrap(), 5353),
            Protocol::Udp,
        )
    }

    fn reply(o: Outcome) -> Message {
        match o {
            Outcome::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn answers_names_aliases_case_insensitively_under_the_domain() {
        let m = reply(ask("10.1.0.3", "WeB.", RecordType::A));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative && m.metadata.recursion_available);
        assert_eq!(addrs(&m), vec!["10.1.0.2"]);
        assert_eq!(m.answers[0].name.to_ascii(), "WeB.");
        let m = reply(ask("10.1.0.3", "web.dns.podman.", RecordType::AAAA));
        assert_eq!(addrs(&m), vec!["fd01::2"]);
        let m = reply(ask("10.1.0.3", "lb.dns.podman.", RecordType::A));
        assert_eq!(addrs(&m), vec!["10.1.0.2", "10.1.0.3"]);
        // NODATA for a known name without that type, NXDOMAIN under the domain.
        let m = reply(ask("10.1.0.3", "api.", RecordType::AAAA));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = reply(ask("10.1.0.3", "nope.dns.podman.", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn networks_are_isolated_and_strangers_refused() {
        // Not b's name: forwarded, not answered.
        assert!(matches!(
            ask("10.2.0.2", "web.", RecordType::A),
            Outcome::Forward(_)
        ));
        let m = reply(ask("192.168.7.7", "web.", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn ptr_answers_the_container_name() {
        let m = reply(ask("10.1.0.3", "2.0.1.10.in-addr.arpa.", RecordType::PTR));
        assert_eq!(addrs(&m), vec!["web.dns.podman."]);
        assert_eq!(m.answers[0].name.to_ascii(), "2.0.1.10.in-addr.arpa.");
        let m = reply(ask("10.1.0.3", "99.0.1.10.in-addr.arpa.", RecordType::PTR));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            ask("10.1.0.3", "1.1.1.1.in-addr.arpa.", RecordType::PTR),
            Outcome::Forward(_)
        ));
        assert_eq!(
            reverse_ip("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.d.f.ip6.arpa"),
            Some("fd01::2".parse().unwrap())
        );
        assert_eq!(
            reverse_ip(&format!("{}ip6.arpa", "0.".repeat(33))),
            None,
            "33 nibbles"
        );
        assert_eq!(reverse_ip("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse_ip("01.2.3.4.in-addr.arpa"), None);
    }

    #[test]
    fn garbage_is_dropped_or_formerr() {
        let e = Engine::new(0);
        let snap = snapshot();
        let src: SocketAddr = "10.1.0.3:999".parse().unwrap();
        assert!(matches!(
            e.handle(&snap, &[1, 2, 3], src, Protocol::Udp),
            Outcome::Drop
        ));
        let mut q = query("web.", RecordType::A);
        q.truncate(q.len() - 3);
        let m = reply(e.handle(&snap, &q, src, Protocol::Udp));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, 4242);
        // A response is never answered (no reflection loops).
        let mut r = query("web.", RecordType::A);
        r[2] |= 0x80;
        assert!(matches!(
            e.handle(&snap, &r, src, Protocol::Udp),
            Outcome::Drop
        ));
        assert!(matches!(
            e.handle(&snap, &vec![0u8; MAX_MESSAGE + 1], src, Protocol::Tcp),
            Outcome::Drop
        ));
    }

    /// Random and truncated bytes through the entry point the transports and the fuzz target
    /// use: no panic, and every reply parses.
    #[test]
    fn random_and_truncated_messages_never_panic() {
        let e = Engine::new(0);
        let snap = snapshot();
        let src: SocketAddr = "10.1.0.3:999".parse().unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let valid = query("lb.dns.podman.", RecordType::A);
        for i in 0..20_000 {
            let mut bytes = if i % 2 == 0 {
                let len = rng.usize(0..600);
                (0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>()
            } else {
                let mut b = valid.clone();
                b.truncate(rng.usize(0..=b.len()));
                for _ in 0..rng.usize(0..4) {
                    if !b.is_empty() {
                        let at = rng.usize(0..b.len());
                        b[at] = rng.u8(..);
                    }
                }
                b
            };
            if i % 7 == 0 && bytes.len() > 2 {
                bytes[2] &= 0x7f; // make it look like a query
            }
            for proto in [Protocol::Udp, Protocol::Tcp] {
                if let Outcome::Reply(r) = e.handle(&snap, &bytes, src, proto) {
                    assert!(
                        Message::from_vec(&r).is_ok(),
                        "unparseable reply to {bytes:?}"
                    );
                }
            }
        }
    }
}
