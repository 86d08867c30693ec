//! Refuses data directories another user could redirect: the store is written as root, so a
//! symlink or directory on its path owned by someone else could point our writes anywhere.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StoreError};

/// Checks every existing component of `path`: each must be owned by root or by us. The
/// first missing component ends the walk; we create the rest ourselves. Returns whether
/// the whole path exists.
pub fn ensure_trusted(path: &Path) -> Result<bool> {
    walk(PathBuf::from("/"), &absolute(path)?)
}

/// [`ensure_trusted`] for the components of `rest` below `checked`, a path that has been
/// checked already: for a second directory under the same root, without walking the root
/// again.
pub fn ensure_trusted_below(checked: &Path, rest: &Path) -> Result<bool> {
    walk(checked.to_path_buf(), rest)
}

fn walk(mut current: PathBuf, rest: &Path) -> Result<bool> {
    let euid = nix::unistd::geteuid().as_raw();
    for component in rest.components() {
        match component {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => {
                current.pop();
                continue;
            }
            Component::Normal(part) => current.push(part),
            Component::Prefix(_) => continue,
        }
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("inspect", &current, e)),
        };
        if meta.uid() != 0 && meta.uid() != euid {
            let what = if meta.file_type().is_symlink() {
                "a symlink"
            } else {
                "a path component"
            };
            return Err(StoreError::UnsafePath(format!(
                "{} is {what} owned by uid {}; refusing to write through it",
                current.display(),
                meta.uid()
            )));
        }
    }
    Ok(true)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| StoreError::io("resolve", path, e))?;
    Ok(cwd.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_root_owned_paths_and_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!ensure_trusted(&dir.path().join("missing/deeper")).unwrap());
        assert!(ensure_trusted(dir.path()).unwrap());
    }

    #[test]
    fn below_a_checked_path_only_the_rest_is_walked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        assert!(ensure_trusted_below(dir.path(), Path::new("a/b")).unwrap());
        assert!(!ensure_trusted_below(dir.path(), Path::new("a/c")).unwrap());
        let link = dir.path().join("a/l");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        chown_link(&link, 4242);
        let err = ensure_trusted_below(dir.path(), Path::new("a/l/x")).unwrap_err();
        assert!(err.to_string().contains("uid 4242"), "{err}");
    }

    fn chown_link(link: &Path, uid: u32) {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            link,
            Some(nix::unistd::Uid::from_raw(uid)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    #[test]
    fn refuses_a_symlink_owned_by_another_user() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("data");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        chown_link(&link, 4242);
        let err = ensure_trusted(&link.join("net1")).unwrap_err();
        assert!(
            err.to_string().contains("symlink owned by uid 4242"),
            "{err}"
        );
    }
}
