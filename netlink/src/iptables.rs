//! The iptables backends' access to iptables: one write, `iptables-restore --noflush`, which
//! applies a script to the tables it names as one transaction and leaves everything else as
//! it is; and the checks `iptables -C` / `-L` make. Every call waits at most 30 s for the
//! xtables lock (`-w 30`) and is killed if it runs past [`TOOL_TIMEOUT`]. The tools are found
//! on `PATH`, then in the usual sbin directories.

use std::path::PathBuf;
use std::process::Command;

use crate::error::{Error, Result};
use crate::tools::{TOOL_TIMEOUT, XTABLES_WAIT_SECONDS, run_bounded};

fn tool(name: &str) -> Result<PathBuf> {
    crate::tools::find_tool(name).ok_or_else(|| Error::IptablesTool {
        tool: name.to_string(),
        detail: "not installed (not on PATH, nor in /usr/sbin or /sbin)".into(),
    })
}

fn iptables(v6: bool) -> &'static str {
    if v6 { "ip6tables" } else { "iptables" }
}

/// Applies `script` with `iptables-restore --noflush --wait 30` (`ip6tables-restore` when
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
    let mut cmd = Command::new(tool(name)?);
    cmd.args(["--noflush", "--wait", XTABLES_WAIT_SECONDS]);
    let out = run_bounded(cmd, Some(script), TOOL_TIMEOUT).map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// What a run of a tool printed, and whether it succeeded.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Whether `iptables` (`ip6tables` when `v6`) is installed.
pub fn is_installed(v6: bool) -> bool {
    crate::tools::find_tool(iptables(v6)).is_some()
}

/// Runs `iptables -w 30 ARGS` (`ip6tables` when `v6`): its status and output.
pub fn run(v6: bool, args: &[&str]) -> Result<ToolOutput> {
    run_tool(iptables(v6), |cmd| {
        cmd.args(["-w", XTABLES_WAIT_SECONDS]).args(args);
    })
}

/// `iptables-save -t TABLE` (`ip6tables-save` when `v6`): the table as text; an error when
/// the tool fails.
pub fn save(v6: bool, table: &str) -> Result<String> {
    let name = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let out = run_tool(name, |cmd| {
        cmd.args(["-t", table]);
    })?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(Error::IptablesTool {
            tool: name.to_string(),
            detail: out.stderr,
        })
    }
}

/// Whether `iptables-restore` (`ip6tables-restore`) is installed and runs.
pub fn restore_works(v6: bool) -> bool {
    let name = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    run_tool(name, |cmd| {
        cmd.arg("--version");
    })
    .is_ok_and(|o| o.success)
}

fn run_tool(name: &str, args: impl FnOnce(&mut Command)) -> Result<ToolOutput> {
    let mut cmd = Command::new(tool(name)?);
    args(&mut cmd);
    let out = run_bounded(cmd, None, TOOL_TIMEOUT).map_err(|e| Error::IptablesTool {
        tool: name.to_string(),
        detail: format!("run: {e}"),
    })?;
    Ok(ToolOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Whether `chain` exists in `table` (`iptables -w -t TABLE -nL CHAIN`).
pub fn chain_exists(v6: bool, table: &str, chain: &str) -> Result<bool> {
    Ok(run(v6, &["-t", table, "-nL", chain])?.success)
}

/// Whether `chain` of `table` holds the rule (`iptables -w -t TABLE -C CHAIN RULE...`).
pub fn rule_exists(v6: bool, table: &str, chain: &str, rule: &[&str]) -> Result<bool> {
    let mut args = vec!["-t", table, "-C", chain];
    args.extend_from_slice(rule);
    Ok(run(v6, &args)?.success)
}
