//! Example benchmark for Together AI's legacy `/inference` API.
//!
//! With `TOGETHER_API_KEY` and `LLMPERF_MODEL` set it measures
//! api.together.xyz (or `TOGETHER_API_BASE`); with nothing configured it
//! runs against the built-in endpoint.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// Token streaming from `/inference` with `stream_tokens: true`.
#[llmperf::bench(group = "together_inference", requests = 8, concurrency = 2)]
fn stream_tokens() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("together-inference"))
        .workload(Workload::token_lengths(300, 50, 100, 20).max_tokens(128))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10)),
        )
}

llmperf::main!();
