//! TCP: one task per connection, at most `max_connections` at once and an eighth of them per
//! client address (further connections are closed at once), each bounded in time: a
//! connection idle longer than the timeout, or sending a message slower than it, is closed,
//! so one slow client never holds others up.
//! Messages on a connection are answered in order; a zero length, a message that cannot be
//! answered or a framing error closes the connection (never a loop on a dead socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_net::xfer::Protocol;
use socket2::Type;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Shared;
use super::engine::{MAX_MESSAGE, Outcome};
use super::quota::Quota;
use super::udp::bind_socket;

/// Messages one connection may send before it is closed.
const MAX_MESSAGES_PER_CONNECTION: usize = 1000;

/// TCP limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    /// Idle time allowed between messages, and the most one read or write may take.
    pub timeout: Duration,
}

/// A listening TCP socket and its accept task; stopped on drop.
pub struct TcpServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TcpServer {
    /// Binds `addr` and starts accepting (must run inside the runtime).
    pub fn start(
        addr: SocketAddr,
        shared: Arc<Shared>,
        slots: Arc<Quota>,
        limits: TcpLimits,
    ) -> std::io::Result<TcpServer> {
        let socket = bind_socket(addr, Type::STREAM)?;
        socket.listen(128)?;
        socket.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std::net::TcpListener::from(socket))?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let (stream, src) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning on accept.
                        log::warn!("tcp accept on {addr}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(permit) = slots.try_take(src.ip()) else {
                    log::debug!(
                        "tcp: {} connections open, or {} of {}; closing {src}",
                        limits.max_connections,
                        slots.per_client(),
                        src.ip()
                    );
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, src, &shared, limits.timeout).await {
                        log::debug!("tcp {src}: {e}");
                    }
                    drop(permit);
                });
            }
        });
        Ok(TcpServer { stop, task })
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

async fn connection(
    mut stream: TcpStream,
    src: SocketAddr,
    shared: &Arc<Shared>,
    timeout: Duration,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    for _ in 0..MAX_MESSAGES_PER_CONNECTION {
        let len = match tokio::time::timeout(timeout, stream.read_u16()).await {
            Err(_) => return Ok(()), // idle
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => usize::from(r?),
        };
        if len == 0 || len > MAX_MESSAGE {
            return Ok(());
        }
        buf.resize(len, 0);
        // The whole message within the timeout: a client trickling bytes is cut off.
        match tokio::time::timeout(timeout, stream.read_exact(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(r) => {
                r?;
            }
        }
        let snap = shared.snapshot();
        let reply = match shared.engine.handle(&snap, &buf, src, Protocol::Tcp) {
            Outcome::Reply(r) => r,
            Outcome::Forward(job) => {
                let listening = shared.listening();
                match shared.forwarder.forward(&job, src.ip(), &listening).await {
                    Some(r) => r,
                    None => return Ok(()),
                }
            }
            Outcome::Drop => return Ok(()),
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        match tokio::time::timeout(timeout, stream.write_all(&framed)).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        }
    }
    Ok(())
}
