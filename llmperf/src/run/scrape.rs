//! The scraper: the server's Prometheus metrics, read at a fixed interval
//! on a thread of its own from before a run's first request to after its
//! last, written to `server_metrics.jsonl` and digested per level.
//!
//! It never touches the benchmark's transport: its own small HTTP client,
//! its own connections, its own thread and runtime, so a slow or missing
//! metrics endpoint cannot delay a request or take a slot. A level's
//! window opens with a scrape taken just before its first request and
//! closes with one taken just after its last ended, so counters cover the
//! level exactly; those two scrapes wait at most [`SCRAPE_TIMEOUT`], and
//! only when the source answered before.
//!
//! A source that fails its first scrape (nothing listening, a 404, a page
//! that is not Prometheus text) is given up with a one-line note; a source
//! that answered before and then fails is retried every round and counted
//! in the digest's `failed_scrapes`.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::server::{Exposition, ServerDigest, Tracker, Window};
use crate::results::{ScrapeLine, ScrapeWriter};

/// The longest one scrape may take (connecting included).
pub(crate) const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest response read from a metrics endpoint; vLLM's is tens of
/// kilobytes.
const MAX_SCRAPE_BYTES: usize = 16 << 20;

/// What the scraper is told; each answers with the notes new since.
enum Command {
    /// Scrape now and open a level's window.
    Begin {
        level: u32,
        done: mpsc::Sender<Vec<String>>,
    },
    /// Scrape now and close the window: its digest.
    End {
        done: mpsc::Sender<(Option<ServerDigest>, Vec<String>)>,
    },
}

/// Which proxy the scraper goes through: the benchmark's own.
pub(crate) enum ScrapeProxy {
    /// None (the built-in endpoint is never proxied).
    None,
    /// What the environment configures (`HTTPS_PROXY`, `NO_PROXY`, …).
    Environment,
    /// The endpoint's explicit proxy (`--proxy`), whatever the environment says.
    Explicit(String),
}

/// One metrics endpoint.
pub(crate) struct Source {
    /// Where it is (credentials and all).
    pub(crate) url: String,
    /// As shown and stored.
    pub(crate) shown: String,
    /// A bearer key to send (the endpoint's own, for a same-origin source).
    pub(crate) bearer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Not scraped yet.
    New,
    /// Answered at least once.
    Up,
    /// Failed its first scrape: not scraped again.
    GivenUp,
}

/// What a finished scraper hands back.
pub(crate) struct Scraped {
    /// One line each: sources given up, a file that could not be written.
    pub(crate) notes: Vec<String>,
}

/// A running scraper.
pub(crate) struct Scraper {
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<Scraped>>,
}

impl Scraper {
    /// Starts scraping `sources` every `interval`, on the clock that
    /// starts at `t0`, writing every scrape with `writer`. The first round
    /// runs at once. `proxy` and `tls` are the benchmark's own (the same
    /// proxy, trust and client certificate).
    pub(crate) fn start(
        sources: Vec<Source>,
        interval: Duration,
        t0: Instant,
        writer: Option<ScrapeWriter>,
        proxy: ScrapeProxy,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Scraper> {
        let (commands, received) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("llmperf-scraper".into())
            .spawn(move || {
                let mut state = match State::new(sources, t0, writer, proxy, &tls) {
                    Ok(state) => state,
                    Err(note) => return Scraped { notes: vec![note] },
                };
                state.run(interval, received);
                Scraped { notes: state.notes }
            })?;
        Ok(Scraper {
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    /// Scrapes at once and opens level `level`'s window; returns when that
    /// scrape is done (at most [`SCRAPE_TIMEOUT`] later), with the notes
    /// new since the last call (a source given up).
    pub(crate) fn begin_level(&self, level: u32) -> Vec<String> {
        let (done, wait) = mpsc::channel();
        let Some(commands) = &self.commands else {
            return Vec::new();
        };
        if commands.send(Command::Begin { level, done }).is_err() {
            return Vec::new();
        }
        wait.recv().unwrap_or_default()
    }

    /// Scrapes at once and closes the level's window: its digest, if any
    /// source answered, and the notes new since the last call.
    pub(crate) fn end_level(&self) -> (Option<ServerDigest>, Vec<String>) {
        let (done, wait) = mpsc::channel();
        let Some(commands) = &self.commands else {
            return (None, Vec::new());
        };
        if commands.send(Command::End { done }).is_err() {
            return (None, Vec::new());
        }
        wait.recv().unwrap_or_default()
    }

    /// Takes a last scrape and stops: the notes gathered.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<String> {
        self.commands.take();
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .map(|scraped| scraped.notes)
            .unwrap_or_default()
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The scraper thread's state.
struct State {
    sources: Vec<Source>,
    health: Vec<Health>,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    t0: Instant,
    writer: Option<ScrapeWriter>,
    tracker: Tracker,
    round: u64,
    level: Option<u32>,
    window: Option<Window>,
    notes: Vec<String>,
}

/// One source's answer.
type Answer = Result<(String, Duration), String>;

impl State {
    fn new(
        sources: Vec<Source>,
        t0: Instant,
        writer: Option<ScrapeWriter>,
        proxy: ScrapeProxy,
        tls: &rustls::ClientConfig,
    ) -> Result<State, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("server metrics not scraped: cannot start a runtime: {e}"))?;
        let mut client = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .timeout(SCRAPE_TIMEOUT)
            .connect_timeout(SCRAPE_TIMEOUT)
            .pool_max_idle_per_host(1)
            .user_agent(concat!(
                "llmperf/",
                env!("CARGO_PKG_VERSION"),
                " (server metrics)"
            ));
        client = match proxy {
            ScrapeProxy::None => client.no_proxy(),
            ScrapeProxy::Environment => client,
            ScrapeProxy::Explicit(url) => client.proxy(reqwest::Proxy::all(url).map_err(|_| {
                "server metrics not scraped: the proxy URL is not one reqwest can use".to_string()
            })?),
        };
        let client = client
            .build()
            .map_err(|e| format!("server metrics not scraped: cannot build a client: {e}"))?;
        let count = sources.len();
        Ok(State {
            health: vec![Health::New; count],
            sources,
            runtime,
            client,
            t0,
            writer,
            tracker: Tracker::new(count),
            round: 0,
            level: None,
            window: None,
            notes: Vec::new(),
        })
    }

    fn run(&mut self, interval: Duration, commands: mpsc::Receiver<Command>) {
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Begin { level, done }) => {
                    self.level = Some(level);
                    self.window = Some(Window::default());
                    self.scrape_round();
                    let _ = done.send(std::mem::take(&mut self.notes));
                }
                Ok(Command::End { done }) => {
                    self.scrape_round();
                    let digest = self.window.take().and_then(|window| {
                        let shown: Vec<String> =
                            self.sources.iter().map(|s| s.shown.clone()).collect();
                        window.digest(&shown)
                    });
                    self.level = None;
                    let _ = done.send((digest, std::mem::take(&mut self.notes)));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.scrape_round();
                    next += interval;
                    // A round slower than the interval: the next one now.
                    next = next.max(Instant::now());
                }
                // The run ended: one last scrape, after its last request.
                Err(RecvTimeoutError::Disconnected) => {
                    self.scrape_round();
                    return;
                }
            }
            if self.health.iter().all(|h| *h == Health::GivenUp) {
                // Nothing to scrape: answer commands until the run ends.
                for command in commands.iter() {
                    match command {
                        Command::Begin { done, .. } => {
                            let _ = done.send(std::mem::take(&mut self.notes));
                        }
                        Command::End { done } => {
                            let _ = done.send((None, std::mem::take(&mut self.notes)));
                        }
                    }
                }
                return;
            }
        }
    }

    /// Scrapes every live source at once, records and tracks the answers.
    fn scrape_round(&mut self) {
        let live: Vec<usize> = (0..self.sources.len())
            .filter(|&i| self.health[i] != Health::GivenUp)
            .collect();
        if live.is_empty() {
            return;
        }
        let started = Instant::now();
        let answers: Vec<(usize, Answer, Instant)> = self.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for &i in &live {
                let client = self.client.clone();
                let (url, bearer) = (self.sources[i].url.clone(), self.sources[i].bearer.clone());
                set.spawn(async move {
                    let answer = fetch(&client, &url, bearer.as_deref()).await;
                    (i, answer, Instant::now())
                });
            }
            let mut answers = Vec::with_capacity(live.len());
            while let Some(joined) = set.join_next().await {
                if let Ok(answer) = joined {
                    answers.push(answer);
                }
            }
            answers.sort_by_key(|(i, _, _)| *i);
            answers
        });
        let ended = Instant::now();
        let mut failed = 0;
        for (i, answer, at) in answers {
            let t_us = at.saturating_duration_since(self.t0).as_micros() as u64;
            let first = self.health[i] == Health::New;
            let mut line = ScrapeLine {
                round: self.round,
                source: i as u32,
                t_us,
                level: self.level,
                url: first.then(|| self.sources[i].shown.clone()),
                duration_ms: None,
                new: Vec::new(),
                values: Vec::new(),
                error: None,
            };
            let parsed = answer.and_then(|(text, took)| {
                let exposition = Exposition::parse(&text);
                if exposition.is_metrics() {
                    Ok((exposition, took))
                } else {
                    Err(not_metrics(&exposition))
                }
            });
            match parsed {
                Ok((exposition, took)) => {
                    let (values, new) = self.tracker.number(i, &exposition);
                    self.tracker.observe(i, &values);
                    self.health[i] = Health::Up;
                    line.duration_ms = Some(took.as_secs_f64() * 1e3);
                    line.new = new;
                    line.values = values;
                }
                Err(error) => {
                    self.tracker.failed(i);
                    if first {
                        self.health[i] = Health::GivenUp;
                        self.notes.push(format!(
                            "no server metrics at {}: {error} (--server-metrics URL names the metrics endpoint, --no-server-metrics stops looking)",
                            self.sources[i].shown
                        ));
                    } else {
                        failed += 1;
                    }
                    line.error = Some(error);
                }
            }
            self.write(&line);
        }
        self.round += 1;
        let midpoint = started + (ended - started) / 2;
        let point = self
            .tracker
            .point(midpoint.saturating_duration_since(self.t0).as_micros() as u64);
        if let Some(window) = &mut self.window {
            if point.up > 0 {
                window.add(point, failed);
            } else {
                window.add_failed(failed);
            }
        }
    }

    fn write(&mut self, line: &ScrapeLine) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        if let Err(error) = writer.write(line) {
            self.notes
                .push(format!("server metrics not written further: {error}"));
            self.writer = None;
        }
    }
}

/// Why a response is not metrics.
fn not_metrics(exposition: &Exposition) -> String {
    match &exposition.first_bad {
        Some((line, start)) => format!(
            "the response is not Prometheus text (line {line}: {:?})",
            crate::error::excerpt(start, 60)
        ),
        None => "the response holds no metrics".to_string(),
    }
}

/// GETs `url`: the text and how long it took, or why not.
async fn fetch(client: &reqwest::Client, url: &str, bearer: Option<&str>) -> Answer {
    let started = Instant::now();
    // Plain text (not OpenMetrics): one stable format from
    // prometheus_client's content negotiation; both are read anyway.
    let mut request = client.get(url).header(
        reqwest::header::ACCEPT,
        "text/plain;version=0.0.4;q=1,*/*;q=0.1",
    );
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
    if html {
        return Err("the response is an HTML page, not Prometheus text".to_string());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_SCRAPE_BYTES {
            return Err(format!(
                "the response is larger than {} MiB",
                MAX_SCRAPE_BYTES >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((
        String::from_utf8_lossy(&body).into_owned(),
        started.elapsed(),
    ))
}

/// A client error in a line, without the URL (the note names it).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        format!(
            "no answer within {}",
            humantime::format_duration(SCRAPE_TIMEOUT)
        )
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut cause = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(inner) = cause {
        deepest = Some(inner.to_string());
        cause = inner.source();
    }
    match deepest {
        Some(detail) => format!("{what} ({detail})"),
        None => what,
    }
}
