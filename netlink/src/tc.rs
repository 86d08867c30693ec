//! Traffic control for bandwidth limits: token bucket (TBF) root qdiscs, the ingress qdisc, a
//! match-all u32 filter redirecting a link's ingress to an ifb (whose egress can then be
//! shaped), and ifb links. Each is one rtnetlink request; a qdisc is read back with a single
//! RTM_GETQDISC for its link and parent, never a dump of every link's.

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, Nla, NlasIterator};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::link::{LinkId, check_ifname};

/// `TCA_TBF_PARMS`: `struct tc_tbf_qopt`.
const TCA_TBF_PARMS: u16 = 1;
/// `TCA_TBF_RATE64`: the rate in bytes/s when it does not fit the 32 bits of the qopt.
const TCA_TBF_RATE64: u16 = 4;
/// `TCA_OPTIONS`, as an unparsed attribute of a qdisc kind the library does not know.
const TCA_OPTIONS: u16 = 2;
/// `TC_LINKLAYER_ETHERNET`: rates count Ethernet frames (no rate table needed).
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// `ETH_P_ALL`, in the network byte order `tcm_info` carries the protocol in.
const ETH_P_ALL_BE: u16 = 0x0003_u16.to_be();
/// Scheduler ticks (64 ns, `PSCHED_SHIFT` 6) per microsecond, as `/proc/net/psched` gives
/// it on every kernel since 2.6.31: 1000 / 64.
const TICKS_PER_USEC: f64 = 15.625;
/// The queueing latency the reference bandwidth plugin sizes its TBF limit for.
const LATENCY_USEC: f64 = 25_000.0;

/// The handle of the TBF root qdisc (`1:`).
pub const TBF_HANDLE: u32 = 0x0001_0000;
/// The handle of the ingress qdisc (`ffff:`).
pub const INGRESS_HANDLE: u32 = 0xffff_0000;

/// A token bucket, as the kernel holds it: rate in bytes/s, queue limit in bytes, bucket
/// size in scheduler ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    pub rate: u64,
    pub limit: u32,
    pub buffer: u32,
}

impl Tbf {
    /// The bucket for a rate and burst in bits, computed as the reference plugin computes
    /// it (so either can CHECK what the other made): a burst's worth of time at the rate,
    /// a limit of 25 ms of traffic plus the burst. `None` when the rate or the burst is
    /// under a byte.
    pub fn for_rate(rate_bits: u64, burst_bits: u64) -> Option<Tbf> {
        let rate = rate_bits / 8;
        let burst = u32::try_from(burst_bits / 8).ok()?;
        if rate == 0 || burst == 0 {
            return None;
        }
        // The reference's float arithmetic and truncations, step by step.
        let usec = (f64::from(burst) * 1e6 / rate as f64) as u32;
        let buffer = (f64::from(usec) * TICKS_PER_USEC) as u32;
        let limit = ((rate as f64 * LATENCY_USEC / 1e6) as u32).saturating_add(burst);
        Some(Tbf {
            rate,
            limit,
            buffer,
        })
    }

    /// `struct tc_tbf_qopt`: rate, peak rate (none), limit, buffer, mtu (none).
    fn qopt(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(36);
        let rate32 = u32::try_from(self.rate).unwrap_or(u32::MAX);
        // tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu, rate.
        b.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET]);
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&rate32.to_ne_bytes());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&self.limit.to_ne_bytes());
        b.extend_from_slice(&self.buffer.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b
    }

    /// Reads `TCA_OPTIONS` of a tbf qdisc.
    fn parse(options: &[u8]) -> Option<Tbf> {
        let mut tbf = None;
        let mut rate64 = None;
        for nla in NlasIterator::new(options).flatten() {
            let v = nla.value();
            match nla.kind() {
                TCA_TBF_PARMS if v.len() >= 36 => {
                    let u32_at =
                        |i: usize| u32::from_ne_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                    tbf = Some(Tbf {
                        rate: u64::from(u32_at(8)),
                        limit: u32_at(24),
                        buffer: u32_at(28),
                    });
                }
                TCA_TBF_RATE64 if v.len() >= 8 => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&v[..8]);
                    rate64 = Some(u64::from_ne_bytes(bytes));
                }
                _ => {}
            }
        }
        let mut tbf = tbf?;
        if let Some(rate) = rate64 {
            tbf.rate = rate;
        }
        Some(tbf)
    }
}

/// A qdisc as [`Netlink::qdisc`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    pub handle: u32,
    /// The bucket, for a tbf.
    pub tbf: Option<Tbf>,
}

fn handle(raw: u32) -> TcHandle {
    TcHandle {
        major: (raw >> 16) as u16,
        minor: raw as u16,
    }
}

fn raw_handle(h: TcHandle) -> u32 {
    (u32::from(h.major) << 16) | u32::from(h.minor)
}

fn tc_message(index: u32, handle_raw: u32, parent: TcHandle) -> Result<TcMessage> {
    let mut msg = TcMessage::default();
    msg.header.index = i32::try_from(index)
        .map_err(|_| Error::InvalidArgument(format!("link index {index} out of range")))?;
    msg.header.handle = handle(handle_raw);
    msg.header.parent = parent;
    Ok(msg)
}

impl Netlink {
    /// `ip link add NAME mtu MTU type ifb; ip link set NAME alias ALIAS up`: an ifb to shape
    /// a link's ingress on; the alias tags it with its owner so that GC can find it. The
    /// kernel ignores an alias given at creation, so the link is made down and comes up only
    /// with its tag, in one message: a process killed in between leaves an ifb that is both
    /// untagged and down, which no finished creation (ours or another tool's) is. A link that
    /// cannot be tagged is deleted.
    pub fn create_ifb(&mut self, name: &str, mtu: u32, alias: &str) -> Result<()> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| e.during(format!("create ifb {name}")))?;
        let id = LinkId::from(name);
        let tagged = self.change_link(&id, |msg| {
            msg.header.flags = LinkFlags::Up;
            msg.header.change_mask = LinkFlags::Up;
            msg.attributes
                .push(LinkAttribute::IfAlias(alias.to_owned()))
        });
        if let Err(e) = tagged {
            let _ = self.delete_link(name);
            return Err(e.during(format!("tag and bring up ifb {name}")));
        }
        Ok(())
    }

    /// `tc qdisc add dev DEV root handle 1: tbf ...`.
    pub fn add_tbf_root(&mut self, index: u32, tbf: &Tbf) -> Result<()> {
        let mut msg = tc_message(index, TBF_HANDLE, TcHandle::ROOT)?;
        msg.attributes.push(TcAttribute::Kind("tbf".into()));
        let mut options = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, tbf.qopt()))];
        if tbf.rate > u64::from(u32::MAX) {
            options.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                tbf.rate.to_ne_bytes().to_vec(),
            )));
        }
        msg.attributes.push(TcAttribute::Options(options));
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add tbf qdisc to link index {index}")))
    }

    /// `tc qdisc add dev DEV handle ffff: ingress`.
    pub fn add_ingress_qdisc(&mut self, index: u32) -> Result<()> {
        let mut msg = tc_message(index, INGRESS_HANDLE, TcHandle::INGRESS)?;
        msg.attributes.push(TcAttribute::Kind("ingress".into()));
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add ingress qdisc to link index {index}")))
    }

    /// `tc filter add dev DEV parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1
    /// action mirred egress redirect dev TARGET`: everything arriving on DEV leaves through
    /// TARGET instead.
    pub fn add_redirect_filter(&mut self, index: u32, target: u32) -> Result<()> {
        let mut msg = tc_message(index, 0, handle(INGRESS_HANDLE))?;
        msg.header.info = (1 << 16) | u32::from(ETH_P_ALL_BE);
        msg.attributes.push(TcAttribute::Kind("u32".into()));
        let mut selector = TcU32Selector::default();
        selector.flags = TcU32SelectorFlags::Terminal;
        selector.nkeys = 1;
        selector.keys = vec![TcU32Key::default()];
        let mut generic = TcActionGeneric::default();
        generic.action = TcActionType::Stolen;
        let mut mirror = TcMirror::default();
        mirror.generic = generic;
        mirror.eaction = TcMirrorActionType::EgressRedir;
        mirror.ifindex = target;
        let mut action = TcAction::default();
        action.tab = 1;
        action.attributes = vec![
            TcActionAttribute::Kind("mirred".into()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
                mirror,
            ))]),
        ];
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::ClassId(TcHandle { major: 1, minor: 1 })),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]));
        self.request(
            RouteNetlinkMessage::NewTrafficFilter(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| e.during(format!("add redirect filter to link index {index}")))
    }

    /// The root qdisc of a link (`ingress: false`) or its ingress qdisc, `None` when the link
    /// has none of its own (the kernel's default root qdiscs have handle 0).
    pub fn qdisc(&mut self, index: u32, ingress: bool) -> Result<Option<Qdisc>> {
        let parent = if ingress {
            TcHandle::INGRESS
        } else {
            TcHandle::ROOT
        };
        let msg = tc_message(index, 0, parent)?;
        // The kernel sends the qdisc to the group, not to the asker, unless asked to echo.
        let replies = match self.request(RouteNetlinkMessage::GetQueueDiscipline(msg), NLM_F_ECHO) {
            Ok(replies) => replies,
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e.during(format!("get qdisc of link index {index}"))),
        };
        for reply in replies {
            let RouteNetlinkMessage::NewQueueDiscipline(msg) = reply else {
                continue;
            };
            let handle = raw_handle(msg.header.handle);
            if handle == 0 {
                return Ok(None);
            }
            let mut kind = String::new();
            let mut tbf = None;
            for attr in &msg.attributes {
                match attr {
                    TcAttribute::Kind(k) => kind = k.clone(),
                    TcAttribute::Options(options) => {
                        for option in options {
                            if let TcOption::Other(nla) = option
                                && nla.kind() == TCA_OPTIONS
                            {
                                let mut value = vec![0; nla.value_len()];
                                nla.emit_value(&mut value);
                                tbf = Tbf::parse(&value);
                            }
                        }
                    }
                    _ => {}
                }
            }
            return Ok(Some(Qdisc {
                kind: kind.clone(),
                handle,
                tbf: tbf.filter(|_| kind == "tbf"),
            }));
        }
        Ok(None)
    }

    /// Deletes the link's root qdisc (`ingress: false`) or its ingress qdisc; returns whether
    /// there was one.
    pub fn delete_qdisc(&mut self, index: u32, ingress: bool) -> Result<bool> {
        let (parent, handle_raw) = if ingress {
            (TcHandle::INGRESS, INGRESS_HANDLE)
        } else {
            (TcHandle::ROOT, 0)
        };
        let msg = tc_message(index, handle_raw, parent)?;
        match self.request(RouteNetlinkMessage::DelQueueDiscipline(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EINVAL) => Ok(false),
            Err(e) => Err(e.during(format!("delete qdisc of link index {index}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::in_new_netns;

    #[test]
    fn buckets_are_sized_as_the_reference_sizes_them() {
        // 1 Mbit/s with a 1 Mbit burst: 125000 B/s, a second of burst, 25 ms of queue.
        let tbf = Tbf::for_rate(1_000_000, 1_000_000).unwrap();
        assert_eq!(tbf.rate, 125_000);
        assert_eq!(tbf.buffer, 15_625_000);
        assert_eq!(tbf.limit, 3_125 + 125_000);
        assert_eq!(Tbf::for_rate(7, 800), None);
        assert_eq!(Tbf::for_rate(800, 7), None);
        assert_eq!(Tbf::for_rate(800, 8 * (1 << 33)), None);
        let fast = Tbf::for_rate(100_000_000_000, 80_000).unwrap();
        assert_eq!(fast.rate, 12_500_000_000);
        let parsed = Tbf::parse(&{
            let mut b = Vec::new();
            for (kind, value) in [
                (TCA_TBF_PARMS, fast.qopt()),
                (TCA_TBF_RATE64, fast.rate.to_ne_bytes().to_vec()),
            ] {
                let len = 4 + value.len();
                b.extend_from_slice(&(len as u16).to_ne_bytes());
                b.extend_from_slice(&kind.to_ne_bytes());
                b.extend_from_slice(&value);
                while b.len() % 4 != 0 {
                    b.push(0);
                }
            }
            b
        });
        assert_eq!(parsed, Some(fast));
    }

    #[test]
    fn shaping_qdiscs_ifb_and_redirect() {
        in_new_netns(|| {
            let mut nl = Netlink::host().unwrap();
            nl.create_link_of_kind("d0", "bridge").unwrap();
            let d0 = nl.get_link("d0").unwrap().unwrap().index;
            match nl.create_ifb("bwp0", 1400, "cni-test owner") {
                Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                    if !test_requires::kernel_feature(false, "ifb", "netlink") {
                        return;
                    }
                }
                other => other.unwrap(),
            }
            let ifb = nl.get_link("bwp0").unwrap().unwrap();
            assert_eq!(ifb.kind.as_deref(), Some("ifb"));
            assert_eq!(ifb.mtu, 1400);
            assert!(ifb.is_up());
            assert_eq!(ifb.alias.as_deref(), Some("cni-test owner"));

            assert_eq!(nl.qdisc(d0, false).unwrap(), None);
            let tbf = Tbf::for_rate(8_000_000, 80_000).unwrap();
            nl.add_tbf_root(d0, &tbf).unwrap();
            let root = nl.qdisc(d0, false).unwrap().unwrap();
            assert_eq!(root.kind, "tbf");
            assert_eq!(root.handle, TBF_HANDLE);
            assert_eq!(root.tbf, Some(tbf));
            assert!(nl.add_tbf_root(d0, &tbf).unwrap_err().is_exists());

            nl.add_ingress_qdisc(d0).unwrap();
            let ingress = nl.qdisc(d0, true).unwrap().unwrap();
            assert_eq!(ingress.kind, "ingress");
            nl.add_redirect_filter(d0, ifb.index).unwrap();

            assert!(nl.delete_qdisc(d0, true).unwrap());
            assert!(!nl.delete_qdisc(d0, true).unwrap());
            assert!(nl.delete_qdisc(d0, false).unwrap());
            assert_eq!(nl.qdisc(d0, false).unwrap(), None);
            assert_eq!(nl.qdisc(d0, true).unwrap(), None);
        });
    }
}
