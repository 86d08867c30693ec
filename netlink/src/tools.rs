//! Where the packet-filter tools are. Runtimes may exec plugins with a minimal `PATH`, so the
//! usual sbin directories are searched after it.

use std::path::{Path, PathBuf};

/// Searched after `PATH`.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The first executable file `name` on `PATH`, then in /usr/sbin, /sbin, /usr/local/sbin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_and_skips_the_rest() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("no-such-tool-anywhere").is_none());
        // A file that is not executable is not a tool.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notatool"), "").unwrap();
        assert!(!is_executable(&dir.path().join("notatool")));
        assert!(!is_executable(dir.path()));
    }
}
