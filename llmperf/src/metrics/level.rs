//! One level's figures, built as its requests end: its summary, its
//! objectives, whether anything succeeded and the first failure. A live run
//! and a merge of shards build them the same way.

use crate::error::RequestError;
use crate::load::{Phase, Stop};
use crate::record::RequestRecord;
use crate::spec::{Level, Slo};

use super::{LevelResult, SloBuilder, SummaryBuilder};

/// A level's result from its records (every phase; the statistics take
/// the measured ones): its summary and objectives. Shared by a run and a
/// merge of shards, so both compute the same figures the same way.
pub(crate) fn level_result(
    index: u32,
    level: Level,
    stop: Stop,
    records: &[RequestRecord],
    slos: &[Slo],
) -> LevelResult {
    let mut figures = LevelFigures::new(slos);
    for record in records {
        figures.add(record);
    }
    figures.finish(index, level, stop)
}

/// A level's figures, built as its requests end (in any order, in memory
/// that does not grow with them: see [`SummaryBuilder`]).
pub(crate) struct LevelFigures {
    pub(crate) summary: SummaryBuilder,
    slo: SloBuilder,
    pub(crate) any_ok: bool,
    /// Output tokens received by every request of the level (every
    /// phase, failed requests' partial answers included): what the
    /// server's generated-token counter is held against.
    pub(crate) tokens_received: u64,
    /// The failed request with the lowest id, and its error.
    pub(crate) first_failure: Option<(u64, RequestError)>,
}

impl LevelFigures {
    pub(crate) fn new(slos: &[Slo]) -> LevelFigures {
        LevelFigures {
            summary: SummaryBuilder::default(),
            slo: SloBuilder::new(slos),
            any_ok: false,
            tokens_received: 0,
            first_failure: None,
        }
    }

    pub(crate) fn add(&mut self, record: &RequestRecord) {
        self.summary.add(record);
        if record.phase == Phase::Measured {
            self.slo.add(record);
        }
        self.any_ok |= record.ok;
        self.tokens_received += u64::from(record.output_tokens());
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

    pub(crate) fn finish(&self, index: u32, level: Level, stop: Stop) -> LevelResult {
        let summary = self.summary.finish();
        let slo = self.slo.finish(summary.throughput.window_s);
        LevelResult {
            index,
            level,
            stop,
            summary,
            slo,
            notes: Vec::new(),
            server: None,
        }
    }
}
