//! HTTPS over real sockets: a test CA made at test time, a server it
//! signed, and runs that trust it, do not, skip verification, or must
//! present a client certificate. (`SSL_CERT_FILE` is tested through the
//! binary in `cli.rs`: the environment is process-wide.)

use std::sync::atomic::Ordering;

use llmperf::report::terminal::{render, Palette};
use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod tls_server;
use tls_server::{serve, TestPki};

/// Four requests, one at a time, to `endpoint`; the test server's
/// answers carry no validation line, and the scraper (a client of its
/// own) stays away.
fn run(endpoint: Endpoint) -> RunOutcome {
    let bench = Benchmark::new()
        .endpoint(endpoint.model("m"))
        .workload(Workload::token_lengths(20, 0, 8, 0))
        .load(Load::closed(1).requests(4))
        .validate(false)
        .server_metrics(ServerMetrics::off());
    let options = RunOptions {
        mode: llmperf::results::RunMode::Test,
        ..RunOptions::default()
    };
    run_benchmark("tls", &bench, &options).expect("the run itself starts")
}

fn failed(outcome: &RunOutcome, kind: &str) -> u64 {
    let requests = &outcome.summary.summary.requests;
    requests.errors_by_kind.get(kind).copied().unwrap_or(0)
}

#[test]
fn a_run_that_trusts_the_test_ca_succeeds_and_records_tls_1_3_and_each_handshake() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let outcome = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem));
    let summary = &outcome.summary.summary;
    assert_eq!(
        (summary.requests.completed, summary.requests.failed),
        (4, 0),
        "{:?}",
        outcome.first_failure
    );
    assert_eq!(server.answered.load(Ordering::Relaxed), 4);
    // One connection per request (the server closes each): four handshakes.
    for record in &outcome.records {
        let connection = record.connection.as_ref().unwrap();
        assert!(connection.tls_us.unwrap() > 0, "{connection:?}");
        assert_eq!(connection.tls_version.as_deref(), Some("TLS 1.3"));
        assert_eq!(connection.alpn.as_deref(), Some("http/1.1"));
    }
    let connections = &summary.connections;
    assert_eq!(connections.tls_ms.as_ref().unwrap().count, 4);
    assert_eq!(connections.tls_versions.get("TLS 1.3"), Some(&4));
    assert_eq!(connections.alpn.get("http/1.1"), Some(&4));
    let line = llmperf::report::terminal::connections_text(connections).unwrap();
    assert!(line.contains("TLS 1.3 (http/1.1)"), "{line}");
    // The CA file is recorded by path; nothing says insecure.
    let config = &outcome.summary.config;
    assert_eq!(config.tls.ca_certs, vec![pki.ca_pem.clone()]);
    assert!(!config.tls.insecure);
    assert!(!render(&outcome.summary, Palette::new(false)).contains("insecure"));
}

#[test]
fn a_run_that_does_not_trust_the_ca_fails_every_request_with_a_tls_error_naming_ca_cert() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let outcome = run(Endpoint::openai_chat().base_url(&server.base_url));
    assert_eq!(failed(&outcome, "tls"), 4);
    let error = outcome.first_failure.unwrap();
    assert_eq!(error.kind.as_str(), "tls");
    assert!(
        error.message.contains("--ca-cert FILE"),
        "{}",
        error.message
    );
    assert!(error.message.contains("--insecure"), "{}", error.message);
    assert_eq!(server.answered.load(Ordering::Relaxed), 0);
}

#[test]
fn insecure_skips_verification_and_is_marked_in_the_terminal_and_in_summary_json() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let outcome = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .insecure(true));
    assert_eq!(outcome.summary.summary.requests.completed, 4);
    assert!(outcome.summary.config.tls.insecure);
    let json = serde_json::to_value(&outcome.summary).unwrap();
    assert_eq!(json["config"]["tls"]["insecure"], serde_json::json!(true));
    let terminal = render(&outcome.summary, Palette::new(true));
    let warning = terminal
        .lines()
        .find(|line| line.contains("insecure"))
        .expect("an insecure line");
    assert!(warning.contains("NOT verified"), "{warning}");
    assert!(warning.contains("\u{1b}[33m"), "yellow: {warning:?}");
}

#[test]
fn a_server_requiring_a_client_certificate_accepts_the_configured_one_and_refuses_a_run_without() {
    let pki = TestPki::new();
    let server = serve(&pki, true);
    let with = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem)
        .client_cert(&pki.client_cert_pem, &pki.client_key_pem));
    assert_eq!(
        with.summary.summary.requests.completed, 4,
        "{:?}",
        with.first_failure
    );
    assert_eq!(server.answered.load(Ordering::Relaxed), 4);
    // Only the paths are recorded, never the key.
    let json = serde_json::to_string(&with.summary).unwrap();
    let key = std::fs::read_to_string(&pki.client_key_pem).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(!json.contains(key_body));
    assert!(json.contains("client-key.pem"));

    let without = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem));
    assert_eq!(failed(&without, "tls"), 4, "{:?}", without.first_failure);
    let error = without.first_failure.unwrap();
    assert!(
        error
            .message
            .contains("--client-cert FILE --client-key FILE"),
        "{}",
        error.message
    );
    assert_eq!(server.answered.load(Ordering::Relaxed), 4, "none answered");
}

#[test]
fn a_ca_file_with_no_certificate_stops_the_run_before_anything_is_sent() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::openai_chat()
                .base_url(&server.base_url)
                .model("m")
                .ca_cert(&pki.client_key_pem),
        )
        .load(Load::closed(1).requests(1))
        .server_metrics(ServerMetrics::off());
    let Err(error) = run_benchmark("tls", &bench, &RunOptions::default()) else {
        panic!("a CA file without a certificate must stop the run");
    };
    let message = error.to_string();
    assert!(message.contains("client-key.pem"), "{message}");
    assert!(message.contains("holds no certificate"), "{message}");
    assert!(!message.contains("PRIVATE KEY-----\n"), "{message}");
    assert_eq!(server.answered.load(Ordering::Relaxed), 0);
}
