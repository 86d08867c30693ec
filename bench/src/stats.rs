//! Medians and percentiles of timing samples.

use std::time::Duration;

use serde::Serialize;

/// A summary of one operation's samples, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
}

/// `None` for no samples.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    Some(Summary {
        samples: ms.len(),
        median_ms: percentile(&ms, 0.5),
        p90_ms: percentile(&ms, 0.9),
        min_ms: ms[0],
        mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
    })
}

/// The `q` quantile (0..=1) of sorted, non-empty data, interpolating linearly between the two
/// nearest ranks (R's type 7, numpy's default).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate() {
        let data = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&data, 0.5), 2.5);
        assert_eq!(percentile(&data, 0.0), 1.0);
        assert_eq!(percentile(&data, 1.0), 4.0);
        assert!((percentile(&data, 0.9) - 3.7).abs() < 1e-9);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn summary_in_milliseconds() {
        let s = summarize(&[
            Duration::from_millis(3),
            Duration::from_millis(1),
            Duration::from_millis(2),
        ])
        .unwrap();
        assert_eq!(s.samples, 3);
        assert!((s.median_ms - 2.0).abs() < 1e-9);
        assert!((s.min_ms - 1.0).abs() < 1e-9);
        assert!((s.mean_ms - 2.0).abs() < 1e-9);
        assert!(summarize(&[]).is_none());
    }
}
