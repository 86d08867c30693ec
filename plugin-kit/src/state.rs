//! What a plugin must remember about an attachment between ADD and DEL, so DEL and GC can
//! clean up with nothing but the container ID and interface name (the runtime may send DEL
//! without `prevResult`, without runtime config, or with the netns gone).
//!
//! One JSON file per attachment, `<dir>/<network>/<containerID>@<ifname>`, written whole
//! (temporary file, then rename). The runtime never runs two operations on one attachment at
//! once, so no lock is needed; reading one attachment costs one open, whatever the count.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct StateError {
    op: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl StateError {
    /// A lock wait that ran out ([`crate::lock_in`]).
    pub fn is_timeout(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::TimedOut
    }
}

pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> StateError {
    StateError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The state files of one network of one plugin.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// `<root>/<network>`; created on the first save.
    pub fn new(root: &Path, network: &str) -> StateDir {
        StateDir {
            dir: root.join(network),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `<id>@<ifname>`, or a hash of it when too long for a file name.
    fn file_name(container_id: &str, ifname: &str) -> String {
        let plain = format!("{container_id}@{ifname}");
        if plain.len() <= 200 && !plain.starts_with('.') && !plain.contains('/') {
            plain
        } else {
            let digest = Sha256::digest(plain.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("~{hex}")
        }
    }

    fn file(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(Self::file_name(container_id, ifname))
    }

    /// Writes the attachment's state in one step.
    pub fn save<T: Serialize>(
        &self,
        container_id: &str,
        ifname: &str,
        state: &T,
    ) -> Result<(), StateError> {
        fs::create_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let target = self.file(container_id, ifname);
        let bytes = serde_json::to_vec(state).map_err(|e| io("encode", &target, e.into()))?;
        crate::files::write_atomic(&target, &bytes).map_err(|e| io("write", &target, e))
    }

    /// The attachment's state; `None` when there is none or it cannot be read (a stale or
    /// foreign file must not make DEL fail).
    pub fn load<T: DeserializeOwned>(&self, container_id: &str, ifname: &str) -> Option<T> {
        let path = self.file(container_id, ifname);
        let bytes = fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(state) => Some(state),
            Err(e) => {
                log::warn!("ignoring unreadable state {}: {e}", path.display());
                None
            }
        }
    }

    /// For an ADD that records its state before it acts: unless the ADD completes, `undo`
    /// puts back what was recorded before it (an earlier ADD's state) or forgets the
    /// attachment.
    pub fn restore_on_undo(&self, container_id: &str, ifname: &str, undo: &mut cni::Undo) {
        let target = self.file(container_id, ifname);
        let before = fs::read(&target).ok();
        undo.push("restore the attachment's state", move || {
            match before {
                Some(bytes) => crate::files::write_atomic(&target, &bytes),
                None => match fs::remove_file(&target) {
                    Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            }
            .map_err(|e| format!("{}: {e}", target.display()))
        });
    }

    /// Forgets the attachment; nothing to forget is fine.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<(), StateError> {
        let path = self.file(container_id, ifname);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("remove", &path, e)),
            _ => Ok(()),
        }
    }

    /// Every readable state of the network, for GC: reads the whole directory, and removes
    /// what writers killed between writing and renaming left.
    pub fn list<T: DeserializeOwned>(&self) -> Result<Vec<T>, StateError> {
        atomic_file::remove_leftovers(&self.dir, atomic_file::LEFTOVER_AGE)
            .map_err(|e| io("clean", &self.dir, e))?;
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.dir, e)),
        };
        let mut states = Vec::new();
        for entry in entries.flatten() {
            if crate::files::is_temporary(&entry.file_name()) {
                continue;
            }
            if let Ok(bytes) = fs::read(entry.path())
                && let Ok(state) = serde_json::from_slice(&bytes)
            {
                states.push(state);
            }
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct S {
        ips: Vec<String>,
    }

    #[test]
    fn save_load_list_remove() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::new(root.path(), "net1");
        assert_eq!(dir.load::<S>("c1", "eth0"), None);
        dir.save(
            "c1",
            "eth0",
            &S {
                ips: vec!["10.0.0.2".into()],
            },
        )
        .unwrap();
        dir.save("c2", "eth0", &S { ips: vec![] }).unwrap();
        assert_eq!(dir.load::<S>("c1", "eth0").unwrap().ips, vec!["10.0.0.2"]);
        assert_eq!(dir.list::<S>().unwrap().len(), 2);
        dir.remove("c1", "eth0").unwrap();
        dir.remove("c1", "eth0").unwrap();
        assert_eq!(dir.load::<S>("c1", "eth0"), None);
        let long = "x".repeat(300);
        dir.save(&long, "eth0", &S { ips: vec![] }).unwrap();
        assert!(dir.load::<S>(&long, "eth0").is_some());
    }

    #[test]
    fn listing_for_gc_removes_a_killed_writers_leftover() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::new(root.path(), "net1");
        dir.save("c1", "eth0", &S { ips: vec![] }).unwrap();
        let leftover = root.path().join("net1/.tmp-1-1");
        fs::write(&leftover, b"{").unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&leftover)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        assert_eq!(dir.list::<S>().unwrap().len(), 1);
        assert!(!leftover.exists());
    }
}
