//! UDP: one thread per listening address, blocking in `recvmmsg`, answering from the current
//! snapshot inline (no task or channel per packet). The common query, a name of the asker's
//! network, takes the fast path ([`super::fast`]: no parse, encode or allocation, the reply
//! written into this thread's buffers); the rest a parse, a few hash lookups and an encode.
//! Every reply of a batch goes out in one `sendmmsg`. Only forwards go to the async runtime.

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
use super::fast::Scratch;

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

/// Messages taken (and replies sent) per system call: under load one `recvmmsg` returns what
/// has queued up and one `sendmmsg` sends all the replies, instead of two calls per query.
const BATCH: usize = 32;

fn serve(socket: &Arc<UdpSocket>, stop: &AtomicBool, shared: &Arc<Shared>) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    // One byte more than we accept, to tell an oversized message from a full one.
    let mut bufs = vec![0u8; BATCH * (MAX_MESSAGE + 1)];
    // The fast path's replies, one slot per message of the batch.
    let mut outs = vec![0u8; BATCH * MAX_MESSAGE];
    // The general path's replies, kept until the batch is sent.
    let mut slow: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
    let mut scratch = Scratch::default();
    let mut snap = shared.snapshot();
    let mut generation = shared.generation();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: zeroed sockaddr_storage, iovec and mmsghdr are valid initial values.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, chunk) in bufs.chunks_mut(MAX_MESSAGE + 1).enumerate().take(BATCH) {
            iovs[i].iov_base = chunk.as_mut_ptr().cast();
            iovs[i].iov_len = chunk.len();
            msgs[i].msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[i]).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            msgs[i].msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[i]);
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in `msgs` points into `addrs`, `iovs` and `bufs`, which outlive
        // the call; the kernel writes at most the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) {
                // ICMP errors of earlier sends surface here (ECONNREFUSED); never fatal.
                log::debug!("udp receive: {e}");
            }
            continue;
        }
        let current = shared.generation();
        if current != generation {
            snap = shared.snapshot();
            generation = current;
        }
        // SAFETY: zeroed iovec and mmsghdr are valid initial values.
        let mut send_iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut send_msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut count = 0;
        for ((i, out), slow) in outs
            .chunks_mut(MAX_MESSAGE)
            .enumerate()
            .zip(slow.iter_mut())
            .take((n as usize).min(BATCH))
        {
            let len = msgs[i].msg_len as usize;
            let Some(src) = socket_addr(&addrs[i]) else {
                continue;
            };
            let start = i * (MAX_MESSAGE + 1);
            let Some(bytes) = bufs.get(start..start + len.min(MAX_MESSAGE + 1)) else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            let reply: &[u8] =
                match shared
                    .engine
                    .answer_fast(&snap, bytes, src.ip(), out, &mut scratch)
                {
                    Some(len) => &out[..len],
                    None => match shared.engine.handle(&snap, bytes, src, Protocol::Udp) {
                        Outcome::Reply(reply) => {
                            *slow = reply;
                            slow
                        }
                        Outcome::Forward(job) => {
                            let (socket, shared2) = (socket.clone(), shared.clone());
                            shared.runtime.spawn(async move {
                                let listening = shared2.listening();
                                if let Some(reply) =
                                    shared2.forwarder.forward(&job, src.ip(), &listening).await
                                    && let Err(e) = socket.send_to(&reply, src)
                                {
                                    log::debug!("udp send to {src}: {e}");
                                }
                            });
                            continue;
                        }
                        Outcome::Drop => continue,
                    },
                };
            // The reply goes back to the address it came from, as the kernel wrote it.
            send_iovs[count].iov_base = reply.as_ptr() as *mut libc::c_void;
            send_iovs[count].iov_len = reply.len();
            send_msgs[count].msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[i]).cast();
            send_msgs[count].msg_hdr.msg_namelen = msgs[i].msg_hdr.msg_namelen;
            send_msgs[count].msg_hdr.msg_iov = std::ptr::addr_of_mut!(send_iovs[count]);
            send_msgs[count].msg_hdr.msg_iovlen = 1;
            count += 1;
        }
        send_all(fd, &mut send_msgs[..count]);
    }
}

/// The address the kernel wrote into a `sockaddr_storage`.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is big
            // and aligned enough for.
            let sin = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends every prepared message with as few `sendmmsg` calls as the kernel allows; a reply
/// the kernel refuses is skipped (UDP: the client asks again).
fn send_all(fd: std::os::fd::RawFd, msgs: &mut [libc::mmsghdr]) {
    let mut sent = 0;
    while sent < msgs.len() {
        let rest = &mut msgs[sent..];
        // SAFETY: the messages point to replies, iovecs and addresses alive for the call; the
        // kernel only reads them (and writes `msg_len`).
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n <= 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            log::debug!("udp send: {e}");
            sent += 1;
        } else {
            sent += n as usize;
        }
    }
}
