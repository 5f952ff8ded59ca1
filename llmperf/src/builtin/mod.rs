//! The built-in endpoint: a real HTTP server on 127.0.0.1 that speaks the
//! OpenAI chat/completions streaming formats with scripted timing and
//! injected faults.
//!
//! Benchmarks and tests measure against it to check that llmperf measures
//! right: when the script says "first token after 50 ms, then one every
//! 5 ms", a correct client reports a TTFT of about 50 ms and an inter-token
//! latency of about 5 ms, and every injected fault shows up as the error it
//! is.
//!
//! ```
//! use std::time::Duration;
//! use llmperf::builtin::{Script, Server};
//!
//! let server = Server::start(
//!     Script::new()
//!         .ttft(Duration::from_millis(50))
//!         .inter_token(Duration::from_millis(5))
//!         .output_tokens(20),
//! )?;
//! println!("OpenAI-compatible endpoint at {}", server.base_url());
//! // ... point a client at server.base_url() ...
//! assert_eq!(server.stats().requests, 0);
//! server.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # What it serves
//!
//! - `POST /v1/chat/completions` and `POST /v1/completions` (also without
//!   the `/v1` prefix): the request's `messages` (or `prompt`), `max_tokens`
//!   (or `max_completion_tokens`), `stream`, `stream_options.include_usage`,
//!   `ignore_eos` and `min_tokens` are honoured; everything else is ignored.
//! - `POST /endpoints/{name}/invocations-response-stream`: Amazon
//!   SageMaker, SigV4-verified, TGI or LMI output in event-stream frames
//!   (see `sagemaker.rs`).
//! - Other protocols, on the same schedule and faults (each in its own
//!   module): Azure OpenAI's `POST /openai/deployments/{name}/chat/completions?api-version=…`
//!   (the key in an `api-key` header, or as `Authorization: Bearer`, where
//!   an Entra ID token goes), Hugging Face TGI's `POST /generate_stream`,
//!   Together's legacy `POST /inference` (`stream_tokens: true`) and
//!   Anthropic's `POST /v1/messages` (`x-api-key` and `anthropic-version`
//!   headers, named events, thinking blocks for the script's reasoning
//!   tokens). These serve streams only; errors come in each protocol's
//!   own shape.
//! - `GET /v1/models`: one model, named after the last `model` a request
//!   gave (`llmperf-builtin` before any).
//! - `GET /v1/builtin/stats`: the [`ServerStats`] counters as JSON, including how
//!   late events went out against their deadlines.
//! - `GET /health`.
//! - `GET /metrics` (no API key needed, as vLLM's): the endpoint's own
//!   counts in the Prometheus text format, under vLLM's, SGLang's, TGI's
//!   or llama.cpp's names ([`MetricsStyle`], [`Script::metrics`]): requests
//!   running and waiting, prompt and generated tokens, finished requests,
//!   time to first token, inter-token, end-to-end and queue histograms.
//!
//! Anything else is a 404, a body that does not parse a 400 naming the
//! problem, both with an OpenAI-style error body.
//!
//! # What it generates
//!
//! `max_tokens` content tokens (the script's
//! [`output_tokens`](Script::output_tokens) when unset, at most 131072),
//! drawn from a vocabulary of common English words that are each exactly one
//! `cl100k_base` token, so the client's count of the streamed text equals the
//! server's `completion_tokens`. A prompt holding a validation
//! [`Task`](crate::validate::Task) is answered with the task's answer (token
//! by token) and then stops with `finish_reason: "stop"`, unless `ignore_eos`
//! or `min_tokens` asks it to fill up to `max_tokens`.
//!
//! # When it sends
//!
//! A request is admitted when its body is read and it holds a concurrency
//! slot. Every event has an absolute deadline from that instant: the role
//! chunk at once, the first content event after
//! `ttft + ttft_per_prompt_token × prompt tokens`, each later event
//! `inter_token` per token after that, ± `jitter`. The whole response is
//! formatted before admission, so sending only waits and writes. The server
//! runs on its own thread and tokio runtime, so a client in the same process
//! does not share a scheduler with it, and a pacer thread wakes each stream
//! at its deadline with sub-millisecond precision (tokio's own timer is only
//! good to a millisecond, which would skew a 5 ms inter-token latency by
//! several percent).
//!
//! # Faults
//!
//! [`Script::fault`] injects a [`Fault`] on the requests a
//! [`FaultSchedule`] picks; [`Server::stats`] counts requests, injected
//! faults and the most requests in flight at once.
//!
//! # How it is built
//!
//! One piece a concern: the router and admission (`server.rs`), the
//! switchboard that maps a route to its protocol and the one trait every
//! protocol implements (`protocol.rs`), the only copy of the timing
//! (`schedule.rs`: first token, per-event deadlines, jitter), the lay-out
//! of a format's bytes on that schedule with the faults applied
//! (`timeline.rs`), the paced body (`body.rs`, `pacer.rs`), the
//! generated words (`generate.rs`), and `/metrics`: the counts in
//! `state.rs` (histograms in `histogram.rs`), fed as the body hands each
//! frame to the connection, named per server in `metrics.rs` and written in
//! the Prometheus text format by `exposition.rs`. Each protocol's file only reads its
//! request body and formats its bytes: `openai.rs` (also Azure's and
//! Vertex AI's OpenAI routes), `anthropic.rs`, `tgi.rs` (also the TGI
//! container inside SageMaker), `together.rs`, `vertex.rs` (Gemini) and
//! `sagemaker.rs` (SigV4 and the event-stream envelope, LMI lines). A new
//! protocol is one file implementing `Protocol` and one line in `route`.
//!
//! # Connections
//!
//! [`Script::connections`] picks how connections are kept or closed:
//! HTTP/1.1 keep-alive (the default), or as real servers close them
//! ([`Connections`]): llama.cpp's advertise-then-close, every reuse refused,
//! `Connection: close`, or Apache-style `Keep-Alive: timeout, max` limits.

mod anthropic;
mod azure;
mod body;
mod connection;
mod exposition;
mod generate;
mod histogram;
mod lateness;
mod metrics;
mod openai;
mod pacer;
mod protocol;
mod request;
mod sagemaker;
mod schedule;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod tgi;
mod timeline;
mod together;
mod vertex;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::spec::{Connections, Fault, FaultSchedule, MetricsStyle, Script};

use serde::Serialize;

use crate::workload::tokenizer::Tokenizer;
use state::State;

/// How long dropping a server waits for its thread, and its runtime for
/// blocking work, before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Connections the listener queues before they are accepted (the kernel
/// caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Counters the tests assert on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerStats {
    /// Requests received on the generation routes (including ones answered
    /// with an error).
    pub requests: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// The most generation requests admitted (generating) at once.
    pub max_in_flight: usize,
    /// Scripted events handed to connections.
    pub frames_sent: u64,
    /// Median lateness of an event against its scripted deadline, µs
    /// (10 µs buckets): the server's share of any timing error.
    pub send_lateness_p50_us: u64,
    /// 99th percentile of that lateness, µs.
    pub send_lateness_p99_us: u64,
    /// Largest lateness, µs.
    pub send_lateness_max_us: u64,
    /// Median lateness of each response's first generated event, µs: the
    /// server's own time to first token is its scheduled TTFT plus this.
    pub first_event_lateness_p50_us: u64,
    /// 99th percentile of that lateness, µs.
    pub first_event_lateness_p99_us: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Requests not answered because the script closes their connection
    /// ([`Connections::CloseOnReuse`], [`Connections::Limited`]).
    pub refused_requests: u64,
}

/// A running built-in endpoint.
///
/// It runs on its own thread with its own tokio runtime; dropping it (or
/// [`shutdown`](Server::shutdown)) stops accepting, drops every open
/// connection and joins the thread, waiting at most a couple of seconds.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    finished: Arc<(Mutex<bool>, Condvar)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Server {
    /// Starts the endpoint on a free port of 127.0.0.1.
    pub fn start(script: Script) -> std::io::Result<Server> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script)
    }

    /// Starts the endpoint on `addr` (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr, script: Script) -> std::io::Result<Server> {
        // Loading the tokenizer takes a while the first time in a process;
        // do it now rather than inside the first request's timing.
        Tokenizer::bundled();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(script.server_threads.max(1))
            .thread_name("llmperf-builtin")
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            // std's listener queues 128 connections: 512 clients connecting
            // at once overflowed it, and the dropped SYNs came back after
            // the kernel's 1 s retransmission timeout, as TTFT.
            socket.listen(LISTEN_BACKLOG)?
        };
        let addr = listener.local_addr()?;
        let pacer = pacer::Pacer::start()?;
        let state = Arc::new(State::new(script, pacer.handle()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let finished = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let state = Arc::clone(&state);
            let finished = Arc::clone(&finished);
            std::thread::Builder::new()
                .name("llmperf-builtin".to_string())
                .spawn(move || {
                    runtime.block_on(server::serve(listener, state, stopped));
                    // Drops every connection task; a stalled stream ends here.
                    runtime.shutdown_timeout(SHUTDOWN_GRACE);
                    drop(pacer);
                    let (done, signal) = &*finished;
                    *done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
                    signal.notify_all();
                })?
        };
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
            finished,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The root URL, `http://127.0.0.1:PORT`, under which every protocol's
    /// path is served.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counters so far.
    pub fn stats(&self) -> ServerStats {
        self.state.stats()
    }

    /// Stops the server; the same as dropping it.
    pub fn shutdown(self) {}

    /// Blocks until the server has stopped (for the `llmperf builtin` command,
    /// which serves until the process is interrupted).
    pub fn wait(&self) {
        let (done, signal) = &*self.finished;
        let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while !*done {
            done = signal
                .wait(done)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let (done, signal) = &*self.finished;
        let guard = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = signal
            .wait_timeout_while(guard, SHUTDOWN_GRACE * 2, |done| !*done)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let finished = *guard;
        drop(guard);
        if let Some(thread) = self.thread.take() {
            // Joining a finished thread is immediate; one still stuck after
            // the grace period is left to end on its own.
            if finished {
                let _ = thread.join();
            }
        }
    }
}
