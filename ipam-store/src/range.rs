//! Address ranges and range sets, validated the way host-local's config requires.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// A range as written in the config, before validation.
#[derive(Debug, Clone, Default)]
pub struct RangeSpec {
    pub subnet: Option<IpNetwork>,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

/// A validated range: every address in `start..=end` except `gateway` may be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// One pool of addresses; each range set yields one address per attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RangeError(pub String);

fn err(msg: String) -> RangeError {
    RangeError(msg)
}

/// Addresses as integers, so stepping and comparing work for both families.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` of the same family as `like`.
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl Range {
    /// Validates a range: the subnet is a network address with at least two host bits;
    /// start, end and gateway lie inside it; start <= end. Defaults follow host-local: the
    /// gateway and start are the subnet's first address, the end is its last (IPv4: the
    /// address before broadcast).
    pub fn from_spec(spec: &RangeSpec) -> Result<Range, RangeError> {
        let subnet = spec
            .subnet
            .ok_or_else(|| err("range has no subnet".into()))?;
        let bits = if subnet.is_ipv4() { 32 } else { 128 };
        if subnet.prefix() > bits - 2 {
            return Err(err(format!(
                "subnet {subnet} is too small to allocate from (a /{} or shorter is needed)",
                bits - 2
            )));
        }
        if subnet.ip() != subnet.network() {
            return Err(err(format!(
                "subnet {subnet} has host bits set; the network address is {}/{}",
                subnet.network(),
                subnet.prefix()
            )));
        }
        let first = from_u128(subnet.ip(), to_u128(subnet.network()) + 1);
        let last_n = to_u128(subnet.broadcast()) - u128::from(subnet.is_ipv4());
        let last = from_u128(subnet.ip(), last_n);
        let inside = |what: &str, ip: Option<IpAddr>, default: IpAddr| match ip {
            None => Ok(default),
            Some(ip) if subnet.contains(ip) => Ok(ip),
            Some(ip) => Err(err(format!("{what} {ip} is not in subnet {subnet}"))),
        };
        let range = Range {
            subnet,
            start: inside("rangeStart", spec.range_start, first)?,
            end: inside("rangeEnd", spec.range_end, last)?,
            gateway: inside("gateway", spec.gateway, first)?,
        };
        if to_u128(range.start) > to_u128(range.end) {
            return Err(err(format!(
                "rangeStart {} is after rangeEnd {}",
                range.start, range.end
            )));
        }
        Ok(range)
    }

    pub fn is_ipv4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    /// Whether `ip` lies in `start..=end` (same family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// How many addresses `start..=end` holds; a range of all 2^128 IPv6 addresses (`::/0`
    /// from `::`) counts one short, as u128 ends there.
    fn span(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// How many addresses this range can hand out.
    pub fn capacity(&self) -> u128 {
        self.span() - u128::from(self.contains(self.gateway))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl RangeSet {
    /// Validates a set: non-empty, one address family, no two ranges overlapping.
    pub fn from_specs(specs: &[RangeSpec]) -> Result<RangeSet, RangeError> {
        let ranges = specs
            .iter()
            .map(Range::from_spec)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = ranges.first() else {
            return Err(err("empty range set".into()));
        };
        if ranges.iter().any(|r| r.is_ipv4() != first.is_ipv4()) {
            return Err(err("mixed address families in one range set".into()));
        }
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(err(format!("ranges {a} and {b} overlap")));
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn is_ipv4(&self) -> bool {
        self.0.first().is_some_and(Range::is_ipv4)
    }

    /// The range holding `ip`, if any.
    pub fn range_of(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_of(ip).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    pub fn capacity(&self) -> u128 {
        self.0
            .iter()
            .map(Range::capacity)
            .fold(0, u128::saturating_add)
    }

    /// Candidate addresses in host-local's round-robin order: starting after `last` when it
    /// lies in the set (else at the first range's start), through every range in turn,
    /// wrapping around once, skipping each range's gateway.
    pub fn candidates_after(&self, last: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
        // After the very last address of the space (`ffff:…:ffff`) there is no next one in
        // its range: the walk goes on with the following range.
        let start = last
            .and_then(|ip| {
                let idx = self.0.iter().position(|r| r.contains(ip))?;
                Some((idx, to_u128(ip).checked_add(1)))
            })
            .unwrap_or((0, self.0.first().map(|r| to_u128(r.start))));
        RoundRobin {
            set: self,
            range: start.0,
            next: start.1,
            visited: 0,
            total: self.0.iter().map(Range::span).fold(0, u128::saturating_add),
        }
        .filter(move |ip| self.range_of(*ip).is_some_and(|r| r.gateway != *ip))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Walks every address of every range of a set exactly once, from a starting point.
struct RoundRobin<'a> {
    set: &'a RangeSet,
    range: usize,
    /// The next address of the current range; `None` past the top of the address space.
    next: Option<u128>,
    visited: u128,
    total: u128,
}

impl Iterator for RoundRobin<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        if self.visited >= self.total {
            return None;
        }
        let ranges = &self.set.0;
        let n = match self.next {
            Some(n) if n <= to_u128(ranges[self.range].end) => n,
            _ => {
                self.range = (self.range + 1) % ranges.len();
                to_u128(ranges[self.range].start)
            }
        };
        self.next = n.checked_add(1);
        self.visited += 1;
        Some(from_u128(ranges[self.range].start, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet: &str) -> RangeSpec {
        RangeSpec {
            subnet: Some(subnet.parse().unwrap()),
            ..RangeSpec::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_match_host_local() {
        let r = Range::from_spec(&spec("10.1.2.0/24")).unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.2.1"), ip("10.1.2.254"), ip("10.1.2.1"))
        );
        let r = Range::from_spec(&spec("fd00::/120")).unwrap();
        assert_eq!((r.start, r.end), (ip("fd00::1"), ip("fd00::ff")));
        assert_eq!(r.capacity(), 254);
    }

    #[test]
    fn rejects_bad_ranges() {
        for (s, want) in [
            ("10.0.0.1/24", "host bits"),
            ("10.0.0.0/31", "too small"),
            ("10.0.0.0/32", "too small"),
            ("fd00::/127", "too small"),
            ("fd00::/128", "too small"),
        ] {
            let e = Range::from_spec(&spec(s)).unwrap_err();
            assert!(e.0.contains(want), "{s}: {e}");
        }
        let mut s = spec("10.0.0.0/24");
        s.gateway = Some(ip("10.0.1.1"));
        assert!(Range::from_spec(&s).unwrap_err().0.contains("gateway"));
        let mut s = spec("10.0.0.0/24");
        s.range_start = Some(ip("10.0.1.1"));
        assert!(Range::from_spec(&s).unwrap_err().0.contains("rangeStart"));
        let mut s = spec("10.0.0.0/24");
        s.range_start = Some(ip("10.0.0.9"));
        s.range_end = Some(ip("10.0.0.5"));
        assert!(Range::from_spec(&s).is_err());
    }

    #[test]
    fn sets_reject_overlap_and_mixed_families() {
        assert!(RangeSet::from_specs(&[spec("10.0.0.0/24"), spec("10.0.0.0/25")]).is_err());
        assert!(RangeSet::from_specs(&[spec("10.0.0.0/24"), spec("fd00::/64")]).is_err());
        assert!(RangeSet::from_specs(&[]).is_err());
        let a = RangeSet::from_specs(&[spec("10.0.0.0/24")]).unwrap();
        let b = RangeSet::from_specs(&[spec("10.0.0.128/25")]).unwrap();
        assert!(a.overlaps(&b));
    }

    #[test]
    fn round_robin_wraps_across_ranges_and_skips_gateways() {
        let set = RangeSet::from_specs(&[spec("10.0.0.0/30"), spec("10.0.1.0/30")]).unwrap();
        // Each /30 hands out .1 (gateway, skipped) and .2.
        let all: Vec<IpAddr> = set.candidates_after(None).collect();
        assert_eq!(all, vec![ip("10.0.0.2"), ip("10.0.1.2")]);
        let after: Vec<IpAddr> = set.candidates_after(Some(ip("10.0.0.2"))).collect();
        assert_eq!(after, vec![ip("10.0.1.2"), ip("10.0.0.2")]);
        let outside: Vec<IpAddr> = set.candidates_after(Some(ip("192.168.0.1"))).collect();
        assert_eq!(outside, all);
    }

    #[test]
    fn the_top_of_the_ipv6_space_allocates_and_wraps() {
        // ffff:…:ff00/120 ends at the last address there is.
        let top =
            RangeSet::from_specs(&[spec("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120")]).unwrap();
        assert_eq!(top.capacity(), 254);
        let last = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        let after_last: Vec<IpAddr> = top.candidates_after(Some(last)).collect();
        assert_eq!(after_last.len(), 254);
        assert_eq!(after_last[0], ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff02"));
        assert_eq!(*after_last.last().unwrap(), last);
        let from_start: Vec<IpAddr> = top.candidates_after(None).collect();
        assert_eq!(from_start, after_last);

        // All of it: ::/0 from ::, the gateway ::1 skipped.
        let all = RangeSet::from_specs(&[RangeSpec {
            range_start: Some(ip("::")),
            ..spec("::/0")
        }])
        .unwrap();
        assert_eq!(all.capacity(), u128::MAX - 1);
        let first: Vec<IpAddr> = all.candidates_after(None).take(2).collect();
        assert_eq!(first, vec![ip("::"), ip("::2")]);
        let wrapped: Vec<IpAddr> = all.candidates_after(Some(last)).take(2).collect();
        assert_eq!(wrapped, vec![ip("::"), ip("::2")]);
        let before_top = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
        let to_top: Vec<IpAddr> = all.candidates_after(Some(before_top)).take(2).collect();
        assert_eq!(to_top, vec![last, ip("::")]);
    }

    #[test]
    fn sets_of_huge_ranges_count_without_overflow() {
        // Each half: 2^127 addresses less its network address and its gateway.
        let huge = RangeSet::from_specs(&[spec("::/1"), spec("8000::/1")]).unwrap();
        assert_eq!(huge.capacity(), u128::MAX - 3);
        assert_eq!(huge.candidates_after(None).next(), Some(ip("::2")));
    }
}
