//! Slots shared by every client, with a cap per client (by source address): a client that
//! opens connection after connection, or floods names that go upstream, runs out of its own
//! share and leaves the rest to everybody else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Of every limit, the share one client may hold.
pub const CLIENT_SHARE_DIVISOR: usize = 8;

#[derive(Debug)]
pub struct Quota {
    total: usize,
    per_client: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

impl Quota {
    /// `total` slots, at most `total / CLIENT_SHARE_DIVISOR` (and at least one) per client.
    pub fn new(total: usize) -> Arc<Quota> {
        Arc::new(Quota {
            total,
            per_client: (total / CLIENT_SHARE_DIVISOR).max(1),
            held: Mutex::default(),
        })
    }

    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// A slot for `client`, given back when the guard drops; `None` when every slot is taken
    /// or the client holds its share.
    pub fn try_take(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.total >= self.total {
            return None;
        }
        let mine = held.by_client.entry(client).or_default();
        if *mine >= self.per_client {
            return None;
        }
        *mine += 1;
        held.total += 1;
        Some(Slot {
            quota: self.clone(),
            client,
        })
    }

    fn give_back(&self, client: IpAddr) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(mine) = held.by_client.get_mut(&client) {
            *mine -= 1;
            if *mine == 0 {
                held.by_client.remove(&client);
            }
        }
    }
}

/// One slot of a [`Quota`], held until dropped.
#[derive(Debug)]
pub struct Slot {
    quota: Arc<Quota>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.quota.give_back(self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_client_takes_its_share_and_others_still_get_slots() {
        let quota = Quota::new(16);
        assert_eq!(quota.per_client(), 2);
        let greedy: Vec<Slot> = (0..5)
            .filter_map(|_| quota.try_take(ip("10.0.0.9")))
            .collect();
        assert_eq!(greedy.len(), 2);
        let others: Vec<Slot> = (1..=7)
            .filter_map(|n| quota.try_take(ip(&format!("10.0.0.{n}"))))
            .collect();
        assert_eq!(others.len(), 7);
        drop(greedy);
        assert!(quota.try_take(ip("10.0.0.9")).is_some());
    }

    #[test]
    fn the_total_holds_whatever_the_clients() {
        let quota = Quota::new(4);
        assert_eq!(quota.per_client(), 1);
        let held: Vec<Slot> = (1..=6)
            .filter_map(|n| quota.try_take(ip(&format!("fd00::{n}"))))
            .collect();
        assert_eq!(held.len(), 4);
        assert!(quota.try_take(ip("fd00::7")).is_none());
        drop(held);
        assert!(quota.held.lock().unwrap().by_client.is_empty());
        assert!(quota.try_take(ip("fd00::7")).is_some());
    }
}
