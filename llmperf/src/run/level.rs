//! One level of a run: plan its requests on the planner thread, send them
//! (the producer: an open loop's dispatcher or a closed loop's slots, on the
//! client threads), and hand each finished exchange to the [`Collector`]
//! (the consumer).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use super::collector::{Collected, Collector, Finished};
use super::{RunContext, RunError};
use crate::endpoint::reader::{self, Exchange, Limits};
use crate::load::{self, arrival, Dispatch, Feed, Phases, Stop};
use crate::metrics::server::ServerDigest;
use crate::metrics::LevelFigures;
use crate::record::{RecordContext, RequestRecord};
use crate::results::{RecordWriter, RunMode};
use crate::shard;
use crate::spec::{Level, Load};
use crate::workload::{Planner, RequestPlan};

/// The text a response carried (a conversation's next turn quotes it).
fn answer_text(exchange: &Exchange) -> String {
    exchange.content.text().to_string()
}

/// One level as run: its figures, its records (unless dropped) and why it ended.
pub(super) struct LevelRun {
    pub(super) figures: LevelFigures,
    pub(super) records: Vec<RequestRecord>,
    pub(super) stop: Stop,
    pub(super) writer: Option<RecordWriter>,
    /// How late it was ready for its start time (`start_at`).
    pub(super) ready_late: Option<Duration>,
    /// What the server's metrics said over the level.
    pub(super) server: Option<ServerDigest>,
    /// Notes from scraping them (a source given up).
    pub(super) server_notes: Vec<String>,
}

/// Runs one level: plans its requests, drives them, collects the records.
pub(super) fn run_level(
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
    // The server's counters before the level's first request.
    let mut server_notes = context
        .scraper
        .as_ref()
        .map(|scraper| scraper.begin_level(index))
        .unwrap_or_default();
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
    let (sender, receiver) = mpsc::channel::<Finished>();
    let limits = Limits {
        timeout: load.timeout,
        stall_timeout: load.stall_timeout,
        max_event_bytes: load.max_event_bytes,
    };
    let issue = {
        let feed = Arc::clone(&feed);
        let target = Arc::clone(&context.target);
        let extras = Arc::clone(&context.extras);
        let transport = context.transport.clone();
        let (kind, tokenizer) = (context.kind, context.tokenizer);
        let stop = Arc::clone(&context.stop);
        move |dispatch: Dispatch| {
            // An open loop's dispatcher takes its unit here, so units go
            // out in plan order; a closed loop's slot waits for one below.
            let taken = open.then(|| feed.take_blocking());
            let feed = Arc::clone(&feed);
            let target = Arc::clone(&target);
            let extras = Arc::clone(&extras);
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
                    let exchange =
                        reader::exchange(&transport, kind, &target, &extras, &plan, limits).await;
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
    // The consumer: records in, control (a stop condition) out.
    let collector = Collector {
        record_context: RecordContext {
            t0: context.t0,
            tokenizer: context.tokenizer,
            numbers,
            shard: context.options.shard(),
        },
        level: index,
        level_start,
        phases,
        open,
        max_errors: load.max_errors,
        max_error_rate: load.max_error_rate,
        slos: bench.slos(),
        drop_records: context.options.drop_records,
        writer: writer.take(),
        progress: progress.clone(),
        stop: Arc::clone(&context.stop),
    }
    .spawn(receiver)?;
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
    let Collected {
        figures,
        mut records,
        writer,
        write_error,
        tripped,
    } = collector
        .join()
        .map_err(|_| RunError::Panicked("the collector thread"))?;
    // …and after its last ended.
    let server = context.scraper.as_ref().and_then(|scraper| {
        let (digest, notes) = scraper.end_level();
        server_notes.extend(notes);
        digest
    });
    // In plan order, so figures recomputed from requests.jsonl (sorted the
    // same way) are equal to the last bit.
    records.sort_by_key(|r| r.id);
    if let Some(error) = write_error {
        return Err(error.into());
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
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
        server,
        server_notes,
    })
}

/// Units a level plans ahead of sending at least (see [`Feed`]).
const PLANNED_AHEAD: usize = 1024;

/// How far ahead of its first send an open loop's clock starts.
const OPEN_LOOP_LEAD: Duration = Duration::from_millis(20);

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
