//! HTTPS over real sockets: a test CA made at test time, a server it
//! signed, and runs that trust it, do not, skip verification, or must
//! present a client certificate; a server that speaks only TLS 1.2, one
//! whose certificate names another host or has expired; a run through a
//! `CONNECT` proxy; and a metrics endpoint scraped over HTTPS.
//! (`SSL_CERT_FILE` is tested through the binary in `cli.rs`: the
//! environment is process-wide.)

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use llmperf::metrics::server::Role;
use llmperf::report::terminal::{render, Palette};
use llmperf::run::{run_benchmark, RunOptions, RunOutcome};
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod raw_server;
mod tls_server;
use tls_server::{serve, serve_with, ServerCertificate, Setup, TestPki, TlsServer};

/// Four requests, one at a time, to `endpoint`; the test server's
/// answers carry no validation line, and the scraper (a client of its
/// own) stays away.
fn bench(endpoint: Endpoint) -> Benchmark {
    Benchmark::new()
        .endpoint(endpoint.model("m"))
        .workload(Workload::token_lengths(20, 0, 8, 0))
        .load(Load::closed(1).requests(4))
        .validate(false)
        .server_metrics(ServerMetrics::off())
}

fn run(endpoint: Endpoint) -> RunOutcome {
    run_bench(&bench(endpoint), None)
}

/// Runs `bench`, writing its results into `results` if given.
fn run_bench(bench: &Benchmark, results: Option<&Path>) -> RunOutcome {
    let options = RunOptions {
        mode: llmperf::results::RunMode::Test,
        results_dir: results.map(Path::to_path_buf),
        ..RunOptions::default()
    };
    run_benchmark("tls", bench, &options).expect("the run itself starts")
}

fn failed(outcome: &RunOutcome, kind: &str) -> u64 {
    let requests = &outcome.summary.summary.requests;
    requests.errors_by_kind.get(kind).copied().unwrap_or(0)
}

/// Asserts that all four requests of `outcome` completed, each on a
/// connection of its own (the server closes each) with a handshake that
/// negotiated `version` and HTTP/1.1, and that the summary counts them so.
fn assert_four_handshakes(outcome: &RunOutcome, server: &TlsServer, version: &str) {
    let summary = &outcome.summary.summary;
    assert_eq!(
        (summary.requests.completed, summary.requests.failed),
        (4, 0),
        "{:?}",
        outcome.first_failure
    );
    assert_eq!(server.answered.load(Ordering::SeqCst), 4);
    for record in &outcome.records {
        let connection = record.connection.as_ref().unwrap();
        assert!(connection.tls_us.unwrap() > 0, "{connection:?}");
        assert_eq!(connection.tls_version.as_deref(), Some(version));
        assert_eq!(connection.alpn.as_deref(), Some("http/1.1"));
    }
    let connections = &summary.connections;
    assert_eq!(connections.tls_ms.as_ref().unwrap().count, 4);
    assert_eq!(connections.tls_versions.len(), 1, "{connections:?}");
    assert_eq!(connections.tls_versions.get(version), Some(&4));
    assert_eq!(connections.alpn.get("http/1.1"), Some(&4));
}

#[test]
fn a_run_that_trusts_the_test_ca_succeeds_and_records_tls_1_3_and_each_handshake() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let outcome = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem));
    assert_four_handshakes(&outcome, &server, "TLS 1.3");
    let connections = &outcome.summary.summary.connections;
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

#[test]
fn a_server_offering_only_tls_1_2_is_reached_with_it_and_every_record_and_the_terminal_say_so() {
    let pki = TestPki::new();
    let server = serve_with(
        &pki,
        Setup {
            tls12_only: true,
            ..Setup::default()
        },
    );
    let outcome = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem));
    assert_four_handshakes(&outcome, &server, "TLS 1.2");
    let level = &outcome.summary.levels[0].summary.connections;
    assert_eq!(level.tls_versions.get("TLS 1.2"), Some(&4));
    let terminal = render(&outcome.summary, Palette::new(false));
    assert!(terminal.contains("TLS 1.2 (http/1.1)"), "{terminal}");
}

#[test]
fn a_certificate_for_another_name_fails_every_request_with_a_tls_error_naming_both_names() {
    let pki = TestPki::new();
    let server = serve_with(
        &pki,
        Setup {
            certificate: ServerCertificate::OtherName,
            ..Setup::default()
        },
    );
    // By address and by name: the certificate names neither.
    let by_name = server.base_url.replace("127.0.0.1", "localhost");
    for (url, host) in [(&server.base_url, "127.0.0.1"), (&by_name, "localhost")] {
        let outcome = run(Endpoint::openai_chat().base_url(url).ca_cert(&pki.ca_pem));
        assert_eq!(failed(&outcome, "tls"), 4, "{:?}", outcome.first_failure);
        let message = outcome.first_failure.unwrap().message;
        assert!(
            message.contains(&format!(
                "the certificate of {host} was issued for other.example, not for {host}"
            )),
            "{message}"
        );
        assert!(message.contains("--insecure"), "{message}");
    }
    assert_eq!(server.answered.load(Ordering::SeqCst), 0);
}

#[test]
fn an_expired_certificate_fails_every_request_with_a_tls_error_saying_when_it_expired() {
    let pki = TestPki::new();
    let server = serve_with(
        &pki,
        Setup {
            certificate: ServerCertificate::Expired,
            ..Setup::default()
        },
    );
    let outcome = run(Endpoint::openai_chat()
        .base_url(&server.base_url)
        .ca_cert(&pki.ca_pem));
    assert_eq!(failed(&outcome, "tls"), 4, "{:?}", outcome.first_failure);
    let message = outcome.first_failure.unwrap().message;
    assert!(
        message.contains("the certificate of 127.0.0.1 expired at 2021-01-01T00:00:00Z"),
        "{message}"
    );
    // The fix first; skipping verification last.
    let renew = message.find("renewed certificate").expect(&message);
    let insecure = message.find("--insecure").expect(&message);
    assert!(renew < insecure, "{message}");
    assert_eq!(server.answered.load(Ordering::SeqCst), 0);
}

#[test]
fn https_through_a_connect_proxy_verifies_the_origin_and_keeps_the_proxy_password_out_of_results() {
    let pki = TestPki::new();
    let server = serve(&pki, false);
    let (proxy, at_proxy) = raw_server::tunnel_proxy();
    // By name: the proxy, not llmperf, resolves it.
    let origin = server.base_url.replace("127.0.0.1", "localhost");
    let authority = origin
        .trim_start_matches("https://")
        .trim_end_matches("/v1")
        .to_string();
    let with_password = proxy.replace("http://", "http://me:tunn3l-pass@");
    let dir = tempfile::tempdir().unwrap();
    let trusted = bench(
        Endpoint::openai_chat()
            .base_url(&origin)
            .ca_cert(&pki.ca_pem)
            .proxy(&with_password),
    );
    let outcome = run_bench(&trusted, Some(dir.path()));
    // TLS inside the tunnels, end to end with the origin.
    assert_four_handshakes(&outcome, &server, "TLS 1.3");
    // One tunnel per connection, each to the origin, with the proxy's
    // credentials.
    {
        let at_proxy = at_proxy.lock().unwrap();
        assert_eq!(at_proxy.len(), 4, "{at_proxy:?}");
        for connect in at_proxy.iter() {
            assert!(
                connect.starts_with(&format!("CONNECT {authority} HTTP/1.1\r\n")),
                "{connect}"
            );
            assert_eq!(
                raw_server::header_values(connect, "proxy-authorization"),
                ["Basic bWU6dHVubjNsLXBhc3M="] // me:tunn3l-pass
            );
        }
    }
    assert!(!raw_server::all_text(dir.path()).contains("tunn3l-pass"));

    // Without the CA the tunnel still opens, and the origin's certificate
    // is still refused.
    let untrusted = run(Endpoint::openai_chat()
        .base_url(&origin)
        .proxy(&with_password));
    assert_eq!(
        failed(&untrusted, "tls"),
        4,
        "{:?}",
        untrusted.first_failure
    );
    let message = untrusted.first_failure.unwrap().message;
    assert!(message.contains("--ca-cert FILE"), "{message}");
    assert!(!message.contains("tunn3l-pass"), "{message}");
    assert_eq!(at_proxy.lock().unwrap().len(), 8);
    assert_eq!(server.answered.load(Ordering::SeqCst), 4);
}

#[test]
fn an_https_metrics_endpoint_is_scraped_with_the_runs_trust_and_digested() {
    let pki = TestPki::new();
    let server = serve_with(
        &pki,
        Setup {
            metrics: true,
            ..Setup::default()
        },
    );
    // The metrics are found at the endpoint's origin, and trusted by the
    // same CA file.
    let bench = bench(
        Endpoint::openai_chat()
            .base_url(&server.base_url)
            .ca_cert(&pki.ca_pem),
    )
    .server_metrics(ServerMetrics::default().interval(Duration::from_millis(50)));
    let outcome = run_bench(&bench, None);
    assert_eq!(
        outcome.summary.summary.requests.completed, 4,
        "{:?}",
        outcome.first_failure
    );
    let level = &outcome.summary.levels[0];
    let digest = level
        .server
        .as_ref()
        .unwrap_or_else(|| panic!("no server digest; notes: {:?}", level.notes));
    let metrics_url = server.base_url.replace("/v1", "/metrics");
    assert_eq!(digest.sources, [metrics_url]);
    assert_eq!(digest.servers, ["vllm"]);
    assert_eq!(digest.failed_scrapes, 0);
    assert!(digest.scrapes >= 2, "{digest:?}");
    // The window opens before the first request and closes after the last.
    let finished = digest.counter(Role::FinishedRequests).unwrap();
    assert_eq!(finished.increase, 4.0, "{finished:?}");
    assert!(server.scrapes.load(Ordering::SeqCst) >= 2);
}
