//! A minimal DNS client for the plugin's CHECK: one A or AAAA query over UDP, without the
//! server's dependencies. Answers "how many records came back".

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The wire form of a query for `name` (dot-separated labels) of `qtype` (1 = A, 28 = AAAA).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    Some(q)
}

/// The response code and answer count of a reply to query `id`; `None` if it is not one.
pub fn decode_reply(id: u16, reply: &[u8]) -> Option<(u8, u16)> {
    let header = reply.get(..12)?;
    let is_reply = header[2] & 0x80 != 0;
    (u16::from_be_bytes([header[0], header[1]]) == id && is_reply)
        .then(|| (header[3] & 0x0f, u16::from_be_bytes([header[6], header[7]])))
}

/// Asks `server` for `name` and returns (response code, answer count).
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> std::io::Result<(u8, u16)> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0".parse().map_err(std::io::Error::other)?
    } else {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(timeout))?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let q = encode_query(id, name, qtype)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid name"))?;
    socket.send(&q)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf)?;
        if let Some(answer) = decode_reply(id, buf.get(..n).unwrap_or_default()) {
            return Ok(answer);
        }
    }
}

/// Whether `name` can be a DNS name we serve: dot-separated labels of letters, digits, `-`
/// and `_`, each 1 to 63 long, 253 at most in all.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_query_and_reads_a_reply_header() {
        let q = encode_query(7, "web.dns.podman.", 1).unwrap();
        assert_eq!(&q[..4], &[0, 7, 1, 0]);
        assert_eq!(q.len(), 12 + 16 + 4);
        let mut r = q.clone();
        r[2] |= 0x80;
        r[3] = 3;
        r[7] = 2;
        assert_eq!(decode_reply(7, &r), Some((3, 2)));
        assert_eq!(decode_reply(8, &r), None);
        assert_eq!(decode_reply(7, &q), None);
        assert!(encode_query(1, "a..b", 1).is_none());
    }

    #[test]
    fn names() {
        assert!(valid_name("web"));
        assert!(valid_name("my_app-1.v2"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a..b"));
        assert!(!valid_name(&"x".repeat(64)));
    }
}
