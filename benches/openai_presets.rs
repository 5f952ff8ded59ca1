//! Example benchmarks for the named OpenAI-compatible presets.
//!
//! With `FIREWORKS_API_KEY` (or `FIREWORKS_API_BASE`) and `LLMPERF_MODEL`
//! set, `fireworks_chat` measures Fireworks AI; `vllm_chat` measures the
//! server at `VLLM_API_BASE`. With nothing configured both run against the
//! built-in endpoint.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

fn small_model_server() -> Script {
    Script::new()
        .ttft(Duration::from_millis(100))
        .inter_token(Duration::from_millis(10))
}

/// Fireworks AI's OpenAI-compatible chat.
#[llmperf::bench(group = "openai_presets", requests = 8, concurrency = 2)]
fn fireworks_chat() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("fireworks"))
        .workload(Workload::token_lengths(300, 50, 100, 20).max_tokens(128))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(small_model_server())
}

/// A self-hosted vLLM server.
#[llmperf::bench(group = "openai_presets", requests = 8, concurrency = 2)]
fn vllm_chat() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("vllm"))
        .workload(
            Workload::token_lengths(300, 50, 100, 20)
                .max_tokens(128)
                .ignore_eos(true),
        )
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(small_model_server())
}

llmperf::main!();
