//! Distribution statistics of one metric: count, mean, spread and the
//! percentiles reports and comparisons use.

use serde::{Deserialize, Serialize};

/// Distribution statistics of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one sample).
    pub stddev: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Stats {
    /// Statistics of `samples` (`None` when empty). Percentiles interpolate
    /// linearly between order statistics (Hyndman–Fan type 7, as numpy).
    ///
    /// ```
    /// let stats = llmperf::metrics::Stats::of(vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(stats.p50, 2.5);
    /// assert_eq!(stats.max, 4.0);
    /// ```
    pub fn of(mut samples: Vec<f64>) -> Option<Stats> {
        samples.retain(|x| x.is_finite());
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let variance = if samples.len() > 1 {
            samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Stats {
            count: samples.len() as u64,
            mean,
            stddev: variance.sqrt(),
            min: samples[0],
            max: samples[samples.len() - 1],
            p50: percentile(&samples, 0.50),
            p90: percentile(&samples, 0.90),
            p95: percentile(&samples, 0.95),
            p99: percentile(&samples, 0.99),
        })
    }
}

/// The `q` quantile of sorted samples (type 7).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}
