//! A private "host" per test.

use std::path::{Path, PathBuf};
use std::process::Output;

use libcni::{CniConfig, NetworkConfigList};
use serde_json::Value;
use tempfile::TempDir;

use crate::bins::{bin_dir, plugin_bin, reference_bin, reference_dir};
use crate::netns::TestNetns;
use crate::plugin::PluginCall;

/// A private "host" network namespace (with `lo` up) plus a temporary directory holding the
/// test's IPAM data dir, libcni cache dir and config dir, so that no test touches the machine's
/// own network or `/var/lib/cni`. Plugins are run inside the host namespace; container
/// namespaces come from [`Sandbox::container`]. Everything goes away on drop.
#[derive(Debug)]
pub struct Sandbox {
    // Field order is drop order: processes and the netns go before the files they used.
    pub host: TestNetns,
    dir: TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let host = TestNetns::new();
        host.lo_up();
        let dir = tempfile::Builder::new()
            .prefix("cnitest-")
            .tempdir()
            .expect("create a temporary directory");
        for sub in ["data", "cache", "conf"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Sandbox { host, dir }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// For host-local's `dataDir` (and any other plugin state).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The libcni result cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A directory for `.conflist` files.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// The host namespace's path.
    pub fn host_path(&self) -> &Path {
        self.host.path()
    }

    /// A fresh container namespace (deleted when the returned handle drops).
    pub fn container(&self) -> TestNetns {
        TestNetns::new()
    }

    /// Runs a command in the sandbox host (`ip netns exec`).
    pub fn host_exec(&self, args: &[&str]) -> Output {
        self.host.exec(args)
    }

    /// Runs a command in the sandbox host; panics when it fails; returns stdout.
    pub fn host_run(&self, args: &[&str]) -> String {
        self.host.run(args)
    }

    /// A libcni runner whose plugins come from `plugin_dirs` and run inside the sandbox host,
    /// with the sandbox's cache directory.
    pub fn cni_config(&self, plugin_dirs: Vec<PathBuf>) -> CniConfig {
        CniConfig::new(plugin_dirs)
            .with_cache_dir(self.cache_dir())
            .with_exec_netns(Some(self.host.path().to_path_buf()))
    }

    /// [`Self::cni_config`] with our built binaries.
    pub fn ours(&self) -> CniConfig {
        self.cni_config(vec![bin_dir()])
    }

    /// [`Self::cni_config`] with the reference Go plugins.
    pub fn reference(&self) -> CniConfig {
        self.cni_config(vec![reference_dir()])
    }

    /// A plugin directory made for this test: symlinks to our binaries `ours` and to the
    /// reference binaries `reference` (e.g. the reference `bridge` with our `host-local`).
    /// Each call makes a new directory under the sandbox's.
    pub fn plugin_dir(&self, ours: &[&str], reference: &[&str]) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix("bin-")
            .tempdir_in(self.dir.path())
            .unwrap()
            .keep();
        for name in ours {
            std::os::unix::fs::symlink(plugin_bin(name), dir.join(name)).unwrap();
        }
        for name in reference {
            std::os::unix::fs::symlink(reference_bin(name), dir.join(name)).unwrap();
        }
        dir
    }

    /// A call of one plugin binary inside the sandbox host.
    pub fn call(&self, bin: impl Into<PathBuf>, command: &str) -> PluginCall {
        PluginCall::new(bin, command).in_netns(self.host.path())
    }

    /// Parses a configuration list (panics when libcni rejects it).
    pub fn conflist(&self, value: &Value) -> NetworkConfigList {
        let bytes = serde_json::to_vec(value).unwrap();
        NetworkConfigList::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("invalid conflist: {e}\n{value:#}"))
    }

    /// Writes `<conf_dir>/<file>` and returns its path.
    pub fn write_conf(&self, file: &str, value: &Value) -> PathBuf {
        let path = self.conf_dir().join(file);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}
