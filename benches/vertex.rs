//! Example Vertex AI benchmarks, one per endpoint kind.
//!
//! Configured through the environment (or a `.env` file): `VERTEXAI_PROJECT`,
//! `VERTEXAI_REGION` (default `us-central1`), a token in
//! `VERTEXAI_ACCESS_TOKEN` / `GCLOUD_ACCESS_TOKEN` or
//! `VERTEXAI_TOKEN_COMMAND="gcloud auth print-access-token"`,
//! `VERTEXAI_ENDPOINT_ID` for `vertex-raw`, and `LLMPERF_MODEL`. With no
//! token configured they run against the built-in endpoint, which serves
//! the same paths and formats, scripted like a Gemini Flash model (short
//! TTFT, a few tokens per event, some thinking).
//!
//! `cargo bench --bench vertex` runs them all; `cargo bench --bench vertex -- vertex/gemini` filters.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// How the built-in endpoint behaves for these examples.
fn flash_like() -> Script {
    Script::new()
        .ttft(Duration::from_millis(150))
        .ttft_per_prompt_token(Duration::from_micros(10))
        .inter_token(Duration::from_millis(4))
        .tokens_per_event(4)
        .jitter(Duration::from_millis(1))
}

fn workload() -> Workload {
    Workload::token_lengths(550, 150, 150, 80).max_tokens(256)
}

fn load() -> Load {
    Load::closed(2).timeout(Duration::from_secs(60))
}

/// Gemini `streamGenerateContent?alt=sse`, with thought parts.
#[llmperf::bench(group = "vertex", requests = 8, concurrency = 2)]
fn gemini_sse() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("vertex-gemini"))
        .workload(workload())
        .load(load())
        .builtin_script(flash_like().reasoning_tokens(32))
}

/// Gemini `streamGenerateContent` as one streamed JSON array.
#[llmperf::bench(group = "vertex", requests = 8, concurrency = 2)]
fn gemini_json_array() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("vertex-gemini-json"))
        .workload(workload())
        .load(load())
        .builtin_script(flash_like())
}

/// A Model Garden vLLM endpoint through `:streamRawPredict`.
#[llmperf::bench(group = "vertex", requests = 8, concurrency = 2)]
fn raw_predict() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("vertex-raw"))
        .workload(workload().ignore_eos(true))
        .load(load())
        .builtin_script(flash_like().tokens_per_event(1))
}

/// Vertex AI's OpenAI-compatible chat completions, answers validated.
#[llmperf::bench(group = "vertex", requests = 8, concurrency = 2)]
fn openai_compatible() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("vertex-openai"))
        .workload(Workload::validation_only())
        .load(load())
        .validate(true)
        .builtin_script(flash_like())
}

llmperf::main!();
