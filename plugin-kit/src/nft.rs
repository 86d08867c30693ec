//! What the nftables users among the plugins share: one socket per invocation, structure
//! created once under a lock, stable short names for networks in nft object names.

use std::path::Path;

use cni::Error;
use cni_netlink::nft::{ElementOp, Nft};
use sha2::{Digest, Sha256};

/// The nftables socket of one invocation, opened on first use. After a transaction its last
/// close waits for the kernel to free what was replaced or deleted, so [`NftSession::finish`]
/// leaves that close to after exit; a socket that only read closes at once.
#[derive(Default)]
pub struct NftSession {
    nft: Option<Nft>,
    wrote: bool,
}

impl NftSession {
    pub fn get(&mut self) -> Result<&mut Nft, Error> {
        if self.nft.is_none() {
            self.nft = Some(Nft::host().map_err(|e| nft_error("open nftables socket", e))?);
        }
        self.nft
            .as_mut()
            .ok_or_else(|| Error::internal("nftables socket"))
    }

    /// Applies element changes in one transaction.
    pub fn apply(&mut self, ops: &[ElementOp]) -> Result<(), Error> {
        if ops.is_empty() {
            return Ok(());
        }
        self.wrote = true;
        self.get()?
            .apply(ops)
            .map_err(|e| nft_error("update nftables sets", e))
    }

    pub fn finish(self) {
        if let Some(nft) = self.nft
            && self.wrote
        {
            nft.close_after_exit();
        }
    }
}

/// A short, stable name for a network (or any text) in nft object names: network names may
/// be long or hold characters nft identifiers cannot.
pub fn net_id(network: &str) -> String {
    let digest = Sha256::digest(network.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("n{hex}")
}

/// An nftables failure during `what`: internal (999).
pub fn nft_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// Creates structure (tables, chains, sets, rules) unless `exists` says it is there: checked
/// without the lock first (the common case: it exists), then again under the data dir's nft
/// lock, so that concurrent ADDs create it once. `text` is applied with `nft -f`.
pub fn ensure_structure(
    nft: &mut Nft,
    data_dir: &Path,
    exists: impl Fn(&mut Nft) -> Result<bool, Error>,
    what: &str,
    text: impl FnOnce() -> String,
) -> Result<(), Error> {
    if exists(nft)? {
        return Ok(());
    }
    with_structure_lock(data_dir, || {
        if exists(nft)? {
            return Ok(());
        }
        cni_netlink::nft::apply_ruleset(None, &text()).map_err(|e| nft_error(what, e))
    })
}

/// Runs `f` holding the data dir's nft lock, so concurrent ADDs create the structure once.
pub fn with_structure_lock<T>(
    data_dir: &Path,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let _lock = crate::lock_in(data_dir, "nft.lock").map_err(crate::state_error)?;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_ids_are_short_stable_identifiers() {
        assert_eq!(net_id("podman"), net_id("podman"));
        assert_ne!(net_id("podman"), net_id("kindnet"));
        let id = net_id("a name with spaces / and \"quotes\" that is rather long");
        assert_eq!(id.len(), 13);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
