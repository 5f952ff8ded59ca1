//! Shared checks for an endpoint kind served by the built-in endpoint:
//! scripted timing measured back, exact server token counts, validation,
//! and every injected fault reported under its own error kind.
//!
//! Included by the protocol test files with `mod fault_matrix;`.

#![allow(dead_code)]

use std::time::Duration;

use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

/// Options for a test run: no progress bar, no files.
pub fn quiet() -> RunOptions {
    RunOptions {
        mode: llmperf::results::RunMode::Test,
        ..RunOptions::default()
    }
}

/// Runs `bench`, which must not fail as a whole.
pub fn run(bench: &Benchmark) -> RunOutcome {
    run_benchmark("test", bench, &quiet()).expect("the run itself must succeed")
}

/// Runs `bench`, which must not fail as a whole, writing its results to
/// `dir` (for tests that search them).
pub fn run_into(dir: &std::path::Path, bench: &Benchmark) -> RunOutcome {
    let options = RunOptions {
        results_dir: Some(dir.to_path_buf()),
        ..quiet()
    };
    run_benchmark("test", bench, &options).expect("the run itself must succeed")
}

/// A script fast enough for fault tests.
pub fn fast_script() -> Script {
    Script::new()
        .ttft(Duration::from_millis(5))
        .inter_token(Duration::from_millis(1))
}

/// Failed requests of `kind` in a run.
pub fn errors(outcome: &RunOutcome, kind: &str) -> u64 {
    outcome
        .summary
        .summary
        .requests
        .errors_by_kind
        .get(kind)
        .copied()
        .unwrap_or(0)
}

/// TTFT 100 ms and 10 ms per token come back within a few ms, and every
/// request's token counts are the server's (`output_tokens` each).
pub fn assert_scripted_timing(endpoint: Endpoint) -> RunOutcome {
    let bench = Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::token_lengths(200, 0, 40, 0))
        .load(Load::closed(4).requests(12))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10)),
        );
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 12, "{:?}", summary.requests);
    let ttft = summary.ttft_ms.expect("ttft");
    assert_latency("ttft p50", ttft.p50, 100.0);
    let itl = summary.inter_token_latency_ms.expect("itl");
    assert_interval("itl p50", itl.p50, 10.0);
    assert_eq!(itl.count, 12 * 39, "39 gaps per 40-token request");
    for record in &outcome.records {
        assert_eq!(record.output_tokens_server, Some(40));
        assert_eq!(record.output_tokens_client, 40);
        assert!(!record.token_count_mismatch);
    }
    outcome
}

/// Every answer validated, none crossed over; then a scripted cross-over
/// is caught.
pub fn assert_validation(endpoint: Endpoint) {
    let bench = Benchmark::new()
        .endpoint(endpoint.clone())
        .workload(Workload::validation_only())
        .load(Load::closed(2).requests(8))
        .validate(true)
        .builtin_script(fast_script());
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(
        (validation.validated, validation.passed),
        (8, 8),
        "{validation:?}"
    );

    let bench = Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(8))
        .validate(true)
        .builtin_script(fast_script().fault(Fault::CrossOver, FaultSchedule::Every(4)));
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(validation.cross_overs, 2, "{validation:?}");
    assert_eq!(validation.passed, 6);
}

/// Of 30 requests, 500 hits 5,10,…,30 (6); disconnect 7,14,21,28 (4); a
/// malformed event 9,18,27 (3); a stream error 11,22 (2); a missing end
/// 13,26 (2, when the protocol has an end marker); 429 on 17 (1).
pub fn assert_faults(endpoint: Endpoint, has_end_marker: bool) {
    let mut script = fast_script()
        .fault(Fault::Status(500), FaultSchedule::Every(5))
        .fault(Fault::Disconnect, FaultSchedule::Every(7))
        .fault(Fault::MalformedEvent, FaultSchedule::Every(9))
        .fault(Fault::StreamError, FaultSchedule::Every(11));
    if has_end_marker {
        script = script.fault(Fault::MissingDone, FaultSchedule::Every(13));
    }
    script = script.fault(Fault::Status(429), FaultSchedule::Every(17));
    let bench = Benchmark::new()
        .endpoint(endpoint.clone())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(Load::closed(3).requests(30))
        .builtin_script(script);
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "server_error"), 6);
    assert_eq!(errors(&outcome, "disconnect"), 4);
    assert_eq!(errors(&outcome, "malformed_event"), 3);
    assert_eq!(errors(&outcome, "stream_error"), 2);
    let missing = if has_end_marker { 2 } else { 0 };
    assert_eq!(errors(&outcome, "missing_done"), missing);
    assert_eq!(errors(&outcome, "rate_limited"), 1);
    let requests = &outcome.summary.summary.requests;
    assert_eq!(requests.failed, 16 + missing, "{requests:?}");

    let stalling = fast_script().fault(Fault::Stall, FaultSchedule::Every(2));
    let bench = Benchmark::new()
        .endpoint(endpoint)
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(
            Load::closed(2)
                .requests(4)
                .stall_timeout(Duration::from_millis(300)),
        )
        .builtin_script(stalling);
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "stall"), 2);
    assert_eq!(outcome.summary.summary.requests.completed, 2);
}

/// A wrong key is one `unauthorized` error per request naming where the
/// key came from, and the key shows nowhere.
pub fn assert_wrong_key(endpoint: Endpoint, right: &str, wrong: &str) -> RunOutcome {
    let dir = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(endpoint.api_key(wrong))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script().require_api_key(right));
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        ..quiet()
    };
    let outcome = run_benchmark("auth", &bench, &options).unwrap();
    assert_eq!(errors(&outcome, "unauthorized"), 2);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("API key given in the spec"), "{message}");
    for file in ["summary.json", "requests.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!text.contains(wrong), "{file} leaks the key");
    }
    assert!(!format!("{outcome:?}").contains(wrong));
    outcome
}

/// The right key is accepted (so the kind sends it where the protocol wants it).
pub fn assert_right_key(endpoint: Endpoint, key: &str) {
    let bench = Benchmark::new()
        .endpoint(endpoint.api_key(key))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script().require_api_key(key));
    let outcome = run(&bench);
    assert_eq!(outcome.summary.summary.requests.completed, 2);
}

/// How much later than scripted a latency may come back in a test. The
/// scripted figure is a floor (the built-in endpoint never sends early and
/// the client stamps the send before the bytes leave); the ceiling is loose
/// because CI machines are busy. Timing accuracy itself is measured by
/// `cargo bench -p llmperf --bench timing_accuracy`, not asserted here.
pub const LATE_MS: f64 = 25.0;

/// A latency (TTFT, time to first reasoning) measured against its script:
/// never earlier than scripted, at most [`LATE_MS`] later.
pub fn assert_latency(what: &str, measured_ms: f64, scripted_ms: f64) {
    let ceiling = scripted_ms + LATE_MS;
    assert!(
        measured_ms >= scripted_ms - 0.5 && measured_ms <= ceiling,
        "{what}: {measured_ms:.3} ms against a {scripted_ms} ms script (allowed {scripted_ms}..{ceiling} ms)"
    );
}

/// A median interval (ITL, TPOT, event gap) against its script: within
/// −20% / +25%, loose enough for a busy machine and tight enough to tell a
/// per-token interval from a per-event one.
pub fn assert_interval(what: &str, measured_ms: f64, scripted_ms: f64) {
    let (floor, ceiling) = (scripted_ms * 0.8, scripted_ms * 1.25 + 0.5);
    assert!(
        (floor..=ceiling).contains(&measured_ms),
        "{what}: {measured_ms:.3} ms against a {scripted_ms} ms script (allowed {floor}..{ceiling} ms)"
    );
}
