//! `anthropic` (the Messages API's named SSE events) against the built-in
//! endpoint over real HTTP.

mod fault_matrix;

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

fn anthropic() -> Endpoint {
    Endpoint::kind("anthropic").builtin()
}

#[test]
fn scripted_timing_and_exact_token_counts_from_message_delta() {
    let outcome = fault_matrix::assert_scripted_timing(anthropic());
    for record in &outcome.records {
        assert_eq!(record.finish_reason.as_deref(), Some("max_tokens"));
        assert_eq!(record.input_tokens_server, Some(record.input_tokens_client));
    }
}

#[test]
fn thinking_deltas_are_reasoning_and_do_not_end_ttft() {
    let bench = Benchmark::new()
        .endpoint(anthropic())
        .workload(Workload::token_lengths(50, 0, 20, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(30))
                .inter_token(Duration::from_millis(5))
                .reasoning_tokens(10)
                .keep_alive(true),
        )
        // Exact planned lengths: no validation line (its room could raise max_tokens).
        .validate(false);
    let outcome = fault_matrix::run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 2, "{:?}", summary.requests);
    let reasoning = summary.time_to_first_reasoning_ms.expect("reasoning");
    let ttft = summary.ttft_ms.expect("ttft");
    fault_matrix::assert_latency("first reasoning p50", reasoning.p50, 30.0);
    fault_matrix::assert_latency("ttft p50", ttft.p50, 80.0);
    for record in &outcome.records {
        // Anthropic's output_tokens include the thinking tokens, and so
        // does max_tokens (20): 10 thinking, 10 text.
        assert_eq!(record.output_tokens_server, Some(20));
        assert_eq!(record.reasoning_tokens_client, 10);
        assert!(!record.token_count_mismatch);
    }
}

#[test]
fn answers_validate_and_cross_overs_are_caught() {
    fault_matrix::assert_validation(anthropic());
}

#[test]
fn every_fault_is_reported_under_its_kind() {
    fault_matrix::assert_faults(anthropic(), true);
}

#[test]
fn the_key_goes_in_x_api_key_and_a_wrong_one_is_unauthorized() {
    fault_matrix::assert_right_key(anthropic(), "sk-ant-right");
    let outcome = fault_matrix::assert_wrong_key(anthropic(), "sk-ant-right", "sk-ant-wrong-42");
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("authentication_error"), "{message}");
}
