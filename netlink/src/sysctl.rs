//! Network sysctls: /proc/sys/net/KEY, read or written in a given namespace.
//!
//! /proc/sys/net follows the network namespace of the *thread* that opens a file, so a
//! namespace's sysctls are reached from a fresh thread that enters it ([`NetNs::run`]).
//! Each call given a namespace costs one such thread; to set several keys, use
//! [`set_sysctls`], and to combine sysctls with netlink work in a namespace, use
//! [`crate::Netlink::in_netns_with`] and call these functions with `ns = None` inside it.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// Where network sysctls live.
const SYSCTL_NET: &str = "/proc/sys/net";

/// The longest key we accept: far more than any real one, short enough to keep paths sane.
const MAX_KEY_LEN: usize = 256;

/// Checks a key relative to /proc/sys/net (`ipv4/ip_forward`, `ipv6/conf/eth0/accept_dad`)
/// and returns its full path. Components must be non-empty and not `.` or `..`; the key
/// must not be absolute or contain NUL. Interface names may contain dots
/// (`ipv4/conf/eth0.100/rp_filter`), which is why keys use `/` and not `.`.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid sysctl key {key:?}: {why}"
        )))
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("too long");
    }
    if key.contains('\0') {
        return bad("contains NUL");
    }
    for component in key.split('/') {
        match component {
            "" => return bad("empty path component (leading, trailing or double '/')"),
            "." | ".." => return bad("'.' and '..' are not allowed"),
            _ => {}
        }
    }
    Ok(PathBuf::from(SYSCTL_NET).join(key))
}

/// Writes `value` to /proc/sys/net/`key`, inside `ns` if given (on a fresh thread), in
/// the calling thread's namespace otherwise. A key the kernel does not have (IPv6
/// disabled, no such interface) is [`Error::is_not_found`].
pub fn set_sysctl(ns: Option<&NetNs>, key: &str, value: &str) -> Result<()> {
    set_sysctls(ns, &[(key, value)])
}

/// Writes several sysctls in order, with a single thread trip into `ns`. All keys are
/// checked before anything is written; writing stops at the first failure.
pub fn set_sysctls(ns: Option<&NetNs>, entries: &[(&str, &str)]) -> Result<()> {
    let paths = entries
        .iter()
        .map(|(key, _)| sysctl_path(key))
        .collect::<Result<Vec<_>>>()?;
    let write_all = || -> Result<()> {
        for (path, (_, value)) in paths.iter().zip(entries) {
            write_path(path, value)?;
        }
        Ok(())
    };
    match ns {
        Some(ns) => ns.run(write_all)?,
        None => write_all(),
    }
}

/// Reads /proc/sys/net/`key` (inside `ns` if given), without the trailing newline.
pub fn get_sysctl(ns: Option<&NetNs>, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let read = || read_path(&path);
    match ns {
        Some(ns) => ns.run(read)?,
        None => read(),
    }
}

fn write_path(path: &PathBuf, value: &str) -> Result<()> {
    let err = |source| Error::Sysctl {
        path: path.clone(),
        op: "write",
        source,
    };
    // One write(2) of the whole value: procfs parses what a single write gives it.
    let mut file = OpenOptions::new().write(true).open(path).map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

fn read_path(path: &PathBuf) -> Result<String> {
    let err = |source| Error::Sysctl {
        path: path.clone(),
        op: "read",
        source,
    };
    let mut file = OpenOptions::new().read(true).open(path).map_err(err)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(err)?;
    let len = text.trim_end_matches('\n').len();
    text.truncate(len);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{in_new_netns, skip_unless_root};

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            sysctl_path("ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("ipv4/conf/eth0.100/rp_filter").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        for bad in [
            "",
            "/ipv4/ip_forward",
            "ipv4/ip_forward/",
            "ipv4//ip_forward",
            "../kernel/hostname",
            "ipv4/../../kernel/hostname",
            "ipv4/./ip_forward",
            ".",
            "ipv4/ip_\0forward",
        ] {
            let err = sysctl_path(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err:?}");
        }
        assert!(sysctl_path(&"a/".repeat(200)).is_err());
        // Bad keys fail before anything is written or any thread is started.
        let err = set_sysctls(None, &[("ipv4/ip_forward", "1"), ("../x", "1")]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(get_sysctl(None, "..").is_err());
    }

    #[test]
    fn sysctls_of_a_netns_are_its_own() {
        if !skip_unless_root() {
            return;
        }
        // The caller is in a private namespace too: the machine's sysctls are never
        // written.
        in_new_netns(|| {
            let ns = NetNs::new_unnamed().unwrap();
            assert_eq!(get_sysctl(None, "ipv4/ip_forward").unwrap(), "0");
            assert_eq!(get_sysctl(Some(&ns), "ipv4/ip_forward").unwrap(), "0");
            set_sysctl(Some(&ns), "ipv4/ip_forward", "1").unwrap();
            assert_eq!(get_sysctl(Some(&ns), "ipv4/ip_forward").unwrap(), "1");
            assert_eq!(get_sysctl(None, "ipv4/ip_forward").unwrap(), "0");

            set_sysctl(None, "ipv4/ip_forward", "1").unwrap();
            set_sysctl(Some(&ns), "ipv4/ip_forward", "0").unwrap();
            assert_eq!(get_sysctl(None, "ipv4/ip_forward").unwrap(), "1");
            assert_eq!(get_sysctl(Some(&ns), "ipv4/ip_forward").unwrap(), "0");
        });
    }

    #[test]
    fn batches_write_in_order_and_stop_at_the_first_failure() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::new_unnamed().unwrap();
        set_sysctls(
            Some(&ns),
            &[
                ("ipv4/conf/lo/arp_notify", "1"),
                ("ipv4/ip_forward", "1"),
                ("ipv4/ip_forward", "0"),
            ],
        )
        .unwrap();
        assert_eq!(
            get_sysctl(Some(&ns), "ipv4/conf/lo/arp_notify").unwrap(),
            "1"
        );
        assert_eq!(get_sysctl(Some(&ns), "ipv4/ip_forward").unwrap(), "0");

        let err = set_sysctls(
            Some(&ns),
            &[
                ("ipv4/ip_forward", "1"),
                ("ipv4/conf/nosuch0/arp_notify", "1"),
                ("ipv4/conf/lo/arp_notify", "0"),
            ],
        )
        .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("write sysctl /proc/sys/net/ipv4/conf/nosuch0/arp_notify: "),
            "{err}"
        );
        assert_eq!(get_sysctl(Some(&ns), "ipv4/ip_forward").unwrap(), "1");
        assert_eq!(
            get_sysctl(Some(&ns), "ipv4/conf/lo/arp_notify").unwrap(),
            "1"
        );
    }

    #[test]
    fn missing_keys_are_not_found_and_bad_values_are_errors() {
        if !skip_unless_root() {
            return;
        }
        let ns = NetNs::new_unnamed().unwrap();
        let err = get_sysctl(Some(&ns), "ipv6/conf/nosuch0/accept_dad").unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        let err = set_sysctl(Some(&ns), "ipv4/ip_forward", "yes").unwrap_err();
        assert!(!err.is_not_found());
        assert_eq!(err.errno(), Some(libc::EINVAL), "{err:?}");
        // A directory is not a sysctl.
        let err = get_sysctl(Some(&ns), "ipv4/conf").unwrap_err();
        assert!(err.errno().is_some(), "{err:?}");
    }
}
