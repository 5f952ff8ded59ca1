//! End-to-end runs against the built-in endpoint over real loopback HTTP:
//! scripted timing measured back, exact token counts, every injected fault
//! counted by its kind, cross-overs detected.

use std::time::Duration;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{assert_interval, assert_latency, errors, fast_script, quiet, run};

#[test]
fn scripted_ttft_and_inter_token_latency_are_measured_within_a_few_ms() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(200, 0, 40, 0))
        .load(Load::closed(4).requests(16))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10)),
        );
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 16, "{:?}", summary.requests);
    let ttft = summary.ttft_ms.expect("ttft");
    assert_latency("ttft p50", ttft.p50, 100.0);
    let itl = summary.inter_token_latency_ms.expect("itl");
    assert_interval("itl p50", itl.p50, 10.0);
    assert_eq!(itl.count, 16 * 39, "39 gaps per 40-token request");
    let tpot = summary.tpot_ms.expect("tpot");
    assert_interval("tpot p50", tpot.p50, 10.0);
    for record in &outcome.records {
        assert_eq!(record.output_tokens_server, Some(40));
        assert_eq!(record.output_tokens_client, 40);
        assert_eq!(record.input_tokens_server, Some(record.input_tokens_client));
        assert!(!record.token_count_mismatch);
        assert!(record.scheduled_us <= record.sent_us);
    }
    assert_eq!(summary.token_counts.mismatched_requests, 0);
    assert!(!summary.overload.overloaded);
}

#[test]
fn events_carrying_several_tokens_give_per_token_and_per_event_latencies() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_completions().builtin())
        .workload(Workload::token_lengths(50, 0, 24, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(20))
                .inter_token(Duration::from_millis(5))
                .tokens_per_event(4),
        );
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 4);
    let per_event = summary.inter_event_latency_ms.expect("event gaps");
    assert_interval("event gap p50", per_event.p50, 20.0);
    let per_token = summary.inter_token_latency_ms.expect("itl");
    assert_interval("itl p50", per_token.p50, 5.0);
    assert!(outcome.records.iter().all(|r| r.output_tokens() == 24));
}

#[test]
fn reasoning_tokens_do_not_end_ttft() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(50, 0, 20, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(30))
                .inter_token(Duration::from_millis(5))
                .reasoning_tokens(10),
        );
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    let reasoning = summary.time_to_first_reasoning_ms.expect("reasoning");
    let ttft = summary.ttft_ms.expect("ttft");
    assert_latency("first reasoning p50", reasoning.p50, 30.0);
    assert_latency("ttft p50", ttft.p50, 80.0);
    for record in &outcome.records {
        assert_eq!(record.reasoning_tokens_server, Some(10));
        assert_eq!(record.reasoning_tokens_client, 10);
    }
}

#[test]
fn injected_faults_are_each_counted_under_their_own_kind() {
    // Faults fire on the server's n-th request, whatever the concurrency:
    // of 30 requests, 500 hits 5,10,…,30 (6); disconnect 7,14,21,28 (4);
    // a malformed event 9,18,27 (3); a stream error 11,22 (2); no [DONE] 13,26 (2);
    // 429 on 17 (1).
    let script = fast_script()
        .fault(Fault::Status(500), FaultSchedule::Every(5))
        .fault(Fault::Disconnect, FaultSchedule::Every(7))
        .fault(Fault::MalformedEvent, FaultSchedule::Every(9))
        .fault(Fault::StreamError, FaultSchedule::Every(11))
        .fault(Fault::MissingDone, FaultSchedule::Every(13))
        .fault(Fault::Status(429), FaultSchedule::Every(17));
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(Load::closed(3).requests(30))
        .builtin_script(script);
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "server_error"), 6);
    assert_eq!(errors(&outcome, "disconnect"), 4);
    assert_eq!(errors(&outcome, "malformed_event"), 3);
    assert_eq!(errors(&outcome, "stream_error"), 2);
    assert_eq!(errors(&outcome, "missing_done"), 2);
    assert_eq!(errors(&outcome, "rate_limited"), 1);
    let requests = &outcome.summary.summary.requests;
    assert_eq!(requests.failed, 18);
    assert_eq!(requests.completed, 12);
    assert_eq!(requests.errors_by_status.get("500"), Some(&6));
    assert_eq!(requests.errors_by_status.get("429"), Some(&1));
    assert_eq!(
        outcome.builtin_stats.as_ref().map(|s| s.faults_injected),
        Some(18)
    );
    assert!((requests.error_rate - 0.6).abs() < 1e-12);
}

#[test]
fn stalls_and_timeouts_are_errors_of_their_own_kind() {
    let stalling = fast_script().fault(Fault::Stall, FaultSchedule::Every(2));
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(
            Load::closed(2)
                .requests(4)
                .stall_timeout(Duration::from_millis(300)),
        )
        .builtin_script(stalling.clone())
        // Ten-token answers cut at half: no validation line, whose room would lengthen them.
        .validate(false);
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "stall"), 2);
    assert_eq!(outcome.summary.summary.requests.completed, 2);

    let bench = bench.load(
        Load::closed(2)
            .requests(4)
            .timeout(Duration::from_millis(400)),
    );
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "timeout"), 2);
    for record in outcome.records.iter().filter(|r| !r.ok) {
        // Tokens that arrived before the stall are kept.
        assert_eq!(record.content_events_us.len(), 5);
    }
}

#[test]
fn a_cross_over_is_detected_and_names_the_other_request() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::validation_only())
        .load(Load::closed(1).requests(12))
        .validate(true)
        .builtin_script(fast_script().fault(Fault::CrossOver, FaultSchedule::Every(4)));
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(validation.validated, 12);
    assert_eq!(validation.cross_overs, 3);
    assert_eq!(validation.passed, 9);
    assert_eq!(validation.mismatches, 0);
    for issue in &validation.cross_over_requests {
        // One request in flight: the crossed answer is the previous request's.
        assert_eq!(issue.other_request_id, Some(issue.request_id - 1));
        let other = &outcome.records[(issue.request_id - 1) as usize];
        assert_eq!(issue.found, other.validation.as_ref().map(|v| v.expected));
    }
}

#[test]
fn validation_runs_alongside_a_performance_workload() {
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(300, 50, 30, 0).ignore_eos(true))
        .load(Load::closed(4).requests(12))
        .validate(true)
        .builtin_script(fast_script());
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!((validation.passed, validation.cross_overs), (12, 0));
    // ignore_eos: the answer is followed by filler up to max_tokens.
    assert!(outcome.records.iter().all(|r| r.output_tokens() == 30));
}

#[test]
fn a_wrong_key_is_one_clear_error_that_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::openai_chat()
                .builtin()
                .api_key("sk-wrong-key-12345"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script().require_api_key("sk-right-key"));
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
        assert!(!text.contains("sk-wrong-key-12345"), "{file} leaks the key");
    }
    assert!(!format!("{outcome:?}").contains("sk-wrong-key-12345"));
}

#[test]
fn connection_refused_is_a_recorded_error_not_a_crash() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::openai_chat()
                .base_url(format!("http://127.0.0.1:{port}/v1"))
                .model("nothing-listens"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(2).requests(3));
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "connect"), 3);
    assert_eq!(outcome.summary.summary.ttft_ms, None);
}

#[test]
fn results_are_written_as_requests_finish_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::lines(2, 6, 3).max_tokens(20))
        .load(Load::closed(2).requests(6))
        .validate(true)
        .builtin_script(fast_script());
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        ..quiet()
    };
    let outcome = run_benchmark("files", &bench, &options).unwrap();
    let summary = llmperf::results::read_summary(&dir.path().join("summary.json")).unwrap();
    assert_eq!(summary, outcome.summary);
    assert_eq!(summary.schema_version, llmperf::results::SCHEMA_VERSION);
    assert!(summary.config.builtin_endpoint);
    let mut records = llmperf::results::read_records(&dir.path().join("requests.jsonl")).unwrap();
    records.sort_by_key(|r| r.id);
    assert_eq!(records, outcome.records);
    // Metrics recomputed from the stored records equal the live ones.
    assert_eq!(llmperf::metrics::Summary::of(&records), summary.summary);
}

#[test]
fn a_run_that_keeps_no_records_has_the_figures_its_stored_records_give() {
    let dir = tempfile::tempdir().unwrap();
    let bench = Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::lines(2, 6, 3).max_tokens(20))
        .load(Load::closed(3).requests(12).warmup_requests(2))
        .validate(true)
        .builtin_script(fast_script().fault(Fault::Status(503), FaultSchedule::Every(4)));
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        drop_records: true,
        ..quiet()
    };
    let outcome = run_benchmark("flat", &bench, &options).unwrap();
    assert!(outcome.records.is_empty(), "no record is kept");
    assert!(outcome.any_ok);
    let failure = outcome
        .first_failure
        .as_ref()
        .expect("every fourth request fails");
    assert_eq!(failure.http_status, Some(503));
    // Built as requests ended, in the order they ended, the summary is
    // what the records on disk give.
    let records = llmperf::results::read_records(&dir.path().join("requests.jsonl")).unwrap();
    assert_eq!(records.len(), 14);
    let level = &outcome.summary.levels[0];
    assert_eq!(llmperf::metrics::Summary::of(&records), level.summary);
    let measured: Vec<&llmperf::record::RequestRecord> = records
        .iter()
        .filter(|r| r.phase == llmperf::load::Phase::Measured)
        .collect();
    let slos = bench.slos();
    assert_eq!(
        llmperf::metrics::SloReport::of(&measured, &slos, level.summary.throughput.window_s),
        level.slo
    );
    assert!(level.summary.requests.failed > 0);
}

#[test]
fn impossible_specs_fail_before_any_request() {
    let bench = Benchmark::new().concurrency(0);
    let error = run_benchmark("bad", &bench, &quiet()).unwrap_err();
    assert!(error.to_string().contains("--concurrency"), "{error}");
}
