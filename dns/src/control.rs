//! The sidecar's control socket (`<root>/control.sock`, a Unix stream socket only root can
//! reach): the client sends one request line, the sidecar applies it and answers one line,
//! `ok[ <detail>]` or `error <message>`. Requests:
//!
//! - `update <network> <containerID>@<ifname>`: re-read that one attachment file (gone means
//!   removed) and start or stop listeners as needed; answered once the change is live, so a
//!   name written by ADD answers as soon as ADD returns;
//! - `reload`: re-read the whole store (what SIGHUP does);
//! - `ping`: answered `ok <pid>`.
//!
//! Besides, this module starts the sidecar detached when nobody answers (see [`ensure`]).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::store::Paths;

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Update { network: String, key: String },
    Reload,
    Ping,
}

impl Request {
    pub fn to_line(&self) -> String {
        match self {
            Request::Update { network, key } => format!("update {network} {key}\n"),
            Request::Reload => "reload\n".into(),
            Request::Ping => "ping\n".into(),
        }
    }

    pub fn parse(line: &str) -> Option<Request> {
        let mut words = line.split_whitespace();
        let request = match words.next()? {
            "update" => Request::Update {
                network: words.next()?.to_string(),
                key: words.next()?.to_string(),
            },
            "reload" => Request::Reload,
            "ping" => Request::Ping,
            _ => return None,
        };
        words.next().is_none().then_some(request)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket: the sidecar is not running.
    #[error("the DNS sidecar is not running ({0})")]
    NotRunning(std::io::Error),
    #[error("talking to the DNS sidecar at {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the DNS sidecar refused {request:?}: {msg}")]
    Refused { request: String, msg: String },
    #[error("cannot start the DNS sidecar {}: {msg}", bin.display())]
    Start { bin: PathBuf, msg: String },
}

/// Sends one request and returns the detail of its `ok` reply.
pub fn call(paths: &Paths, request: &Request, timeout: Duration) -> Result<String, ControlError> {
    let path = paths.control_socket();
    // A sidecar that is exiting closes its listener: a connection still in its backlog is
    // reset, and one it accepted is closed unanswered. Either way it is no longer running
    // (requests are idempotent, so the caller may start another and ask again).
    let io = |source: std::io::Error| match source.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
            ControlError::NotRunning(source)
        }
        _ => ControlError::Io {
            path: path.clone(),
            source,
        },
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
            ) =>
        {
            return Err(ControlError::NotRunning(e));
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let line = request.to_line();
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(stream.take_limit())
        .read_line(&mut reply)
        .map_err(io)?;
    let reply = reply.trim_end();
    if reply.is_empty() {
        // The sidecar closed without answering: it is shutting down.
        return Err(ControlError::NotRunning(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "the sidecar closed the connection without answering",
        )));
    }
    match reply.split_once(' ').unwrap_or((reply, "")) {
        ("ok", detail) => Ok(detail.to_string()),
        (_, msg) => Err(ControlError::Refused {
            request: line.trim_end().to_string(),
            msg: msg.to_string(),
        }),
    }
}

trait TakeLimit {
    fn take_limit(self) -> std::io::Take<UnixStream>;
}

impl TakeLimit for UnixStream {
    /// Replies are one short line; never read more than this.
    fn take_limit(self) -> std::io::Take<UnixStream> {
        std::io::Read::take(self, 4096)
    }
}

/// How the sidecar is started when it is not running.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `cni-dns` binary.
    pub bin: PathBuf,
    /// Extra arguments (e.g. `--resolv-conf FILE`); `--data-dir` is added.
    pub args: Vec<String>,
    /// How long to wait for it to answer after starting it.
    pub ready_timeout: Duration,
}

/// Sends `request`; when the sidecar is not running, starts it detached and sends it again
/// once it answers. Returns whether this call started it.
pub fn ensure(
    paths: &Paths,
    request: &Request,
    launch: &Launch,
    timeout: Duration,
) -> Result<bool, ControlError> {
    match call(paths, request, timeout) {
        Ok(_) => return Ok(false),
        Err(ControlError::NotRunning(e)) => {
            log::info!("starting the DNS sidecar {}: {e}", launch.bin.display())
        }
        Err(e) => return Err(e),
    }
    start_detached(paths, launch)?;
    let deadline = Instant::now() + launch.ready_timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match call(paths, request, timeout) {
            Ok(_) => return Ok(true),
            Err(ControlError::NotRunning(e)) if Instant::now() < deadline => {
                log::debug!("waiting for the DNS sidecar: {e}");
            }
            Err(ControlError::NotRunning(e)) => {
                return Err(ControlError::Start {
                    bin: launch.bin.clone(),
                    msg: format!(
                        "it did not answer within {:?} ({e}); see {}",
                        launch.ready_timeout,
                        paths.log_file().display()
                    ),
                });
            }
            Err(e) => return Err(e),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The sidecar's whole environment when a plugin starts it.
const SIDECAR_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the sidecar in a session of its own with stdio on /dev/null (it logs to its log
/// file), with an environment of its own, in a cgroup of its own (`--own-cgroup`): it
/// outlives the plugin and the runtime that ran it, and the runtime reading the plugin's
/// stdout never waits on it. The child is not waited for; it is reparented when the plugin
/// exits.
fn start_detached(paths: &Paths, launch: &Launch) -> Result<(), ControlError> {
    let mut cmd = Command::new(&launch.bin);
    cmd.arg("--data-dir")
        .arg(paths.root())
        .arg("--own-cgroup")
        .args(&launch.args)
        // Nothing of the runtime's environment (CNI_*, NOTIFY_SOCKET, proxies) is its.
        .env_clear()
        .env("PATH", SIDECAR_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe and touches nothing but the child.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| ControlError::Start {
        bin: launch.bin.clone(),
        msg: e.to_string(),
    })?;
    Ok(())
}

/// Finds the `cni-dns` binary: next to `own_exe`, then in each directory of `cni_path`.
pub fn find_sidecar(own_exe: Option<&Path>, cni_path: &str) -> Option<PathBuf> {
    const NAME: &str = "cni-dns";
    own_exe
        .and_then(Path::parent)
        .map(|d| d.join(NAME))
        .into_iter()
        .chain(
            cni_path
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(d).join(NAME)),
        )
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Update {
                network: "n1".into(),
                key: "abc@eth0".into(),
            },
            Request::Reload,
            Request::Ping,
        ] {
            assert_eq!(Request::parse(&r.to_line()), Some(r));
        }
        assert_eq!(Request::parse("update n1"), None);
        assert_eq!(Request::parse("ping extra"), None);
        assert_eq!(Request::parse(""), None);
    }

    #[test]
    fn nobody_listening_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(
            &Paths::new(dir.path()),
            &Request::Ping,
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(matches!(err, ControlError::NotRunning(_)), "{err}");
    }

    /// What an exiting sidecar does to a caller (reset, broken pipe or end of stream,
    /// depending on who is first) reads as not running, so `ensure` starts another.
    #[test]
    fn a_connection_closed_unanswered_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let listener = std::os::unix::net::UnixListener::bind(paths.control_socket()).unwrap();
        let closer = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let err = call(&paths, &Request::Ping, Duration::from_secs(5)).unwrap_err();
        closer.join().unwrap();
        assert!(matches!(err, ControlError::NotRunning(_)), "{err}");
    }
}
