//! The sidecar daemon: UDP and TCP listeners on every network's gateways, answering from an
//! in-memory snapshot of the store and forwarding the rest upstream.
//!
//! Why not hickory-server's `Server`: its TCP accept loop has no bound on connections (and
//! spins on `EMFILE`), and its UDP path spawns a task and goes through a channel for every
//! packet. We keep hickory's message handling (`Request`, `MessageResponseBuilder`) and
//! hickory-net's client for upstreams, and own the socket loops: a blocking thread per UDP
//! socket and a bounded set of TCP connection tasks.

mod cgroup;
pub mod cli;
pub mod daemon;
pub mod engine;
pub mod fast;
pub mod forward;
mod quota;
pub mod records;
mod tcp;
mod udp;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use daemon::{DaemonError, Options, run};
pub use engine::{Engine, Outcome};
pub use records::{Records, Snapshot};
pub use tcp::TcpLimits;

/// What the listeners share: the current snapshot (replaced whole on every change), the
/// addresses we listen on (never forwarded to), the engine and the forwarder.
pub struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
    listening: RwLock<Arc<BTreeSet<IpAddr>>>,
    pub engine: Engine,
    pub forwarder: forward::Forwarder,
    pub runtime: tokio::runtime::Handle,
}

impl Shared {
    pub fn new(
        engine: Engine,
        forwarder: forward::Forwarder,
        runtime: tokio::runtime::Handle,
    ) -> Shared {
        Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            generation: AtomicU64::new(0),
            listening: RwLock::new(Arc::new(BTreeSet::new())),
            engine,
            forwarder,
            runtime,
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bumped by every [`Shared::publish`]: UDP threads keep their snapshot until it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes `snap` the one every following query sees. Queries in progress finish with the
    /// one they hold: nothing is dropped or refused during a change.
    pub fn publish(&self, snap: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn listening(&self) -> Arc<BTreeSet<IpAddr>> {
        self.listening
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_listening(&self, addrs: BTreeSet<IpAddr>) {
        *self.listening.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(addrs);
    }
}
