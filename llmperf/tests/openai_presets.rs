//! The named OpenAI-compatible presets (`openai`, `fireworks`, `together`,
//! `tgi-messages`, …) against the built-in endpoint over real HTTP, and
//! when their public default base URL applies.

use std::time::Duration;

use llmperf::endpoint::configured_endpoint;
use llmperf::endpoint::presets;
use llmperf::run::run_benchmark;
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{assert_interval, assert_latency, quiet};

#[test]
fn every_preset_streams_from_the_builtin_endpoint_with_scripted_timing() {
    for preset in presets::all() {
        let bench = Benchmark::new()
            .endpoint(Endpoint::kind(preset.name).builtin())
            .workload(Workload::token_lengths(40, 0, 20, 0))
            .load(Load::closed(2).requests(8))
            .builtin_script(
                Script::new()
                    .ttft(Duration::from_millis(50))
                    .inter_token(Duration::from_millis(5)),
            );
        let outcome = run_benchmark(preset.name, &bench, &quiet()).unwrap();
        let summary = &outcome.summary.summary;
        assert_eq!(
            summary.requests.completed, 8,
            "{}: {:?}",
            preset.name, summary.requests
        );
        let ttft = summary.ttft_ms.expect("ttft");
        assert_latency(&format!("{}: ttft p50", preset.name), ttft.p50, 50.0);
        let itl = summary.inter_token_latency_ms.expect("itl");
        assert_interval(&format!("{}: itl p50", preset.name), itl.p50, 5.0);
        for record in &outcome.records {
            assert_eq!(record.output_tokens_server, Some(20), "{}", preset.name);
            assert_eq!(record.output_tokens_client, 20, "{}", preset.name);
        }
    }
}

#[test]
fn a_presets_public_url_is_used_only_when_a_key_is_configured() {
    // A prefix nobody sets, so the developer's own environment cannot interfere.
    let unset = "LLMPERF_TEST_PRESET_UNSET";
    let fireworks = Endpoint::kind("fireworks").env_prefix(unset);
    assert_eq!(configured_endpoint(&fireworks).unwrap(), None);
    assert_eq!(
        configured_endpoint(&fireworks.clone().api_key("fw-key")).unwrap(),
        Some("https://api.fireworks.ai/inference/v1".to_string())
    );
    assert_eq!(
        configured_endpoint(&fireworks.api_key("fw-key").base_url("http://proxy:1/v1")).unwrap(),
        Some("http://proxy:1/v1".to_string()),
        "an explicit base URL wins over the preset's"
    );
    // Self-hosted servers have no public URL: a key alone configures nothing.
    let vllm = Endpoint::kind("vllm").env_prefix(unset).api_key("k");
    assert_eq!(configured_endpoint(&vllm).unwrap(), None);
    assert_eq!(
        configured_endpoint(&Endpoint::kind("perplexity").env_prefix(unset).api_key("k")).unwrap(),
        Some("https://api.perplexity.ai".to_string())
    );
}
