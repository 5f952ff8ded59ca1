//! The metric catalogue: every figure a comparison judges, how to read it
//! from a summary (plain exports and reports use that) and how to build its
//! statistic from a baseline's samples (the comparison uses that).

use serde::{Deserialize, Serialize};

use super::bootstrap::{ChangeKind, Data};
use super::samples::Samples;
use crate::metrics::{Stats, Summary};

/// Samples a side below which a rate (errors, mismatches) is not judged.
const MIN_REQUESTS_FOR_RATE: usize = 20;
/// Samples a side below which a throughput is not judged.
const MIN_REQUESTS_FOR_THROUGHPUT: usize = 10;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latencies, error rates.
    LowerIsBetter,
    /// Throughputs.
    HigherIsBetter,
}

/// One metric's definition: how to read it from a summary and build its
/// statistic from samples.
pub(crate) struct Definition {
    pub(crate) metric: String,
    pub(crate) unit: &'static str,
    pub(crate) direction: Direction,
    pub(crate) change: ChangeKind,
    /// Metrics of one family (`ttft`) share a column and one walk of it.
    pub(crate) family: &'static str,
    pub(crate) form: Form,
    /// Samples a side needed for a verdict.
    pub(crate) min_samples: usize,
    pub(crate) value: fn(&Summary, f64) -> Option<f64>,
    pub(crate) data: fn(&Samples) -> Data,
    /// How many samples a side has for this metric.
    pub(crate) count: fn(&Samples) -> usize,
    /// The ratio's factor on a side.
    pub(crate) scale: fn(&Samples) -> f64,
}

/// The statistic behind one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Form {
    /// A quantile of one value per request.
    Quantile(f64),
    /// A quantile of weighted values, several per request.
    WeightedQuantile(f64),
    /// A ratio of sums over requests.
    Ratio,
}

pub(crate) fn quantile_name(q: f64) -> &'static str {
    if q == 0.5 {
        "p50"
    } else if q == 0.9 {
        "p90"
    } else {
        "p99"
    }
}

fn stat(stats: &Option<Stats>, q: f64) -> Option<f64> {
    stats.map(|s| match quantile_name(q) {
        "p50" => s.p50,
        "p90" => s.p90,
        _ => s.p99,
    })
}

pub(crate) fn definitions() -> Vec<Definition> {
    let mut all = Vec::new();
    type Value = fn(&Summary, f64) -> Option<f64>;
    type Column = fn(&Samples) -> Data;
    type Count = fn(&Samples) -> usize;
    let families: [(&str, bool, Value, Column, Count); 4] = [
        (
            "ttft",
            false,
            |s, q| stat(&s.ttft_ms, q),
            |s| Data::values(&s.ttft_ms),
            |s| s.ttft_ms.iter().flatten().count(),
        ),
        (
            "itl",
            true,
            |s, q| stat(&s.inter_token_latency_ms, q),
            |s| Data::points(&s.itl_ms, &s.itl_counts),
            |s| s.itl_counts.iter().map(|&c| c as usize).sum(),
        ),
        (
            "tpot",
            false,
            |s, q| stat(&s.tpot_ms, q),
            |s| Data::values(&s.tpot_ms),
            |s| s.tpot_ms.iter().flatten().count(),
        ),
        (
            "e2e",
            false,
            |s, q| stat(&s.e2e_ms, q),
            |s| {
                let ok: Vec<Option<f64>> = s
                    .e2e_ms
                    .iter()
                    .zip(&s.ok)
                    .map(|(&e, &ok)| ok.then_some(e))
                    .collect();
                Data::values(&ok)
            },
            |s| s.ok.iter().filter(|&&ok| ok).count(),
        ),
    ];
    for (name, pooled, value, data, count) in families {
        for q in [0.5f64, 0.9, 0.99] {
            all.push(Definition {
                metric: format!("{name}_{}", quantile_name(q)),
                unit: "ms",
                direction: Direction::LowerIsBetter,
                change: ChangeKind::Relative,
                family: name,
                form: if pooled {
                    Form::WeightedQuantile(q)
                } else {
                    Form::Quantile(q)
                },
                min_samples: (5.0 / q.min(1.0 - q)).round() as usize,
                value,
                data,
                count,
                scale: |_| 1.0,
            });
        }
    }
    // Little's law: throughput = requests in flight × (work per request-second),
    // with requests in flight = Σ e2e / window, fixed per side.
    let in_flight = |s: &Samples| {
        let busy_s: f64 = s.e2e_ms.iter().sum::<f64>() / 1e3;
        let thinned = s.requests as f64 / (s.sampled_requests.max(1)) as f64;
        if s.window_s > 0.0 {
            busy_s * thinned / s.window_s
        } else {
            0.0
        }
    };
    all.push(Definition {
        metric: "output_tokens_per_s".to_string(),
        unit: "tokens/s",
        direction: Direction::HigherIsBetter,
        change: ChangeKind::Relative,
        family: "output_tokens_per_s",
        form: Form::Ratio,
        min_samples: MIN_REQUESTS_FOR_THROUGHPUT,
        value: |s, _| Some(s.throughput.output_tokens_per_s),
        data: |s| {
            Data::ratio(
                s.output_tokens.iter().map(|&t| f64::from(t)).collect(),
                s.e2e_ms.iter().map(|e| e / 1e3).collect(),
            )
        },
        count: |s| s.ok.len(),
        scale: in_flight,
    });
    all.push(Definition {
        metric: "requests_per_minute".to_string(),
        unit: "requests/min",
        direction: Direction::HigherIsBetter,
        change: ChangeKind::Relative,
        family: "requests_per_minute",
        form: Form::Ratio,
        min_samples: MIN_REQUESTS_FOR_THROUGHPUT,
        value: |s, _| Some(s.throughput.requests_per_minute),
        data: |s| {
            Data::ratio(
                s.ok.iter().map(|&ok| if ok { 60.0 } else { 0.0 }).collect(),
                s.e2e_ms.iter().map(|e| e / 1e3).collect(),
            )
        },
        count: |s| s.ok.len(),
        scale: in_flight,
    });
    all.push(Definition {
        metric: "error_rate".to_string(),
        unit: "share",
        direction: Direction::LowerIsBetter,
        change: ChangeKind::Absolute,
        family: "error_rate",
        form: Form::Ratio,
        min_samples: MIN_REQUESTS_FOR_RATE,
        value: |s, _| Some(s.requests.error_rate),
        data: |s| {
            Data::ratio(
                s.ok.iter().map(|&ok| if ok { 0.0 } else { 1.0 }).collect(),
                vec![1.0; s.ok.len()],
            )
        },
        count: |s| s.ok.len(),
        scale: |_| 1.0,
    });
    all.push(Definition {
        metric: "validation_failure_rate".to_string(),
        unit: "share",
        direction: Direction::LowerIsBetter,
        change: ChangeKind::Absolute,
        family: "validation_failure_rate",
        form: Form::Ratio,
        min_samples: MIN_REQUESTS_FOR_RATE,
        value: |s, _| {
            // Truncated answers were neither right nor wrong: not judged.
            s.validation.as_ref().map(|v| {
                let judged = v.validated.saturating_sub(v.truncated);
                if judged == 0 {
                    0.0
                } else {
                    (v.cross_overs + v.mismatches) as f64 / judged as f64
                }
            })
        },
        data: |s| {
            Data::ratio(
                s.valid
                    .iter()
                    .map(|v| if *v == Some(false) { 1.0 } else { 0.0 })
                    .collect(),
                s.valid
                    .iter()
                    .map(|v| if v.is_some() { 1.0 } else { 0.0 })
                    .collect(),
            )
        },
        count: |s| s.valid.iter().flatten().count(),
        scale: |_| 1.0,
    });
    all
}

/// One metric's figure in a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// `ttft_p50`, `output_tokens_per_s`, …
    pub metric: String,
    /// `ms`, `tokens/s`, `requests/min`, `share`.
    pub unit: String,
    /// Which way is better.
    pub direction: Direction,
    /// The figure.
    pub value: f64,
}

/// The figures a comparison judges, as `summary` has them (metrics it
/// did not measure are left out).
pub fn figures(summary: &Summary) -> Vec<Figure> {
    definitions()
        .into_iter()
        .filter_map(|d| {
            let value = (d.value)(summary, quantile_of(d.form))?;
            Some(Figure {
                metric: d.metric,
                unit: d.unit.to_string(),
                direction: d.direction,
                value,
            })
        })
        .collect()
}

pub(crate) fn quantile_of(form: Form) -> f64 {
    match form {
        Form::Quantile(q) | Form::WeightedQuantile(q) => q,
        Form::Ratio => 0.5,
    }
}

/// The metric names a comparison reports, in order (for docs and exports).
pub fn metric_names() -> Vec<String> {
    definitions().into_iter().map(|d| d.metric).collect()
}
