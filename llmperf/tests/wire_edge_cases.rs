//! Server behaviours the built-in endpoint does not script, served by a
//! minimal raw HTTP/1.1 server on loopback: a stream that stays open after
//! `[DONE]`, a server that ignores `stream: true`, a wrong path.

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use llmperf::run::{run_benchmark, RunOptions};
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

fn bench(url: &str) -> Benchmark {
    Benchmark::new()
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
