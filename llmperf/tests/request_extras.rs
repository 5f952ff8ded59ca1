//! Extra headers, query parameters and an explicit proxy, over real
//! sockets: a purpose-built server records every request head, so what
//! arrives is asserted byte for byte, and the results directory is searched
//! for every secret sent.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use llmperf::harness::{self, BenchArgs};
use llmperf::run::{run_benchmark, RunError, RunOptions};
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod raw_server;
use raw_server::{all_text, chat_answer, forward_proxy, header_values, recording_server};

/// Variables only these tests set.
const KEY_VAR: &str = "LLMPERF_TEST_I15_GATEWAY_KEY";
const TEAM_VAR: &str = "LLMPERF_TEST_I15_TEAM";
const ROUTE_VAR: &str = "LLMPERF_TEST_I15_ROUTE";
const GATEWAY_KEY: &str = "gw-secret-7f3a9c";
const ROUTE: &str = "route-secret-51d2";
const LITERAL_KEY: &str = "literal-key-9e81";

fn set_variables() {
    std::env::set_var(KEY_VAR, GATEWAY_KEY);
    std::env::set_var(TEAM_VAR, "blue-team");
    std::env::set_var(ROUTE_VAR, ROUTE);
}

/// TGI's `/generate_stream` answer: one token, then the final event.
fn tgi_answer() -> String {
    let body = concat!(
        "data:{\"index\":1,\"token\":{\"id\":1,\"text\":\" a\",\"logprob\":-1.0,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
        "data:{\"index\":2,\"token\":{\"id\":2,\"text\":\" b\",\"logprob\":-1.0,\"special\":false},\"generated_text\":\" a b\",\"details\":{\"finish_reason\":\"length\",\"generated_tokens\":2,\"seed\":null}}\n\n",
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A benchmark of `endpoint` (no metrics scraper: it would send GET
/// /metrics to the raw server), `requests` one at a time.
fn bench(endpoint: Endpoint, requests: u64) -> Benchmark {
    Benchmark::new()
        .server_metrics(ServerMetrics::off())
        .endpoint(endpoint)
        .workload(Workload::token_lengths(20, 0, 4, 0))
        .load(
            Load::closed(1)
                .requests(requests)
                .timeout(Duration::from_secs(5)),
        )
        .validate(false)
}

fn run_into(bench: &Benchmark, dir: &Path) -> llmperf::run::RunOutcome {
    let options = RunOptions {
        results_dir: Some(dir.to_path_buf()),
        ..RunOptions::default()
    };
    run_benchmark("extras", bench, &options).expect("the run itself must succeed")
}

fn with_extras(endpoint: Endpoint) -> Endpoint {
    endpoint
        .api_key("kind-own-key")
        .header("Authorization", format!("Bearer ${{{KEY_VAR}}}"))
        .header("X-Team", format!("${{{TEAM_VAR}}}"))
        .header("X-Api-Key", LITERAL_KEY)
        .header("X-Literal", "$${NOT_A_VARIABLE}")
        .query("api-version", "2024-10-21")
        .query("route", format!("${{{ROUTE_VAR}}}"))
}

#[test]
fn extra_headers_and_query_parameters_arrive_on_every_request_of_two_kinds_and_results_keep_no_secret(
) {
    set_variables();
    for (kind, answer, path) in [
        (
            "openai-chat",
            chat_answer("1 one", "stop"),
            "/v1/chat/completions",
        ),
        ("tgi", tgi_answer(), "/v1/generate_stream"),
    ] {
        let (url, seen, server) = recording_server(3, answer);
        let dir = tempfile::tempdir().unwrap();
        let endpoint = with_extras(Endpoint::kind(kind).base_url(&url).model("m"));
        let outcome = run_into(&bench(endpoint, 3), dir.path());
        server.join().unwrap();
        assert!(
            outcome.records.iter().all(|r| r.ok),
            "{kind}: {:?}",
            outcome.records.iter().map(|r| &r.error).collect::<Vec<_>>()
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{kind}");
        for request in seen.iter() {
            let line = request.lines().next().unwrap();
            assert_eq!(
                line,
                format!("POST {path}?api-version=2024-10-21&route={ROUTE} HTTP/1.1"),
                "{kind}"
            );
            // The user's Authorization replaces the kind's bearer key.
            assert_eq!(
                header_values(request, "authorization"),
                [format!("Bearer {GATEWAY_KEY}")],
                "{kind}"
            );
            assert_eq!(header_values(request, "x-team"), ["blue-team"], "{kind}");
            assert_eq!(header_values(request, "x-api-key"), [LITERAL_KEY], "{kind}");
            assert_eq!(
                header_values(request, "x-literal"),
                ["${NOT_A_VARIABLE}"],
                "{kind}"
            );
            assert!(!request.contains("kind-own-key"), "{kind}: {request}");
        }
        // Recorded: templates for plain headers, *** for secret-looking
        // ones and for every query value.
        let summary = llmperf::results::read_summary(&dir.path().join("summary.json")).unwrap();
        let config = &summary.config;
        assert_eq!(config.headers["authorization"], "***");
        assert_eq!(config.headers["x-api-key"], "***");
        assert_eq!(config.headers["x-team"], format!("${{{TEAM_VAR}}}"));
        assert_eq!(config.headers["x-literal"], "$${NOT_A_VARIABLE}");
        assert_eq!(config.query["api-version"], "***");
        assert_eq!(config.query["route"], "***");
        assert_eq!(config.proxy, None);
        let written = all_text(dir.path());
        for secret in [GATEWAY_KEY, LITERAL_KEY, ROUTE, "2024-10-21", "blue-team"] {
            assert!(
                !written.contains(secret),
                "{kind}: `{secret}` reached the results"
            );
        }
    }
}

/// The base URL of the benchmark below (its kind's environment prefix).
const HARNESS_PREFIX: &str = "LLMPERF_TEST_I15_HARNESS";

/// A benchmark as a user declares it, with a header of its own; the test
/// below adds headers and a query parameter from `cargo bench --` flags.
#[llmperf::bench(requests = 2, concurrency = 1)]
fn gateway() -> Benchmark {
    bench(
        Endpoint::kind("openai-chat")
            .env_prefix(HARNESS_PREFIX)
            .model("m")
            .header("X-Team", "from-the-code")
            .header("X-Kept", "kept"),
        2,
    )
}

fn harness_run(flags: &[&str]) -> std::process::ExitCode {
    let argv = [&["bench", "gateway", "--color", "never"][..], flags].concat();
    let args = BenchArgs::try_parse_from(argv).expect("valid flags");
    harness::run(&args, harness::registered())
}

#[test]
fn cargo_bench_flags_add_headers_and_query_parameters_to_every_benchmark() {
    set_variables();
    let (url, seen, server) = recording_server(2, chat_answer("1 one", "stop"));
    std::env::set_var(format!("{HARNESS_PREFIX}_API_BASE"), &url);
    let authorization = format!("Authorization: Bearer ${{{KEY_VAR}}}");
    let route = format!("route=${{{ROUTE_VAR}}}");
    let code = harness_run(&[
        "-H",
        "X-Team: from-the-flag",
        "-H",
        &authorization,
        "--query",
        &route,
    ]);
    server.join().unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for request in seen.iter() {
        assert_eq!(
            request.lines().next().unwrap(),
            format!("POST /v1/chat/completions?route={ROUTE} HTTP/1.1")
        );
        // A flag's header replaces the benchmark's own of the same name.
        assert_eq!(header_values(request, "x-team"), ["from-the-flag"]);
        assert_eq!(header_values(request, "x-kept"), ["kept"]);
        assert_eq!(
            header_values(request, "authorization"),
            [format!("Bearer {GATEWAY_KEY}")]
        );
    }
    drop(seen);
    // A malformed flag stops the harness before anything is sent, without
    // showing the value.
    let (url, seen, _server) = recording_server(1, chat_answer("1 one", "stop"));
    std::env::set_var(format!("{HARNESS_PREFIX}_API_BASE"), &url);
    let code = harness_run(&["-H", "X-Key sk-typed-in-a-flag"]);
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::from(2))
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn a_server_that_quotes_a_secret_header_back_does_not_put_it_in_an_error() {
    set_variables();
    let body = format!(
        r#"{{"error": {{"message": "key Bearer {GATEWAY_KEY} is not allowed on route {ROUTE}"}}}}"#
    );
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, _seen, server) = recording_server(1, answer);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = with_extras(Endpoint::openai_chat().base_url(&url).model("m"));
    let outcome = run_into(&bench(endpoint, 1), dir.path());
    server.join().unwrap();
    let error = outcome.records[0].error.clone().expect("a 403 fails");
    assert!(
        error.message.contains("is not allowed"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(GATEWAY_KEY), "{}", error.message);
    assert!(!error.message.contains(ROUTE), "{}", error.message);
    let written = all_text(dir.path());
    assert!(!written.contains(GATEWAY_KEY) && !written.contains(ROUTE));
}

#[test]
fn a_missing_variable_stops_the_run_naming_it() {
    let endpoint = Endpoint::openai_chat()
        .base_url("http://127.0.0.1:9/v1")
        .model("m")
        .header("X-Team", "${LLMPERF_TEST_I15_NEVER_SET}");
    std::env::remove_var("LLMPERF_TEST_I15_NEVER_SET");
    let error = run_benchmark("missing", &bench(endpoint, 1), &RunOptions::default())
        .expect_err("a missing variable is not a run");
    assert!(matches!(error, RunError::Spec(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("LLMPERF_TEST_I15_NEVER_SET") && message.contains("x-team"),
        "{message}"
    );
}

#[test]
fn bad_header_names_values_and_references_are_refused_before_a_run() {
    let refused = |endpoint: Endpoint, expected: &str| {
        let error = bench(endpoint.base_url("http://127.0.0.1:9/v1").model("m"), 1)
            .check()
            .expect_err(expected)
            .to_string();
        assert!(error.contains(expected), "{error}");
        assert!(!error.contains("sk-hidden"), "{error}");
    };
    let chat = Endpoint::openai_chat;
    refused(chat().header("X Team", "sk-hidden"), "not a header name");
    refused(chat().header("X-Team:", "sk-hidden"), "not a header name");
    refused(chat().header("", "sk-hidden"), "not a header name");
    refused(
        chat().header("X-Team", "sk-hidden\r\nX-Evil: 1"),
        "line break",
    );
    refused(chat().header("X-Team", "sk-hidden\n"), "line break");
    refused(
        chat().header("X-Team", "sk-hidden\u{1}"),
        "control character",
    );
    refused(chat().header("Content-Length", "sk-hidden"), "transport");
    refused(
        chat().header("X-Team", "${sk-hidden}"),
        "environment variable",
    );
    refused(chat().header("X-Team", "${UNCLOSED sk-hidden"), "closing");
    refused(chat().query("", "sk-hidden"), "needs a name");
    // A variable whose value would split the header is refused once read.
    std::env::set_var("LLMPERF_TEST_I15_SPLITS", "a\r\nX-Evil: 1");
    let splits = chat()
        .base_url("http://127.0.0.1:9/v1")
        .model("m")
        .header("X-Team", "${LLMPERF_TEST_I15_SPLITS}");
    let error = run_benchmark("splits", &bench(splits, 1), &RunOptions::default()).unwrap_err();
    assert!(error.to_string().contains("line break"), "{error}");
    assert!(!error.to_string().contains("X-Evil"), "{error}");
    // SageMaker signs the URL: a query parameter would break every
    // signature, so the run does not start (a header is fine).
    let sagemaker = || Endpoint::kind("sagemaker").builtin().model("m");
    let error = run_benchmark(
        "signed",
        &bench(sagemaker().query("route", "sk-hidden"), 1),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("signs each request's URL"),
        "{error}"
    );
    assert!(!error.to_string().contains("sk-hidden"), "{error}");
    let outcome = run_benchmark(
        "signed",
        &bench(sagemaker().header("X-Team", "blue"), 1),
        &RunOptions::default(),
    )
    .unwrap();
    assert!(
        outcome.records.iter().all(|r| r.ok),
        "{:?}",
        outcome.records
    );
}

#[test]
fn an_explicit_proxy_forwards_plain_requests_in_absolute_form_with_its_credentials() {
    let (origin, at_origin, origin_thread) = recording_server(2, chat_answer("1 one", "stop"));
    let (proxy, at_proxy, proxy_thread) = forward_proxy(2);
    let with_password = proxy.replace("http://", "http://me:pr0xy-pass@");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::openai_chat()
        .base_url(&origin)
        .model("m")
        .header("X-Team", "blue")
        .proxy(&with_password);
    let outcome = run_into(&bench(endpoint, 2), dir.path());
    origin_thread.join().unwrap();
    proxy_thread.join().unwrap();
    assert!(
        outcome.records.iter().all(|r| r.ok),
        "{:?}",
        outcome.records[0].error
    );
    let at_proxy = at_proxy.lock().unwrap();
    assert_eq!(at_proxy.len(), 2);
    let basic = "Basic bWU6cHIweHktcGFzcw=="; // me:pr0xy-pass
    for request in at_proxy.iter() {
        assert!(
            request.starts_with(&format!("POST {origin}/chat/completions HTTP/1.1\r\n")),
            "{request}"
        );
        assert_eq!(header_values(request, "proxy-authorization"), [basic]);
        assert_eq!(header_values(request, "x-team"), ["blue"]);
    }
    // The origin got them, without the proxy's credentials.
    let at_origin = at_origin.lock().unwrap();
    assert_eq!(at_origin.len(), 2);
    assert!(at_origin
        .iter()
        .all(|r| r.starts_with("POST /v1/chat/completions HTTP/1.1")
            && header_values(r, "proxy-authorization").is_empty()));
    let summary = llmperf::results::read_summary(&dir.path().join("summary.json")).unwrap();
    assert_eq!(summary.config.proxy, Some(format!("{proxy}/")));
    assert!(!all_text(dir.path()).contains("pr0xy-pass"));
}

#[test]
fn an_https_endpoint_is_reached_through_a_connect_tunnel_of_the_explicit_proxy() {
    let (proxy, at_proxy, proxy_thread) = forward_proxy(1);
    let endpoint = Endpoint::openai_chat()
        .base_url("https://gateway.invalid/v1")
        .model("m")
        .header("X-Team", "blue")
        .proxy(proxy.replace("http://", "http://me:pr0xy-pass@"));
    let outcome = run_benchmark("tunnel", &bench(endpoint, 1), &RunOptions::default()).unwrap();
    proxy_thread.join().unwrap();
    // No TLS server behind the tunnel: the request fails, after the CONNECT.
    let record = &outcome.records[0];
    let error = record
        .error
        .clone()
        .expect("no TLS server behind the tunnel");
    assert!(!error.message.contains("pr0xy-pass"), "{}", error.message);
    let at_proxy = at_proxy.lock().unwrap();
    let connect = &at_proxy[0];
    assert!(
        connect.starts_with("CONNECT gateway.invalid:443 HTTP/1.1\r\n"),
        "{connect}"
    );
    assert_eq!(
        header_values(connect, "proxy-authorization"),
        ["Basic bWU6cHIweHktcGFzcw=="]
    );
    // Extra headers belong to the request inside the tunnel, not to the CONNECT.
    assert!(header_values(connect, "x-team").is_empty(), "{connect}");
}

#[test]
fn the_built_in_endpoint_is_never_reached_through_a_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let endpoint = Endpoint::openai_chat().builtin().proxy(&proxy);
    let outcome = run_benchmark("builtin", &bench(endpoint, 2), &RunOptions::default()).unwrap();
    assert!(outcome.records.iter().all(|r| r.ok));
    assert!(listener.accept().is_err(), "the proxy was used");
    assert_eq!(outcome.summary.config.proxy, None);
}
