//! How late the endpoint hands each event to the connection, against its
//! scripted deadline.
//!
//! A timing measurement through the built-in endpoint mixes two errors: the
//! server sending late and the client stamping late. Counting the server's
//! side here lets a benchmark tell them apart. A fixed histogram of 10 µs
//! buckets (lock-free, bounded memory however long `llmperf builtin` runs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKET_US: u64 = 10;
/// Buckets up to 100 ms; later events land in the last bucket.
const BUCKETS: usize = 10_000;

pub(crate) struct SendLateness {
    buckets: Box<[AtomicU64]>,
    max_us: AtomicU64,
}

/// Percentiles of the lateness, in microseconds (bucket upper bounds, so
/// at most 10 µs pessimistic).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LatenessPercentiles {
    pub(crate) frames: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

impl SendLateness {
    pub(crate) fn new() -> Self {
        SendLateness {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub(crate) fn percentiles(&self) -> LatenessPercentiles {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let frames: u64 = counts.iter().sum();
        let at = |q: f64| -> u64 {
            let rank = (q * frames as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return (index as u64 + 1) * BUCKET_US;
                }
            }
            0
        };
        if frames == 0 {
            return LatenessPercentiles::default();
        }
        LatenessPercentiles {
            frames,
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let lateness = SendLateness::new();
        for us in 0..100 {
            lateness.record(Duration::from_micros(us));
        }
        lateness.record(Duration::from_secs(1));
        let p = lateness.percentiles();
        assert_eq!(p.frames, 101);
        assert_eq!(p.p50_us, 60);
        assert_eq!(p.p99_us, 100);
        assert_eq!(p.max_us, 1_000_000);
    }
}
