//! Runs rows: set up every implementation of every row of a group, then iterate, interleaving
//! all of them, and collect the samples after the warm-up.
//!
//! A group is usually one row (ours and the reference interleaved). Rows that a derived line
//! compares (host-local with an empty and a full store) form one group, so that whatever
//! drifts during a run (the disk's latency, the machine's other work) weighs on both rows
//! alike instead of on whichever ran second.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rows::{Instance, Row};
use crate::sandbox::Sandbox;
use crate::side::Side;
use crate::signals;

/// The samples of one operation of one row, per implementation (ours, reference).
#[derive(Debug)]
pub struct OpSamples {
    pub op: &'static str,
    pub samples: [Vec<Duration>; 2],
}

#[derive(Debug)]
pub struct RowResult {
    pub name: String,
    pub ops: Vec<OpSamples>,
}

#[derive(Debug, Clone, Copy)]
pub struct RunParams {
    pub iterations: usize,
    pub warmup: usize,
}

/// One implementation of one row, set up.
struct Slot {
    row: usize,
    side: usize,
    instance: Box<dyn Instance>,
}

/// Splits rows (in table order) into groups: consecutive rows with the same
/// [`Row::group`] run together; a row without one runs alone.
pub fn groups<'a>(rows: &[&'a dyn Row]) -> Vec<Vec<&'a dyn Row>> {
    let mut out: Vec<Vec<&dyn Row>> = Vec::new();
    for &row in rows {
        match (out.last_mut(), row.group()) {
            (Some(last), Some(g)) if last.first().and_then(|r| r.group()) == Some(g) => {
                last.push(row)
            }
            _ => out.push(vec![row]),
        }
    }
    out
}

pub fn run_group(
    rows: &[&dyn Row],
    sandbox: &Sandbox,
    sides: &[Side; 2],
    params: RunParams,
) -> Result<Vec<RowResult>> {
    let name = rows
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(" | ");
    let started = Instant::now();
    eprintln!("[{name}] setting up");
    let mut slots = Vec::with_capacity(rows.len() * 2);
    for (r, row) in rows.iter().enumerate() {
        for (s, side) in sides.iter().enumerate() {
            let instance = row
                .setup(sandbox, side)
                .map_err(|e| e.context(format!("[{}] setup of {}", row.name(), side.label())))?;
            slots.push(Slot {
                row: r,
                side: s,
                instance,
            });
        }
    }
    // The setup's writes (e.g. 1,000 allocations) go to disk now, not during the timing.
    sandbox.sync()?;

    let mut results: Vec<RowResult> = rows
        .iter()
        .map(|row| RowResult {
            name: row.name(),
            ops: row
                .ops()
                .into_iter()
                .map(|op| OpSamples {
                    op,
                    samples: [
                        Vec::with_capacity(params.iterations),
                        Vec::with_capacity(params.iterations),
                    ],
                })
                .collect(),
        })
        .collect();
    eprintln!(
        "[{name}] measuring {} iterations (+{} warm-up)",
        params.iterations, params.warmup
    );
    let measured = measure(&mut slots, sandbox, sides, params, &mut results);
    // Tear everything down even when measuring failed; report the first error.
    let mut teardown = Ok(());
    for slot in &mut slots {
        if let Err(e) = slot.instance.teardown(sandbox)
            && teardown.is_ok()
        {
            let (row, side) = (rows.get(slot.row), sides.get(slot.side));
            teardown = Err(e.context(format!(
                "[{}] teardown of {}",
                row.map(|r| r.name()).unwrap_or_default(),
                side.map(|s| s.label()).unwrap_or_default()
            )));
        }
    }
    drop(slots);
    measured.map_err(|e| e.context(format!("[{name}]")))?;
    teardown?;
    eprintln!("[{name}] done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(results)
}

/// The order of the slots in iteration `i`: rotated by one each iteration, so that each
/// slot takes every position (and follows every other slot) equally often; with two slots,
/// ours first in even iterations, the reference first in odd ones.
pub fn order(n: usize, i: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (k + i) % n)
}

fn measure(
    slots: &mut [Slot],
    sandbox: &Sandbox,
    sides: &[Side; 2],
    params: RunParams,
    results: &mut [RowResult],
) -> Result<()> {
    let n = slots.len();
    for i in 0..params.warmup + params.iterations {
        for k in order(n, i) {
            signals::check()?;
            let Some(slot) = slots.get_mut(k) else {
                continue;
            };
            let label = sides.get(slot.side).map(|s| s.label()).unwrap_or_default();
            let durations = slot
                .instance
                .iterate(sandbox, i)
                .map_err(|e| e.context(format!("{label} iteration {i}")))?;
            let Some(result) = results.get_mut(slot.row) else {
                continue;
            };
            if durations.len() != result.ops.len() {
                return Err(Error::msg(format!(
                    "{} {label}: an iteration returned {} durations for {} operations",
                    result.name,
                    durations.len(),
                    result.ops.len()
                )));
            }
            if i >= params.warmup {
                for (op, d) in result.ops.iter_mut().zip(durations) {
                    if let Some(samples) = op.samples.get_mut(slot.side) {
                        samples.push(d);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_rotates() {
        assert_eq!(order(2, 0).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(order(2, 1).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(order(4, 1).collect::<Vec<_>>(), [1, 2, 3, 0]);
        // Over n iterations every slot is in every position once.
        for pos in 0..4 {
            let mut seen: Vec<usize> = (0..4).filter_map(|i| order(4, i).nth(pos)).collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2, 3]);
        }
    }
}
