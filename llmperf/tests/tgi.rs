//! `tgi` (Hugging Face TGI's `/generate_stream`) against the built-in
//! endpoint over real HTTP.

mod fault_matrix;

use llmperf::{Benchmark, Endpoint, Load, Workload};

fn tgi() -> Endpoint {
    Endpoint::kind("tgi").builtin()
}

#[test]
fn scripted_timing_and_exact_token_counts_from_details() {
    let outcome = fault_matrix::assert_scripted_timing(tgi());
    for record in &outcome.records {
        assert_eq!(record.finish_reason.as_deref(), Some("length"));
        assert_eq!(record.input_tokens_server, Some(record.input_tokens_client));
    }
}

#[test]
fn answers_validate_and_the_eos_token_is_counted_by_the_server_only() {
    fault_matrix::assert_validation(tgi());
    let bench = Benchmark::new()
        .endpoint(tgi())
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(3))
        .validate(true)
        .builtin_script(fault_matrix::fast_script());
    let outcome = fault_matrix::run(&bench);
    for record in &outcome.records {
        assert_eq!(record.finish_reason.as_deref(), Some("eos_token"));
        // The special `</s>` is not text, but TGI's generated_tokens has it.
        assert_eq!(
            record.output_tokens_server,
            Some(record.output_tokens_client + 1)
        );
        assert!(!record.text_excerpt.contains("</s>"));
    }
}

#[test]
fn keep_alive_comments_and_crlf_line_ends_are_harmless() {
    let bench = Benchmark::new()
        .endpoint(tgi())
        .workload(Workload::token_lengths(50, 0, 12, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(fault_matrix::fast_script().keep_alive(true).crlf(true))
        // Exact twelve-token answers: no validation line, whose room could raise them.
        .validate(false);
    let outcome = fault_matrix::run(&bench);
    assert_eq!(outcome.summary.summary.requests.completed, 4);
    assert!(outcome
        .records
        .iter()
        .all(|r| r.output_tokens_server == Some(12)));
}

#[test]
fn every_fault_is_reported_under_its_kind() {
    fault_matrix::assert_faults(tgi(), true);
}

#[test]
fn a_wrong_token_is_unauthorized() {
    fault_matrix::assert_right_key(tgi(), "hf_right_token");
    fault_matrix::assert_wrong_key(tgi(), "hf_right_token", "hf_wrong_token_42");
}
