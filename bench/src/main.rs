//! `cni-bench`: measures our CNI plugins and the reference Go plugins on the same configs in
//! one run, and prints per operation the median and p90 of each and the ratio between them.
//! See BENCHMARKS.md.

mod chain;
mod error;
mod exec;
mod report;
mod rows;
mod runner;
mod sandbox;
mod side;
mod signals;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use error::{Context, Error, Result};
use report::{Report, Skipped};
use rows::Row;
use runner::{RunParams, groups, run_group};
use sandbox::{Sandbox, StoreFs};
use side::{Impl, Side, path_str};

const USAGE: &str = "\
usage: cni-bench [options]

Measures our CNI plugins against the reference ones, interleaved, in private namespaces and
a private temporary directory. Needs root (network namespaces).

options:
  -n, --iterations N   measured iterations per row (default 200)
  -w, --warmup N       warm-up iterations per row, not measured (default 10)
  -f, --filter TEXT    only rows whose name contains TEXT (case-insensitive); repeat or
                       separate with commas for several
      --allocations N  existing allocations in the full host-local store, containers already
                       on the full bridge and mapped ones in the full portmap row (default 1000)
      --store WHERE    where the stores (host-local's dataDir) live: `disk` (default), the
                       temp dir's file system, as /var/lib/cni on a node; or `tmpfs`, a
                       private tmpfs mounted there, which takes the disk's latency out
      --ours DIR       our plugin binaries (default: the directory of cni-bench itself)
      --reference DIR  the reference plugins (default /usr/lib/cni)
      --label TEXT     what ours is (e.g. a commit), shown in the header and the JSON
      --json           print the results as JSON instead of a table
      --list           list the rows and exit
  -h, --help           this help
";

#[derive(Debug)]
struct Options {
    iterations: usize,
    warmup: usize,
    filters: Vec<String>,
    allocations: usize,
    store: StoreFs,
    label: Option<String>,
    ours: Option<PathBuf>,
    reference: PathBuf,
    json: bool,
    list: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>> {
        let mut opts = Options {
            iterations: 200,
            warmup: 10,
            filters: Vec::new(),
            allocations: 1000,
            store: StoreFs::Disk,
            label: None,
            ours: None,
            reference: PathBuf::from("/usr/lib/cni"),
            json: false,
            list: false,
        };
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
                    .ok_or_else(|| Error::msg(format!("{flag} needs a value\n\n{USAGE}")))
            };
            let number = |v: String| {
                v.parse::<usize>()
                    .map_err(|_| Error::msg(format!("{flag}: not a number: {v:?}")))
            };
            match flag.as_str() {
                "-n" | "--iterations" => opts.iterations = number(value()?)?,
                "-w" | "--warmup" => opts.warmup = number(value()?)?,
                "-f" | "--filter" => opts.filters.extend(
                    value()?
                        .split(',')
                        .map(|f| f.trim().to_lowercase())
                        .filter(|f| !f.is_empty()),
                ),
                "--allocations" => opts.allocations = number(value()?)?,
                "--store" => {
                    let v = value()?;
                    opts.store = StoreFs::parse(&v).ok_or_else(|| {
                        Error::msg(format!("--store: expected disk or tmpfs, not {v:?}"))
                    })?;
                }
                "--label" => opts.label = Some(value()?),
                "--ours" => opts.ours = Some(PathBuf::from(value()?)),
                "--reference" => opts.reference = PathBuf::from(value()?),
                "--json" => opts.json = true,
                "--list" => opts.list = true,
                "-h" | "--help" => {
                    print!("{USAGE}");
                    return Ok(None);
                }
                _ => return Err(Error::msg(format!("unknown argument {arg:?}\n\n{USAGE}"))),
            }
        }
        if opts.iterations == 0 {
            return Err(Error::msg("--iterations must be at least 1"));
        }
        Ok(Some(opts))
    }

    fn selects(&self, row: &str) -> bool {
        let row = row.to_lowercase();
        self.filters.is_empty() || self.filters.iter().any(|f| row.contains(f.as_str()))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            eprintln!("cni-bench: interrupted; namespaces and temporary files removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("cni-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let Some(opts) = Options::parse(std::env::args().skip(1))? else {
        return Ok(());
    };
    let (all_rows, derived) = rows::all(rows::Params {
        allocations: opts.allocations,
    });
    if opts.list {
        for row in &all_rows {
            println!("{:<32} {}", row.name(), row.describe());
        }
        return Ok(());
    }
    let selected = select_rows(&all_rows, &opts)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::msg(
            "needs root (it creates network namespaces); run scripts/bench or use sudo",
        ));
    }
    let ours_dir = ours_dir(&opts)?;

    signals::install()?;
    sandbox::remove_stale();
    let sandbox = Sandbox::new(opts.store)?;
    let sides = [
        Side {
            which: Impl::Ours,
            bin_dir: sandbox.subdir("bin/ours")?,
        },
        Side {
            which: Impl::Reference,
            bin_dir: sandbox.subdir("bin/reference")?,
        },
    ];
    let (runnable, skipped) = copy_binaries(selected, &sides, &ours_dir, &opts.reference)?;
    let params = RunParams {
        iterations: opts.iterations,
        warmup: opts.warmup,
    };
    let mut results = Vec::new();
    for group in groups(&runnable) {
        results.extend(run_group(&group, &sandbox, &sides, params)?);
    }
    drop(sandbox);

    let mut report = Report::new(&results, &derived);
    report.iterations = opts.iterations;
    report.warmup = opts.warmup;
    report.allocations = opts.allocations;
    report.store = opts.store;
    report.ours_dir = path_str(&ours_dir);
    report.label = opts.label.clone();
    report.reference_dir = path_str(&opts.reference);
    report.skipped = skipped;
    for row in &runnable {
        report.add_rates(&row.name(), &row.rate_targets());
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// The rows `--filter` selects; an error naming the filters when there is none.
fn select_rows<'a>(all_rows: &'a [Box<dyn Row>], opts: &Options) -> Result<Vec<&'a dyn Row>> {
    let selected: Vec<&dyn Row> = all_rows
        .iter()
        .map(|r| r.as_ref())
        .filter(|r| opts.selects(&r.name()))
        .collect();
    if selected.is_empty() {
        return Err(Error::msg(format!(
            "no row matches {:?} (see --list)",
            opts.filters
        )));
    }
    Ok(selected)
}

/// `--ours`, else the directory cni-bench runs from.
fn ours_dir(opts: &Options) -> Result<PathBuf> {
    match &opts.ours {
        Some(dir) => Ok(dir.clone()),
        None => std::env::current_exe()
            .context("locate cni-bench")?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::msg("cni-bench has no parent directory; use --ours")),
    }
}

/// Private copies of every plugin the rows need, for both sides: a concurrent `cargo build`
/// cannot swap them mid-run, and both implementations are read from the same file system.
/// A row whose plugin we have not built is skipped (and reported); a missing reference
/// plugin is an error.
fn copy_binaries<'a>(
    selected: Vec<&'a dyn Row>,
    sides: &[Side; 2],
    ours_dir: &Path,
    reference_dir: &Path,
) -> Result<(Vec<&'a dyn Row>, Vec<Skipped>)> {
    let mut runnable = Vec::new();
    let mut skipped = Vec::new();
    for row in selected {
        let missing: Vec<&str> = row
            .plugins()
            .into_iter()
            .filter(|p| !ours_dir.join(p).is_file())
            .collect();
        if !missing.is_empty() {
            let reason = format!(
                "our {} not found in {} (not built?)",
                missing.join(", "),
                ours_dir.display()
            );
            eprintln!("skipping row {:?}: {reason}", row.name());
            skipped.push(Skipped {
                row: row.name(),
                reason,
            });
            continue;
        }
        for plugin in row.plugins() {
            for (side, from) in sides.iter().zip([ours_dir, reference_dir]) {
                copy_plugin(side, from, plugin)?;
            }
        }
        runnable.push(row);
    }
    Ok((runnable, skipped))
}

fn copy_plugin(side: &Side, from: &Path, plugin: &str) -> Result<()> {
    if side.has(plugin) {
        return Ok(());
    }
    let src = from.join(plugin);
    if !src.is_file() {
        return Err(Error::msg(format!(
            "{} plugin {} not found (install Debian's containernetworking-plugins or pass --{})",
            side.label(),
            src.display(),
            side.label()
        )));
    }
    std::fs::copy(&src, side.bin(plugin)).with_context(|| format!("copy {}", src.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options() {
        let o = parse(&["-n", "50", "--filter=host-local,Version", "--json"])
            .unwrap()
            .unwrap();
        assert_eq!(o.iterations, 50);
        assert_eq!(o.warmup, 10);
        assert!(o.json);
        assert!(o.selects("host-local, empty store"));
        assert!(o.selects("VERSION loopback"));
        assert!(!o.selects("loopback"));
        assert!(parse(&["-n", "x"]).is_err());
        assert!(parse(&["-n"]).is_err());
        assert!(parse(&["-n", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
        let all = parse(&[]).unwrap().unwrap();
        assert!(all.selects("anything"));
        assert_eq!(all.iterations, 200);
    }

    #[test]
    fn row_names_are_unique() {
        let (rows, derived) = rows::all(rows::Params { allocations: 1000 });
        let mut names: Vec<String> = rows.iter().map(|r| r.name()).collect();
        for d in &derived {
            assert!(names.contains(&d.numerator) && names.contains(&d.denominator));
        }
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
