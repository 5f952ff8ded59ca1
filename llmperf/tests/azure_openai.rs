//! `azure-openai` against the built-in endpoint over real HTTP: the
//! deployment path, the `api-version` query, the `api-key` header.

mod fault_matrix;

use llmperf::Endpoint;

fn azure() -> Endpoint {
    Endpoint::kind("azure-openai").builtin()
}

#[test]
fn scripted_timing_and_exact_token_counts() {
    fault_matrix::assert_scripted_timing(azure());
    fault_matrix::assert_scripted_timing(azure().option("deployment", "my-gpt-4o"));
}

#[test]
fn answers_validate_and_cross_overs_are_caught() {
    fault_matrix::assert_validation(azure());
}

#[test]
fn every_fault_is_reported_under_its_kind() {
    fault_matrix::assert_faults(azure(), true);
}

#[test]
fn the_key_goes_in_the_api_key_header_and_a_wrong_one_is_unauthorized() {
    fault_matrix::assert_right_key(azure(), "azure-right-key");
    let outcome = fault_matrix::assert_wrong_key(azure(), "azure-right-key", "azure-wrong-key-42");
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("Access denied"), "{message}");
}
