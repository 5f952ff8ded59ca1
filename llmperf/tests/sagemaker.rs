//! The `sagemaker` kind end to end against the built-in endpoint over real
//! loopback HTTP: SigV4-signed requests, an event stream whose parts cut the
//! container's lines anywhere, scripted timing measured back, exact token
//! counts from TGI's `details`, every fault under its own kind, and a wrong
//! secret that is one clear error which never shows the secret.

use std::time::Duration;

use llmperf::endpoint::sagemaker::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{assert_interval, assert_latency, errors, fast_script, quiet, run};

/// The built-in endpoint, signed with its test key pair given as options
/// (tests never set process-wide environment variables).
fn sagemaker() -> Endpoint {
    Endpoint::kind("sagemaker")
        .builtin()
        .option("aws_access_key_id", TEST_ACCESS_KEY_ID)
        .option("aws_secret_access_key", TEST_SECRET_ACCESS_KEY)
        .option("region", "eu-west-1")
        .option("endpoint_name", "llmperf-tgi")
}

#[test]
fn scripted_ttft_and_inter_token_latency_are_measured_within_a_few_ms() {
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::token_lengths(200, 0, 40, 0))
        .load(Load::closed(4).requests(16))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(100))
                .inter_token(Duration::from_millis(10))
                .seed(5),
        );
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(summary.requests.completed, 16, "{:?}", summary.requests);
    let ttft = summary.ttft_ms.expect("ttft");
    assert_latency("ttft p50", ttft.p50, 100.0);
    let itl = summary.inter_token_latency_ms.expect("itl");
    assert_interval("itl p50", itl.p50, 10.0);
    assert_eq!(itl.count, 16 * 39, "39 gaps per 40-token request");
    for record in &outcome.records {
        assert_eq!(
            record.output_tokens_server,
            Some(40),
            "details.generated_tokens"
        );
        assert_eq!(record.output_tokens_client, 40);
        assert_eq!(
            record.input_tokens_server,
            Some(record.input_tokens_client),
            "details.input_length"
        );
        assert!(!record.token_count_mismatch);
        assert_eq!(record.finish_reason.as_deref(), Some("length"));
    }
    assert_eq!(summary.token_counts.mismatched_requests, 0);
}

#[test]
fn lmi_json_lines_are_decoded_too() {
    let bench = Benchmark::new()
        .endpoint(sagemaker().option("format", "lmi"))
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
    assert_eq!(summary.requests.completed, 4, "{:?}", summary.requests);
    // Loose: four requests make a noisy median; the TGI test holds the
    // tight timing bounds.
    let ttft = summary.ttft_ms.expect("ttft");
    assert_latency("ttft p50", ttft.p50, 20.0);
    for record in &outcome.records {
        assert_eq!(record.output_tokens_server, Some(24));
        assert_eq!(record.output_tokens_client, 24);
        // LMI reports no prompt token count.
        assert_eq!(record.input_tokens_server, None);
    }
}

#[test]
fn validation_passes_and_cross_overs_are_caught() {
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::validation_only())
        .load(Load::closed(2).requests(12))
        .validate(true)
        .builtin_script(fast_script().fault(Fault::CrossOver, FaultSchedule::Every(6)));
    let outcome = run(&bench);
    let validation = outcome
        .summary
        .summary
        .validation
        .clone()
        .expect("validated");
    assert_eq!(validation.validated, 12);
    assert_eq!((validation.passed, validation.cross_overs), (10, 2));
    assert_eq!(validation.mismatches, 0);
    for record in outcome.records.iter().filter(|r| r.ok) {
        assert_eq!(record.finish_reason.as_deref(), Some("eos_token"));
        // The TGI container streams TGI's own events: its special `</s>`
        // is not text, but its generated_tokens has it (as tests/tgi.rs).
        assert_eq!(
            record.output_tokens_server,
            Some(record.output_tokens_client + 1)
        );
        assert!(!record.text_excerpt.contains("</s>"));
    }
}

#[test]
fn injected_faults_are_each_counted_under_their_own_kind() {
    // Of 30 requests, 500 hits 5,10,…,30 (6); disconnect 7,14,21,28 (4); a
    // corrupted frame 9,18,27 (3); a ModelStreamError 11,22 (2); no final
    // event 13,26 (2); 429 on 17 (1).
    let script = fast_script()
        .fault(Fault::Status(500), FaultSchedule::Every(5))
        .fault(Fault::Disconnect, FaultSchedule::Every(7))
        .fault(Fault::MalformedEvent, FaultSchedule::Every(9))
        .fault(Fault::StreamError, FaultSchedule::Every(11))
        .fault(Fault::MissingDone, FaultSchedule::Every(13))
        .fault(Fault::Status(429), FaultSchedule::Every(17));
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(Load::closed(3).requests(30))
        .builtin_script(script);
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "server_error"), 6);
    assert_eq!(errors(&outcome, "disconnect"), 4);
    assert_eq!(errors(&outcome, "framing"), 3);
    assert_eq!(errors(&outcome, "stream_error"), 2);
    assert_eq!(errors(&outcome, "missing_done"), 2);
    assert_eq!(errors(&outcome, "rate_limited"), 1);
    let requests = &outcome.summary.summary.requests;
    assert_eq!(requests.failed, 18);
    assert_eq!(requests.completed, 12);
    let stream_error = outcome
        .records
        .iter()
        .filter_map(|r| r.error.as_ref())
        .find(|e| e.kind.as_str() == "stream_error")
        .unwrap();
    assert!(
        stream_error.message.contains("ModelStreamError")
            && stream_error.message.contains("injected stream error"),
        "{}",
        stream_error.message
    );
    let status = outcome
        .records
        .iter()
        .filter_map(|r| r.error.as_ref())
        .find(|e| e.http_status == Some(500))
        .unwrap();
    assert!(
        status.message.contains("injected fault: HTTP 500"),
        "{}",
        status.message
    );
}

#[test]
fn stalls_are_errors_of_their_own_kind() {
    let bench = Benchmark::new()
        .endpoint(sagemaker())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(
            Load::closed(2)
                .requests(4)
                .stall_timeout(Duration::from_millis(300)),
        )
        .builtin_script(fast_script().fault(Fault::Stall, FaultSchedule::Every(2)));
    let outcome = run(&bench);
    assert_eq!(errors(&outcome, "stall"), 2);
    assert_eq!(outcome.summary.summary.requests.completed, 2);
}

#[test]
fn a_wrong_secret_is_one_clear_error_that_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "wrong-secret-0123456789abcdef";
    let token = "session-token-abcdef0123456789";
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::kind("sagemaker")
                .builtin()
                .option("aws_access_key_id", TEST_ACCESS_KEY_ID)
                .option("aws_secret_access_key", secret)
                .option("aws_session_token", token),
        )
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        ..quiet()
    };
    let outcome = run_benchmark("auth", &bench, &options).unwrap();
    assert_eq!(errors(&outcome, "unauthorized"), 2);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("403"), "{message}");
    assert!(message.contains("signature we calculated"), "{message}");
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
    for file in ["summary.json", "requests.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(!text.contains(secret), "{file} leaks the secret");
        assert!(!text.contains(token), "{file} leaks the session token");
    }
    let debug = format!("{outcome:?}");
    assert!(!debug.contains(secret) && !debug.contains(token));
}

#[test]
fn the_right_secret_with_a_session_token_is_accepted() {
    let bench = Benchmark::new()
        .endpoint(sagemaker().option("aws_session_token", "temporary-token"))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let outcome = run(&bench);
    assert_eq!(outcome.summary.summary.requests.completed, 2);
}

#[test]
fn an_unknown_access_key_and_a_bad_setting_are_clear_errors() {
    let bench = Benchmark::new()
        .endpoint(sagemaker().option("aws_access_key_id", "AKIDSOMEONEELSE"))
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(1))
        .builtin_script(fast_script());
    let outcome = run(&bench);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(
        message.contains("security token included in the request is invalid"),
        "{message}"
    );
    assert_eq!(errors(&outcome, "unauthorized"), 1);

    let bench = bench.endpoint(sagemaker().option("format", "protobuf"));
    let outcome = run(&bench);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("unknown SageMaker format"), "{message}");

    let bench = bench.endpoint(sagemaker().option("endpoint_name", "meta-llama/Llama-3"));
    let outcome = run(&bench);
    let message = &outcome.records[0].error.as_ref().unwrap().message;
    assert!(message.contains("endpoint_name"), "{message}");
}

#[test]
fn without_credentials_the_builtin_endpoint_takes_its_test_pair() {
    // Nothing configured but the kind: what the `benches/sagemaker.rs`
    // example does. (Unless the machine has AWS credentials in its
    // environment, which then sign instead and are refused by the built-in endpoint.)
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return;
    }
    let bench = Benchmark::new()
        .endpoint(Endpoint::kind("sagemaker").builtin())
        .workload(Workload::token_lengths(30, 0, 5, 0))
        .load(Load::closed(1).requests(2))
        .builtin_script(fast_script());
    let outcome = run(&bench);
    assert_eq!(outcome.summary.summary.requests.completed, 2);
}
