//! Delegates linked into the running plugin and run in its process.
//!
//! A delegate (IPAM) is exec'd from CNI_PATH. When the file found there is one of this
//! suite's plugins (it carries the section below) and the plugin under that name is also
//! linked into this binary, the linked code runs instead, through the same dispatch as its
//! executable: same input, same output, same errors, one process start (~0.7 ms here)
//! less per call. A reference plugin, or any other file under that name, is exec'd as the
//! spec says.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;

use crate::skel::Plugin;

/// The name of the section that marks an executable as one of this suite's plugins.
const SECTION: &[u8] = b".cni_rs_plugin";

/// The section's content. Kept alive by [`keep_marker`], which every plugin's skel calls.
#[used]
#[unsafe(link_section = ".cni_rs_plugin")]
static MARKER: [u8; 16] = *b"cni-rs plugin\0\0\0";

pub(crate) fn keep_marker() {
    std::hint::black_box(MARKER.as_ptr());
}

/// A plugin linked in, shared with the thread that runs it.
pub type LinkedPlugin = &'static (dyn Plugin + Sync);

static LINKED: OnceLock<Vec<(&'static str, LinkedPlugin)>> = OnceLock::new();

/// Declares the plugins linked into this binary by their type names (called once, from
/// `main`, before the skel runs).
pub fn link(plugins: Vec<(&'static str, LinkedPlugin)>) {
    let _ = LINKED.set(plugins);
}

/// The linked plugin to run for `name` found at `path`: only when `path` is one of ours.
pub(crate) fn linked_for(name: &str, path: &Path) -> Option<LinkedPlugin> {
    let plugin = LINKED
        .get()?
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)?;
    is_ours(path).then_some(plugin)
}

/// Whether the ELF executable at `path` has the marker section: three small reads (the
/// header, the section headers, their names). Anything unexpected reads as "not ours".
pub fn is_ours(path: &Path) -> bool {
    has_section(path, SECTION).unwrap_or(false)
}

fn has_section(path: &Path, wanted: &[u8]) -> Option<bool> {
    let file = File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    // 64-bit little-endian ELF only: the targets this suite builds for.
    if header.get(..6)? != b"\x7fELF\x02\x01" {
        return Some(false);
    }
    let shoff = u64_at(&header, 0x28)?;
    let shentsize = usize::from(u16_at(&header, 0x3a)?);
    let shnum = usize::from(u16_at(&header, 0x3c)?);
    let shstrndx = usize::from(u16_at(&header, 0x3e)?);
    if !(64..=256).contains(&shentsize) || shnum == 0 || shnum > 512 || shstrndx >= shnum {
        return Some(false);
    }
    let mut table = vec![0u8; shentsize * shnum];
    file.read_exact_at(&mut table, shoff).ok()?;
    let section = |i: usize| table.get(i * shentsize..(i + 1) * shentsize);
    let strtab = section(shstrndx)?;
    let (names_at, names_len) = (u64_at(strtab, 0x18)?, u64_at(strtab, 0x20)?);
    if names_len > 1 << 16 {
        return Some(false);
    }
    let mut names = vec![0u8; usize::try_from(names_len).ok()?];
    file.read_exact_at(&mut names, names_at).ok()?;
    Some((0..shnum).any(|i| {
        section(i)
            .and_then(|s| u32_at(s, 0))
            .and_then(|at| names.get(usize::try_from(at).ok()?..))
            .and_then(|rest| rest.split(|b| *b == 0).next())
            .is_some_and(|name| name == wanted)
    }))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_files_are_not_ours() {
        assert!(!is_ours(Path::new("/bin/true")));
        assert!(!is_ours(Path::new("/etc/hostname")));
        assert!(!is_ours(Path::new("/nonexistent")));
    }

    #[test]
    fn a_binary_with_the_marker_is_ours() {
        // The test binary links this crate and keeps the marker like a plugin does.
        keep_marker();
        let exe = std::env::current_exe().expect("current exe");
        assert!(is_ours(&exe));
    }
}
