//! UDP: one thread per listening address, blocking in `recv_from`, answering from the current
//! snapshot inline (no task or channel per packet: a local answer is a parse, a few hash
//! lookups and an encode). Only forwards go to the async runtime.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_net::xfer::Protocol;
use socket2::{Domain, Socket, Type};

use super::Shared;
use super::engine::{MAX_MESSAGE, Outcome};

/// A bound UDP socket and its thread; stopped on drop.
pub struct UdpListener {
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `addr` even if the address is not (yet) on an interface (`IP_FREEBIND`): the bridge
/// may get its gateway address after we start.
pub fn bind_socket(addr: SocketAddr, ty: Type) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

impl UdpListener {
    pub fn start(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<UdpListener> {
        let socket = bind_socket(addr, Type::DGRAM)?;
        // A wake-up now and then to notice `stop` even if the shutdown below did not wake us.
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        let _ = socket.set_recv_buffer_size(1 << 20);
        let socket = Arc::new(UdpSocket::from(socket));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("udp {addr}"))
                .spawn(move || serve(&socket, &stop, &shared))?
        };
        Ok(UdpListener {
            socket,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes a thread blocked in recv_from (Linux does so even for unconnected sockets).
        let _ = socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Read);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(socket: &Arc<UdpSocket>, stop: &AtomicBool, shared: &Arc<Shared>) {
    // One byte more than we accept, to tell an oversized message from a full one.
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut snap = shared.snapshot();
    let mut generation = shared.generation();
    while !stop.load(Ordering::Relaxed) {
        let (len, src) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors of earlier sends surface here (ECONNREFUSED); never fatal.
                log::debug!("udp receive: {e}");
                continue;
            }
        };
        if len == 0 {
            continue;
        }
        let current = shared.generation();
        if current != generation {
            snap = shared.snapshot();
            generation = current;
        }
        let bytes = buf.get(..len).unwrap_or_default();
        match shared.engine.handle(&snap, bytes, src, Protocol::Udp) {
            Outcome::Reply(reply) => {
                if let Err(e) = socket.send_to(&reply, src) {
                    log::debug!("udp send to {src}: {e}");
                }
            }
            Outcome::Forward(job) => {
                let (socket, shared2) = (socket.clone(), shared.clone());
                shared.runtime.spawn(async move {
                    let listening = shared2.listening();
                    if let Some(reply) = shared2.forwarder.forward(&job, &listening).await
                        && let Err(e) = socket.send_to(&reply, src)
                    {
                        log::debug!("udp send to {src}: {e}");
                    }
                });
            }
            Outcome::Drop => {}
        }
    }
}
