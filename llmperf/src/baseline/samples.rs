//! The per-request samples a baseline keeps for its statistics.
//!
//! A summary's percentiles cannot be compared with confidence on their own:
//! the bootstrap needs the requests behind them. A baseline therefore keeps,
//! per level, one column per metric over the measured requests in plan
//! order. Two things keep the file small and its diffs readable:
//! - at most [`MAX_SAMPLED_REQUESTS`] requests, evenly spaced by plan order
//!   (`sampled_requests` says how many of `requests` were kept);
//! - each request's inter-token latencies as all of them when there are at
//!   most [`ITL_POINTS_PER_REQUEST`], else as that many quantile points,
//!   one per share of its gaps in [`ITL_SHARES`] (finer toward the tail,
//!   so a pooled p99 keeps its shape), each standing for its share of
//!   `itl_counts[i]` gaps.

use serde::{Deserialize, Serialize};

use crate::load::Phase;
use crate::metrics::{inter_token_latencies_ms, percentile};
use crate::record::{RequestRecord, ValidationOutcome};

/// Requests kept per level; more are thinned evenly by plan order.
pub const MAX_SAMPLED_REQUESTS: usize = 2_000;
/// Inter-token latency points kept per request.
pub const ITL_POINTS_PER_REQUEST: usize = 16;
/// The bounds of the shares of a request's gaps that its points stand
/// for: tenths up to 0.9, then finer toward the largest gap. Point `i` is
/// the quantile at the middle of `[ITL_SHARES[i], ITL_SHARES[i + 1]]`.
pub const ITL_SHARES: [f64; ITL_POINTS_PER_REQUEST + 1] = [
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.96, 0.98, 0.99, 0.995, 0.999, 1.0,
];

/// The measured requests of one level, as columns (index `i` of every
/// column is the same request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// Measured requests of the level.
    pub requests: u64,
    /// How many of them the columns hold.
    pub sampled_requests: u64,
    /// The level's measured window, seconds (throughput's denominator).
    pub window_s: f64,
    /// Whether each request succeeded.
    pub ok: Vec<bool>,
    /// Time to first token, ms (`null`: failed, or no content).
    pub ttft_ms: Vec<Option<f64>>,
    /// Time per output token, ms (`null`: failed, or one token).
    pub tpot_ms: Vec<Option<f64>>,
    /// End-to-end latency, ms (failed requests too).
    pub e2e_ms: Vec<f64>,
    /// Output tokens of each successful request (0 for failed ones).
    pub output_tokens: Vec<u32>,
    /// Inter-token latencies of each successful request, ms: all of them
    /// when few, else evenly spaced quantile points.
    pub itl_ms: Vec<Vec<f64>>,
    /// How many inter-token latencies each request had.
    pub itl_counts: Vec<u32>,
    /// Validation: `true` passed, `false` a mismatch or cross-over,
    /// `null` not validated or no answer.
    pub valid: Vec<Option<bool>>,
}

impl Samples {
    /// The samples of the measured requests among `records` (one level's),
    /// with the level's throughput window.
    pub fn of(records: &[RequestRecord], window_s: f64) -> Samples {
        let mut measured: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.phase == Phase::Measured)
            .collect();
        measured.sort_by_key(|r| r.id);
        let requests = measured.len();
        let kept: Vec<&RequestRecord> = if requests > MAX_SAMPLED_REQUESTS {
            (0..MAX_SAMPLED_REQUESTS)
                .map(|i| measured[i * requests / MAX_SAMPLED_REQUESTS])
                .collect()
        } else {
            measured
        };
        let mut samples = Samples {
            requests: requests as u64,
            sampled_requests: kept.len() as u64,
            window_s,
            ..Samples::default()
        };
        for record in kept {
            let m = &record.metrics;
            samples.ok.push(record.ok);
            samples.ttft_ms.push(m.ttft_ms.filter(|_| record.ok));
            samples.tpot_ms.push(m.tpot_ms.filter(|_| record.ok));
            samples.e2e_ms.push(m.e2e_ms);
            let (itl, count) = if record.ok {
                itl_points(inter_token_latencies_ms(record))
            } else {
                (Vec::new(), 0)
            };
            samples
                .output_tokens
                .push(if record.ok { record.output_tokens() } else { 0 });
            samples.itl_ms.push(itl);
            samples.itl_counts.push(count);
            // A truncated answer was neither right nor wrong: not judged.
            samples
                .valid
                .push(record.validation.as_ref().and_then(|v| match v.outcome {
                    ValidationOutcome::Pass => Some(true),
                    ValidationOutcome::Truncated => None,
                    ValidationOutcome::CrossOver | ValidationOutcome::Mismatch => Some(false),
                }));
        }
        samples
    }

    /// Whether the columns all have `sampled_requests` entries (a
    /// hand-edited or truncated file may not).
    pub fn is_consistent(&self) -> bool {
        let n = self.sampled_requests as usize;
        self.ok.len() == n
            && self.ttft_ms.len() == n
            && self.tpot_ms.len() == n
            && self.e2e_ms.len() == n
            && self.output_tokens.len() == n
            && self.itl_ms.len() == n
            && self.itl_counts.len() == n
            && self.valid.len() == n
            && self.sampled_requests <= self.requests
    }
}

/// A request's inter-token latencies reduced to at most
/// [`ITL_POINTS_PER_REQUEST`] points, and how many there were.
pub(crate) fn itl_points(mut gaps: Vec<f64>) -> (Vec<f64>, u32) {
    gaps.retain(|g| g.is_finite());
    gaps.sort_by(f64::total_cmp);
    let count = gaps.len() as u32;
    if gaps.len() <= ITL_POINTS_PER_REQUEST {
        return (gaps, count);
    }
    let points = ITL_SHARES
        .windows(2)
        .map(|share| percentile(&gaps, (share[0] + share[1]) / 2.0))
        .collect();
    (points, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_gaps_are_kept_whole_and_many_are_thinned_to_quantile_points() {
        let (points, count) = itl_points(vec![3.0, 1.0, 2.0]);
        assert_eq!((points, count), (vec![1.0, 2.0, 3.0], 3));
        let (points, count) = itl_points((0..1000).map(f64::from).collect());
        assert_eq!(count, 1000);
        assert_eq!(points.len(), ITL_POINTS_PER_REQUEST);
        // The points sit at the middles of their shares of the gaps.
        assert!((points[0] - 49.95).abs() < 1e-9, "{points:?}");
        assert!((points[8] - 849.15).abs() < 1e-9, "{points:?}");
        assert!((points[15] - 998.5005).abs() < 1e-9, "{points:?}");
    }
}
