//! Example benchmark for Hugging Face TGI's `/generate_stream`.
//!
//! With `TGI_API_BASE` (the server's root, e.g. `http://gpu-box:8080`) and,
//! for Inference Endpoints, `TGI_API_KEY` (a Hugging Face token) it measures
//! that server; with nothing configured it runs against the built-in
//! endpoint.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// Token streaming from `/generate_stream`, counts from `details`.
#[llmperf::bench(group = "tgi", requests = 8, concurrency = 2)]
fn generate_stream() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("tgi"))
        .workload(Workload::token_lengths(300, 50, 100, 20).max_tokens(128))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10)),
        )
}

llmperf::main!();
