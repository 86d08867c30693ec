//! The iptables backends' one write: `iptables-restore --noflush`, which applies a script to
//! the tables it names as one transaction and leaves everything else as it is.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Applies `script` with `iptables-restore --noflush --wait` (`ip6tables-restore` when
/// `v6`); its error output is in the error.
pub fn restore_noflush(v6: bool, script: &str) -> Result<()> {
    let tool = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    let failed = |detail: String| Error::IptablesTool {
        tool: tool.to_string(),
        detail,
    };
    let mut child = Command::new(tool)
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
