//! One metric's samples, gathered as a level runs, in bounded memory.
//!
//! A [`Column`] keeps every value while it holds at most
//! [`EXACT_SAMPLES`]: its statistics are then exactly [`Stats::of`] of the
//! values, whatever order they came in. Past that it moves them into a
//! log-scale histogram whose buckets are 0.01% wide and keeps only each
//! bucket's count and sum: memory stops growing with the samples, the count, mean,
//! standard deviation (Welford's running sums), minimum and maximum stay
//! exact, and a percentile is within 0.01% of the exact one (each order
//! statistic is read as the mean of the samples in its bucket, which lies
//! within the bucket; samples that cluster, as a steady server's
//! inter-token gaps do, are read almost exactly). A benchmark's sampling
//! error is far larger than that at these counts.

use std::collections::BTreeMap;

use super::Stats;

/// Values a column keeps one by one before it turns into a histogram.
pub const EXACT_SAMPLES: usize = 65_536;

/// The ratio between a bucket's upper and lower bound.
const BUCKET_GROWTH: f64 = 1.0001;

/// Keys of positive values start here (negative ones mirror them below 0).
const POSITIVE_KEYS: i64 = 1 << 40;

/// One metric's samples: see the [module](self).
#[derive(Debug, Clone, Default)]
pub struct Column {
    /// Every value, until there are more than [`EXACT_SAMPLES`].
    values: Vec<f64>,
    /// Count and sum by bucket once the values were too many.
    buckets: Option<BTreeMap<i64, Bucket>>,
    count: u64,
    mean: f64,
    /// Welford's sum of squared deviations from the running mean.
    m2: f64,
    min: f64,
    max: f64,
}

impl Column {
    /// An empty column.
    pub fn new() -> Column {
        Column::default()
    }

    /// Adds `value` (values that are not finite are left out, as
    /// [`Stats::of`] leaves them).
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.count += 1;
        if self.count == 1 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        match &mut self.buckets {
            Some(buckets) => buckets.entry(key(value)).or_default().add(value),
            None if self.values.len() < EXACT_SAMPLES => self.values.push(value),
            None => {
                let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
                for v in std::mem::take(&mut self.values).into_iter().chain([value]) {
                    buckets.entry(key(v)).or_default().add(v);
                }
                self.buckets = Some(buckets);
            }
        }
    }

    /// Samples added (finite ones).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the column still holds every value (its figures are exact).
    pub fn is_exact(&self) -> bool {
        self.buckets.is_none()
    }

    /// The statistics of the samples (`None` when there are none).
    pub fn stats(&self) -> Option<Stats> {
        let Some(buckets) = &self.buckets else {
            return Stats::of(self.values.clone());
        };
        let quantiles = Quantiles::new(buckets, self.count, self.min, self.max);
        Some(Stats {
            count: self.count,
            mean: self.mean,
            stddev: if self.count > 1 {
                (self.m2 / (self.count - 1) as f64).sqrt()
            } else {
                0.0
            },
            min: self.min,
            max: self.max,
            p50: quantiles.at(0.50),
            p90: quantiles.at(0.90),
            p95: quantiles.at(0.95),
            p99: quantiles.at(0.99),
        })
    }

    /// The `q` quantile (type 7, as [`super::percentile`]); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        self.at_rank(q.clamp(0.0, 1.0) * (self.count - 1) as f64)
    }

    /// The value at fractional rank `rank` (0 is the smallest sample),
    /// interpolated linearly between the two order statistics around it;
    /// `None` past the largest.
    pub fn at_rank(&self, rank: f64) -> Option<f64> {
        if rank.is_nan() || rank < 0.0 || rank.ceil() >= self.count as f64 {
            return None;
        }
        Some(match &self.buckets {
            None => {
                let mut sorted = self.values.clone();
                sorted.sort_by(f64::total_cmp);
                let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
                sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
            }
            Some(buckets) => Quantiles::new(buckets, self.count, self.min, self.max).at_rank(rank),
        })
    }
}

/// The bucket of `value`: 0 for zero; `POSITIVE_KEYS + i` for a positive
/// value in `(g^(i-1), g^i]`; the mirror image below 0 for a negative one.
fn key(value: f64) -> i64 {
    if value == 0.0 {
        return 0;
    }
    let index = (value.abs().ln() / BUCKET_GROWTH.ln()).ceil() as i64;
    let key = POSITIVE_KEYS + index;
    if value > 0.0 {
        key
    } else {
        -key
    }
}

/// The samples in one bucket: how many, and their sum.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    count: u64,
    sum: f64,
}

impl Bucket {
    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
    }

    /// The value the bucket stands for: the mean of its samples.
    fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Order statistics read from a histogram.
struct Quantiles<'a> {
    buckets: &'a BTreeMap<i64, Bucket>,
    count: u64,
    min: f64,
    max: f64,
}

impl<'a> Quantiles<'a> {
    fn new(buckets: &'a BTreeMap<i64, Bucket>, count: u64, min: f64, max: f64) -> Self {
        Quantiles {
            buckets,
            count,
            min,
            max,
        }
    }

    /// The `k`-th smallest sample (from 0), as its bucket's value.
    fn order_statistic(&self, k: u64) -> f64 {
        if k == 0 {
            return self.min;
        }
        if k + 1 >= self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for bucket in self.buckets.values() {
            seen += bucket.count;
            if seen > k {
                return bucket.mean().clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The `q` quantile, interpolated between order statistics (type 7).
    fn at(&self, q: f64) -> f64 {
        self.at_rank(q.clamp(0.0, 1.0) * (self.count - 1) as f64)
    }

    /// The value at fractional rank `rank`, below the count.
    fn at_rank(&self, rank: f64) -> f64 {
        let (low, high) = (rank.floor(), rank.ceil());
        let below = self.order_statistic(low as u64);
        let above = if high > low {
            self.order_statistic(high as u64)
        } else {
            below
        };
        below + (above - below) * (rank - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::percentile;

    /// Deterministic values spread over five decades, some zero or negative.
    fn values(n: usize) -> Vec<f64> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..n)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                match i % 97 {
                    0 => 0.0,
                    1 => -unit * 5.0,
                    _ => 0.01 * 10f64.powf(unit * 5.0),
                }
            })
            .collect()
    }

    #[test]
    fn few_values_give_exactly_the_stats_of_the_values_in_any_order() {
        let mut values = values(5_000);
        values.push(f64::NAN);
        let mut column = Column::new();
        for v in values.iter().rev() {
            column.push(*v);
        }
        assert!(column.is_exact());
        assert_eq!(column.stats(), Stats::of(values.clone()));
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        assert_eq!(column.quantile(0.37), Some(percentile(&values, 0.37)));
        assert_eq!(Column::new().stats(), None);
    }

    #[test]
    fn many_values_keep_exact_moments_and_percentiles_within_a_hundredth_of_a_percent() {
        let values = values(EXACT_SAMPLES * 3);
        let mut column = Column::new();
        for v in &values {
            column.push(*v);
        }
        assert!(!column.is_exact());
        let (got, exact) = (column.stats().unwrap(), Stats::of(values.clone()).unwrap());
        assert_eq!(
            (got.count, got.min, got.max),
            (exact.count, exact.min, exact.max)
        );
        let close = |a: f64, b: f64, within: f64| (a - b).abs() <= within * b.abs();
        assert!(close(got.mean, exact.mean, 1e-9), "{got:?} {exact:?}");
        assert!(close(got.stddev, exact.stddev, 1e-9), "{got:?} {exact:?}");
        for (a, b) in [
            (got.p50, exact.p50),
            (got.p90, exact.p90),
            (got.p95, exact.p95),
            (got.p99, exact.p99),
        ] {
            assert!(close(a, b, 1e-4), "{a} against {b}");
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.001, 0.01, 0.3, 0.999, 1.0] {
            let (a, b) = (column.quantile(q).unwrap(), percentile(&sorted, q));
            // Around zero the relative width is meaningless: compare with
            // the range near it.
            assert!(
                close(a, b, 1e-4) || (a - b).abs() < 1e-9,
                "q {q}: {a} against {b}"
            );
        }
    }

    #[test]
    fn clustered_samples_read_almost_exactly_from_the_histogram() {
        // A steady server's gaps: 10 ms give or take a few microseconds.
        let values: Vec<f64> = (0..EXACT_SAMPLES * 2)
            .map(|i| 10.0 + ((i * 7919) % 13) as f64 * 1e-4)
            .collect();
        let mut column = Column::new();
        for v in &values {
            column.push(*v);
        }
        assert!(!column.is_exact());
        let (got, exact) = (column.stats().unwrap(), Stats::of(values).unwrap());
        for (a, b) in [(got.p50, exact.p50), (got.p99, exact.p99)] {
            assert!((a - b).abs() < 1e-3, "{a} against {b}");
        }
    }

    #[test]
    fn a_histogram_stops_growing_with_the_samples() {
        // Positive values over five decades (0.01 to 1,000).
        let positive = |n| values(n).into_iter().filter(|v| *v > 0.0);
        let mut column = Column::new();
        for v in positive(EXACT_SAMPLES * 2) {
            column.push(v);
        }
        let buckets = column.buckets.as_ref().map(BTreeMap::len).unwrap();
        for v in positive(EXACT_SAMPLES * 8) {
            column.push(v);
        }
        let more = column.buckets.as_ref().map(BTreeMap::len).unwrap();
        // Five decades at 0.01% a bucket: at most 115,135 buckets, however many values.
        assert!(more <= 115_135 && more >= buckets, "{buckets} then {more}");
        assert_eq!(column.values.capacity(), 0, "the exact values were let go");
    }
}
