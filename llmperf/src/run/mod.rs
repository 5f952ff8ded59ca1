//! One benchmark run, start to finish.
//!
//! Resolve the endpoint (starting the built-in one when nothing is
//! configured), plan every request from the seed, drive the load, turn
//! each finished exchange into a record on a collector thread (which also
//! appends it to `requests.jsonl` and moves the progress bar), then
//! summarize and write `summary.json`. Used by the `cargo bench` harness
//! and by `llmperf run` alike.

mod collector;
mod level;
mod scrape;
mod sweep;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::builtin::{Server, ServerStats};
use crate::endpoint::{self, EndpointKind, RequestExtras, Target};
use crate::load::{self, Stop};
use crate::metrics::{LevelResult, Summary};
use crate::record::RequestRecord;
use crate::results::{
    self, Environment, RecordWriter, ResultsError, RunMode, ScrapeWriter, SummaryFile, ToolInfo,
};
use crate::shard::{self, Shard, ShardInfo};
use crate::spec::{Benchmark, BenchmarkConfig, Level, Load, ServerMetrics, SpecError, Sweep};
use crate::transport::{Transport, TransportOptions};
use crate::workload::tokenizer::{Tokenizer, TokenizerError};
use crate::workload::WorkloadError;
use level::run_level;
use scrape::Scraper;
pub use sweep::AUTO_PROBE_TURNOVERS;
use sweep::{auto_probe, auto_rates};

pub use crate::endpoint::BUILTIN_MODEL;

/// How to run (as opposed to what: that is the [`Benchmark`]).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write `summary.json` and `requests.jsonl` (nothing written when unset).
    pub results_dir: Option<PathBuf>,
    /// Show a live progress bar (on a terminal).
    pub progress: bool,
    /// What started the run, recorded in the environment.
    pub mode: RunMode,
    /// Stop on Ctrl-C, keeping what finished.
    pub handle_interrupt: bool,
    /// Which share of the benchmark's load this process drives
    /// ([`crate::shard`]; `summary.json` says which); the whole of it when
    /// unset.
    pub shard: Option<Shard>,
    /// Prepare, then start sending at this wall-clock instant (shards
    /// starting together); a run ready later starts at once and says how late.
    pub start_at: Option<SystemTime>,
    /// Threads that send requests and read their streams (each a
    /// single-threaded runtime; requests are shared round-robin); by
    /// default [`crate::load::default_client_threads`].
    pub client_threads: Option<usize>,
    /// Keep no record in memory: [`RunOutcome::records`] is empty (they
    /// are in `requests.jsonl` when `results_dir` is set), and memory stays
    /// flat however many requests a long run finishes. The summary is the
    /// same either way: it is built as requests end.
    pub drop_records: bool,
}

impl RunOptions {
    /// The share of the load this process drives.
    pub fn shard(&self) -> Shard {
        self.shard.unwrap_or(shard::WHOLE)
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The summary as written.
    pub summary: SummaryFile,
    /// Every record, ordered by request id (none with
    /// [`RunOptions::drop_records`]).
    pub records: Vec<RequestRecord>,
    /// Whether any request (of any phase) succeeded.
    pub any_ok: bool,
    /// The error of the first failed request (lowest level, then id).
    pub first_failure: Option<crate::error::RequestError>,
    /// Counters of the built-in endpoint, when it served the run.
    pub builtin_stats: Option<ServerStats>,
    /// Where `summary.json` was written.
    pub summary_path: Option<PathBuf>,
}

/// Why a run could not happen (a request failing is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec has impossible values.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The workload could not be planned (a dataset that cannot be used).
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// Results could not be written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The built-in endpoint or the runtime could not start.
    #[error("cannot start {what}: {source}")]
    Start {
        /// What failed to start.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A part of the run panicked (a bug in llmperf or a user's code).
    #[error("the run failed inside {0}; this is a bug, please report it")]
    Panicked(&'static str),
}

/// The endpoint a run talks to.
struct Resolved {
    kind: &'static dyn EndpointKind,
    target: Target,
    /// The spec's extra headers and query parameters, variables read.
    extras: RequestExtras,
    /// The explicit proxy, variables read (never for the built-in endpoint).
    proxy: Option<String>,
    builtin: Option<Server>,
}

fn resolve(bench: &Benchmark) -> Result<Resolved, RunError> {
    let spec = &bench.endpoint;
    let kind = endpoint::find_kind(spec)?;
    let (prefix, configured) = endpoint::configured_base_url(spec, kind);
    let (base_url, builtin) = match configured {
        Some(url) => (url, None),
        None => {
            let server =
                Server::start(bench.builtin_script.clone()).map_err(|source| RunError::Start {
                    what: "the built-in endpoint",
                    source,
                })?;
            (
                kind.about().builtin_base_url(&server.root_url()),
                Some(server),
            )
        }
    };
    let target = endpoint::target(
        spec,
        kind,
        prefix,
        base_url,
        builtin.is_some(),
        bench.extra_body.clone(),
    )?;
    let extras = RequestExtras::resolve(spec)?;
    if extras.has_query() && kind.signs_url() {
        return Err(SpecError::new(format!(
            "the {} kind signs each request's URL, so extra query parameters (--query, \
             Endpoint::query) would invalidate the signature: remove them",
            kind.name()
        ))
        .into());
    }
    // Loopback traffic to the built-in endpoint never goes through a proxy.
    let proxy = match builtin {
        Some(_) => None,
        None => endpoint::explicit_proxy(spec)?,
    };
    Ok(Resolved {
        kind,
        target,
        extras,
        proxy,
        builtin,
    })
}

/// The spec's options, or its extra headers, as written into results:
/// values of those whose name says they are secret (`access_token`,
/// `api_key`, `authorization`, …; [`endpoint::is_secret_setting`]) are
/// replaced by `***`; a `*_command` option is a command line, kept. Any
/// other value is kept as given: for a header, the `${NAME}` template, not
/// its expansion, which may be a secret the name does not reveal.
fn recorded_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(name, value)| {
            let value = if endpoint::is_secret_setting(name) {
                "***".to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// The spec's extra query parameters as written into results: names,
/// every value `***` (as [`crate::spec::display_url`] masks the base
/// URL's).
fn recorded_query(query: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    query
        .keys()
        .map(|name| (name.clone(), "***".to_string()))
        .collect()
}

/// What every level of a run shares.
struct RunContext<'a> {
    id: &'a str,
    bench: &'a Benchmark,
    options: &'a RunOptions,
    tokenizer: &'static Tokenizer,
    kind: &'static dyn EndpointKind,
    target: Arc<Target>,
    extras: Arc<RequestExtras>,
    transport: Transport,
    workers: &'a load::Workers,
    t0: Instant,
    /// The wall clock at `t0` (shards line up by it).
    t0_wall: SystemTime,
    /// Set to stop sending (Ctrl-C, a stop condition, a write failure).
    stop: Arc<AtomicBool>,
    interrupted: Arc<AtomicBool>,
    /// Reads the server's metrics beside the run, when any are scraped.
    scraper: Option<Scraper>,
}

/// Builds one request and drops it, before the run's clock starts: a cloud
/// credential source starts on the first request built and the first
/// requests wait for its first answer (at most
/// [`FIRST_WAIT`](crate::endpoint::refreshed::FIRST_WAIT)), which would
/// otherwise fall inside the run and delay an open loop's first arrivals.
/// An error is left for the requests to record.
fn warm_credentials(resolved: &Resolved, transport: &Transport, tokenizer: &Tokenizer) {
    let plan = crate::workload::RequestPlan::new(
        0,
        vec![crate::workload::Message::user("warm up")],
        tokenizer,
    );
    let _ = resolved
        .kind
        .build_request(transport.request_builder(), &resolved.target, &plan);
}

/// Runs `bench` under the id `id`.
pub fn run_benchmark(
    id: &str,
    bench: &Benchmark,
    options: &RunOptions,
) -> Result<RunOutcome, RunError> {
    bench.check()?;
    // This process's share; the configuration recorded is the whole run's.
    let load = options.shard().load(&bench.load, bench.workload.turns)?;
    let tokenizer: &'static Tokenizer = match &bench.workload.tokenizer {
        Some(path) => Tokenizer::shared(path)?,
        None => Tokenizer::bundled(),
    };
    let resolved = resolve(bench)?;
    let slos = bench.slos();
    let config = BenchmarkConfig {
        endpoint_kind: resolved.kind.name().to_string(),
        base_url: crate::spec::display_url(&resolved.target.base_url),
        builtin_endpoint: resolved.builtin.is_some(),
        model: resolved.target.model.clone(),
        api_key_set: resolved.target.api_key.is_some(),
        workload: bench.workload.clone(),
        load: bench.load.clone(),
        validate: bench.validates(),
        seed: bench.seed,
        extra_body: bench.extra_body.clone(),
        builtin_script: resolved
            .builtin
            .as_ref()
            .map(|_| bench.builtin_script.clone()),
        tokenizer: tokenizer.name().to_string(),
        options: recorded_options(&bench.endpoint.options),
        slos: slos.clone(),
        regression: bench.regression.clone(),
        server_metrics: Some(ServerMetrics {
            urls: bench
                .server_metrics
                .urls
                .iter()
                .map(|url| crate::spec::display_url(url))
                .collect(),
            ..bench.server_metrics.clone()
        }),
        tls: bench.endpoint.tls.clone(),
        headers: recorded_options(&bench.endpoint.headers),
        query: recorded_query(&bench.endpoint.query),
        proxy: resolved.proxy.as_deref().map(crate::spec::display_url),
    };
    // First, so a CA or client certificate file that cannot be used stops
    // the run before anything is written or sent.
    let transport = build_transport(
        &load,
        resolved.builtin.is_some(),
        &bench.endpoint,
        resolved.proxy.clone(),
    )?;
    let mut writer = match &options.results_dir {
        Some(dir) => Some(RecordWriter::create(dir)?),
        None => None,
    };
    warm_credentials(&resolved, &transport, tokenizer);
    let t0 = Instant::now();
    let scraper = start_scraper(bench, &resolved, options, t0, &transport)?;
    let workers = load::Workers::start(
        options
            .client_threads
            .unwrap_or_else(load::default_client_threads),
    )
    .map_err(|source| RunError::Start {
        what: "the client threads",
        source,
    })?;
    let mut context = RunContext {
        id,
        bench,
        options,
        tokenizer,
        kind: resolved.kind,
        target: Arc::new(resolved.target),
        extras: Arc::new(resolved.extras),
        transport,
        workers: &workers,
        t0,
        t0_wall: SystemTime::now(),
        stop: Arc::new(AtomicBool::new(false)),
        interrupted: Arc::new(AtomicBool::new(false)),
        scraper,
    };
    if options.handle_interrupt {
        let (stop, interrupted) = (Arc::clone(&context.stop), Arc::clone(&context.interrupted));
        workers.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                interrupted.store(true, Ordering::Relaxed);
                eprintln!(
                    "\ninterrupted: finishing the requests in flight (Ctrl-C again to abort)"
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    // requests.jsonl already holds every finished request.
                    eprintln!("aborted");
                    std::process::exit(130);
                }
            }
        });
    }

    let started_at = humantime::format_rfc3339_seconds(context.t0_wall).to_string();
    let started_at_unix_us = context
        .t0_wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64);
    let mut ready_late = None;
    let mut pending: VecDeque<Level> = load.fixed_levels().into();
    let mut levels: Vec<LevelResult> = Vec::new();
    let mut records: Vec<RequestRecord> = Vec::new();
    let (mut any_ok, mut first_failure) = (false, None);
    while let Some(level) = pending.pop_front() {
        let index = levels.len() as u32;
        // An automatic sweep's max-throughput probe sends enough requests
        // for every slot to turn over several times, so the rate it
        // measures is the endpoint's, not the first wave's.
        let probe = auto_probe(&load, &level, &levels, options.mode);
        if let Some(probe) = &probe {
            if probe.requests > load.requests {
                let why = match level {
                    Level::Concurrency { .. } => format!(
                        "{AUTO_PROBE_TURNOVERS} per slot, so its rate is measured at full load"
                    ),
                    Level::Rate(_) => format!(
                        "sending for {AUTO_PROBE_TURNOVERS} times the max-throughput level's E2E p50, so its completed rate is more than its first requests'"
                    ),
                };
                eprintln!(
                    "{id} [{}]: the automatic sweep sends {} requests at this level, not {} ({why})",
                    level.label(),
                    probe.requests,
                    load.requests
                );
            }
        }
        let start_at = if index == 0 { options.start_at } else { None };
        let run = run_level(
            &context,
            probe.as_ref().unwrap_or(&load),
            level,
            index,
            writer.take(),
            start_at,
        )?;
        writer = run.writer;
        if let Some(late) = run.ready_late.filter(|late| !late.is_zero()) {
            ready_late = Some(late);
        }
        let sent = run.figures.summary.requests();
        any_ok |= run.figures.any_ok;
        if first_failure.is_none() {
            first_failure = run.figures.first_failure.clone().map(|(_, error)| error);
        }
        let mut result = run.figures.finish(index, level, run.stop.clone());
        result.server = run.server.map(|mut digest| {
            digest.compare_with(&result.summary, run.figures.tokens_received);
            digest
        });
        // Shown with the level's figures.
        result.notes.extend(run.server_notes);
        if let (Some(duration), Level::Concurrency { .. }, Stop::Completed) =
            (load.duration, level, &run.stop)
        {
            // The closed loop sent every request its count allowed before
            // its duration ran out.
            let note = format!(
                "this duration-limited closed loop sent all {} requests it planned before --duration {} ran out (with --duration a closed loop sends at most {} unless -r gives another count, up to {}): pass that -r to fill the duration",
                sent,
                humantime::format_duration(duration),
                crate::spec::DURATION_REQUEST_CAP,
                crate::spec::MAX_REQUESTS
            );
            eprintln!("{id} [{}]: {note}", level.label());
            result.notes.push(note);
        }
        if let (Some(_), Level::Concurrency { concurrency }) = (&probe, level) {
            // Fewer requests than planned completed (a duration, failures).
            let per_slot = result.summary.requests.completed as f64 / concurrency as f64;
            if per_slot < AUTO_PROBE_TURNOVERS as f64 {
                result.notes.push(format!(
                    "this max-throughput level completed {} requests, {per_slot:.1} per slot (fewer than {AUTO_PROBE_TURNOVERS}): its rate may understate the endpoint's maximum, and the open-loop rates are spread below it; give it more time (--duration) or fewer failures",
                    result.summary.requests.completed
                ));
            }
        }
        levels.push(result);
        records.extend(run.records);
        if run.stop.ends_run() {
            break;
        }
        if let Some(Sweep::Auto { rates, .. }) = &load.sweep {
            if levels.len() == 2 {
                pending.extend(auto_rates(&load, &levels, *rates));
            }
        }
    }
    let interrupted = context.interrupted.load(Ordering::Relaxed);
    if let Some(scraper) = context.scraper.take() {
        for note in scraper.finish() {
            if options.mode != RunMode::Test {
                eprintln!("{id}: note: {note}");
            }
        }
    }
    drop(context);
    drop(workers);
    records.sort_by_key(|r| (r.level, r.id));
    let shard = options.shard.map(|shard| ShardInfo {
        index: shard.index,
        count: shard.count,
        start_at: options
            .start_at
            .map(|at| humantime::format_rfc3339_millis(at).to_string()),
        ready_late_ms: ready_late.map(|late| late.as_secs_f64() * 1e3),
    });
    let summary = results::assemble(
        SummaryFile {
            schema_version: results::SCHEMA_VERSION,
            tool: ToolInfo::default(),
            benchmark: id.to_string(),
            started_at,
            started_at_unix_us: Some(started_at_unix_us),
            interrupted,
            config,
            environment: Environment::current(options.mode),
            summary: Summary::of(&[]),
            headline_level: 0,
            levels: Vec::new(),
            sweep: None,
            shard,
            merged: None,
        },
        levels,
    );
    let summary_path = match &options.results_dir {
        Some(dir) => Some(results::write_summary(dir, &summary)?),
        None => None,
    };
    let builtin_stats = resolved.builtin.as_ref().map(Server::stats);
    Ok(RunOutcome {
        summary,
        records,
        any_ok,
        first_failure,
        builtin_stats,
        summary_path,
    })
}

/// Starts scraping the server's metrics, when the benchmark asks for it
/// (the default) and there is somewhere to look: the URLs given, else
/// `/metrics` at the endpoint's origin unless it is a managed service.
fn start_scraper(
    bench: &Benchmark,
    resolved: &Resolved,
    options: &RunOptions,
    t0: Instant,
    transport: &Transport,
) -> Result<Option<Scraper>, RunError> {
    let spec = &bench.server_metrics;
    if !spec.enabled {
        return Ok(None);
    }
    let base = &resolved.target.base_url;
    let urls = if spec.urls.is_empty() {
        endpoint::discovered_metrics_url(resolved.kind, base)
            .into_iter()
            .collect()
    } else {
        spec.urls.clone()
    };
    if urls.is_empty() {
        return Ok(None);
    }
    let origin = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    let sources = urls
        .into_iter()
        .map(|url| {
            // The endpoint's key goes only to its own origin (llama.cpp
            // guards /metrics with it; vLLM, SGLang and TGI ignore it).
            let bearer = (origin(&url) == origin(base))
                .then_some(resolved.target.api_key.as_ref())
                .flatten()
                .map(|key| key.expose().to_string());
            scrape::Source {
                shown: crate::spec::display_url(&url),
                url,
                bearer,
            }
        })
        .collect();
    let writer = match &options.results_dir {
        Some(dir) => Some(ScrapeWriter::create(dir)?),
        None => None,
    };
    Scraper::start(
        sources,
        spec.interval,
        t0,
        writer,
        match (&resolved.builtin, &resolved.proxy) {
            (Some(_), _) => scrape::ScrapeProxy::None,
            (None, Some(url)) => scrape::ScrapeProxy::Explicit(url.clone()),
            (None, None) => scrape::ScrapeProxy::Environment,
        },
        transport.tls_config(),
    )
    .map(Some)
    .map_err(|source| RunError::Start {
        what: "the server-metrics scraper",
        source,
    })
}

fn build_transport(
    load: &Load,
    builtin: bool,
    endpoint: &crate::spec::Endpoint,
    proxy: Option<String>,
) -> Result<Transport, RunError> {
    // One connection per request in flight: keep as many idle ones (an
    // open loop without a cap keeps what its peak needed).
    let capped = load
        .fixed_levels()
        .iter()
        .all(|l| l.max_in_flight().is_some());
    let most_in_flight = load
        .fixed_levels()
        .iter()
        .map(|level| level.max_in_flight().unwrap_or(1 << 16))
        .max()
        .unwrap_or(1);
    // Every connection is an open file (two with the built-in endpoint in
    // this process): take the most the system allows, and say so when the
    // load cannot fit (an uncapped open loop's peak is not known ahead).
    if let Some(limit) = crate::transport::open_files::raise() {
        let connections = most_in_flight as u64 * if builtin { 2 } else { 1 };
        if let Some(warning) =
            crate::transport::open_files::shortfall(&limit, connections).filter(|_| capped)
        {
            eprintln!("warning: {warning}");
        }
    }
    Transport::new(TransportOptions {
        max_idle_per_origin: most_in_flight,
        connect_timeout: Duration::from_secs(10),
        // Loopback traffic to the built-in endpoint never goes through a proxy.
        env_proxies: !builtin,
        proxy,
        tls: endpoint.tls().clone(),
    })
    .map_err(RunError::Client)
}
