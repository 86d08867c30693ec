//! The iptables backends' access to iptables: one write, `iptables-restore --noflush`, which
//! applies a script to the tables it names as one transaction and leaves everything else as
//! it is; and the checks `iptables -C` / `-L` make. Every call waits for the xtables lock
//! (`-w`). The tools are found on `PATH`, then in the usual sbin directories.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

fn tool(name: &str) -> Result<PathBuf> {
    crate::tools::find_tool(name).ok_or_else(|| Error::IptablesTool {
        tool: name.to_string(),
        detail: "not installed (not on PATH, nor in /usr/sbin or /sbin)".into(),
    })
}

fn iptables(v6: bool) -> &'static str {
    if v6 { "ip6tables" } else { "iptables" }
}

/// Applies `script` with `iptables-restore --noflush --wait` (`ip6tables-restore` when
/// `v6`); its error output is in the error.
pub fn restore_noflush(v6: bool, script: &str) -> Result<()> {
    let name = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    let failed = |detail: String| Error::IptablesTool {
        tool: name.to_string(),
        detail,
    };
    let mut child = Command::new(tool(name)?)
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that exits early is judged by its status and error output.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("wait: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Runs `iptables -w ARGS` and says whether it succeeded (checks answer with their status).
fn succeeds(v6: bool, args: &[&str]) -> Result<bool> {
    let name = iptables(v6);
    Command::new(tool(name)?)
        .arg("-w")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .map_err(|e| Error::IptablesTool {
            tool: name.to_string(),
            detail: format!("run: {e}"),
        })
}

/// Whether `chain` exists in `table` (`iptables -w -t TABLE -nL CHAIN`).
pub fn chain_exists(v6: bool, table: &str, chain: &str) -> Result<bool> {
    succeeds(v6, &["-t", table, "-nL", chain])
}

/// Whether `chain` of `table` holds the rule (`iptables -w -t TABLE -C CHAIN RULE...`).
pub fn rule_exists(v6: bool, table: &str, chain: &str, rule: &[&str]) -> Result<bool> {
    let mut args = vec!["-t", table, "-C", chain];
    args.extend_from_slice(rule);
    succeeds(v6, &args)
}
