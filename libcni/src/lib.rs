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

/// CNI_ARGS as cnitool reads them from its environment: `K=V` pairs separated by `;`, each
/// with exactly one `=` and both sides non-empty.
pub fn parse_cnitool_args(args: &str) -> Result<Vec<(String, String)>, Error> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    args.split(';')
        .map(|pair| {
            let kv: Vec<&str> = pair.split('=').collect();
            match kv.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Error::Config(format!("invalid CNI_ARGS pair {pair:?}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cni_args_strictly_like_cnitool() {
        assert_eq!(parse_cnitool_args("").unwrap(), vec![]);
        assert_eq!(
            parse_cnitool_args("IgnoreUnknown=1;K8S_POD_NAME=web").unwrap(),
            vec![
                ("IgnoreUnknown".to_string(), "1".to_string()),
                ("K8S_POD_NAME".to_string(), "web".to_string())
            ]
        );
        for bad in ["A", "A=", "=1", "A=1=2", "A=1;", "A=1;;B=2"] {
            assert!(parse_cnitool_args(bad).is_err(), "{bad}");
        }
    }

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
