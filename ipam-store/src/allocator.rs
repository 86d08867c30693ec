//! host-local's allocation policy over the store: one address per range set, requested
//! addresses honoured, otherwise round-robin from the last address handed out.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::disk::{AttachmentKey, Locked, NetnsRecord};
use crate::error::{Result, StoreError};
use crate::range::RangeSet;

/// An address handed out, with the prefix length of its subnet and its range's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub address: IpNetwork,
    pub gateway: IpAddr,
}

/// Allocates one address per range set for `key`. `requested` addresses must each fall in a
/// distinct range set and be free; sets with no request get the next free address. Nothing
/// is written unless every set can be served.
pub fn allocate(
    store: &Locked<'_>,
    sets: &[RangeSet],
    key: &AttachmentKey,
    netns: &NetnsRecord,
    requested: &[IpAddr],
) -> Result<Vec<Allocated>> {
    let wanted = assign_requests(sets, requested)?;
    let owned = store.owned_by(key)?;
    let mut picks = Vec::with_capacity(sets.len());
    for (idx, (set, want)) in sets.iter().zip(&wanted).enumerate() {
        let ip = match want {
            Some(ip) => check_requested(store, set, *ip)?,
            None => {
                if let Some(held) = owned.iter().find(|ip| set.contains(**ip)) {
                    return Err(StoreError::AlreadyAllocated {
                        container: key.container_id.clone(),
                        ifname: key.ifname.clone(),
                        ip: *held,
                        set: set.to_string(),
                    });
                }
                next_free(store, set, idx)?
            }
        };
        picks.push((idx, ip));
    }
    store.reserve(key, netns, &picks)?;
    picks
        .iter()
        .zip(sets)
        .map(|((_, ip), set)| {
            let range = set.range_of(*ip).ok_or_else(|| StoreError::Unavailable {
                ip: *ip,
                reason: "outside its range set".into(),
            })?;
            let address = IpNetwork::new(*ip, range.subnet.prefix()).map_err(|_| {
                StoreError::Unavailable {
                    ip: *ip,
                    reason: "not valid with its subnet's prefix".into(),
                }
            })?;
            Ok(Allocated {
                address,
                gateway: range.gateway,
            })
        })
        .collect()
}

/// Matches each requested address to the first range set holding it; at most one per set.
fn assign_requests(sets: &[RangeSet], requested: &[IpAddr]) -> Result<Vec<Option<IpAddr>>> {
    let mut wanted: Vec<Option<IpAddr>> = vec![None; sets.len()];
    for &ip in requested {
        if wanted.contains(&Some(ip)) {
            continue;
        }
        let Some(idx) = sets.iter().position(|s| s.contains(ip)) else {
            return Err(StoreError::Unavailable {
                ip,
                reason: "outside every configured range".into(),
            });
        };
        if wanted[idx].is_some() {
            return Err(StoreError::Unavailable {
                ip,
                reason: format!(
                    "a second request in range set {} (one address per range set)",
                    sets[idx]
                ),
            });
        }
        wanted[idx] = Some(ip);
    }
    Ok(wanted)
}

fn check_requested(store: &Locked<'_>, set: &RangeSet, ip: IpAddr) -> Result<IpAddr> {
    let reason = if set.range_of(ip).is_some_and(|r| r.gateway == ip) {
        Some("the gateway of its range")
    } else if store.is_allocated(ip)? {
        Some("already allocated")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::Unavailable {
            ip,
            reason: reason.into(),
        }),
        None => Ok(ip),
    }
}

fn next_free(store: &Locked<'_>, set: &RangeSet, idx: usize) -> Result<IpAddr> {
    for ip in set.candidates_after(store.last_reserved(idx)) {
        if !store.is_allocated(ip)? {
            return Ok(ip);
        }
    }
    Err(StoreError::Exhausted {
        set: set.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::Store;
    use crate::range::RangeSpec;

    fn set(subnet: &str) -> RangeSet {
        RangeSet::from_specs(&[RangeSpec {
            subnet: Some(subnet.parse().unwrap()),
            ..RangeSpec::default()
        }])
        .unwrap()
    }

    /// [`allocate`] for container `id` on eth0, with no netns recorded.
    fn alloc(
        locked: &Locked<'_>,
        sets: &[RangeSet],
        id: &str,
        requested: &[IpAddr],
    ) -> Result<Vec<Allocated>> {
        allocate(
            locked,
            sets,
            &AttachmentKey::new(id, "eth0"),
            &NetnsRecord::default(),
            requested,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_round_robin_and_skips_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "n").unwrap();
        let locked = store.lock().unwrap();
        let sets = [set("10.0.0.0/29")];
        let a = alloc(&locked, &sets, "a", &[]).unwrap();
        assert_eq!(a[0].address.to_string(), "10.0.0.2/29");
        assert_eq!(a[0].gateway, ip("10.0.0.1"));
        let b = alloc(&locked, &sets, "b", &[]).unwrap();
        assert_eq!(b[0].address.ip(), ip("10.0.0.3"));
        locked.release(&AttachmentKey::new("a", "eth0")).unwrap();
        // Round robin: the freed .2 is not reused before the range wraps.
        let c = alloc(&locked, &sets, "c", &[]).unwrap();
        assert_eq!(c[0].address.ip(), ip("10.0.0.4"));
    }

    #[test]
    fn dual_stack_gives_one_address_per_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "n").unwrap();
        let locked = store.lock().unwrap();
        let sets = [set("10.0.0.0/24"), set("fd00::/64")];
        let got = alloc(&locked, &sets, "a", &[]).unwrap();
        assert_eq!(got[0].address.to_string(), "10.0.0.2/24");
        assert_eq!(got[1].address.to_string(), "fd00::2/64");
    }

    #[test]
    fn exhaustion_duplicates_and_bad_requests_are_errors_that_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "n").unwrap();
        let locked = store.lock().unwrap();
        let sets = [set("10.0.0.0/30")];
        alloc(&locked, &sets, "a", &[]).unwrap();
        let dup = alloc(&locked, &sets, "a", &[]).unwrap_err();
        assert!(matches!(dup, StoreError::AlreadyAllocated { .. }), "{dup}");
        let full = alloc(&locked, &sets, "b", &[]).unwrap_err();
        assert!(matches!(full, StoreError::Exhausted { .. }), "{full}");
        for bad in ["10.0.0.2", "10.0.0.1", "192.168.1.1"] {
            let e = alloc(&locked, &sets, "c", &[ip(bad)]);
            assert!(matches!(e, Err(StoreError::Unavailable { .. })), "{bad}");
        }
        assert_eq!(locked.scan().unwrap().len(), 1);
    }

    #[test]
    fn requested_addresses_are_honoured_per_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "n").unwrap();
        let locked = store.lock().unwrap();
        let sets = [set("10.0.0.0/24"), set("fd00::/64")];
        let got = alloc(&locked, &sets, "a", &[ip("fd00::99"), ip("10.0.0.50")]).unwrap();
        assert_eq!(got[0].address.ip(), ip("10.0.0.50"));
        assert_eq!(got[1].address.ip(), ip("fd00::99"));
        let two_in_one = alloc(&locked, &sets, "b", &[ip("10.0.0.60"), ip("10.0.0.61")]);
        assert!(two_in_one.is_err());
    }
}
