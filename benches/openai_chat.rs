//! Example endpoint benchmarks.
//!
//! With `OPENAI_API_BASE` (and `OPENAI_API_KEY`, `LLMPERF_MODEL`) set in the
//! environment or a `.env` file they measure that endpoint; with nothing
//! configured they run against the built-in endpoint, scripted here to
//! behave like a small model server (TTFT 100 ms plus prefill, 10 ms per
//! token).
//!
//! `cargo bench` runs them all; `cargo bench -- chat/` filters by id.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// How the built-in endpoint behaves for these examples.
fn small_model_server() -> Script {
    Script::new()
        .ttft(Duration::from_millis(100))
        .ttft_per_prompt_token(Duration::from_micros(20))
        .inter_token(Duration::from_millis(10))
        .jitter(Duration::from_millis(1))
}

/// The default workload of the older tool: 550±150 tokens in, 150±80 out.
#[llmperf::bench(group = "chat", requests = 32, concurrency = 8)]
fn token_lengths() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat())
        .workload(Workload::token_lengths(550, 150, 150, 80).max_tokens(256))
        .load(Load::closed(8).timeout(Duration::from_secs(60)))
        .builtin_script(small_model_server())
}

/// A correctness run: every request only asks for its number back (the
/// other benchmarks are validated too, as every generated workload is).
#[llmperf::bench(group = "chat", requests = 32, concurrency = 16)]
fn validated() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat())
        .workload(Workload::validation_only())
        .load(Load::closed(16).timeout(Duration::from_secs(30)))
        .validate(true)
        .builtin_script(small_model_server())
}

/// The classic scheme: random sonnet lines, asking for lines back, on the
/// completions endpoint.
#[llmperf::bench(group = "completions", requests = 16, concurrency = 4)]
fn sonnet_lines() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_completions())
        .workload(Workload::lines(4, 12, 4).max_tokens(96))
        .load(Load::closed(4).timeout(Duration::from_secs(30)))
        .extra_body("temperature", serde_json::json!(0.0))
        .builtin_script(small_model_server().tokens_per_event(2))
}

llmperf::main!();
