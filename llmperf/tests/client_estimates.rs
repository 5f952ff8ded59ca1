//! Servers that send no usage: counts are client estimates and say so, a
//! stream of one token per event is counted by its events (its ITL does not
//! depend on how the client tokenizer splits the text), and no request is
//! claimed to exceed its max_tokens from re-tokenised text.

use std::time::Duration;

use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{assert_interval, run};

fn script() -> Script {
    Script::new()
        .ttft(Duration::from_millis(20))
        .inter_token(Duration::from_millis(5))
        .omit_usage(true)
}

#[test]
fn one_token_per_event_in_another_vocabulary_is_counted_by_events() {
    // Every word is one token for the server and several for cl100k_base.
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(40, 0, 24, 0))
        .load(Load::closed(2).requests(6))
        .builtin_script(script().long_words(true));
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 6);
    for record in &outcome.records {
        assert_eq!(record.output_tokens_server, None);
        assert!(record.single_token_events && record.counted_by_events());
        let events = record.content_events_us.len() as u32;
        assert_eq!(record.output_tokens(), events);
        assert_eq!(
            record.max_tokens,
            Some(events),
            "the server honoured max_tokens"
        );
        assert!(
            record.output_tokens_client > 2 * events,
            "the re-tokenised text over-counts: {} for {events} events",
            record.output_tokens_client
        );
        let itl = llmperf::metrics::inter_token_latencies_ms(record);
        assert_eq!(itl.len() as u32, events - 1, "one sample per gap");
    }
    let itl = summary.inter_token_latency_ms.expect("itl");
    assert_interval("itl p50", itl.p50, 5.0);
    let counts = &summary.token_counts;
    assert_eq!(
        (counts.client_estimated_requests, counts.counted_by_events),
        (6, 6)
    );
    let limits = &summary.output_limits;
    assert_eq!(
        (limits.exceeded, limits.ended_early, limits.unknown),
        (0, 0, 0),
        "{limits:?}"
    );
}

#[test]
fn events_of_several_tokens_without_usage_are_re_tokenised_and_never_over_the_limit() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(40, 0, 24, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(script().tokens_per_event(4));
    let outcome = run(&bench);
    for record in &outcome.records {
        assert!(!record.single_token_events, "events of four words each");
        assert_eq!(record.output_tokens(), record.output_tokens_client);
    }
    let summary = &outcome.summary.summary;
    assert_eq!(summary.token_counts.client_estimated_requests, 4);
    assert_eq!(summary.token_counts.counted_by_events, 0);
    assert_eq!(summary.output_limits.exceeded, 0);
}
