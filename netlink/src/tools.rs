//! The packet-filter tools: where they are (runtimes may exec plugins with a minimal `PATH`,
//! so the usual sbin directories are searched after it) and running them for a bounded time
//! (a tool stuck on a lock or a wedged kernel must not hang the runtime's call).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a tool may run before it is killed: longer than iptables' own wait for the
/// xtables lock ([`XTABLES_WAIT_SECONDS`]), so that its clearer error comes first.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(45);

/// What iptables tools are told to wait for the xtables lock (`-w 30`).
pub const XTABLES_WAIT_SECONDS: &str = "30";

/// Searched after `PATH`.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The first executable file `name` on `PATH`, then in /usr/sbin, /sbin, /usr/local/sbin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd` with `stdin` as its input (none: `/dev/null`) and collects its output. A tool
/// still running after `timeout` is killed and the run fails with [`io::ErrorKind::TimedOut`].
/// Input the tool did not read is only an error when it then succeeded and the write failed
/// other than by a closed pipe.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let input = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        // Written and read on other threads: a tool may answer before it has read all.
        let writer = input.map(|mut pipe| {
            let text = stdin.unwrap_or_default();
            scope.spawn(move || pipe.write_all(text.as_bytes()))
        });
        let (closed, closes) = mpsc::channel();
        let out_reader = spawn_reader(scope, stdout, closed.clone());
        let err_reader = spawn_reader(scope, stderr, closed);
        let status = wait_bounded(&mut child, &closes, timeout);
        let written = writer.map_or(Ok(()), |w| w.join().unwrap_or(Ok(())));
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let status = status?;
        if let Err(e) = written
            && status.success()
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(e);
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    })
}

fn spawn_reader<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    pipe: Option<R>,
    closed: mpsc::Sender<()>,
) -> std::thread::ScopedJoinHandle<'scope, Vec<u8>> {
    scope.spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the output; the exit status still tells how the tool did.
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = closed.send(());
        bytes
    })
}

/// Waits for both output pipes to close (the tool exiting closes them), then reaps the tool;
/// kills it when either takes past `timeout`.
fn wait_bounded(
    child: &mut Child,
    closes: &mpsc::Receiver<()>,
    timeout: Duration,
) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    for _ in 0..2 {
        if closes
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            return Err(kill_late(child, timeout));
        }
    }
    // The pipes close as the tool exits; a tool that closed them and runs on is polled.
    let mut pause = Duration::from_micros(20);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            return Err(kill_late(child, timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn kill_late(child: &mut Child, timeout: Duration) -> io::Error {
    // Not yet reaped, so the pid is still the tool's.
    let _ = child.kill();
    let _ = child.wait();
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("still running after {} s, killed", timeout.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_run_returns_output_status_and_reads_input() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let out = run_bounded(cmd, Some("hello"), Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, b"oops\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_tool_past_its_time_is_killed() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec sleep 30"]);
        let started = Instant::now();
        let err = run_bounded(cmd, None, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // Killed, not waited for: well before sleep's 30 s.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_tool_that_closes_its_output_and_runs_on_is_killed_too() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec >/dev/null 2>&1; exec sleep 30"]);
        let err = run_bounded(cmd, None, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    #[test]
    fn finds_executables_and_skips_the_rest() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("no-such-tool-anywhere").is_none());
        // A file that is not executable is not a tool.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notatool"), "").unwrap();
        assert!(!is_executable(&dir.path().join("notatool")));
        assert!(!is_executable(dir.path()));
    }
}
