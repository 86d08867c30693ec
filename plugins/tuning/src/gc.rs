//! GC: forget the backups of attachments that are gone.

use cni::{Error, Request};
use plugin_kit::{Teardown, is_stale};

use crate::backup::{read_backup, remove_backup};
use crate::config;

/// GC: forgets the backups of this network's attachments that are not valid any more
/// (without `cni.dev/valid-attachments`: those whose netns is gone). Their namespaces are
/// gone or about to be, so there is nothing to restore. Backups written by the reference
/// plugin carry no network and are left alone.
pub fn gc(req: &Request) -> Result<(), Error> {
    let data_dir = config::data_dir_of(req);
    // What writers killed between writing and renaming left.
    atomic_file::remove_leftovers(&data_dir, atomic_file::LEFTOVER_AGE)
        .map_err(|e| Error::io(format!("clean {}: {e}", data_dir.display())))?;
    let entries = match std::fs::read_dir(&data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("list {}: {e}", data_dir.display()))),
    };
    let mut teardown = Teardown::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(backup) = read_backup(&path) else {
            continue;
        };
        if backup.network != req.conf.name || backup.container_id.is_empty() {
            continue;
        }
        if is_stale(
            req,
            &backup.container_id,
            &backup.ifname,
            &backup.netns,
            &backup.netns_id,
        ) {
            teardown.step(&backup.container_id, || remove_backup(&path));
        }
    }
    teardown.finish()
}
