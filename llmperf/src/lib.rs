//! # llmperf
//!
//! Benchmark streaming LLM endpoints the way criterion benchmarks code.
//!
//! Declare endpoint benchmarks in `benches/*.rs` (with `harness = false`
//! in `Cargo.toml`) and run them with `cargo bench`:
//!
//! ```no_run
//! use std::time::Duration;
//! use llmperf::{Benchmark, Endpoint, Load, Workload};
//!
//! #[llmperf::bench(group = "chat", requests = 50, concurrency = 8)]
//! fn short_prompts() -> Benchmark {
//!     Benchmark::new()
//!         .endpoint(Endpoint::openai_chat()) // OPENAI_API_BASE / OPENAI_API_KEY, or the built-in endpoint
//!         .workload(Workload::token_lengths(550, 150, 150, 80))
//!         .load(Load::closed(8).timeout(Duration::from_secs(60)))
//!         .validate(true)
//! }
//!
//! llmperf::main!();
//! ```
//!
//! Each run measures, per request, time to first token (TTFT), every
//! inter-token gap, time per output token (TPOT), end-to-end latency and
//! throughput from monotonic timestamps taken as bytes arrive, checks that
//! every response answers its own request (cross-over validation), and
//! writes `target/llmperf/<id>/new/summary.json` and `requests.jsonl`.
//!
//! The attribute refuses what the harness could not run, at compile time:
//!
//! ```compile_fail
//! #[llmperf::bench]
//! fn takes_an_argument(concurrency: usize) -> llmperf::Benchmark {
//!     llmperf::Benchmark::new().concurrency(concurrency)
//! }
//! ```
//!
//! ```compile_fail
//! #[llmperf::bench(requests = 0)]
//! fn no_requests() -> llmperf::Benchmark {
//!     llmperf::Benchmark::new()
//! }
//! ```
//!
//! ```compile_fail
//! #[llmperf::bench(repeats = 3)]
//! fn unknown_option() -> llmperf::Benchmark {
//!     llmperf::Benchmark::new()
//! }
//! ```
//!
//! With no endpoint configured, benchmarks run against the built-in
//! endpoint ([`builtin`]), a real HTTP server on 127.0.0.1 with scripted
//! timing, so examples and tests do real work on any machine.
//!
//! # Where things are
//!
//! | you are | you use |
//! |---|---|
//! | writing a benchmark | [`bench`], [`main!`], [`Benchmark`] with [`Endpoint`], [`Workload`] (or a [`Dataset`]), [`Load`], and the objectives and load shapes in [`spec`] |
//! | trying things without an endpoint | [`builtin`]: the built-in endpoint's [`Script`] (timing, [`Fault`]s, connection behaviour) and its [`builtin::Server`] |
//! | running one from your own code | [`run_benchmark`] with [`RunOptions`] |
//! | reading results | [`results`] (`summary.json`, `requests.jsonl`), [`record::RequestRecord`] (one request), [`metrics`] (the summary's figures), [`baseline`] (baselines and verdicts) |
//! | adding a protocol | [`endpoint`]: the [`endpoint::EndpointKind`] trait, the shared framings and decoders; register it with [`inventory`] |
//!
//! The guides (baselines and CI, datasets, load shapes, the results
//! schema, the built-in endpoint) are in the repository's `docs/` folder;
//! each endpoint kind's reference is its module's documentation under
//! [`endpoint`]. Everything else the crate exposes is `#[doc(hidden)]`:
//! the machinery behind `cargo bench` and the `llmperf` binary, which
//! moves without notice.

#![warn(missing_docs)]

// What a benchmark author, a reader of results and an endpoint-kind author
// use; documented, and kept stable.
pub mod baseline;
pub mod builtin;
pub mod endpoint;
pub mod metrics;
pub mod record;
pub mod results;
pub mod spec;

// The machinery behind `cargo bench` and the `llmperf` binary: public so
// the binary, the integration tests and the measurement benchmarks can
// reach it, hidden from the docs and outside the API (it moves freely).
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod harness;
#[doc(hidden)]
pub mod load;
#[doc(hidden)]
pub mod merge;
#[doc(hidden)]
pub mod registry;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod run;
#[doc(hidden)]
pub mod shard;
#[doc(hidden)]
pub mod transport;
#[doc(hidden)]
pub mod validate;
#[doc(hidden)]
pub mod workload;

pub use builtin::{Fault, FaultSchedule, MetricsStyle, Script};
/// Re-exported so a `benches/` file can register its own endpoint kind
/// (`llmperf::inventory::submit!`) without depending on inventory itself.
pub use inventory;
pub use llmperf_macros::bench;
/// Re-exported for implementing [`endpoint::EndpointKind`] outside llmperf.
pub use reqwest;
pub use run::{run_benchmark, RunError, RunOptions, RunOutcome};
pub use spec::{Benchmark, Dataset, DatasetFormat, Endpoint, Load, Sampling, Workload};
pub use workload::tokenizer::Tokenizer;

/// Runs the harness over every `#[llmperf::bench]` in this binary.
pub fn main() -> std::process::ExitCode {
    harness::main()
}

/// Defines `fn main()` running the harness: put `llmperf::main!();` at the
/// end of a `benches/*.rs` file.
#[macro_export]
macro_rules! main {
    () => {
        fn main() -> ::std::process::ExitCode {
            $crate::main()
        }
    };
}

/// What `#[llmperf::bench]` expands to names, and nothing else: the
/// attribute emits paths through here only, so the runtime can move things
/// without breaking user code. Not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{BenchEntry, BenchOptions, ConcurrencyOption, NamedSweep, BENCHES};
    pub use linkme;
}
