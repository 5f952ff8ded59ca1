//! Server behaviours the built-in endpoint does not script, served by a
//! minimal raw HTTP/1.1 server on loopback: a stream that stays open after
//! `[DONE]`, a server that ignores `stream: true`, a wrong path, every body
//! framing (chunked with extensions, bare-LF lines and trailers after an
//! interim 100 Continue; `Content-Length`; until the close), and a server
//! that does not speak HTTP.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, Workload};

mod raw_server;

/// Serves `requests` connections, answering each with `response` and then
/// holding the connection open until the client closes it (at most 10 s).
fn raw_server(response: &'static [u8], requests: usize) -> (String, thread::JoinHandle<()>) {
    raw_server::spawn(requests, move |mut socket| {
        if raw_server::read_request(&mut socket).is_some() {
            let _ = socket.write_all(response);
            let _ = socket.flush();
            // Hold the connection until the client goes away.
            let _ = socket.read(&mut [0u8; 64]);
        }
    })
}

/// A raw server answers every request as the benchmark's (no /metrics).
fn bench(url: &str) -> Benchmark {
    Benchmark::new()
        .server_metrics(ServerMetrics::off())
        .endpoint(Endpoint::openai_chat().base_url(url).model("raw"))
        .workload(Workload::token_lengths(20, 0, 5, 0))
        .load(Load::closed(1).requests(1).timeout(Duration::from_secs(5)))
}

#[test]
fn the_answer_ends_at_done_even_when_the_server_keeps_the_connection_open() {
    let (url, server) = raw_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
          62\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n\r\n\
          e\r\ndata: [DONE]\n\n\r\n",
        1,
    );
    let started = Instant::now();
    let outcome = run_benchmark("raw", &bench(&url), &RunOptions::default()).unwrap();
    let record = &outcome.records[0];
    assert!(record.ok, "{:?}", record.error);
    assert_eq!(record.output_tokens(), 1);
    // Ended at [DONE], not at the 5 s timeout.
    assert!(record.metrics.e2e_ms < 1_000.0, "{}", record.metrics.e2e_ms);
    assert!(started.elapsed() < Duration::from_secs(4));
    server.join().unwrap();
}

#[test]
fn a_server_that_does_not_stream_is_named_as_such() {
    let (url, server) = raw_server(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 24\r\n\r\n{\"choices\":[],\"id\":\"x1\"}",
        1,
    );
    let outcome = run_benchmark("raw", &bench(&url), &RunOptions::default()).unwrap();
    let error = outcome.records[0].error.clone().expect("an error");
    assert_eq!(error.kind, llmperf::endpoint::ErrorKind::NotStreaming);
    assert!(
        error.message.contains("application/json"),
        "{}",
        error.message
    );
    server.join().unwrap();
}

#[test]
fn a_wrong_path_says_to_check_the_base_url() {
    let (url, server) = raw_server(
        b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n{\"error\":{\"message\":\"no such route here\"}}",
        1,
    );
    let bench = bench(&url.replace("/v1", "/wrong?api-key=hunter2"));
    let outcome = run_benchmark("raw", &bench, &RunOptions::default()).unwrap();
    let error = outcome.records[0].error.clone().expect("an error");
    assert_eq!(error.http_status, Some(404));
    assert!(
        error.message.contains("no such route here"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("check the base URL"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    assert!(!outcome.summary.config.base_url.contains("hunter2"));
    server.join().unwrap();
}

/// One answer's SSE body: a content event, usage, `[DONE]`.
const ANSWER: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";

#[test]
fn every_framing_real_servers_use_is_read_and_a_cleanly_ended_body_keeps_its_connection() {
    let (url, server) = raw_server::spawn(1, |mut socket| {
        // 1: an interim 100 Continue, then a chunked body cut anywhere, with
        // a chunk extension, bare-LF chunk lines and a trailer.
        raw_server::read_request(&mut socket).unwrap();
        let (a, b) = ANSWER.split_at(30);
        let chunked = format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x};name=value\r\n{a}\r\n{:x}\n{b}\n0\r\nx-trailer: 1\r\n\r\n",
            a.len(),
            b.len()
        );
        socket.write_all(chunked.as_bytes()).unwrap();
        // 2: Content-Length, on the same connection.
        raw_server::read_request(&mut socket).unwrap();
        let sized = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        socket.write_all(sized.as_bytes()).unwrap();
        // 3: neither: the body ends when the server closes.
        raw_server::read_request(&mut socket).unwrap();
        let closing =
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{ANSWER}");
        socket.write_all(closing.as_bytes()).unwrap();
    });
    let bench = bench(&url).load(Load::closed(1).requests(3).timeout(Duration::from_secs(5)));
    let outcome = run_benchmark("raw", &bench, &RunOptions::default()).unwrap();
    assert_eq!(outcome.records.len(), 3);
    for record in &outcome.records {
        assert!(record.ok, "request {}: {:?}", record.id, record.error);
        assert_eq!(record.text_excerpt, "hi");
        let connection = record.connection.as_ref().unwrap();
        assert_eq!(
            connection.id, 1,
            "request {} on its own connection",
            record.id
        );
        assert_eq!(connection.reused, record.id > 0);
    }
    server.join().unwrap();
}

#[test]
fn a_response_that_is_not_http_is_a_clear_error() {
    let (url, server) = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 1);
    let outcome = run_benchmark("raw", &bench(&url), &RunOptions::default()).unwrap();
    let error = outcome.records[0].error.as_ref().expect("failed");
    assert_eq!(error.kind.as_str(), "request");
    assert!(
        error.message.contains("not an HTTP/1.x response") && error.message.contains("SSH-2.0"),
        "{}",
        error.message
    );
    server.join().unwrap();
}
