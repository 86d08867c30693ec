//! The table for humans and the JSON for machines.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::rows::{Derived, RateTarget};
use crate::runner::RowResult;
use crate::sandbox::StoreFs;
use crate::stats::{Summary, summarize};

#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
    pub unix_time: u64,
    pub machine: Machine,
    pub iterations: usize,
    pub warmup: usize,
    pub allocations: usize,
    /// Where the stores were.
    pub store: StoreFs,
    /// What "ours" is, when told (`--label`).
    pub label: Option<String>,
    pub ours_dir: String,
    pub reference_dir: String,
    pub lines: Vec<Line>,
    pub derived: Vec<DerivedLine>,
    /// Throughput rows' achieved rates against their configured ones.
    pub rates: Vec<RateLine>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

/// One operation of one row.
#[derive(Debug, Serialize)]
pub struct Line {
    pub row: String,
    pub op: &'static str,
    pub ours: Option<Summary>,
    pub reference: Option<Summary>,
    /// median(reference) / median(ours): how many times faster we are.
    pub ratio: Option<f64>,
    /// Every measured sample in ms, in the order taken: [ours, reference].
    pub samples_ms: [Vec<f64>; 2],
}

#[derive(Debug, Serialize)]
pub struct DerivedLine {
    pub name: String,
    pub op: &'static str,
    pub numerator: String,
    pub denominator: String,
    pub ours: Option<f64>,
    pub reference: Option<f64>,
}

/// A throughput operation's median rates (from its median time per megabit).
#[derive(Debug, Serialize)]
pub struct RateLine {
    pub row: String,
    pub op: &'static str,
    pub what: &'static str,
    pub configured_mbit_per_s: f64,
    pub ours_mbit_per_s: Option<f64>,
    pub reference_mbit_per_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub row: String,
    pub reason: String,
}

impl Report {
    pub fn new(results: &[RowResult], derived: &[Derived]) -> Report {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let lines: Vec<Line> = results
            .iter()
            .flat_map(|row| {
                row.ops.iter().map(|op| {
                    let [ours, reference] = [&op.samples[0], &op.samples[1]].map(|s| summarize(s));
                    let ratio = match (ours, reference) {
                        (Some(o), Some(r)) if o.median_ms > 0.0 => Some(r.median_ms / o.median_ms),
                        _ => None,
                    };
                    Line {
                        row: row.name.clone(),
                        op: op.op,
                        ours,
                        reference,
                        ratio,
                        samples_ms: op
                            .samples
                            .clone()
                            .map(|s| s.iter().map(|d| d.as_secs_f64() * 1e3).collect()),
                    }
                })
            })
            .collect();
        let find = |row: &str, op: &str| lines.iter().find(|l| l.row == row && l.op == op);
        let derived = derived
            .iter()
            .filter_map(|d| {
                let num = find(&d.numerator, d.op)?;
                let den = find(&d.denominator, d.op)?;
                let ratio = |n: Option<Summary>, d: Option<Summary>| match (n, d) {
                    (Some(n), Some(d)) if d.median_ms > 0.0 => Some(n.median_ms / d.median_ms),
                    _ => None,
                };
                Some(DerivedLine {
                    name: d.name.clone(),
                    op: d.op,
                    numerator: d.numerator.clone(),
                    denominator: d.denominator.clone(),
                    ours: ratio(num.ours, den.ours),
                    reference: ratio(num.reference, den.reference),
                })
            })
            .collect();
        Report {
            tool: "cni-bench",
            date: utc_date(now),
            unix_time: now,
            machine: Machine::probe(),
            iterations: 0,
            warmup: 0,
            allocations: 0,
            store: StoreFs::Disk,
            label: None,
            ours_dir: String::new(),
            reference_dir: String::new(),
            lines,
            derived,
            rates: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The rate lines of a throughput row (see `Row::rate_targets`), from its measured
    /// lines: a median time per megabit in ms is 1,000 / the median rate in Mbit/s.
    pub fn add_rates(&mut self, row: &str, targets: &[RateTarget]) {
        let mbit = |s: Option<Summary>| s.filter(|s| s.median_ms > 0.0).map(|s| 1e3 / s.median_ms);
        for target in targets {
            let Some(line) = self
                .lines
                .iter()
                .find(|l| l.row == row && l.op == target.op)
            else {
                continue;
            };
            self.rates.push(RateLine {
                row: row.to_string(),
                op: target.op,
                what: target.what,
                configured_mbit_per_s: target.mbit_per_s,
                ours_mbit_per_s: mbit(line.ours),
                reference_mbit_per_s: mbit(line.reference),
            });
        }
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cni-bench, {} UTC: {} CPUs ({}), kernel {}",
            self.date, self.machine.cpus, self.machine.cpu_model, self.machine.kernel
        );
        let _ = writeln!(
            s,
            "ours: {}{}   reference: {}",
            self.label.as_deref().unwrap_or_default(),
            if self.label.is_some() {
                String::new()
            } else {
                self.ours_dir.clone()
            },
            self.reference_dir
        );
        let _ = writeln!(
            s,
            "stores on {}; {} measured iterations per row after {} warm-up, ours and reference interleaved;",
            match self.store {
                StoreFs::Disk => "disk (the temp dir's file system)",
                StoreFs::Tmpfs => "a private tmpfs",
            },
            self.iterations,
            self.warmup,
        );
        let _ = writeln!(
            s,
            "wall time in ms from spawn to exit of each plugin process; x = reference/ours medians\n"
        );
        let width = self
            .lines
            .iter()
            .map(|l| l.row.len())
            .chain(self.derived.iter().map(|d| d.name.len()))
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = writeln!(
            s,
            "{:<width$}  {:<8} {:>5}  {:>9} {:>9}  {:>9} {:>9}  {:>8}",
            "row", "op", "n", "ours med", "ours p90", "ref med", "ref p90", "ref/ours"
        );
        let _ = writeln!(s, "{}", "-".repeat(width + 71));
        let mut last_row = "";
        for line in &self.lines {
            let row = if line.row == last_row { "" } else { &line.row };
            last_row = &line.row;
            let n = line
                .ours
                .map(|o| o.samples)
                .into_iter()
                .chain(line.reference.map(|r| r.samples))
                .min()
                .unwrap_or(0);
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            let _ = writeln!(
                s,
                "{row:<width$}  {:<8} {n:>5}  {:>9} {:>9}  {:>9} {:>9}  {:>8}",
                line.op,
                ms(line.ours.map(|o| o.median_ms)),
                ms(line.ours.map(|o| o.p90_ms)),
                ms(line.reference.map(|r| r.median_ms)),
                ms(line.reference.map(|r| r.p90_ms)),
                times(line.ratio),
            );
        }
        if !self.derived.is_empty() {
            let _ = writeln!(s, "{}", "-".repeat(width + 71));
            for d in &self.derived {
                let _ = writeln!(
                    s,
                    "{:<width$}  {:<8} {:>5}  {:>9} {:>9}  {:>9}",
                    d.name,
                    d.op,
                    "",
                    times(d.ours),
                    "",
                    times(d.reference),
                );
            }
            let _ = writeln!(
                s,
                "(growth N/0: each implementation's median with N allocations, containers or pods / its median with none)"
            );
        }
        if !self.rates.is_empty() {
            let _ = writeln!(s, "{}", "-".repeat(width + 71));
            for r in &self.rates {
                let _ = writeln!(s, "{:<width$}  {}", r.row, rate_text(r));
            }
            let _ = writeln!(
                s,
                "(rates: 1,000 / each operation's median ms per megabit of payload received)"
            );
        }
        for skipped in &self.skipped {
            let _ = writeln!(s, "skipped {}: {}", skipped.row, skipped.reason);
        }
        s
    }
}

/// "ingress: configured 8.0 Mbit/s, ours 7.6 Mbit/s (95.4%), reference ...".
fn rate_text(r: &RateLine) -> String {
    let achieved = |v: Option<f64>| {
        v.map_or("-".to_string(), |v| {
            format!(
                "{v:.2} Mbit/s ({:.1}%)",
                100.0 * v / r.configured_mbit_per_s
            )
        })
    };
    format!(
        "{}: configured {:.1} Mbit/s, ours {}, reference {}",
        r.what,
        r.configured_mbit_per_s,
        achieved(r.ours_mbit_per_s),
        achieved(r.reference_mbit_per_s)
    )
}

fn times(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}x"))
}

impl Machine {
    fn probe() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            cpus,
            cpu_model,
            kernel,
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_times_per_megabit() {
        use crate::runner::{OpSamples, RowResult};
        use std::time::Duration;
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let results = [RowResult {
            name: "shaping".into(),
            ops: vec![OpSamples {
                op: "1/in",
                samples: [ms(&[120, 125, 130]), ms(&[250])],
            }],
        }];
        let mut report = Report::new(&results, &[]);
        let target = |op| RateTarget {
            op,
            what: "ingress",
            mbit_per_s: 8.0,
        };
        report.add_rates("shaping", &[target("1/in"), target("1/none")]);
        assert_eq!(report.rates.len(), 1);
        assert_eq!(
            rate_text(&report.rates[0]),
            "ingress: configured 8.0 Mbit/s, ours 8.00 Mbit/s (100.0%), reference 4.00 Mbit/s (50.0%)"
        );
        assert!(
            report
                .table()
                .contains("shaping     ingress: configured 8.0 Mbit/s")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20");
    }
}
