//! The Vertex AI kinds end to end against the built-in endpoint over real
//! loopback HTTP: scripted timing measured back, exact counts from
//! `usageMetadata` (or OpenAI usage), validation, every fault under its own
//! kind, and bearer tokens from a token command.

use std::time::Duration;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{assert_interval, assert_latency, errors, fast_script, quiet, run};

const KINDS: [&str; 4] = [
    "vertex-gemini",
    "vertex-gemini-json",
    "vertex-raw",
    "vertex-openai",
];
const GEMINI: [&str; 2] = ["vertex-gemini", "vertex-gemini-json"];

fn endpoint(kind: &str) -> Endpoint {
    Endpoint::kind(kind).builtin()
}

#[test]
fn every_kind_measures_the_scripted_timing_and_the_servers_counts() {
    for kind in KINDS {
        let bench = Benchmark::new()
            .endpoint(endpoint(kind))
            .workload(Workload::token_lengths(200, 0, 40, 0))
            .load(Load::closed(4).requests(12))
            .builtin_script(
                Script::new()
                    .ttft(Duration::from_millis(100))
                    .inter_token(Duration::from_millis(10)),
            );
        let outcome = run(&bench);
        let summary = &outcome.summary.summary;
        assert_eq!(
            summary.requests.completed, 12,
            "{kind}: {:?}",
            summary.requests
        );
        let ttft = summary.ttft_ms.expect("ttft");
        assert_latency(&format!("{kind}: ttft p50"), ttft.p50, 100.0);
        let itl = summary.inter_token_latency_ms.expect("itl");
        assert_interval(&format!("{kind}: itl p50"), itl.p50, 10.0);
        assert_eq!(itl.count, 12 * 39, "{kind}: 39 gaps per 40-token request");
        for record in &outcome.records {
            assert_eq!(record.output_tokens_server, Some(40), "{kind}");
            assert_eq!(record.output_tokens_client, 40, "{kind}");
            assert_eq!(
                record.input_tokens_server,
                Some(record.input_tokens_client),
                "{kind}"
            );
            assert!(!record.token_count_mismatch, "{kind}");
        }
        assert_eq!(summary.token_counts.mismatched_requests, 0, "{kind}");
        let finish: Vec<_> = outcome
            .records
            .iter()
            .map(|r| r.finish_reason.as_deref())
            .collect();
        assert!(
            finish.iter().all(|f| *f == Some("length")),
            "{kind}: {finish:?}"
        );
    }
}

#[test]
fn thought_parts_are_reasoning_and_do_not_end_ttft() {
    for kind in GEMINI {
        let bench = Benchmark::new()
            .endpoint(endpoint(kind))
            .workload(Workload::token_lengths(50, 0, 20, 0))
            .load(Load::closed(1).requests(2))
            .builtin_script(
                Script::new()
                    .ttft(Duration::from_millis(30))
                    .inter_token(Duration::from_millis(5))
                    .reasoning_tokens(10)
                    .keep_alive(true),
            );
        let outcome = run(&bench);
        let summary = &outcome.summary.summary;
        assert_eq!(summary.requests.completed, 2, "{kind}");
        let reasoning = summary.time_to_first_reasoning_ms.expect("reasoning");
        let ttft = summary.ttft_ms.expect("ttft");
        assert_latency(&format!("{kind}: first reasoning p50"), reasoning.p50, 30.0);
        assert_latency(&format!("{kind}: ttft p50"), ttft.p50, 80.0);
        for record in &outcome.records {
            assert_eq!(record.reasoning_tokens_server, Some(10), "{kind}");
            assert_eq!(record.reasoning_tokens_client, 10, "{kind}");
            // maxOutputTokens counts the thoughts too: all of it is used.
            assert_eq!(record.output_tokens_server, record.max_tokens, "{kind}");
        }
    }
}

#[test]
fn validation_passes_and_cross_overs_are_caught() {
    for kind in KINDS {
        let bench = Benchmark::new()
            .endpoint(endpoint(kind))
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
        assert_eq!(validation.validated, 8, "{kind}");
        assert_eq!(
            (validation.passed, validation.cross_overs),
            (6, 2),
            "{kind}"
        );
        assert!(outcome
            .records
            .iter()
            .filter(|r| r.ok)
            .all(|r| r.finish_reason.as_deref() == Some("stop")));
    }
}

#[test]
fn injected_faults_are_each_counted_under_their_own_kind() {
    // Of 30 requests: 500 on 5,10,…,30 (6); disconnect 7,14,21,28 (4);
    // malformed 9,18,27 (3); stream error 11,22 (2); missing end 13,26 (2);
    // 429 on 17 (1); 403 on 19 (1).
    for kind in KINDS {
        let script = fast_script()
            .fault(Fault::Status(500), FaultSchedule::Every(5))
            .fault(Fault::Disconnect, FaultSchedule::Every(7))
            .fault(Fault::MalformedEvent, FaultSchedule::Every(9))
            .fault(Fault::StreamError, FaultSchedule::Every(11))
            .fault(Fault::MissingDone, FaultSchedule::Every(13))
            .fault(Fault::Status(429), FaultSchedule::Every(17))
            .fault(Fault::Status(403), FaultSchedule::Every(19));
        let bench = Benchmark::new()
            .endpoint(endpoint(kind))
            .workload(Workload::token_lengths(30, 0, 10, 0))
            .load(Load::closed(3).requests(30))
            .builtin_script(script);
        let outcome = run(&bench);
        assert_eq!(errors(&outcome, "server_error"), 6, "{kind}");
        assert_eq!(errors(&outcome, "disconnect"), 4, "{kind}");
        assert_eq!(errors(&outcome, "malformed_event"), 3, "{kind}");
        assert_eq!(errors(&outcome, "stream_error"), 2, "{kind}");
        assert_eq!(errors(&outcome, "missing_done"), 2, "{kind}");
        assert_eq!(errors(&outcome, "rate_limited"), 1, "{kind}");
        assert_eq!(errors(&outcome, "unauthorized"), 1, "{kind}");
        let requests = &outcome.summary.summary.requests;
        assert_eq!((requests.failed, requests.completed), (19, 11), "{kind}");
        let forbidden = outcome
            .records
            .iter()
            .filter_map(|r| r.error.as_ref())
            .find(|e| e.http_status == Some(403))
            .expect("the 403");
        assert!(
            forbidden.message.contains("VERTEXAI_ACCESS_TOKEN")
                && forbidden.message.contains("GCLOUD_ACCESS_TOKEN"),
            "{kind}: {}",
            forbidden.message
        );
    }
}

#[test]
fn stalls_are_their_own_kind() {
    for kind in GEMINI {
        let bench = Benchmark::new()
            .endpoint(endpoint(kind))
            .workload(Workload::token_lengths(30, 0, 10, 0))
            .load(
                Load::closed(2)
                    .requests(4)
                    .stall_timeout(Duration::from_millis(300)),
            )
            .builtin_script(fast_script().fault(Fault::Stall, FaultSchedule::Every(2)))
            // Ten-token answers cut at half: no validation line, whose room would lengthen them.
            .validate(false);
        let outcome = run(&bench);
        assert_eq!(errors(&outcome, "stall"), 2, "{kind}");
        assert_eq!(outcome.summary.summary.requests.completed, 2, "{kind}");
        for record in outcome.records.iter().filter(|r| !r.ok) {
            assert_eq!(record.content_events_us.len(), 5, "{kind}");
        }
    }
}

/// A token command (no shell involved on llmperf's side) printing `token`.
fn token_command(dir: &std::path::Path, token: &str) -> String {
    let script = dir.join("token.sh");
    std::fs::write(&script, format!("echo {token}\n")).unwrap();
    format!("sh {}", script.display())
}

#[test]
fn tokens_from_a_token_command_are_sent_as_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let command = token_command(dir.path(), "ya29.mock-token-0123");
    for kind in KINDS {
        let bench = Benchmark::new()
            .endpoint(endpoint(kind).option("token_command", &command))
            .workload(Workload::token_lengths(30, 0, 5, 0))
            .load(Load::closed(2).requests(4))
            .builtin_script(fast_script().require_api_key("ya29.mock-token-0123"));
        let outcome = run(&bench);
        assert_eq!(outcome.summary.summary.requests.completed, 4, "{kind}");
    }
}

#[test]
fn a_refused_token_is_one_clear_error_that_never_shows_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let command = token_command(dir.path(), "ya29.wrong-token-4567");
    for (kind, endpoint, names) in [
        (
            "vertex-gemini",
            endpoint("vertex-gemini").option("token_command", &command),
            "token_command",
        ),
        (
            "vertex-gemini-json",
            endpoint("vertex-gemini-json").option("access_token", "ya29.wrong-token-4567"),
            "VERTEXAI_ACCESS_TOKEN",
        ),
        (
            "vertex-raw",
            endpoint("vertex-raw").api_key("ya29.wrong-token-4567"),
            "API key given in the spec",
        ),
    ] {
        let bench = Benchmark::new()
            .endpoint(endpoint)
            .workload(Workload::token_lengths(30, 0, 5, 0))
            .load(Load::closed(1).requests(2))
            .builtin_script(fast_script().require_api_key("ya29.right-token"));
        let options = RunOptions {
            results_dir: Some(results.path().join(kind)),
            ..quiet()
        };
        let outcome = run_benchmark("auth", &bench, &options).unwrap();
        assert_eq!(errors(&outcome, "unauthorized"), 2, "{kind}");
        let message = &outcome.records[0].error.as_ref().unwrap().message;
        assert!(message.contains("401"), "{kind}: {message}");
        assert!(message.contains(names), "{kind}: {message}");
        for file in ["summary.json", "requests.jsonl"] {
            let text = std::fs::read_to_string(results.path().join(kind).join(file)).unwrap();
            assert!(
                !text.contains("wrong-token"),
                "{kind}: {file} leaks the token"
            );
        }
        assert!(!format!("{outcome:?}").contains("wrong-token"), "{kind}");
    }
}

#[test]
fn a_failing_token_command_is_unauthorized_and_names_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fail.sh");
    std::fs::write(&script, "echo ya29.half-printed-secret\nexit 1\n").unwrap();
    let command = format!("sh {}", script.display());
    let bench = Benchmark::new()
        .endpoint(endpoint("vertex-gemini").option("token_command", &command))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "unauthorized"), 2);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains(&command), "{message}");
    assert!(!message.contains("half-printed-secret"), "{message}");
    assert_eq!(outcome.builtin_stats.map(|s| s.requests), Some(0));
}

#[test]
fn a_google_base_url_without_a_project_fails_before_sending() {
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("vertex-gemini")
                .base_url("https://{region}-aiplatform.googleapis.com")
                .env_prefix("LLMPERF_TEST_UNSET_VERTEX")
                .model("gemini-2.5-flash")
                .option("access_token", "ya29.x"),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(1));
    if std::env::var("GOOGLE_CLOUD_PROJECT").is_ok() {
        return;
    }
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "request"), 1);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("LLMPERF_TEST_UNSET_VERTEX_PROJECT"),
        "{message}"
    );
}
