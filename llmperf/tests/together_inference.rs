//! `together-inference` (Together's legacy `/inference` with
//! `stream_tokens`) against the built-in endpoint over real HTTP.

mod fault_matrix;

use llmperf::Endpoint;

fn together() -> Endpoint {
    Endpoint::kind("together-inference").builtin()
}

#[test]
fn scripted_timing_and_exact_token_counts_from_the_last_chunk() {
    let outcome = fault_matrix::assert_scripted_timing(together());
    for record in &outcome.records {
        assert_eq!(record.finish_reason.as_deref(), Some("length"));
        assert_eq!(record.input_tokens_server, Some(record.input_tokens_client));
    }
}

#[test]
fn answers_validate_and_cross_overs_are_caught() {
    fault_matrix::assert_validation(together());
}

#[test]
fn every_fault_is_reported_under_its_kind() {
    fault_matrix::assert_faults(together(), true);
}

#[test]
fn a_wrong_key_is_unauthorized() {
    fault_matrix::assert_right_key(together(), "together-right");
    fault_matrix::assert_wrong_key(together(), "together-right", "together-wrong-42");
}
