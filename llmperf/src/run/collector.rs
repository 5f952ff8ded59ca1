//! The collector: finished requests in, records and control out.
//!
//! The level driver ([`super::level`]) sends each finished exchange here on
//! a channel; the collector, on a thread of its own, turns it into a
//! [`RequestRecord`] (the tokenizing and validation happen here, off the
//! client threads), appends it to `requests.jsonl`, adds it to the level's
//! figures and moves the progress bar. What it sends back is control: the
//! first stop condition it sees tripped (too many errors, too high an error
//! rate, results that cannot be written) raises the run's stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use super::RunError;
use crate::endpoint::reader::Exchange;
use crate::load::{Dispatch, Phases, Stop};
use crate::metrics::LevelFigures;
use crate::record::{RecordContext, RequestRecord, Scheduling};
use crate::results::{RecordWriter, ResultsError};
use crate::spec::{Slo, MIN_REQUESTS_FOR_ERROR_RATE};
use crate::workload::RequestPlan;

/// One finished request, on its way to the collector.
pub(super) struct Finished {
    /// The plan's index in the level's plan order.
    pub(super) index: usize,
    /// The plan as sent (a later turn of a conversation carries the
    /// history).
    pub(super) plan: RequestPlan,
    pub(super) dispatch: Dispatch,
    pub(super) exchange: Exchange,
}

/// What a level's collector was given to do.
pub(super) struct Collector<'a> {
    pub(super) record_context: RecordContext<'a>,
    /// The level's number in the run.
    pub(super) level: u32,
    /// When the level's schedule starts (phases are measured from it).
    pub(super) level_start: Instant,
    pub(super) phases: Phases,
    /// An open loop (phases count units, a closed loop's count plans).
    pub(super) open: bool,
    pub(super) max_errors: Option<u64>,
    pub(super) max_error_rate: Option<f64>,
    pub(super) slos: Vec<Slo>,
    /// Keep no record in memory (see [`super::RunOptions::drop_records`]).
    pub(super) drop_records: bool,
    pub(super) writer: Option<RecordWriter>,
    pub(super) progress: Option<indicatif::ProgressBar>,
    /// The run's stop flag, raised when a stop condition trips.
    pub(super) stop: Arc<AtomicBool>,
}

/// What a collector hands back when the level's requests have all ended.
pub(super) struct Collected {
    pub(super) figures: LevelFigures,
    /// Every record, unless dropped (in arrival order).
    pub(super) records: Vec<RequestRecord>,
    /// The writer, for the next level (`None` after a write failed).
    pub(super) writer: Option<RecordWriter>,
    /// Why records could not be written, if they could not.
    pub(super) write_error: Option<ResultsError>,
    /// The stop condition that tripped, if one did.
    pub(super) tripped: Option<Stop>,
}

impl Collector<'static> {
    /// Runs the collector on its own thread until every sender of
    /// `finished` is gone.
    pub(super) fn spawn(
        self,
        finished: mpsc::Receiver<Finished>,
    ) -> Result<JoinHandle<Collected>, RunError> {
        std::thread::Builder::new()
            .name("llmperf-collector".into())
            .spawn(move || self.collect(finished))
            .map_err(|source| RunError::Start {
                what: "the collector thread",
                source,
            })
    }

    fn collect(mut self, finished: mpsc::Receiver<Finished>) -> Collected {
        let mut state = Collected {
            figures: LevelFigures::new(&self.slos),
            records: Vec::new(),
            writer: self.writer.take(),
            write_error: None,
            tripped: None,
        };
        let mut failed = 0u64;
        for one in finished {
            let record = self.record(&one);
            if let Some(out) = state.writer.as_mut() {
                if let Err(error) = out.write(&record) {
                    // The results cannot be kept: stop sending, and report
                    // the error once the requests in flight end.
                    self.stop.store(true, Ordering::Relaxed);
                    state.write_error = Some(error);
                    state.writer = None;
                }
            }
            failed += u64::from(!record.ok);
            state.figures.add(&record);
            if !self.drop_records {
                state.records.push(record);
            }
            if state.tripped.is_none() {
                state.tripped = self.tripped(failed, state.figures.summary.requests());
                if state.tripped.is_some() {
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            if let Some(bar) = &self.progress {
                bar.set_message(format!("{failed} errors"));
                bar.inc(1);
            }
        }
        state
    }

    /// The record of one finished request.
    fn record(&self, finished: &Finished) -> RequestRecord {
        let since_start = finished
            .dispatch
            .scheduled_at
            .saturating_duration_since(self.level_start);
        let scheduling = Scheduling {
            scheduled_at: finished.dispatch.scheduled_at,
            queued: finished.dispatch.queued,
            level: self.level,
            // Open loops phase whole units (conversations).
            phase: self.phases.phase(
                if self.open {
                    finished.dispatch.index as u64
                } else {
                    finished.index as u64
                },
                since_start,
            ),
        };
        RequestRecord::from_exchange(
            &finished.plan,
            &scheduling,
            &finished.exchange,
            &self.record_context,
        )
    }

    /// The stop condition `failed` failures of `finished` requests trip.
    fn tripped(&self, failed: u64, finished: u64) -> Option<Stop> {
        if self.max_errors.is_some_and(|limit| failed >= limit) {
            return Some(Stop::MaxErrors { errors: failed });
        }
        let rate = failed as f64 / finished as f64;
        self.max_error_rate
            .filter(|&limit| finished >= MIN_REQUESTS_FOR_ERROR_RATE && rate > limit)
            .map(|_| Stop::MaxErrorRate {
                error_rate: rate,
                finished,
            })
    }
}
