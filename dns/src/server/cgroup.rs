//! A sidecar a plugin starts begins in the cgroup of whatever ran the plugin: podman's unit,
//! containerd's service. Stopping or restarting that would kill DNS for every network, so
//! such a sidecar moves itself to a cgroup of its own, `cni-dns`, at the top of every
//! hierarchy a service manager tracks processes by: cgroup v2 (the unified one in a hybrid
//! setup) and v1's `name=systemd`. The cgroup is left behind, empty, when the sidecar exits,
//! for the next one. Under systemd, the shipped unit (conf/cni-dns.service) is the better
//! home: the plugin then never starts a sidecar.

use std::path::PathBuf;

/// The cgroup the sidecar moves to, under each hierarchy's mount point.
pub const OWN_CGROUP: &str = "cni-dns";

/// Moves this process to [`OWN_CGROUP`] of each hierarchy found; returns what failed (the
/// sidecar runs on where it is).
pub fn move_to_own_cgroup() -> Vec<String> {
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(m) => m,
        Err(e) => return vec![format!("read /proc/self/mountinfo: {e}")],
    };
    let pid = std::process::id().to_string();
    tracking_mounts(&mountinfo)
        .into_iter()
        .filter_map(|mount| {
            let dir = mount.join(OWN_CGROUP);
            let moved = match std::fs::create_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => std::fs::write(dir.join("cgroup.procs"), &pid),
            };
            moved
                .err()
                .map(|e| format!("move to {}: {e}", dir.display()))
        })
        .collect()
}

/// The mount points of the cgroup v2 hierarchy and of v1's `name=systemd`, read from
/// `/proc/self/mountinfo` (`... <mount point> <options> [optional...] - <type> <source>
/// <super options>`).
fn tracking_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let point = mount.split_whitespace().nth(4)?;
            let mut fs = fs.split_whitespace();
            let tracks = match fs.next()? {
                "cgroup2" => true,
                "cgroup" => fs.nth(1)?.split(',').any(|o| o == "name=systemd"),
                _ => false,
            };
            tracks.then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hierarchies_a_service_manager_tracks_by() {
        let hybrid = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
29 30 0:27 / /my\\040mnt rw - cgroup2 none rw";
        assert_eq!(
            tracking_mounts(hybrid),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/my mnt"),
            ]
        );
        let unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw";
        assert_eq!(
            tracking_mounts(unified),
            vec![PathBuf::from("/sys/fs/cgroup")]
        );
        assert!(tracking_mounts("garbage\n1 2 3\n - \n").is_empty());
    }
}
