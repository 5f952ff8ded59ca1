//! Example benchmark for Azure OpenAI.
//!
//! With `AZURE_OPENAI_API_BASE` (the resource endpoint), `AZURE_OPENAI_API_KEY`
//! and `LLMPERF_MODEL` (the deployment, unless `AZURE_OPENAI_DEPLOYMENT` names
//! another) it measures that deployment; with nothing configured it runs
//! against the built-in endpoint.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// Chat completions on an Azure OpenAI deployment.
#[llmperf::bench(group = "azure_openai", requests = 8, concurrency = 2)]
fn deployment_chat() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::kind("azure-openai"))
        .workload(Workload::token_lengths(300, 50, 100, 20).max_tokens(128))
        .load(Load::closed(2).timeout(Duration::from_secs(60)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10)),
        )
}

llmperf::main!();
