//! The `#[llmperf::bench]` registry: a linkme distributed slice.
//!
//! The attribute macro adds one [`BenchEntry`] per function to
//! `BENCHES` at link time (no runtime code, no manual list). Neither
//! linkme nor the linker promises an order, so the harness sorts by id.

mod options;

pub use options::{
    BenchOptions, ConcurrencyOption, NamedSweep, AUTO_SWEEP_MAX_CONCURRENCY, AUTO_SWEEP_RATES,
};

use crate::spec::Benchmark;

/// One registered benchmark function.
#[derive(Debug)]
pub struct BenchEntry {
    /// The function's name.
    pub function: &'static str,
    /// Source file of the function.
    pub file: &'static str,
    /// Source line of the function.
    pub line: u32,
    /// The attribute's options.
    pub options: BenchOptions,
    /// Builds the spec.
    pub build: fn() -> Benchmark,
}

impl BenchEntry {
    /// The name: the function's, unless `name = "…"` was given.
    pub fn name(&self) -> &'static str {
        self.options.name.unwrap_or(self.function)
    }

    /// `group/name`, or `name` without a group.
    pub fn id(&self) -> String {
        match self.options.group {
            Some(group) => format!("{group}/{}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// The spec with the attribute's settings applied on top of the builder's.
    pub fn benchmark(&self) -> Benchmark {
        self.options.apply((self.build)())
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
