//! One benchmark run, start to finish.
//!
//! Resolve the endpoint (starting the built-in one when nothing is
//! configured), plan every request from the seed, drive the load, turn
//! each finished exchange into a record on a collector thread (which also
//! appends it to `requests.jsonl` and moves the progress bar), then
//! summarize and write `summary.json`. Used by the `cargo bench` harness
//! and by `llmperf run` alike.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::builtin::{Server, ServerStats};
use crate::endpoint::reader::{self, Exchange, Limits};
use crate::endpoint::{self, EndpointKind, Target};
use crate::load::{self, arrival, Dispatch, Feed, Phase, Phases, Stop};
use crate::metrics::{LevelResult, SloBuilder, Summary, SummaryBuilder, SweepSummary};
use crate::record::{RecordContext, RequestRecord, Scheduling};
use crate::results::{
    self, Environment, RecordWriter, ResultsError, RunMode, SummaryFile, ToolInfo,
};
use crate::shard::{self, Shard, ShardInfo};
use crate::spec::{
    Arrival, Benchmark, BenchmarkConfig, Level, Load, Rate, SpecError, Sweep,
    MIN_REQUESTS_FOR_ERROR_RATE,
};
use crate::transport::{Transport, TransportOptions};
use crate::workload::tokenizer::{Tokenizer, TokenizerError};
use crate::workload::{Planner, RequestPlan, WorkloadError};

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
    pub first_failure: Option<crate::endpoint::RequestError>,
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
    Ok(Resolved {
        kind,
        target,
        builtin,
    })
}

/// The spec's options as written into results: values of options whose
/// name says they are secret (`access_token`, `api_key`, …) are replaced
/// by `***`; a `*_command` option is a command line, kept.
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

/// One finished request, on its way to the collector.
struct Finished {
    /// The plan's index in the level's plan order.
    index: usize,
    /// The plan as sent (a later turn of a conversation carries the
    /// history).
    plan: RequestPlan,
    dispatch: Dispatch,
    exchange: Exchange,
}

/// The text a response carried (a conversation's next turn quotes it).
fn answer_text(exchange: &Exchange) -> String {
    exchange.content.text().to_string()
}

/// What every level of a run shares.
struct RunContext<'a> {
    id: &'a str,
    bench: &'a Benchmark,
    options: &'a RunOptions,
    tokenizer: &'static Tokenizer,
    kind: &'static dyn EndpointKind,
    target: Arc<Target>,
    transport: Transport,
    workers: &'a load::Workers,
    t0: Instant,
    /// The wall clock at `t0` (shards line up by it).
    t0_wall: SystemTime,
    /// Set to stop sending (Ctrl-C, a stop condition, a write failure).
    stop: Arc<AtomicBool>,
    interrupted: Arc<AtomicBool>,
}

/// One level as run: its figures, its records (unless dropped) and why it ended.
struct LevelRun {
    figures: LevelFigures,
    records: Vec<RequestRecord>,
    stop: Stop,
    writer: Option<RecordWriter>,
    /// How late it was ready for its start time (`start_at`).
    ready_late: Option<Duration>,
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
        regression: bench.regression,
    };
    let mut writer = match &options.results_dir {
        Some(dir) => Some(RecordWriter::create(dir)?),
        None => None,
    };
    let transport = build_transport(&load, resolved.builtin.is_some())?;
    let workers = load::Workers::start(
        options
            .client_threads
            .unwrap_or_else(load::default_client_threads),
    )
    .map_err(|source| RunError::Start {
        what: "the client threads",
        source,
    })?;
    let context = RunContext {
        id,
        bench,
        options,
        tokenizer,
        kind: resolved.kind,
        target: Arc::new(resolved.target),
        transport,
        workers: &workers,
        t0: Instant::now(),
        t0_wall: SystemTime::now(),
        stop: Arc::new(AtomicBool::new(false)),
        interrupted: Arc::new(AtomicBool::new(false)),
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
    let summary = assemble(
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

/// A level's result from its records (every phase; the statistics take
/// the measured ones): its summary and objectives. Shared by a run and a
/// merge of shards, so both compute the same figures the same way.
pub(crate) fn level_result(
    index: u32,
    level: Level,
    stop: Stop,
    records: &[RequestRecord],
    slos: &[crate::spec::Slo],
) -> LevelResult {
    let mut figures = LevelFigures::new(slos);
    for record in records {
        figures.add(record);
    }
    figures.finish(index, level, stop)
}

/// A level's figures, built as its requests end (in any order, in memory
/// that does not grow with them: see [`SummaryBuilder`]).
struct LevelFigures {
    summary: SummaryBuilder,
    slo: SloBuilder,
    any_ok: bool,
    /// The failed request with the lowest id, and its error.
    first_failure: Option<(u64, crate::endpoint::RequestError)>,
}

impl LevelFigures {
    fn new(slos: &[crate::spec::Slo]) -> LevelFigures {
        LevelFigures {
            summary: SummaryBuilder::default(),
            slo: SloBuilder::new(slos),
            any_ok: false,
            first_failure: None,
        }
    }

    fn add(&mut self, record: &RequestRecord) {
        self.summary.add(record);
        if record.phase == Phase::Measured {
            self.slo.add(record);
        }
        self.any_ok |= record.ok;
        if let Some(error) = record.error.as_ref().filter(|_| !record.ok) {
            if self
                .first_failure
                .as_ref()
                .is_none_or(|(id, _)| record.id < *id)
            {
                self.first_failure = Some((record.id, error.clone()));
            }
        }
    }

    fn finish(&self, index: u32, level: Level, stop: Stop) -> LevelResult {
        let summary = self.summary.finish();
        let slo = self.slo.finish(summary.throughput.window_s);
        LevelResult {
            index,
            level,
            stop,
            summary,
            slo,
            notes: Vec::new(),
        }
    }
}

/// `file` with `levels` in place: the sweep's curve and knee (a sweep),
/// and the headline level and its summary.
pub(crate) fn assemble(mut file: SummaryFile, levels: Vec<LevelResult>) -> SummaryFile {
    let sweep = file
        .config
        .load
        .sweep
        .as_ref()
        .map(|_| SweepSummary::of(&levels, &file.config.slos));
    let headline = sweep.as_ref().and_then(|s| s.knee).unwrap_or(0);
    file.summary = levels
        .iter()
        .find(|l| l.index == headline)
        .map(|l| l.summary.clone())
        .unwrap_or_else(|| Summary::of(&[]));
    file.headline_level = headline;
    file.levels = levels;
    file.sweep = sweep;
    file
}

/// Requests per slot an automatic sweep's max-throughput level sends at least.
pub const AUTO_PROBE_TURNOVERS: u64 = 5;

/// The most requests an automatic sweep's open-loop level is sized up to.
const AUTO_LEVEL_MAX_REQUESTS: u64 = 10_000;

/// The load of an automatic sweep's level, sized so what it measures is
/// real: its max-throughput level (the closed level above one in flight)
/// sends at least [`AUTO_PROBE_TURNOVERS`] requests per slot; an open-loop
/// level sends for at least that many times the max-throughput level's E2E
/// p50 (at most [`AUTO_LEVEL_MAX_REQUESTS`]), so its completed rate is not
/// just its first requests'. `None` for other levels, and in smoke tests.
fn auto_probe(load: &Load, level: &Level, measured: &[LevelResult], mode: RunMode) -> Option<Load> {
    if !matches!(load.sweep, Some(Sweep::Auto { .. })) || mode == RunMode::Test {
        return None;
    }
    let least = match level {
        Level::Concurrency { concurrency } if *concurrency > 1 => {
            AUTO_PROBE_TURNOVERS.saturating_mul(*concurrency as u64)
        }
        Level::Rate(rate) => {
            let e2e_s = measured.get(1)?.summary.e2e_ms?.p50 / 1e3;
            let least = (rate.per_s * AUTO_PROBE_TURNOVERS as f64 * e2e_s).ceil();
            (least.is_finite() && least > 0.0)
                .then(|| (least as u64).min(AUTO_LEVEL_MAX_REQUESTS))?
        }
        Level::Concurrency { .. } => return None,
    };
    let mut probe = load.clone();
    probe.requests = probe.requests.max(least);
    Some(probe)
}

/// The open-loop levels of an automatic sweep, once its synchronous and
/// max-throughput levels ran: `rates` rates spread evenly between the
/// completed-request rates those two measured (both ends excluded).
fn auto_rates(load: &Load, levels: &[LevelResult], rates: usize) -> Vec<Level> {
    let measured = |level: &LevelResult| level.summary.throughput.requests_per_minute / 60.0;
    let low = levels.first().map_or(0.0, measured);
    let high = levels.get(1).map_or(0.0, measured).max(low);
    if high <= 0.0 {
        // Nothing completed: there is no range to spread rates over.
        eprintln!(
            "the automatic sweep measured no completed requests at its first two levels: no open-loop levels to run"
        );
        return Vec::new();
    }
    let template = load.rate.unwrap_or(Rate {
        per_s: 1.0,
        arrival: Arrival::Poisson,
        max_in_flight: None,
        ramp_up: None,
    });
    (1..=rates)
        .map(|k| {
            let per_s = if high > low {
                low + (high - low) * k as f64 / (rates + 1) as f64
            } else {
                // Nothing measured apart: spread up to the synchronous rate.
                low * k as f64 / rates as f64
            };
            Level::Rate(Rate { per_s, ..template })
        })
        .collect()
}

/// Runs one level: plans its requests, drives them, collects the records.
fn run_level(
    context: &RunContext<'_>,
    load: &Load,
    level: Level,
    index: u32,
    mut writer: Option<RecordWriter>,
    start_at: Option<SystemTime>,
) -> Result<LevelRun, RunError> {
    let bench = context.bench;
    // With multi-turn conversations a unit of load is a conversation: an
    // open loop's rate is conversations per second, and its phases count
    // conversations (a closed loop phases requests by plan index).
    let turns = u64::from(bench.workload.turns.max(1));
    let open = matches!(level, Level::Rate(_));
    let phases = Phases::of(load, &level, if open { turns } else { 1 });
    // Each level gets its own prompts: a server's prefix cache must not
    // serve one level from another's requests.
    let seed = bench.seed.wrapping_add(u64::from(index));
    let offsets = match level {
        Level::Rate(rate) => Some(arrival::schedule_phased(
            &rate,
            phases.measured_end_index(),
            phases.measured_end_time(),
            load.cooldown_requests.div_ceil(turns),
            // Each shard's arrivals are an independent stream, started
            // its share of a gap in.
            context.options.shard().seed(seed),
            context.options.shard().arrival_phase(),
        )),
        Level::Concurrency { .. } => None,
    };
    // The schedule ended at the duration rather than at its count.
    let schedule_cut_by_time = offsets.as_ref().is_some_and(|o| {
        phases.measured_end_time().is_some_and(|end| {
            (o.iter().filter(|at| **at < end).count() as u64) < phases.measured_end_index()
        })
    });
    let count = match &offsets {
        Some(offsets) => offsets.len() as u64 * turns,
        None => phases
            .measured_end_index()
            .saturating_add(load.cooldown_requests),
    };
    let (planner, dataset) = Planner::new(
        &bench.workload,
        bench.validates(),
        count,
        seed,
        context.options.shard(),
        context.tokenizer,
    )?;
    if let Some(report) = dataset.filter(|r| r.dropped() > 0) {
        if context.options.mode != RunMode::Test && index == 0 {
            eprintln!("{}: dataset {report}", context.id);
        }
    }
    let numbers = planner.numbers();
    // The units an open loop sends: one per arrival (a conversation's
    // turns follow its first); a closed loop sends until the plans run out.
    let units_at_most = match &offsets {
        Some(offsets) => offsets.len(),
        None => usize::try_from(count).unwrap_or(usize::MAX),
    };
    // Planned ahead while the level runs: enough for every slot of a
    // closed loop to start at once, and a margin for an open loop's bursts.
    let ahead = level
        .max_in_flight()
        .unwrap_or(0)
        .saturating_mul(2)
        .max(PLANNED_AHEAD)
        .min(units_at_most.max(1));
    let feed = Arc::new(
        Feed::start(planner, ahead).map_err(|source| RunError::Start {
            what: "the planner thread",
            source,
        })?,
    );
    let progress = context.options.progress.then(|| {
        let prefix = if load.sweep.is_some() {
            format!("{} [{}]", context.id, level.label())
        } else {
            context.id.to_string()
        };
        // A duration-limited closed loop's count is only a bound.
        let known = open || load.duration.is_none();
        progress_bar(&prefix, known.then_some(count))
    });
    // Everything is ready: wait for the agreed start.
    let ready_late = start_at.map(|at| shard::wait_until(at, &context.stop));
    if let Some(late) = ready_late.filter(|late| !late.is_zero()) {
        eprintln!(
            "{}: ready {:.0} ms after --start-at: starting at once (this shard's load overlaps the others' less)",
            context.id,
            late.as_secs_f64() * 1e3
        );
    }
    // Open loops start a moment ahead so the first send is not late by
    // the dispatcher's own start.
    let level_start = Instant::now()
        + match level {
            Level::Rate(_) => OPEN_LOOP_LEAD,
            Level::Concurrency { .. } => Duration::ZERO,
        };
    let error_stop: Arc<std::sync::Mutex<Option<Stop>>> = Arc::default();
    let (sender, receiver) = mpsc::channel::<Finished>();
    let collector = {
        let progress = progress.clone();
        let stop = Arc::clone(&context.stop);
        let error_stop = Arc::clone(&error_stop);
        let (t0, tokenizer, shard) = (context.t0, context.tokenizer, context.options.shard());
        let (max_errors, max_error_rate) = (load.max_errors, load.max_error_rate);
        let slos = context.bench.slos();
        let drop_records = context.options.drop_records;
        std::thread::Builder::new()
            .name("llmperf-collector".into())
            .spawn(move || -> (LevelFigures, Vec<RequestRecord>, Option<RecordWriter>, Option<ResultsError>) {
                let record_context = RecordContext {
                    t0,
                    tokenizer,
                    numbers,
                    shard,
                };
                let mut figures = LevelFigures::new(&slos);
                let mut records = Vec::new();
                let mut write_error = None;
                let mut failed = 0u64;
                for finished in receiver {
                    let since_start = finished
                        .dispatch
                        .scheduled_at
                        .saturating_duration_since(level_start);
                    let scheduling = Scheduling {
                        scheduled_at: finished.dispatch.scheduled_at,
                        queued: finished.dispatch.queued,
                        level: index,
                        // Open loops phase whole units (conversations).
                        phase: phases.phase(
                            if open {
                                finished.dispatch.index as u64
                            } else {
                                finished.index as u64
                            },
                            since_start,
                        ),
                    };
                    let record = RequestRecord::from_exchange(
                        &finished.plan,
                        &scheduling,
                        &finished.exchange,
                        &record_context,
                    );
                    if let Some(out) = writer.as_mut() {
                        if let Err(error) = out.write(&record) {
                            // The results cannot be kept: stop sending, and
                            // report the error once the requests in flight end.
                            stop.store(true, Ordering::Relaxed);
                            write_error = Some(error);
                            writer = None;
                        }
                    }
                    failed += u64::from(!record.ok);
                    figures.add(&record);
                    if !drop_records {
                        records.push(record);
                    }
                    let finished_count = figures.summary.requests();
                    let tripped = if max_errors.is_some_and(|limit| failed >= limit) {
                        Some(Stop::MaxErrors { errors: failed })
                    } else {
                        let rate = failed as f64 / finished_count as f64;
                        max_error_rate
                            .filter(|&limit| {
                                finished_count >= MIN_REQUESTS_FOR_ERROR_RATE && rate > limit
                            })
                            .map(|_| Stop::MaxErrorRate {
                                error_rate: rate,
                                finished: finished_count,
                            })
                    };
                    if let Some(tripped) = tripped {
                        if let Ok(mut slot) = error_stop.lock() {
                            if slot.is_none() {
                                *slot = Some(tripped);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    if let Some(bar) = &progress {
                        bar.set_message(format!("{failed} errors"));
                        bar.inc(1);
                    }
                }
                (figures, records, writer, write_error)
            })
            .map_err(|source| RunError::Start {
                what: "the collector thread",
                source,
            })?
    };

    let limits = Limits {
        timeout: load.timeout,
        stall_timeout: load.stall_timeout,
        max_event_bytes: load.max_event_bytes,
    };
    let issue = {
        let feed = Arc::clone(&feed);
        let target = Arc::clone(&context.target);
        let transport = context.transport.clone();
        let (kind, tokenizer) = (context.kind, context.tokenizer);
        let stop = Arc::clone(&context.stop);
        move |dispatch: Dispatch| {
            // An open loop's dispatcher takes its unit here, so units go
            // out in plan order; a closed loop's slot waits for one below.
            let taken = open.then(|| feed.take_blocking());
            let feed = Arc::clone(&feed);
            let target = Arc::clone(&target);
            let transport = transport.clone();
            let sender = sender.clone();
            let stop = Arc::clone(&stop);
            async move {
                let unit = match taken {
                    Some(unit) => unit,
                    None => feed.take().await,
                };
                let Some(unit) = unit else {
                    return false;
                };
                let turns = unit.plans.len();
                let mut previous: Option<(RequestPlan, String)> = None;
                let mut dispatch = dispatch;
                for (turn, planned) in unit.plans.into_iter().enumerate() {
                    if previous.is_some() && stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // A later turn goes out when the previous one ended,
                    // carrying its actual answer (partial if it failed).
                    let plan = match previous.take() {
                        Some((plan, answer)) => crate::workload::continue_conversation(
                            &planned, &plan, &answer, tokenizer,
                        ),
                        None => planned,
                    };
                    let exchange = reader::exchange(&transport, kind, &target, &plan, limits).await;
                    if turn + 1 < turns {
                        previous = Some((plan.clone(), answer_text(&exchange)));
                    }
                    // The collector only goes away if it failed; its error is reported below.
                    let _ = sender.send(Finished {
                        index: unit.first + turn,
                        plan,
                        dispatch,
                        exchange,
                    });
                    dispatch = Dispatch {
                        index: dispatch.index,
                        scheduled_at: Instant::now(),
                        queued: Duration::ZERO,
                    };
                }
                true
            }
        }
    };
    let stop = Arc::clone(&context.stop);
    let deadline = phases.measured_end_time().map(|d| level_start + d);
    let mut cut_by_deadline = schedule_cut_by_time;
    match (level, offsets) {
        (Level::Rate(rate), Some(offsets)) => {
            let workers = context.workers;
            std::thread::scope(|scope| {
                let driver = std::thread::Builder::new()
                    .name("llmperf-dispatch".into())
                    .spawn_scoped(scope, move || {
                        load::open_loop(
                            workers,
                            level_start,
                            &offsets,
                            rate.max_in_flight,
                            &stop,
                            |dispatch| {
                                let unit = issue(dispatch);
                                async move {
                                    unit.await;
                                }
                            },
                        )
                    })
                    .map_err(|source| RunError::Start {
                        what: "the dispatcher thread",
                        source,
                    })?;
                driver
                    .join()
                    .map_err(|_| RunError::Panicked("the dispatcher thread"))
            })?;
        }
        (level, _) => {
            let concurrency = level.max_in_flight().unwrap_or(1);
            cut_by_deadline = load::closed_loop(
                context.workers,
                units_at_most,
                concurrency,
                load.sleep,
                deadline,
                load.cooldown_requests.div_ceil(turns) as usize,
                stop,
                issue,
            );
        }
    }
    let (figures, mut records, writer, write_error) = collector
        .join()
        .map_err(|_| RunError::Panicked("the collector thread"))?;
    // In plan order, so figures recomputed from requests.jsonl (sorted the
    // same way) are equal to the last bit.
    records.sort_by_key(|r| r.id);
    if let Some(error) = write_error {
        return Err(error.into());
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let tripped = error_stop.lock().ok().and_then(|mut slot| slot.take());
    let stop = if let Some(tripped) = tripped {
        tripped
    } else if context.interrupted.load(Ordering::Relaxed) {
        Stop::Interrupted
    } else if cut_by_deadline {
        Stop::Duration
    } else {
        Stop::Completed
    };
    Ok(LevelRun {
        figures,
        records,
        stop,
        writer,
        ready_late,
    })
}

/// Units a level plans ahead of sending at least (see [`Feed`]).
const PLANNED_AHEAD: usize = 1024;

/// How far ahead of its first send an open loop's clock starts.
const OPEN_LOOP_LEAD: Duration = Duration::from_millis(20);

fn build_transport(load: &Load, builtin: bool) -> Result<Transport, RunError> {
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
        proxy: None,
    })
    .map_err(RunError::Client)
}

fn progress_bar(id: &str, total: Option<u64>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        total,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    let style = indicatif::ProgressStyle::with_template(match total {
        Some(_) => "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} requests, {msg}",
        None => "{prefix} [{elapsed_precise}] {pos} requests, {msg}",
    })
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(id.to_string());
    bar.set_message("0 errors");
    bar
}
