//! The demo's HTTP client: `cnictl demo-fetch URL`, run inside a container's namespace. It
//! resolves a name the way the C library would, through the nameservers and search domains of
//! the container's resolv.conf (written from the network's CNI result), then sends one GET.
//! (Debian's static busybox cannot resolve names: its static glibc crashes loading NSS.)

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{CliError, Result};

/// nameservers, search domains and ndots of a resolv.conf.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
}

pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut rc = ResolvConf {
        ndots: 1,
        ..ResolvConf::default()
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                    rc.nameservers.push(ip);
                }
            }
            Some("search") | Some("domain") => {
                rc.search = words.map(str::to_string).collect();
            }
            Some("options") => {
                for o in words {
                    if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                        rc.ndots = n;
                    }
                }
            }
            _ => {}
        }
    }
    rc
}

/// The names tried for `name`, in the resolver's order.
pub fn candidates(name: &str, rc: &ResolvConf) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![abs.to_string()];
    }
    let with_search: Vec<String> = rc.search.iter().map(|s| format!("{name}.{s}")).collect();
    let dots = name.matches('.').count();
    let mut out = Vec::new();
    if dots >= rc.ndots {
        out.push(name.to_string());
        out.extend(with_search);
    } else {
        out.extend(with_search);
        out.push(name.to_string());
    }
    out
}

/// A DNS query for the A records of `name`.
pub fn query_packet(id: u16, name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(32 + name.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        p.push(bytes.len() as u8);
        p.extend_from_slice(bytes);
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p
}

/// Skips a (possibly compressed) name at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        pos += 1 + len;
    }
}

/// The rcode and A records of a response to query `id`.
pub fn parse_answer(id: u16, msg: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let head = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let len = u16::from_be_bytes([head[8], head[9]]) as usize;
        let data = msg.get(pos + 10..pos + 10 + len)?;
        if rtype == 1 && len == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Some((rcode, out))
}

fn ask(server: IpAddr, name: &str, timeout: Duration) -> std::io::Result<(u8, Vec<Ipv4Addr>)> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(SocketAddr::new(server, 53))?;
    let id = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16);
    sock.send(&query_packet(id, name))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            ));
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        if let Some(answer) = parse_answer(id, &buf[..n]) {
            return Ok(answer);
        }
    }
}

/// Resolves `host` through `rc` (an address is itself).
pub fn resolve(host: &str, rc: &ResolvConf) -> Result<(String, Ipv4Addr)> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((host.to_string(), ip));
    }
    if rc.nameservers.is_empty() {
        return Err(CliError::new(format!(
            "cannot resolve {host}: no nameserver in resolv.conf"
        )));
    }
    for name in candidates(host, rc) {
        for server in &rc.nameservers {
            if let Ok((0, ips)) = ask(*server, &name, Duration::from_secs(2))
                && let Some(ip) = ips.first()
            {
                return Ok((name, *ip));
            }
        }
    }
    Err(CliError::new(format!(
        "cannot resolve {host}: no such name"
    )))
}

/// GET `url` (http://HOST[:PORT]/PATH) and return the body.
pub fn fetch(url: &str, resolv_conf: Option<&Path>, timeout: Duration) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CliError::new(format!("{url}: only http:// URLs")))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| CliError::new(format!("{url}: bad port")))?,
        ),
        None => (hostport, 80),
    };
    let rc = match resolv_conf {
        Some(p) => parse_resolv_conf(&std::fs::read_to_string(p).unwrap_or_default()),
        None => ResolvConf::default(),
    };
    let (_, ip) = resolve(host, &rc)?;
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| CliError::new(format!("cannot connect to {addr}: {e}")))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: cnictl-demo\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| CliError::new(format!("reading from {addr}: {e}")))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") && !status.ends_with(" 200") {
        return Err(CliError::new(format!("{url}: {status}")));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resolv_conf_and_orders_candidates() {
        let rc = parse_resolv_conf(
            "# c\nnameserver 10.89.0.1\nnameserver x\nsearch dns.podman example\noptions ndots:1\n",
        );
        assert_eq!(rc.nameservers, vec!["10.89.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(rc.search, ["dns.podman", "example"]);
        assert_eq!(
            candidates("web", &rc),
            ["web.dns.podman", "web.example", "web"]
        );
        assert_eq!(candidates("a.b", &rc)[0], "a.b");
        assert_eq!(candidates("a.b.", &rc), ["a.b"]);
    }

    #[test]
    fn builds_queries_and_reads_answers() {
        let q = query_packet(0x1234, "web.dns.podman");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(q[12], 3);
        // A response: the question, then one A record with a compressed name.
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 89, 0, 2]);
        let (rcode, ips) = parse_answer(0x1234, &r).unwrap();
        assert_eq!(rcode, 0);
        assert_eq!(ips, vec![Ipv4Addr::new(10, 89, 0, 2)]);
        assert!(parse_answer(0x4321, &r).is_none());
        assert!(parse_answer(0x1234, &r[..5]).is_none());
    }
}
