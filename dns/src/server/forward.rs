//! Names that are not ours go to the host's resolvers, read from a resolv.conf (at most the
//! first three `nameserver` lines, as glibc), one after the other, each with a timeout well
//! under a client's 5 s, through hickory-net's client (a fresh random source port and ID per
//! query, replies matched to the query). The upstream's reply is relayed as it came, with the
//! client's ID; a UDP client gets a truncated reply (TC) when it is larger than it accepts,
//! and a TCP client gets the upstream's answer over TCP when UDP came back truncated.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsExchange, DnsHandle, Protocol};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message, ResponseCode};

use super::engine::ForwardJob;
use super::quota::Quota;

/// glibc reads at most three nameservers.
const MAX_UPSTREAMS: usize = 3;
/// All upstreams together stay under this, below the 5 s a client waits.
const TOTAL_BUDGET: Duration = Duration::from_secs(4);
/// Forwards in flight at once, an eighth of them per client; beyond that a UDP query is
/// dropped (its client retries) and a TCP one answered SERVFAIL.
pub const MAX_IN_FLIGHT: usize = 1024;

/// The `nameserver` addresses of a resolv.conf, in order, at most three. Scoped IPv6
/// addresses (`fe80::1%eth0`) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver")
                .then(|| words.next()?.parse::<IpAddr>().ok())
                .flatten()
        })
        .filter(|ip| !ip.is_unspecified())
        .take(MAX_UPSTREAMS)
        .collect()
}

/// Reads a resolv.conf; a missing or unreadable file means no upstream.
pub fn read_resolv_conf(path: &Path) -> Vec<IpAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_resolv_conf(&text),
        Err(e) => {
            log::warn!("cannot read {}: {e}; no upstream servers", path.display());
            Vec::new()
        }
    }
}

struct Upstream {
    addr: SocketAddr,
    udp: Option<DnsExchange<TokioRuntimeProvider>>,
}

/// The upstream servers and the queries in flight to them.
pub struct Forwarder {
    upstreams: Mutex<Vec<Upstream>>,
    per_upstream: Duration,
    in_flight: Arc<Quota>,
}

impl Forwarder {
    /// `per_upstream`: the most one upstream may take (lowered so that all of them fit in 4 s).
    pub fn new(per_upstream: Duration) -> Forwarder {
        Forwarder {
            upstreams: Mutex::new(Vec::new()),
            per_upstream,
            in_flight: Quota::new(MAX_IN_FLIGHT),
        }
    }

    /// Replaces the upstream servers (port 53 each).
    pub fn set_upstreams(&self, servers: &[IpAddr]) {
        let mut list = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        *list = servers
            .iter()
            .map(|ip| Upstream {
                addr: SocketAddr::new(*ip, 53),
                udp: None,
            })
            .collect();
    }

    /// Test hook: upstreams on any port.
    pub fn set_upstream_addrs(&self, servers: &[SocketAddr]) {
        let mut list = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        *list = servers
            .iter()
            .map(|addr| Upstream {
                addr: *addr,
                udp: None,
            })
            .collect();
    }

    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        let list = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().map(|u| u.addr).collect()
    }

    /// The UDP exchanges to use, created on first use (inside the runtime), skipping any
    /// upstream that is one of our own listening addresses (that would loop).
    fn exchanges(
        &self,
        ours: &BTreeSet<IpAddr>,
    ) -> Vec<(SocketAddr, DnsExchange<TokioRuntimeProvider>)> {
        let mut list = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        let per = self.per_upstream;
        list.iter_mut()
            .filter(|u| !ours.contains(&u.addr.ip()))
            .map(|u| {
                let exchange = u
                    .udp
                    .get_or_insert_with(|| {
                        UdpClientStream::builder(u.addr, TokioRuntimeProvider::new())
                            .with_timeout(Some(per))
                            .with_max_retries(0)
                            .exchange()
                    })
                    .clone();
                (u.addr, exchange)
            })
            .collect()
    }

    /// The reply for the client: the first upstream answer that is not SERVFAIL or REFUSED,
    /// else the last such answer, else SERVFAIL. `None` when too many forwards are in flight
    /// (a UDP client then retries).
    pub async fn forward(
        &self,
        job: &ForwardJob,
        client: IpAddr,
        ours: &BTreeSet<IpAddr>,
    ) -> Option<Vec<u8>> {
        let Some(_slot) = self.in_flight.try_take(client) else {
            log::debug!("too many forwards in flight (or of {client}); dropping one");
            return (job.protocol == Protocol::Tcp).then(|| job.servfail.clone());
        };
        let Ok(message) = Message::from_vec(&job.query) else {
            return Some(job.servfail.clone());
        };
        let exchanges = self.exchanges(ours);
        if exchanges.is_empty() {
            return Some(job.servfail.clone());
        }
        let per = self
            .per_upstream
            .min(TOTAL_BUDGET / exchanges.len().max(1) as u32);
        let mut fallback: Option<Vec<u8>> = None;
        for (addr, exchange) in exchanges {
            let mut reply = match ask(&exchange, &message, per).await {
                Ok(r) => r,
                Err(e) => {
                    log::debug!("upstream {addr}: {e}");
                    continue;
                }
            };
            if reply.truncated && job.protocol == Protocol::Tcp {
                match ask_tcp(addr, &message, per).await {
                    Ok(r) => reply = r,
                    Err(e) => log::debug!("upstream {addr} over TCP: {e}"),
                }
            }
            let bytes = relay(&reply.raw, job);
            if matches!(reply.code, ResponseCode::ServFail | ResponseCode::Refused) {
                fallback = Some(bytes);
                continue;
            }
            return Some(bytes);
        }
        Some(fallback.unwrap_or_else(|| job.servfail.clone()))
    }
}

struct Reply {
    raw: Vec<u8>,
    code: ResponseCode,
    truncated: bool,
}

async fn ask(
    exchange: &DnsExchange<TokioRuntimeProvider>,
    message: &Message,
    timeout: Duration,
) -> Result<Reply, String> {
    use futures_util::StreamExt;
    let request = DnsRequest::new(message.clone(), DnsRequestOptions::default());
    let mut stream = exchange.send(request);
    match tokio::time::timeout(timeout, stream.next()).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(None) => Err("no answer".into()),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(Some(Ok(response))) => {
            let code = response.metadata.response_code;
            let truncated = response.metadata.truncation;
            let (_, raw) = response.into_parts();
            Ok(Reply {
                raw,
                code,
                truncated,
            })
        }
    }
}

async fn ask_tcp(addr: SocketAddr, message: &Message, timeout: Duration) -> Result<Reply, String> {
    let exchange = tokio::time::timeout(
        timeout,
        TcpClientStream::exchange(addr, None, timeout, Some(1), TokioRuntimeProvider::new()),
    )
    .await
    .map_err(|_| format!("no TCP connection within {timeout:?}"))?
    .map_err(|e| e.to_string())?;
    ask(&exchange, message, timeout).await
}

/// The upstream's reply with the client's ID; for a UDP client too small for it, a header
/// with TC set and the question (the client retries over TCP).
fn relay(raw: &[u8], job: &ForwardJob) -> Vec<u8> {
    let mut bytes = raw.to_vec();
    if bytes.len() >= 2 {
        bytes[..2].copy_from_slice(&job.id.to_be_bytes());
    }
    if job.protocol == Protocol::Udp && bytes.len() > usize::from(job.max_payload) {
        if let Ok(mut m) = Message::from_vec(&bytes) {
            m.answers.clear();
            m.authorities.clear();
            m.additionals.clear();
            m.metadata.truncation = true;
            if let Ok(short) = m.to_vec() {
                return short;
            }
        }
        return job.servfail.clone();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_keeps_three_usable_nameservers() {
        let text = "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n\
                    nameserver 0.0.0.0\nnameserver ::1\nnameserver 10.0.0.54\nnameserver 10.0.0.55\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap(),
                "10.0.0.54".parse().unwrap()
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
    }
}
