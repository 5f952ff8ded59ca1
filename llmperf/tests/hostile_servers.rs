//! Hostile and broken servers (the built-in endpoint's hostile faults):
//! every stream ends within bounded memory and time, with a named error,
//! and every record is written. Peak memory and time are measured by
//! `cargo bench -p llmperf --bench hostile_servers`, not asserted here.

use std::time::{Duration, Instant};

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::quiet;

fn bench(fault: Fault) -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(20, 0, 4, 0))
        .load(Load::closed(1).requests(2).timeout(Duration::from_secs(30)))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(5))
                .fault(fault, FaultSchedule::Every(2)),
        )
}

/// Classic prompts with no `max_tokens`: an answer's absolute bounds apply.
fn unlimited() -> Workload {
    let mut workload = Workload::lines(2, 4, 1);
    workload.max_tokens = None;
    workload
}

/// Runs `bench` writing results, and returns the outcome and the records read back.
fn run_written(bench: &Benchmark) -> (llmperf::run::RunOutcome, usize) {
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        ..quiet()
    };
    let outcome = run_benchmark("hostile", bench, &options).expect("the run ends");
    let written = std::fs::read_to_string(dir.path().join("requests.jsonl"))
        .unwrap()
        .lines()
        .count();
    (outcome, written)
}

#[test]
fn a_line_that_never_ends_is_an_event_too_large_long_before_the_timeout() {
    let started = Instant::now();
    let (outcome, written) = run_written(&bench(Fault::EndlessLine));
    assert_eq!(written, 2, "every record is written");
    assert!(outcome.records[0].ok, "the first request is normal");
    let error = outcome.records[1].error.clone().expect("an error");
    assert_eq!(error.kind.as_str(), "event_too_large", "{}", error.message);
    assert!(
        error.message.contains("--max-event-size"),
        "{}",
        error.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ended by the bound, not the timeout"
    );
}

#[test]
fn one_giant_event_is_refused_and_a_raised_limit_lets_it_through() {
    let huge = Fault::HugeEvent { bytes: 3 << 20 };
    let (outcome, written) = run_written(&bench(huge));
    assert_eq!(written, 2);
    assert_eq!(
        outcome.records[1].error.as_ref().map(|e| e.kind.as_str()),
        Some("event_too_large")
    );
    // The same event under a 4 MiB limit, to a request with no max_tokens,
    // is an answer like any other, and counting its one 3 MiB "word" takes
    // no time to speak of.
    let raised = bench(huge).workload(unlimited());
    let load = raised.load_spec().clone().max_event_size(4 << 20);
    let (outcome, _) = run_written(&raised.load(load).validate(false));
    let record = &outcome.records[1];
    assert!(record.ok, "{:?}", record.error);
    assert_eq!(record.content_events_us.len(), 1);
    assert!(record.text_excerpt.starts_with("aaaa"));
}

#[test]
fn a_flood_of_events_is_kept_compactly_and_counted_exactly() {
    // No max_tokens: the absolute bounds.
    let flood = Fault::EventFlood { events: 200_000 };
    let (outcome, written) = run_written(&bench(flood).workload(unlimited()).validate(false));
    assert_eq!(written, 2);
    let record = &outcome.records[1];
    assert_eq!(record.max_tokens, None);
    assert!(record.ok, "{:?}", record.error);
    assert_eq!(record.content_events_us.len(), 200_000);
    assert_eq!(record.output_tokens(), 200_000);
    assert!(record.content_events_us.windows(2).all(|w| w[0] <= w[1]));
    // Asked for 4 tokens, a server sending 200,000 events is stopped at
    // 8 events a token (and 4,096 more).
    let (outcome, _) = run_written(&bench(flood).validate(false));
    let record = &outcome.records[1];
    assert_eq!(record.max_tokens, Some(4));
    let error = record.error.as_ref().expect("stopped");
    assert_eq!(
        error.kind.as_str(),
        "response_too_large",
        "{}",
        error.message
    );
    assert_eq!(record.content_events_us.len(), 4 * 8 + 4096);
}
