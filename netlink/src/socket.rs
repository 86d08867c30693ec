//! A synchronous netlink socket: sequence numbers, ACKs and errors (with the kernel's
//! extended ack message), multipart dumps with retry on `NLM_F_DUMP_INTR`.
//!
//! The socket belongs to the netns of the thread that opened it, for its whole life; it
//! can then be used from any thread.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NlasIterator,
};
use netlink_sys::SocketAddr;

use crate::error::{Error, Result};

/// Receive buffer. The kernel sizes dump datagrams to at most 32 KiB and single replies to
/// their message, which stays far below this once stats are skipped.
const RECV_BUF_LEN: usize = 64 * 1024;

/// How often a dump interrupted by concurrent changes is started over (as CNI's
/// `netlinksafe` does) before giving up.
pub(crate) const DUMP_ATTEMPTS: usize = 5;

/// Offset of `nlmsg_seq` in the netlink header.
const SEQ_OFFSET: usize = 8;
const NLMSG_HDR_LEN: usize = 16;

/// `NLMSGERR_ATTR_MSG` (linux/netlink.h): the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A netlink socket speaking messages of type `M` (e.g. `RouteNetlinkMessage`).
pub(crate) struct Socket<M> {
    fd: netlink_sys::Socket,
    seq: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
    /// The datagram size the send buffer was last raised for (0: the default).
    send_buf_size: usize,
    _msg: PhantomData<fn(M) -> M>,
}

impl<M> Socket<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    /// Opens a socket of the given protocol (`netlink_sys::protocols::*`) in the calling
    /// thread's netns.
    pub(crate) fn open(protocol: isize) -> Result<Socket<M>> {
        let mut fd =
            netlink_sys::Socket::new(protocol).map_err(|e| Error::socket(e).during("open"))?;
        fd.bind_auto()
            .map_err(|e| Error::socket(e).during("bind"))?;
        fd.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::socket(e).during("connect"))?;
        // Best effort, all three: older kernels lack them and we only lose detail.
        // Strict checking makes the kernel reject malformed requests and honour dump
        // filters; extended acks add a reason to errors; capped acks keep our request out
        // of error replies.
        let _ = fd.set_netlink_get_strict_chk(true);
        let _ = fd.set_ext_ack(true);
        let _ = fd.set_cap_ack(true);
        Ok(Socket {
            fd,
            seq: 0,
            send_buf: Vec::new(),
            recv_buf: Vec::with_capacity(RECV_BUF_LEN),
            send_buf_size: 0,
            _msg: PhantomData,
        })
    }

    /// The socket's descriptor.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends `msg` and waits for the kernel's acknowledgement. Returns the messages the
    /// kernel sent before it (the answer to a GET).
    pub(crate) fn request(&mut self, msg: M, flags: u16) -> Result<Vec<M>> {
        self.serialize(msg, NLM_F_REQUEST | NLM_F_ACK | flags);
        let seq = self.send()?;
        let mut reply = Reply::new(seq);
        self.receive(&mut reply)?;
        Ok(reply.messages)
    }

    /// Dumps (`NLM_F_DUMP`) and returns every message, starting over when the kernel flags
    /// the dump as interrupted by a concurrent change.
    pub(crate) fn dump(&mut self, msg: M) -> Result<Vec<M>> {
        self.serialize(msg, NLM_F_REQUEST | NLM_F_DUMP);
        for attempt in 1..=DUMP_ATTEMPTS {
            let seq = self.send()?;
            let mut reply = Reply::new(seq);
            self.receive(&mut reply)?;
            if !reply.interrupted {
                return Ok(reply.messages);
            }
            log::debug!("netlink dump interrupted (attempt {attempt}), starting over");
        }
        Err(Error::DumpInterrupted {
            op: String::new(),
            attempts: DUMP_ATTEMPTS,
        })
    }

    /// Sends `msgs` (each with `NLM_F_REQUEST` and its own flags) in ONE datagram under
    /// consecutive sequence numbers, as an nfnetlink batch must be: the kernel handles
    /// the datagram synchronously, as one transaction, and queues its answers afterwards.
    ///
    /// Waits for the answer to every message flagged `NLM_F_ACK` and returns one entry
    /// per message: `None` when nothing came for it, else its ack (`Ok`) or error. An
    /// error for a message that asked for no ack (the batch header: a failed commit, an
    /// unknown subsystem) ends the wait, since the kernel may send nothing else; what it
    /// still sends is skipped later as stale.
    pub(crate) fn batch(&mut self, msgs: Vec<(M, u16)>) -> Result<Vec<Option<Result<()>>>> {
        self.send_buf.clear();
        let first = self.seq.wrapping_add(1);
        let mut want_ack = Vec::with_capacity(msgs.len());
        for (i, (msg, flags)) in msgs.into_iter().enumerate() {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags;
            header.sequence_number = first.wrapping_add(i as u32);
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
            packet.finalize();
            log::trace!("netlink batch send: {packet:?}");
            let start = self.send_buf.len();
            self.send_buf.resize(start + align4(packet.buffer_len()), 0);
            packet.serialize(&mut self.send_buf[start..]);
            want_ack.push(flags & NLM_F_ACK != 0);
        }
        let count = want_ack.len();
        self.seq = first.wrapping_add(count as u32).wrapping_sub(1);
        self.ensure_send_buffer(self.send_buf.len());
        self.send_raw()?;

        let mut answers: Vec<Option<Result<()>>> = (0..count).map(|_| None).collect();
        let mut pending = want_ack.iter().filter(|w| **w).count();
        while pending > 0 {
            let len = self.recv_datagram()?;
            let mut datagram = &self.recv_buf[..len];
            while !datagram.is_empty() {
                let buf = NetlinkBuffer::new_checked(datagram)
                    .map_err(|e| Error::protocol(format!("decode reply: {e}")))?;
                let msg_len = buf.length() as usize;
                let index = buf.sequence_number().wrapping_sub(first) as usize;
                let bytes = &datagram[..msg_len];
                datagram = datagram.get(align4(msg_len)..).unwrap_or_default();
                if index >= count || answers[index].is_some() {
                    log::trace!("netlink: skipping message outside the batch");
                    continue;
                }
                let msg = NetlinkMessage::<M>::deserialize(bytes)
                    .map_err(|e| Error::protocol(format!("decode reply: {e}")))?;
                log::trace!("netlink batch recv: {msg:?}");
                let NetlinkPayload::Error(e) = msg.payload else {
                    continue;
                };
                let answer = match e.code {
                    None => Ok(()),
                    Some(code) => Err(Error::kernel(
                        code.get().abs(),
                        error_ext_ack(msg.header.flags, &e.header),
                    )),
                };
                let batch_failed = answer.is_err() && !want_ack[index];
                if want_ack[index] {
                    pending -= 1;
                }
                answers[index] = Some(answer);
                if batch_failed {
                    return Ok(answers);
                }
            }
        }
        Ok(answers)
    }

    /// Makes the socket's send buffer hold a datagram of `len` bytes (the kernel refuses
    /// larger ones with EMSGSIZE). Best effort: the send reports the failure.
    fn ensure_send_buffer(&mut self, len: usize) {
        // The default (net.core.wmem_default) is ~208 KiB; stay clear of it.
        const DEFAULT_OK: usize = 128 * 1024;
        if len <= DEFAULT_OK || len <= self.send_buf_size {
            return;
        }
        let want = libc::c_int::try_from(len.saturating_mul(2)).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: setsockopt reads an int from a valid pointer of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&want as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                self.send_buf_size = len;
                return;
            }
        }
    }

    fn serialize(&mut self, msg: M, flags: u16) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        log::trace!("netlink send: {packet:?}");
        self.send_buf.clear();
        self.send_buf.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.send_buf);
    }

    /// Sends the serialized request under a new sequence number, which it returns.
    fn send(&mut self) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        if let Some(field) = self.send_buf.get_mut(SEQ_OFFSET..SEQ_OFFSET + 4) {
            field.copy_from_slice(&self.seq.to_ne_bytes());
        }
        self.send_raw()?;
        Ok(self.seq)
    }

    /// Sends the serialized datagram as it is.
    fn send_raw(&mut self) -> Result<()> {
        loop {
            match self.fd.send(&self.send_buf, 0) {
                Ok(n) if n == self.send_buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(Error::protocol(format!(
                        "sent {n} of {} bytes",
                        self.send_buf.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::socket(e)),
            }
        }
    }

    fn receive(&mut self, reply: &mut Reply<M>) -> Result<()> {
        loop {
            let len = self.recv_datagram()?;
            if reply.feed(&self.recv_buf[..len])? {
                return Ok(());
            }
        }
    }

    fn recv_datagram(&mut self) -> Result<usize> {
        loop {
            self.recv_buf.clear();
            // MSG_TRUNC: the call returns the datagram's real length, so truncation shows.
            match self.fd.recv(&mut self.recv_buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.recv_buf.len() => {
                    return Err(Error::protocol(format!(
                        "reply of {n} bytes does not fit the {RECV_BUF_LEN}-byte buffer"
                    )));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::socket(e)),
            }
        }
    }
}

/// The replies to one request, gathered datagram by datagram.
struct Reply<M> {
    seq: u32,
    messages: Vec<M>,
    /// A message of the dump carried `NLM_F_DUMP_INTR`: the dump may be inconsistent.
    interrupted: bool,
}

impl<M: NetlinkDeserializable + Debug> Reply<M> {
    fn new(seq: u32) -> Reply<M> {
        Reply {
            seq,
            messages: Vec::new(),
            interrupted: false,
        }
    }

    /// Takes in one datagram; `Ok(true)` once the request is complete (ACK or end of dump).
    /// Messages of other sequence numbers are leftovers of an earlier, abandoned request
    /// and are skipped.
    fn feed(&mut self, mut datagram: &[u8]) -> Result<bool> {
        while !datagram.is_empty() {
            let buf = NetlinkBuffer::new_checked(datagram)
                .map_err(|e| Error::protocol(format!("decode reply: {e}")))?;
            let len = buf.length() as usize;
            let seq = buf.sequence_number();
            let bytes = &datagram[..len];
            datagram = datagram.get(align4(len)..).unwrap_or_default();
            if seq != self.seq {
                log::trace!("netlink: skipping message of stale sequence {seq}");
                continue;
            }
            let msg = NetlinkMessage::<M>::deserialize(bytes)
                .map_err(|e| Error::protocol(format!("decode reply: {e}")))?;
            log::trace!("netlink recv: {msg:?}");
            let flags = msg.header.flags;
            if flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => self.messages.push(m),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(true),
                        Some(code) => Err(Error::kernel(
                            code.get().abs(),
                            error_ext_ack(flags, &e.header),
                        )),
                    };
                }
                NetlinkPayload::Done(done) => {
                    return if done.code < 0 {
                        let ext_ack = (flags & NLM_F_ACK_TLVS != 0)
                            .then(|| ext_ack_msg(&done.extended_ack))
                            .flatten();
                        Err(Error::kernel(-done.code, ext_ack))
                    } else {
                        Ok(true)
                    };
                }
                NetlinkPayload::Overrun(_) => return Err(Error::protocol("overrun")),
                _ => {}
            }
        }
        Ok(false)
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// The extended ack text of an `NLMSG_ERROR`. Its payload after the error code is the
/// request's header (all of the request without `NETLINK_CAP_ACK`), then the TLVs.
fn error_ext_ack(flags: u16, after_code: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDR_LEN
    } else {
        let len: [u8; 4] = after_code.get(..4)?.try_into().ok()?;
        u32::from_ne_bytes(len) as usize
    };
    ext_ack_msg(after_code.get(align4(request_len)..)?)
}

fn ext_ack_msg(tlvs: &[u8]) -> Option<String> {
    NlasIterator::new(tlvs)
        .map_while(|nla| nla.ok())
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let value = nla.value();
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(text).into_owned()
        })
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_MULTIPART, NLMSG_DONE, NLMSG_ERROR};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::link::LinkMessage;

    use super::*;

    fn header(len: usize, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&(len as u32).to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&flags.to_ne_bytes());
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&0u32.to_ne_bytes());
        h
    }

    /// An RTM_NEWLINK message with a bare header (ifindex `index`) and no attributes.
    fn newlink(flags: u16, seq: u32, index: u32) -> Vec<u8> {
        let mut msg = header(32, 16, flags, seq);
        let mut ifinfo = [0u8; 16];
        ifinfo[4..8].copy_from_slice(&index.to_ne_bytes());
        msg.extend_from_slice(&ifinfo);
        msg
    }

    fn done(seq: u32, flags: u16) -> Vec<u8> {
        let mut msg = header(20, NLMSG_DONE, flags, seq);
        msg.extend_from_slice(&0i32.to_ne_bytes());
        msg
    }

    /// An NLMSG_ERROR for a capped request with an extended ack message.
    fn error(seq: u32, errno: i32, ext_ack: &str) -> Vec<u8> {
        let mut tlv = Vec::new();
        let text_len = ext_ack.len() + 1;
        tlv.extend_from_slice(&((4 + text_len) as u16).to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        tlv.extend_from_slice(ext_ack.as_bytes());
        tlv.push(0);
        tlv.resize(align4(tlv.len()), 0);
        let len = 16 + 4 + 16 + tlv.len();
        let mut msg = header(len, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, seq);
        msg.extend_from_slice(&(-errno).to_ne_bytes());
        msg.extend_from_slice(&header(32, 16, NLM_F_REQUEST, seq));
        msg.extend_from_slice(&tlv);
        msg
    }

    fn indexes(reply: &Reply<RouteNetlinkMessage>) -> Vec<u32> {
        reply
            .messages
            .iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewLink(LinkMessage { header, .. }) => header.index,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn multipart_dump_spans_datagrams_and_skips_stale_messages() {
        let mut reply = Reply::<RouteNetlinkMessage>::new(7);
        let mut first = newlink(NLM_F_MULTIPART, 6, 99);
        first.extend(newlink(NLM_F_MULTIPART, 7, 1));
        first.extend(newlink(NLM_F_MULTIPART, 7, 2));
        assert!(!reply.feed(&first).unwrap());
        let mut second = newlink(NLM_F_MULTIPART, 7, 3);
        second.extend(done(7, NLM_F_MULTIPART));
        assert!(reply.feed(&second).unwrap());
        assert_eq!(indexes(&reply), [1, 2, 3]);
        assert!(!reply.interrupted);
    }

    #[test]
    fn dump_intr_flag_marks_the_reply_interrupted() {
        let mut reply = Reply::<RouteNetlinkMessage>::new(1);
        let mut datagram = newlink(NLM_F_MULTIPART | NLM_F_DUMP_INTR, 1, 1);
        datagram.extend(done(1, NLM_F_MULTIPART | NLM_F_DUMP_INTR));
        assert!(reply.feed(&datagram).unwrap());
        assert!(reply.interrupted);
    }

    #[test]
    fn error_carries_errno_and_extended_ack() {
        let mut reply = Reply::<RouteNetlinkMessage>::new(3);
        let err = reply
            .feed(&error(3, libc::EEXIST, "Interface already exists"))
            .unwrap_err();
        assert!(err.is_exists(), "{err:?}");
        match err {
            Error::Kernel { ext_ack, .. } => {
                assert_eq!(ext_ack.as_deref(), Some("Interface already exists"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ack_completes_a_request() {
        let mut reply = Reply::<RouteNetlinkMessage>::new(4);
        let mut ack = header(36, NLMSG_ERROR, NLM_F_CAPPED, 4);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&header(32, 16, NLM_F_REQUEST, 4));
        let mut datagram = newlink(0, 4, 5);
        datagram.extend(ack);
        assert!(reply.feed(&datagram).unwrap());
        assert_eq!(indexes(&reply), [5]);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let mut reply = Reply::<RouteNetlinkMessage>::new(1);
        let err = reply.feed(&[1, 2, 3]).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }
}
