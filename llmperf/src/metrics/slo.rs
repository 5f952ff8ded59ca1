//! Service-level objectives judged over a level's requests, and goodput.

use serde::{Deserialize, Serialize};

use super::percentile;
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
        let checks: Vec<SloCheck> = slos
            .iter()
            .map(|slo| {
                let mut values: Vec<f64> = records
                    .iter()
                    .filter_map(|r| value(r, slo.metric))
                    .collect();
                values.sort_by(f64::total_cmp);
                let observed = (!values.is_empty())
                    .then(|| percentile(&values, slo.percentile / 100.0))
                    .filter(|v| v.is_finite());
                let limit_ms = slo.limit.as_secs_f64() * 1e3;
                SloCheck {
                    slo: *slo,
                    observed_ms: observed,
                    met: observed.is_some_and(|v| v <= limit_ms),
                }
            })
            .collect();
        let good_requests = records
            .iter()
            .filter(|r| {
                r.ok && !crossed_over(r)
                    && slos.iter().all(|slo| {
                        value(r, slo.metric).is_none_or(|v| v <= slo.limit.as_secs_f64() * 1e3)
                    })
            })
            .count() as u64;
        SloReport {
            met: !records.is_empty() && checks.iter().all(|c| c.met),
            checks,
            good_requests,
            goodput_per_s: if window_s > 0.0 {
                good_requests as f64 / window_s
            } else {
                0.0
            },
        }
    }
}
