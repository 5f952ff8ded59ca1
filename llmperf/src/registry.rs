//! The `#[llmperf::bench]` registry: a linkme distributed slice.
//!
//! The attribute macro adds one [`BenchEntry`] per function to
//! [`BENCHES`] at link time (no runtime code, no manual list). Neither
//! linkme nor the linker promises an order, so the harness sorts by id.

use crate::spec::Benchmark;

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
        bench
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
