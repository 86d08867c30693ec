//! The runtime side of CNI, as Go's libcni does it: network configuration lists and how they
//! are found on disk ([`conf`]), executing plugin binaries ([`exec`]), running a list for
//! ADD/DEL/CHECK/STATUS/GC ([`api`]) and the result cache those rely on ([`cache`]).
//!
//! ```no_run
//! use libcni::{CniConfig, RuntimeConf, load_network};
//! let list = load_network("/etc/cni/net.d".as_ref(), "mynet")?;
//! let cni = CniConfig::new(vec!["/opt/cni/bin".into()]);
//! let rt = RuntimeConf::new("c1", "/run/netns/c1", "eth0");
//! let result = cni.add_network_list(&list, &rt)?;
//! println!("{}", result.to_value(list.cni_version)?);
//! cni.del_network_list(&list, &rt)?;
//! # Ok::<(), libcni::Error>(())
//! ```

pub mod api;
pub mod cache;
pub mod conf;
pub mod error;
pub mod exec;
mod util;

use std::path::Path;

pub use api::{CniConfig, RuntimeConf, build_request};
pub use cache::{Cache, CacheEntry, DEFAULT_CACHE_DIR};
pub use conf::{NetworkConfigList, load_network};
pub use error::Error;
pub use exec::{Invocation, PluginInfo, RawOutput, exec_raw};

/// The container ID cnitool uses for a netns: `cnitool-` and the hex of the first 10 bytes of
/// the SHA-512 of the netns path made absolute (and cleaned, as Go's `filepath.Abs` does).
pub fn cnitool_container_id(netns: &Path) -> String {
    let abs = util::absolute_clean(netns);
    let digest = util::sha512(abs.as_os_str().as_encoded_bytes());
    format!("cnitool-{}", util::hex(&digest[..10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnitool_container_id_matches_cnitool() {
        // sha512("/run/netns/x")[:10]
        assert_eq!(
            cnitool_container_id(Path::new("/run/netns/x")),
            "cnitool-55e2cecc95014b0f7fc4"
        );
        assert_eq!(
            cnitool_container_id(Path::new("/run/netns/./y/../x")),
            "cnitool-55e2cecc95014b0f7fc4"
        );
    }
}
