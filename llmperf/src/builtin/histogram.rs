//! A Prometheus histogram counted with atomics: one counter per bucket and
//! a sum in integer micro-units (microseconds for a duration), so the hot
//! path is a search over a few dozen bounds and two atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Observations in fixed buckets.
pub(crate) struct Histogram {
    /// Upper bounds (`le`) in the exported unit (seconds, or tokens),
    /// ascending; the `+Inf` bucket follows them.
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative), `+Inf` last.
    buckets: Box<[AtomicU64]>,
    /// Sum of the observations in base units: microseconds for a duration
    /// histogram, tokens for a count histogram.
    sum: AtomicU64,
    /// Base units per exported unit (1,000,000 µs a second; 1 for counts).
    per_unit: u64,
}

/// A histogram's figures at one instant, as Prometheus exposes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// `(le, cumulative count)`, ascending, without `+Inf`.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket and `_count`).
    pub(crate) count: u64,
    /// Sum of the observations in the exported unit.
    pub(crate) sum: f64,
}

impl Histogram {
    /// A histogram of durations exported in seconds, with these bounds
    /// (seconds, ascending).
    pub(crate) fn seconds(bounds: Vec<f64>) -> Self {
        Self::new(bounds, 1_000_000)
    }

    /// A histogram of counts (tokens), with these bounds.
    pub(crate) fn counts(bounds: Vec<f64>) -> Self {
        Self::new(bounds, 1)
    }

    fn new(bounds: Vec<f64>, per_unit: u64) -> Self {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            buckets,
            sum: AtomicU64::new(0),
            per_unit,
        }
    }

    /// Observes a duration (to the microsecond).
    pub(crate) fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    }

    /// Observes `units` base units (microseconds or tokens).
    pub(crate) fn observe(&self, units: u64) {
        let value = units as f64 / self.per_unit as f64;
        // The first bucket whose bound is at least the value (`le`).
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    /// The cumulative buckets, count and sum now. The count is the sum of
    /// the buckets, so `+Inf` always equals `_count`.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            total += bucket.load(Ordering::Relaxed);
            buckets.push((*bound, total));
        }
        let count = total + self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum: self.sum.load(Ordering::Relaxed) as f64 / self.per_unit as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_le_bounds_and_the_sum_in_seconds() {
        let histogram = Histogram::seconds(vec![0.01, 0.1, 1.0]);
        histogram.observe_duration(Duration::from_millis(10)); // on the bound: le 0.01
        histogram.observe_duration(Duration::from_millis(50));
        histogram.observe_duration(Duration::from_millis(50));
        histogram.observe_duration(Duration::from_secs(3)); // +Inf only
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.01, 1), (0.1, 3), (1.0, 3)]);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum - 3.11).abs() < 1e-9, "{}", snapshot.sum);
    }

    #[test]
    fn a_count_histogram_sums_tokens() {
        let histogram = Histogram::counts(vec![10.0, 20.0]);
        histogram.observe(7);
        histogram.observe(20);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(10.0, 1), (20.0, 2)]);
        assert_eq!((snapshot.count, snapshot.sum), (2, 27.0));
    }
}
