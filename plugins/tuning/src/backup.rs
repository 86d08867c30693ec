//! The originals ADD changed, kept where the reference keeps them, in its format:
//! `<dataDir>/<containerID>_<ifname>.json`, so either implementation restores what the
//! other changed.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use cni::Error;
use serde::{Deserialize, Serialize};

/// What ADD changed, with the values it found: the reference's `configToRestore` plus
/// this plugin's fields (ignored by the reference when it reads the file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub txqlen: Option<u32>,
    /// Original values, by path relative to /proc/sys/net.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ifname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// The netns's identity at ADD ([`plugin_kit::netns_identity`]): GC without a list
    /// tells a re-created netns at the same path from the container's.
    #[serde(default, rename = "netnsID", skip_serializing_if = "String::is_empty")]
    pub netns_id: String,
}

impl Backup {
    /// Whether the backup is the attachment's: the file name `<containerID>_<ifname>.json`
    /// is the same for `a_b` + `c` and `a` + `b_c`, so the fields recorded in it decide. A
    /// reference backup records neither and is taken as the attachment's.
    pub fn belongs_to(&self, container_id: &str, ifname: &str) -> bool {
        (self.container_id.is_empty() || self.container_id == container_id)
            && (self.ifname.is_empty() || self.ifname == ifname)
    }

    /// Takes the values an earlier backup of the same attachment recorded: those are the
    /// originals, what is there now may be that ADD's doing.
    pub fn keep_originals_of(&mut self, earlier: Backup) {
        if !earlier.mac.is_empty() {
            self.mac = earlier.mac;
        }
        if earlier.mtu != 0 {
            self.mtu = earlier.mtu;
        }
        self.promisc = earlier.promisc.or(self.promisc);
        self.allmulti = earlier.allmulti.or(self.allmulti);
        self.txqlen = earlier.txqlen.or(self.txqlen);
        for (path, value) in earlier.sysctl {
            self.sysctl.insert(path, value);
        }
    }
}

/// What the backup file of one attachment holds.
#[derive(Debug)]
pub enum Found {
    Nothing,
    Ours(Backup),
    /// The backup of another attachment whose file name is the same.
    Another,
}

/// The attachment's backup at `path`, told apart from another attachment's of the same name.
pub fn find_backup(path: &Path, container_id: &str, ifname: &str) -> Found {
    match read_backup(path) {
        None => Found::Nothing,
        Some(backup) if backup.belongs_to(container_id, ifname) => Found::Ours(backup),
        Some(backup) => {
            log::warn!(
                "{} is the backup of {} {}, not of {container_id} {ifname}",
                path.display(),
                backup.container_id,
                backup.ifname
            );
            Found::Another
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// `<dataDir>/<containerID>_<ifname>.json`, the reference's file name. Both parts were
/// validated by the skel (no `/`, not `.` or `..`).
pub fn backup_path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(format!("{container_id}_{ifname}.json"))
}

pub fn write_backup(path: &Path, backup: &Backup) -> Result<(), Error> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal("backup path has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}: {e}", dir.display())))?;
    let bytes = serde_json::to_vec_pretty(backup).map_err(|e| Error::internal(e.to_string()))?;
    atomic_file::write_atomic(path, &bytes)
        .map_err(|e| Error::io(format!("write {}: {e}", path.display())))
}

pub fn read_backup(path: &Path) -> Option<Backup> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(b) => Some(b),
        Err(e) => {
            log::warn!("ignoring unreadable backup {}: {e}", path.display());
            None
        }
    }
}

pub fn remove_backup(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_whose_file_names_collide_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        // `a_b` + `c` and `a` + `b_c` share `a_b_c.json`.
        let path = backup_path(dir.path(), "a_b", "c");
        assert_eq!(path, backup_path(dir.path(), "a", "b_c"));
        let backup = Backup {
            mtu: 1400,
            container_id: "a_b".into(),
            ifname: "c".into(),
            ..Backup::default()
        };
        write_backup(&path, &backup).unwrap();
        assert!(matches!(find_backup(&path, "a_b", "c"), Found::Ours(b) if b == backup));
        assert!(matches!(find_backup(&path, "a", "b_c"), Found::Another));
        // The reference records neither field: taken as the attachment's.
        std::fs::write(&path, br#"{"mtu":1400}"#).unwrap();
        assert!(matches!(find_backup(&path, "a", "b_c"), Found::Ours(_)));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(find_backup(&path, "a", "b_c"), Found::Nothing));
    }
}
