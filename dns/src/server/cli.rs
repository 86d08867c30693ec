//! The `cni-dns` command line. The binary itself is built with the dnsname plugin
//! (`plugins/dnsname/src/bin/cni-dns.rs`), so that building or installing the plugin always
//! brings its sidecar; all of its code is here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{Options, run};
use crate::store::{DEFAULT_ROOT, Paths};

const USAGE: &str = "\
usage: cni-dns [options]

The DNS server of the dnsname CNI plugin: answers the names of the containers of every network
in the record store on the networks' gateway addresses (UDP and TCP), and forwards other names
to the servers of a resolv.conf. Runs in the foreground; the dnsname plugin starts it detached.

options:
  --data-dir DIR          the record store, pid file and control socket (default /run/cni-dns)
  --resolv-conf FILE      upstream servers, re-read when it changes (default /etc/resolv.conf)
  --log-file FILE|-       log file; - for stderr (default DIR/cni-dns.log)
  --log-level LEVEL       error, warn, info, debug or trace (default info)
  --port N                DNS port (default 53)
  --ttl SECONDS           TTL of the answers (default 0: never cached)
  --upstream-timeout MS   the most one upstream may take (default 1500; all of them
                          together stay under 4 s)
  --tcp-connections N     TCP connections served at once (default 128)
  --tcp-timeout MS        TCP idle and per-message time limit (default 3000)
  --persistent            keep running when no network is left (for a service manager)
  --own-cgroup            move to the cgroup cni-dns of its own (as the plugin starts it),
                          out of the cgroup of the runtime that ran the plugin
  -V, --version           the version (alone)
  -h, --help              this help
";

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut opts = Options::new(Paths::new(DEFAULT_ROOT));
    let mut log_file: Option<String> = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--data-dir" => opts.paths = Paths::new(value()?),
            "--resolv-conf" => opts.resolv_conf = PathBuf::from(value()?),
            "--log-file" => log_file = Some(value()?),
            "--log-level" => {
                let v = value()?;
                opts.log_level = v
                    .parse()
                    .map_err(|_| format!("--log-level: unknown level {v:?}"))?;
            }
            "--port" => {
                let v = value()?;
                opts.port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port: {v:?}"))?;
            }
            "--ttl" => {
                opts.ttl =
                    u32::try_from(number(value()?)?).map_err(|_| "--ttl: too large".to_string())?
            }
            "--upstream-timeout" => {
                opts.upstream_timeout = Duration::from_millis(number(value()?)?)
            }
            "--tcp-connections" => {
                opts.tcp.max_connections = usize::try_from(number(value()?)?)
                    .map_err(|_| "--tcp-connections: too large".to_string())?
                    .max(1)
            }
            "--tcp-timeout" => opts.tcp.timeout = Duration::from_millis(number(value()?)?.max(1)),
            "--persistent" => opts.persistent = true,
            "--own-cgroup" => opts.own_cgroup = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    opts.log_file = match log_file.as_deref() {
        Some("-") => None,
        Some(f) => Some(PathBuf::from(f)),
        None => Some(opts.paths.log_file()),
    };
    Ok(Some(opts))
}

/// Parses the arguments and runs the daemon.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [only] = args.as_slice()
        && (only == "--version" || only == "-V")
    {
        // The suite's version: the workspace gives every crate the same one.
        println!("cni-dns {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let opts = match parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cni-dns: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("cni-dns: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Options>, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags() {
        let o = p(&[
            "--data-dir",
            "/tmp/x",
            "--port=5353",
            "--ttl",
            "5",
            "--persistent",
            "--own-cgroup",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.paths.root(), std::path::Path::new("/tmp/x"));
        assert_eq!(o.port, 5353);
        assert_eq!(o.ttl, 5);
        assert!(o.persistent);
        assert!(o.own_cgroup);
        assert_eq!(o.log_file, Some(PathBuf::from("/tmp/x/cni-dns.log")));
        assert_eq!(p(&["--log-file", "-"]).unwrap().unwrap().log_file, None);
        assert!(p(&["--port", "x"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["--help"]).unwrap().is_none());
    }
}
