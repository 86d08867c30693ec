//! Where cnictl finds things: configs, plugins, the result cache, the plugins' state, and the
//! network namespace plugins run in. Each comes from a flag, else an environment variable,
//! else the default a node uses, so tests and the demo can move all of it into temp dirs and a
//! private namespace.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libcni::CniConfig;

use crate::error::{CliError, Result};

/// cnitool's config directory variable and default.
pub const ENV_CONF_DIR: &str = "NETCONFPATH";
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// cnitool's plugin path variable; cnictl's default is where scripts/install.sh installs.
pub const ENV_PLUGIN_PATH: &str = "CNI_PATH";
pub const DEFAULT_PLUGIN_DIR: &str = "/opt/cni/bin";
/// The libcni result cache (`<dir>/results`), shared with the runtimes on the node.
pub const ENV_CACHE_DIR: &str = "CNICTL_CACHE_DIR";
/// A root for the plugins' state, written into the configs `network create` makes.
pub const ENV_DATA_DIR: &str = "CNICTL_DATA_DIR";
/// A network namespace the plugins run in instead of cnictl's own.
pub const ENV_EXEC_NETNS: &str = "CNICTL_EXEC_NETNS";
/// A resolv.conf the DNS sidecar of new networks forwards to (instead of /etc/resolv.conf).
pub const ENV_DNS_UPSTREAM: &str = "CNICTL_DNS_UPSTREAM";
/// Where named network namespaces live (`ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// How long a cnictl run waits for another one to finish its change of the networks.
const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// The resolved settings of one cnictl run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// Network configuration files.
    pub conf_dir: PathBuf,
    /// Plugin directories, in search order (CNI_PATH).
    pub plugin_dirs: Vec<PathBuf>,
    /// The libcni cache directory (results under `results/`).
    pub cache_dir: PathBuf,
    /// When set, new networks keep their plugin state under it (`dataDir` keys).
    pub data_dir: Option<PathBuf>,
    /// When set, plugins run in this network namespace (the "host" of the containers).
    pub exec_netns: Option<PathBuf>,
    /// When set, the DNS sidecar of new networks forwards to the servers of this file.
    pub dns_upstream: Option<PathBuf>,
}

/// Explicit settings (flags); `None` falls back to the environment, then the default.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub conf_dir: Option<PathBuf>,
    pub plugin_dirs: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub exec_netns: Option<PathBuf>,
    pub dns_upstream: Option<PathBuf>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A `:`-separated directory list (Go's `filepath.SplitList`: empty entries dropped).
pub fn split_path_list(list: &str) -> Vec<PathBuf> {
    list.split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

impl Env {
    /// Flags first, then the environment, then the node defaults.
    pub fn resolve(o: Overrides) -> Env {
        let conf_dir = o
            .conf_dir
            .or_else(|| var(ENV_CONF_DIR).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONF_DIR));
        let plugin_dirs = o
            .plugin_dirs
            .or_else(|| var(ENV_PLUGIN_PATH))
            .map(|p| split_path_list(&p))
            .unwrap_or_else(|| vec![PathBuf::from(DEFAULT_PLUGIN_DIR)]);
        let cache_dir = o
            .cache_dir
            .or_else(|| var(ENV_CACHE_DIR).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(libcni::DEFAULT_CACHE_DIR));
        Env {
            conf_dir,
            plugin_dirs,
            cache_dir,
            data_dir: o.data_dir.or_else(|| var(ENV_DATA_DIR).map(PathBuf::from)),
            exec_netns: o
                .exec_netns
                .or_else(|| var(ENV_EXEC_NETNS).map(PathBuf::from)),
            dns_upstream: o
                .dns_upstream
                .or_else(|| var(ENV_DNS_UPSTREAM).map(PathBuf::from)),
        }
    }

    /// The libcni runner: these plugin dirs and cache, plugins run in `exec_netns`, VERSION
    /// asked of every plugin before each operation.
    pub fn cni(&self) -> CniConfig {
        CniConfig::new(self.plugin_dirs.clone())
            .with_cache_dir(&self.cache_dir)
            .with_exec_netns(self.exec_netns.clone())
    }

    /// Takes cnictl's lock (`<cache dir>/cnictl.lock`), held until the file is dropped, so
    /// that two cnictl runs do not pick the same subnet, name or interface at once. Waits at
    /// most [`LOCK_TIMEOUT`] for another run.
    pub fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| {
            CliError::new(format!(
                "cannot create the cache directory {}: {e}",
                self.cache_dir.display()
            ))
            .hint("cnictl needs root, or point CNICTL_CACHE_DIR (--cache-dir) elsewhere")
        })?;
        let path = self.cache_dir.join("cnictl.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
        atomic_file::lock_within(&file, LOCK_TIMEOUT).map_err(|e| {
            CliError::new(format!("cannot lock {}: {e}", path.display()))
                .hint("another cnictl run holds it; try again when it is done")
        })?;
        Ok(file)
    }

    /// Checks the exec namespace exists, so that its absence is one clear message rather than
    /// a plugin error.
    pub fn check_exec_netns(&self) -> Result<()> {
        if let Some(ns) = &self.exec_netns {
            cni_netlink::NetNs::open(ns).map_err(|e| {
                CliError::new(format!(
                    "cannot use {} to run plugins in: {e}",
                    ns.display()
                ))
                .hint("CNICTL_EXEC_NETNS (--exec-netns) must name a network namespace")
            })?;
        }
        Ok(())
    }
}

/// A path made absolute and cleaned the way Go's `filepath.Abs` does: joined to the current
/// directory, `.` and `..` resolved lexically, repeated and trailing `/` dropped.
pub fn absolute_clean(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_lists_like_go() {
        assert_eq!(
            split_path_list("/a::/b:"),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(split_path_list("").is_empty());
    }

    #[test]
    fn cleans_paths_like_filepath_abs() {
        assert_eq!(
            absolute_clean(Path::new("/run/netns/./y/../x/")),
            PathBuf::from("/run/netns/x")
        );
        assert_eq!(absolute_clean(Path::new("/../..")), PathBuf::from("/"));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute_clean(Path::new("a/b")), cwd.join("a/b"));
    }

    #[test]
    fn flags_win_over_defaults() {
        let env = Env::resolve(Overrides {
            conf_dir: Some("/c".into()),
            plugin_dirs: Some("/p1:/p2".into()),
            cache_dir: Some("/k".into()),
            ..Overrides::default()
        });
        assert_eq!(env.conf_dir, PathBuf::from("/c"));
        assert_eq!(
            env.plugin_dirs,
            vec![PathBuf::from("/p1"), PathBuf::from("/p2")]
        );
        assert_eq!(env.cache_dir, PathBuf::from("/k"));
    }
}
