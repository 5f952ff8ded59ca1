//! Example benchmark for Anthropic's Messages API.
//!
//! With `ANTHROPIC_API_KEY` and `LLMPERF_MODEL` (e.g. `claude-sonnet-4-5`)
//! set it measures api.anthropic.com (or `ANTHROPIC_API_BASE`); with nothing
//! configured it runs against the built-in endpoint, scripted here to think
//! for 16 tokens before answering.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// Streaming messages, with thinking counted as reasoning.
#[llmperf::bench(group = "anthropic", requests = 8, concurrency = 2)]
fn messages() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("anthropic"))
        .workload(Workload::token_lengths(300, 50, 100, 20).max_tokens(128))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10))
                .reasoning_tokens(16),
        )
}

llmperf::main!();
