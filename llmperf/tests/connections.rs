//! Connection handling against servers that close connections the ways
//! real ones do (the built-in endpoint's `Connections` modes, and raw
//! servers for what no mode scripts): no false errors, the server's
//! keep-alive rules honoured, and the one re-send rule kept exactly.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use llmperf::builtin::Connections;
use llmperf::builtin::Server;
use llmperf::spec::ServerMetrics;
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

mod fault_matrix;
mod raw_server;
use fault_matrix::{fast_script, run};
use raw_server::read_request;

/// These tests count the benchmark's connections and requests: the
/// server-metrics scraper, a client of its own, would add to them.
fn bench(connections: Connections, concurrency: usize, requests: u64) -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat().builtin())
        .workload(Workload::token_lengths(40, 0, 16, 0))
        .load(Load::closed(concurrency).requests(requests))
        .builtin_script(fast_script().connections(connections))
        .server_metrics(ServerMetrics::off())
}

/// A server started by the test, so its counters can be read afterwards.
fn served(
    script: Script,
    bench: Benchmark,
) -> (llmperf::run::RunOutcome, llmperf::builtin::ServerStats) {
    let server = Server::start(script).unwrap();
    let bench = bench.endpoint(
        Endpoint::openai_chat()
            .base_url(server.base_url())
            .model("m"),
    );
    let outcome = run(&bench);
    (outcome, server.stats())
}

#[test]
fn a_server_that_closes_after_every_stream_gives_no_false_error_at_1_and_16_in_flight() {
    for (concurrency, requests) in [(1, 16), (16, 64)] {
        let script = fast_script().connections(Connections::CloseAfterResponse);
        let (outcome, stats) = served(
            script,
            bench(Connections::CloseAfterResponse, concurrency, requests),
        );
        let summary = &outcome.summary.summary;
        assert_eq!(
            (summary.requests.completed, summary.requests.failed),
            (requests, 0),
            "c={concurrency}: {:?}",
            summary.requests.errors_by_kind
        );
        // Every connection carries one answer: every request's final
        // connection is new, and each request the server refused on a kept
        // connection was sent again (as were those that met the close).
        let connections = &summary.connections;
        assert_eq!(connections.requests, requests);
        assert_eq!(connections.new_connections, requests, "c={concurrency}");
        assert!(
            connections.resent >= stats.refused_requests,
            "c={concurrency}: {} re-sent, {} refused",
            connections.resent,
            stats.refused_requests
        );
        assert_eq!(stats.requests, requests, "no request was answered twice");
    }
}

#[test]
fn a_request_refused_on_a_kept_connection_is_sent_once_more_and_timed_from_its_first_send() {
    let script = fast_script().connections(Connections::CloseOnReuse);
    let (outcome, stats) = served(script, bench(Connections::CloseOnReuse, 1, 4));
    assert_eq!(outcome.summary.summary.requests.completed, 4);
    assert_eq!(stats.refused_requests, 3, "every reuse was refused");
    let first = outcome.records[0].connection.clone().unwrap();
    assert!(!first.reused && !first.resent && first.connect_us.is_some());
    let mut ids = vec![first.id];
    for record in &outcome.records[1..] {
        let connection = record.connection.clone().unwrap();
        assert!(connection.resent, "request {}: {connection:?}", record.id);
        assert!(
            !connection.reused,
            "the second attempt goes on a new connection"
        );
        assert!(connection.connect_us.is_some());
        let resent_after_us = connection.resent_after_us.unwrap();
        let error = connection.first_attempt_error.unwrap();
        assert!(!error.is_empty());
        // TTFT counts from the first send, which came before the second.
        let ttft_us = record.first_token_us.unwrap() - record.sent_us;
        assert!(resent_after_us < ttft_us, "{resent_after_us} vs {ttft_us}");
        ids.push(connection.id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four answers on four connections");
    assert_eq!(outcome.summary.summary.connections.resent, 3);
}

#[test]
fn connection_close_and_keep_alive_limits_are_honoured_without_a_resend() {
    // `Connection: close`: nothing reused, nothing refused.
    let script = fast_script().connections(Connections::AnnounceClose);
    let (outcome, stats) = served(script, bench(Connections::AnnounceClose, 2, 8));
    let connections = &outcome.summary.summary.connections;
    assert_eq!((connections.new_connections, connections.resent), (8, 0));
    assert_eq!(stats.connections, 8);

    // `Keep-Alive: max=N` counting down: a connection is retired after its
    // third request instead of meeting the server's refusal.
    let limited = Connections::Limited {
        max_requests: 3,
        idle_timeout_s: 60,
    };
    let (outcome, stats) = served(fast_script().connections(limited), bench(limited, 1, 9));
    let connections = &outcome.summary.summary.connections;
    assert_eq!(outcome.summary.summary.requests.failed, 0);
    assert_eq!((connections.new_connections, connections.resent), (3, 0));
    assert_eq!(stats.refused_requests, 0);

    // `Keep-Alive: timeout=1`: a connection idle past the timeout (less
    // its margin) is not reused.
    let short = Connections::Limited {
        max_requests: 100,
        idle_timeout_s: 1,
    };
    let sleepy = bench(short, 1, 3).load(
        Load::closed(1)
            .requests(3)
            .sleep(Duration::from_millis(700)),
    );
    let (outcome, stats) = served(fast_script().connections(short), sleepy);
    let connections = &outcome.summary.summary.connections;
    assert_eq!((connections.new_connections, connections.resent), (3, 0));
    assert_eq!(stats.refused_requests, 0);
}

#[test]
fn kept_connections_are_reused_one_per_request_in_flight() {
    let (outcome, stats) = served(fast_script(), bench(Connections::KeepAlive, 4, 12));
    let connections = &outcome.summary.summary.connections;
    assert_eq!((connections.requests, connections.new_connections), (12, 4));
    assert_eq!(connections.resent, 0);
    assert_eq!(stats.connections, 4);
    assert!(connections.connect_ms.is_some_and(|c| c.count == 4));
    assert!(
        outcome
            .records
            .iter()
            .filter(|r| r.connection.as_ref().unwrap().reused)
            .count()
            == 8
    );
}

/// An SSE answer of one token, kept alive.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 94\r\n\r\n\
data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";

/// A server that answers the first request of each connection with
/// `ANSWER` and the second with `second` (then closes); counts connections.
fn raw_server(
    second: &'static [u8],
    connections: usize,
) -> (String, Arc<AtomicUsize>, thread::JoinHandle<()>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let (url, handle) = raw_server::spawn(connections, move |mut socket| {
        counter.fetch_add(1, Ordering::SeqCst);
        if read_request(&mut socket).is_some() {
            let _ = socket.write_all(ANSWER);
            if read_request(&mut socket).is_some() {
                let _ = socket.write_all(second);
            }
        }
        // Dropped: closed.
    });
    (url, accepted, handle)
}

/// A raw server answers every request as the benchmark's (no /metrics).
fn raw_bench(url: &str, requests: u64) -> Benchmark {
    Benchmark::new()
        .server_metrics(ServerMetrics::off())
        .endpoint(Endpoint::openai_chat().base_url(url).model("raw"))
        .workload(Workload::token_lengths(20, 0, 5, 0))
        .load(
            Load::closed(1)
                .requests(requests)
                .timeout(Duration::from_secs(5)),
        )
        .validate(false)
}

#[test]
fn nothing_is_resent_once_response_bytes_arrived() {
    // The second request gets half a status line, then the close.
    let (url, accepted, server) = raw_server(b"HTTP/1.1 200", 1);
    let outcome = run(&raw_bench(&url, 2));
    assert!(outcome.records[0].ok, "{:?}", outcome.records[0].error);
    let failed = &outcome.records[1];
    assert!(!failed.ok);
    let connection = failed.connection.clone().unwrap();
    assert!(connection.reused && !connection.resent, "{connection:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no second connection");
    server.join().unwrap();
}

#[test]
fn a_failure_on_a_new_connection_is_not_resent() {
    // Accepts, reads the request, closes without a byte: on a new connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    listener.set_nonblocking(false).unwrap();
    let server = thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let _ = read_request(&mut socket);
        drop(socket);
        // A second connection would mean a re-send: none may come.
        listener.set_nonblocking(true).unwrap();
        thread::sleep(Duration::from_millis(300));
        listener.accept().is_err()
    });
    let outcome = run(&raw_bench(&url, 1));
    let record = &outcome.records[0];
    assert!(!record.ok);
    assert_eq!(record.error.as_ref().unwrap().kind.as_str(), "request");
    let connection = record.connection.clone().unwrap();
    assert!(!connection.reused && !connection.resent);
    assert!(server.join().unwrap(), "the request was sent again");
}
