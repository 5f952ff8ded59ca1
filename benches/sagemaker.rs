//! Example Amazon SageMaker benchmark.
//!
//! With `SAGEMAKER_API_BASE` (e.g. `https://runtime.sagemaker.us-east-1.amazonaws.com`),
//! `SAGEMAKER_ENDPOINT_NAME` and the standard `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` / `AWS_REGION` set in the
//! environment or a `.env` file it measures that endpoint; with nothing
//! configured it runs against the built-in endpoint, which verifies the
//! SigV4 signature (made with its published test key pair) and streams TGI
//! output in event-stream frames cut at arbitrary places.
//!
//! `cargo bench --bench sagemaker` runs it.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// A TGI container behind SageMaker: 550±150 tokens in, 150±80 out.
#[llmperf::bench(group = "sagemaker", requests = 8, concurrency = 2)]
fn tgi_token_lengths() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("sagemaker"))
        .workload(Workload::token_lengths(550, 150, 150, 80).max_tokens(256))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .ttft_per_prompt_token(Duration::from_micros(20))
                .inter_token(Duration::from_millis(10))
                .jitter(Duration::from_millis(1)),
        )
}

llmperf::main!();
