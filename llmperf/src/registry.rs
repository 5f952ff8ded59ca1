//! The `#[llmperf::bench]` registry: a linkme distributed slice.
//!
//! The attribute macro adds one [`BenchEntry`] per function to
//! [`BENCHES`] at link time (no runtime code, no manual list). Neither
//! linkme nor the linker promises an order, so the harness sorts by id.

use crate::spec::{Arrival, Benchmark, Rate, Sweep};

/// Open-loop levels of `sweep = "auto"`.
pub const AUTO_SWEEP_RATES: usize = 5;
/// Least concurrency of the max-throughput level of `sweep = "auto"`
/// (the spec's concurrency when higher).
pub const AUTO_SWEEP_MAX_CONCURRENCY: usize = 64;

/// One registered benchmark function.
#[derive(Debug)]
pub struct BenchEntry {
    /// The name (the function's, unless `name = "…"` was given).
    pub name: &'static str,
    /// The group, from `group = "…"`.
    pub group: Option<&'static str>,
    /// Source file of the function.
    pub file: &'static str,
    /// Source line of the function.
    pub line: u32,
    /// `requests = N` from the attribute.
    pub requests: Option<u64>,
    /// `concurrency = N` from the attribute.
    pub concurrency: Option<usize>,
    /// `concurrency = [..]`: a concurrency sweep.
    pub concurrency_levels: &'static [usize],
    /// `rates = [..]`: a rate sweep (requests per second).
    pub rates: &'static [f64],
    /// `sweep = "auto"`: the automatic sweep.
    pub auto_sweep: bool,
    /// Builds the spec.
    pub build: fn() -> Benchmark,
}

impl BenchEntry {
    /// `group/name`, or `name` without a group.
    pub fn id(&self) -> String {
        match self.group {
            Some(group) => format!("{group}/{}", self.name),
            None => self.name.to_string(),
        }
    }

    /// The spec with the attribute's settings applied on top of the builder's.
    pub fn benchmark(&self) -> Benchmark {
        let mut bench = (self.build)();
        if let Some(requests) = self.requests {
            bench = bench.requests(requests);
        }
        if let Some(concurrency) = self.concurrency {
            bench = bench.concurrency(concurrency);
        }
        let mut load = bench.load_spec().clone();
        if !self.concurrency_levels.is_empty() {
            load.sweep = Some(Sweep::Concurrency {
                levels: self.concurrency_levels.to_vec(),
            });
            load.rate = None;
        } else if !self.rates.is_empty() {
            load.rate.get_or_insert(Rate {
                per_s: self.rates[0],
                arrival: Arrival::Poisson,
                max_in_flight: None,
                ramp_up: None,
            });
            load.sweep = Some(Sweep::Rates {
                levels: self.rates.to_vec(),
            });
        } else if self.auto_sweep {
            load.sweep = Some(Sweep::Auto {
                rates: AUTO_SWEEP_RATES,
                max_concurrency: load.concurrency.max(AUTO_SWEEP_MAX_CONCURRENCY),
            });
        } else {
            return bench;
        }
        bench.load(load)
    }
}

/// Every `#[llmperf::bench]` function linked into this binary.
#[linkme::distributed_slice]
pub static BENCHES: [BenchEntry];

/// The registered entries, sorted by id.
pub fn entries() -> Vec<&'static BenchEntry> {
    let mut entries: Vec<&'static BenchEntry> = BENCHES.iter().collect();
    entries.sort_by_key(|e| e.id());
    entries
}
