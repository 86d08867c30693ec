//! Runs one row: set up both implementations, then iterate, interleaving them, and collect
//! the samples after the warm-up.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::rows::{Instance, Row, order};
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

pub fn run_row(
    row: &dyn Row,
    sandbox: &Sandbox,
    sides: &[Side; 2],
    params: RunParams,
) -> Result<RowResult> {
    let name = row.name();
    let started = Instant::now();
    eprintln!("[{name}] setting up");
    let mut instances: Vec<Box<dyn Instance>> = Vec::with_capacity(2);
    for side in sides {
        instances.push(
            row.setup(sandbox, side)
                .map_err(|e| e.context(format!("[{name}] setup of {}", side.label())))?,
        );
    }

    // The setup's writes (e.g. 1,000 allocations) go to disk now, not during the timing.
    sandbox.sync()?;

    let ops = row.ops();
    let mut result = RowResult {
        name: name.clone(),
        ops: ops
            .iter()
            .map(|&op| OpSamples {
                op,
                samples: [
                    Vec::with_capacity(params.iterations),
                    Vec::with_capacity(params.iterations),
                ],
            })
            .collect(),
    };
    eprintln!(
        "[{name}] measuring {} iterations (+{} warm-up)",
        params.iterations, params.warmup
    );
    let measured = measure(&mut instances, sandbox, sides, params, &mut result);
    // Tear down both even when measuring failed; report the first error.
    let mut teardown = Ok(());
    for (instance, side) in instances.iter_mut().zip(sides) {
        if let Err(e) = instance.teardown(sandbox)
            && teardown.is_ok()
        {
            teardown = Err(e.context(format!("[{name}] teardown of {}", side.label())));
        }
    }
    drop(instances);
    measured.map_err(|e| e.context(format!("[{name}]")))?;
    teardown?;
    eprintln!("[{name}] done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(result)
}

fn measure(
    instances: &mut [Box<dyn Instance>],
    sandbox: &Sandbox,
    sides: &[Side; 2],
    params: RunParams,
    result: &mut RowResult,
) -> Result<()> {
    for i in 0..params.warmup + params.iterations {
        for k in order(i) {
            signals::check()?;
            let (Some(instance), Some(side)) = (instances.get_mut(k), sides.get(k)) else {
                continue;
            };
            let durations = instance
                .iterate(sandbox, i)
                .map_err(|e| e.context(format!("{} iteration {i}", side.label())))?;
            if durations.len() != result.ops.len() {
                return Err(Error::msg(format!(
                    "{} iteration returned {} durations for {} operations",
                    side.label(),
                    durations.len(),
                    result.ops.len()
                )));
            }
            if i >= params.warmup {
                for (op, d) in result.ops.iter_mut().zip(durations) {
                    op.samples[k].push(d);
                }
            }
        }
    }
    Ok(())
}
