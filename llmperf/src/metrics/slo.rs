//! Service-level objectives judged over a level's requests, and goodput.

use serde::{Deserialize, Serialize};

use super::column::Column;
use crate::record::{RequestRecord, ValidationOutcome};
use crate::spec::{Slo, SloMetric};

/// One objective against what a level measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    /// The objective.
    pub slo: Slo,
    /// The measured percentile, ms (`None`: unbounded, more failures than
    /// the percentile allows, or no requests).
    pub observed_ms: Option<f64>,
    /// Whether it held.
    pub met: bool,
}

/// A level judged by its objectives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// Each objective.
    pub checks: Vec<SloCheck>,
    /// Every objective held.
    pub met: bool,
    /// Successful requests that met every objective's limit themselves (an
    /// answer that went to another request is never good).
    pub good_requests: u64,
    /// Those per second of the measured window: goodput.
    pub goodput_per_s: f64,
}

/// A request's value of `metric`, ms; `INFINITY` for a failed request
/// (it served nobody), `None` when it has no such value (TPOT of a
/// one-token answer).
fn value(record: &RequestRecord, metric: SloMetric) -> Option<f64> {
    if !record.ok {
        return Some(f64::INFINITY);
    }
    let m = &record.metrics;
    match metric {
        SloMetric::Ttft => m.ttft_ms.or(Some(f64::INFINITY)),
        SloMetric::Tpot => m.tpot_ms,
        SloMetric::E2e => Some(m.e2e_ms),
        SloMetric::TtftFromScheduled => m.ttft_from_scheduled_ms.or(Some(f64::INFINITY)),
        SloMetric::E2eFromScheduled => Some(m.e2e_from_scheduled_ms),
    }
}

/// The response answered another request.
fn crossed_over(record: &RequestRecord) -> bool {
    record
        .validation
        .as_ref()
        .is_some_and(|v| v.outcome == ValidationOutcome::CrossOver)
}

impl SloReport {
    /// Judges `records` (a level's measured requests) by `slos`; goodput
    /// is per second of `window_s`.
    pub fn of(records: &[&RequestRecord], slos: &[Slo], window_s: f64) -> SloReport {
        let mut builder = SloBuilder::new(slos);
        for record in records {
            builder.add(record);
        }
        builder.finish(window_s)
    }
}

/// A level's [`SloReport`], built one measured record at a time, in any
/// order and in bounded memory (each objective's values are a [`Column`]).
#[derive(Debug, Default)]
pub struct SloBuilder {
    slos: Vec<Slo>,
    /// Per objective: the finite values, and the failed requests (which
    /// count as infinitely slow).
    values: Vec<(Column, u64)>,
    requests: u64,
    good_requests: u64,
}

impl SloBuilder {
    /// A builder judging by `slos`.
    pub fn new(slos: &[Slo]) -> SloBuilder {
        SloBuilder {
            slos: slos.to_vec(),
            values: slos.iter().map(|_| (Column::new(), 0)).collect(),
            requests: 0,
            good_requests: 0,
        }
    }

    /// Adds one measured request.
    pub fn add(&mut self, record: &RequestRecord) {
        self.requests += 1;
        let mut good = record.ok && !crossed_over(record);
        for (slo, (column, infinite)) in self.slos.iter().zip(&mut self.values) {
            let value = value(record, slo.metric);
            match value {
                Some(v) if v.is_finite() => column.push(v),
                Some(_) => *infinite += 1,
                None => {}
            }
            good &= value.is_none_or(|v| v <= slo.limit.as_secs_f64() * 1e3);
        }
        self.good_requests += u64::from(good);
    }

    /// The report; goodput is per second of `window_s`.
    pub fn finish(&self, window_s: f64) -> SloReport {
        let checks: Vec<SloCheck> = self
            .slos
            .iter()
            .zip(&self.values)
            .map(|(slo, (column, infinite))| {
                // The infinite values sort last: a percentile that reaches
                // them is unbounded.
                let count = column.count() + infinite;
                let observed = (count > 0)
                    .then(|| {
                        column
                            .at_rank((slo.percentile / 100.0).clamp(0.0, 1.0) * (count - 1) as f64)
                    })
                    .flatten()
                    .filter(|v| v.is_finite());
                let limit_ms = slo.limit.as_secs_f64() * 1e3;
                SloCheck {
                    slo: *slo,
                    observed_ms: observed,
                    met: observed.is_some_and(|v| v <= limit_ms),
                }
            })
            .collect();
        SloReport {
            met: self.requests > 0 && checks.iter().all(|c| c.met),
            checks,
            good_requests: self.good_requests,
            goodput_per_s: if window_s > 0.0 {
                self.good_requests as f64 / window_s
            } else {
                0.0
            },
        }
    }
}
