//! The static structure of a ruleset (tables, chains, sets, the few rules of a network),
//! applied with the `nft` tool: an exec costing milliseconds, paid once per network.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::netns::NetNs;
use crate::tools::{TOOL_TIMEOUT, run_bounded};

/// Applies `text` with `nft -f -` (one atomic transaction: all of it or nothing), inside
/// `netns` when given, else in the caller's namespace. A rejected ruleset is an
/// [`Error::NftTool`] carrying nft's error output.
///
/// Meant for the structure of a network, applied when [`Nft::table_exists`] or
/// [`Nft::set_exists`] say it is missing. Two plugins may race to create it: write `text`
/// so that applying it twice leaves one copy (`table`/`chain`/`set` blocks merge with what
/// exists; rules are added again unless their chain is flushed first, e.g. `flush chain
/// inet t c` before the rules), or hold a lock around check and apply.
///
/// [`Nft::table_exists`]: super::Nft::table_exists
/// [`Nft::set_exists`]: super::Nft::set_exists
pub fn apply_ruleset(netns: Option<&NetNs>, text: &str) -> Result<()> {
    run_nft(netns, &["-f", "-"], Some(text))
        .map(drop)
        .map_err(|e| e.during("apply nftables ruleset"))
}

/// Runs `nft ARGS` for what it prints (a listing, `-j` for JSON), inside `netns` when given.
pub fn query(netns: Option<&NetNs>, args: &[&str]) -> Result<String> {
    run_nft(netns, args, None)
}

/// Whether the `nft` tool is installed (the static structure is created with it).
pub fn is_installed() -> bool {
    find_nft().is_ok()
}

/// Runs `nft ARGS` (inside `netns` when given) with `stdin` as its input; returns its
/// standard output. An nft still running after [`TOOL_TIMEOUT`] is killed.
pub(crate) fn run_nft(netns: Option<&NetNs>, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let nft = find_nft()?;
    let mut cmd = Command::new(&nft);
    cmd.args(args);
    if let Some(ns) = netns {
        let fd = ns.as_fd().as_raw_fd();
        // SAFETY: between fork and exec the child only calls setns(2), which is
        // async-signal-safe, on an fd it inherited (the NetNs outlives the spawn).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let output =
        run_bounded(cmd, stdin, TOOL_TIMEOUT).map_err(|e| tool_error(&nft, e.to_string()))?;
    if !output.status.success() {
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("{}", output.status),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(tool_error(&nft, format!("{status}: {}", stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tool_error(nft: &Path, detail: String) -> Error {
    Error::NftTool {
        op: String::new(),
        detail: format!("{}: {detail}", nft.display()),
    }
}

/// The `nft` binary: the first on `PATH`, else a usual sbin location.
fn find_nft() -> Result<PathBuf> {
    crate::tools::find_tool("nft").ok_or_else(|| Error::NftTool {
        op: String::new(),
        detail: "the nft tool is not installed (not on PATH, nor in /usr/sbin or /sbin)".into(),
    })
}

/// The handles of the rules of `chain` whose comment is exactly `comment` (`nft -a list
/// chain`), for deleting rules created by text: rules have no name, only a handle. A
/// missing chain (or table) has none.
pub fn rule_handles(
    netns: Option<&NetNs>,
    family: &str,
    table: &str,
    chain: &str,
    comment: &str,
) -> Result<Vec<u64>> {
    match run_nft(netns, &["-a", "list", "chain", family, table, chain], None) {
        Ok(listing) => Ok(handles_with_comment(&listing, comment)),
        Err(Error::NftTool { detail, .. }) if detail.contains("No such file or directory") => {
            Ok(Vec::new())
        }
        Err(e) => Err(e.during("list nftables chain")),
    }
}

fn handles_with_comment(listing: &str, comment: &str) -> Vec<u64> {
    let wanted = format!("comment \"{comment}\"");
    listing
        .lines()
        .filter_map(|line| {
            let (rule, handle) = line.rsplit_once("# handle ")?;
            let rule = rule.trim_end();
            rule.ends_with(&wanted)
                .then(|| handle.trim().parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod listing_tests {
    use super::handles_with_comment;

    #[test]
    fn finds_the_handles_of_rules_with_the_comment() {
        let listing = "table inet t {\n\tchain c { # handle 1\n\
            \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
            \t\tip saddr @a masquerade comment \"cni network n1\" # handle 4\n\
            \t\tip saddr @b masquerade comment \"cni network n10\" # handle 5\n\
            \t\tip6 saddr @c masquerade comment \"cni network n1\" # handle 7\n\
            \t}\n}\n";
        assert_eq!(handles_with_comment(listing, "cni network n1"), [4, 7]);
        assert!(handles_with_comment(listing, "cni network n2").is_empty());
    }
}
