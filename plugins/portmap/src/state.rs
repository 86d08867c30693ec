//! What ADD set up for an attachment, kept so DEL, CHECK and GC work from the container ID
//! and interface name alone (the runtime may send DEL without `runtimeConfig` or
//! `prevResult`): one JSON file per attachment under `<dataDir>/<network>/`.

use std::path::Path;

use ipnetwork::IpNetwork;
use plugin_kit::StateDir;
use serde::{Deserialize, Serialize};

use crate::config::{Backend, Mapping};

/// One element ADD put in a set or map (key and data as the kernel holds them, in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredElement {
    pub set: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// The iptables backend's per-attachment chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesState {
    pub chain: String,
    /// The entry rules in CNI-HOSTPORT-DNAT, per family ("4", "6"), as written (for DEL and
    /// CHECK).
    pub entries_v4: Vec<String>,
    pub entries_v6: Vec<String>,
    /// The rules of the chain, per family.
    pub rules_v4: Vec<String>,
    pub rules_v6: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentState {
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// The netns's identity at ADD ([`plugin_kit::netns_identity`]): GC without a list
    /// tells a re-created netns at the same path from the container's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns_id: String,
    pub backend: Backend,
    pub mappings: Vec<Mapping>,
    /// The container addresses forwarded to (with their prefix).
    pub addresses: Vec<IpNetwork>,
    /// The host interfaces `route_localnet` was set on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localnet: Vec<String>,
    /// nftables: the elements ADD added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<StoredElement>,
    /// nftables: the comments of the structure rules the elements are used by (CHECK).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables: Option<IptablesState>,
}

impl AttachmentState {
    /// The attachment's netns was recorded and no longer exists.
    pub fn netns_gone(&self) -> bool {
        plugin_kit::netns_is_gone(&self.netns, &self.netns_id)
    }
}

pub fn dir(data_dir: &Path, network: &str) -> StateDir {
    StateDir::new(data_dir, network)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0x1f, 0xff]), "001fff");
        assert_eq!(unhex("001fff"), Some(vec![0, 0x1f, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
