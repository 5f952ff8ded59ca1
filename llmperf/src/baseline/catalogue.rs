//! The metric catalogue: every figure a comparison judges, how to read it
//! from a summary (plain exports and reports use that) and how to build its
//! statistic from a baseline's samples (the comparison uses that).

use serde::{Deserialize, Serialize};

use super::bootstrap::{ChangeKind, Data};
use super::samples::Samples;
use crate::metrics::server::{Role, ServerDigest};
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

/// One figure of the server's own metrics a comparison shows: a single
/// value a side (no per-request samples), so it is judged by the noise
/// threshold alone, and gates only when named (`--gate
/// server.kv_cache_usage_max`).
pub(crate) struct ServerDefinition {
    pub(crate) metric: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) direction: Direction,
    pub(crate) change: ChangeKind,
    pub(crate) value: fn(&ServerDigest) -> Option<f64>,
}

/// The server figures, prefixed `server.`.
pub(crate) fn server_definitions() -> Vec<ServerDefinition> {
    use Direction::{HigherIsBetter, LowerIsBetter};
    fn gauge(d: &ServerDigest, role: Role, max: bool) -> Option<f64> {
        d.gauge(role).map(|g| if max { g.max } else { g.mean })
    }
    // Means, not quantiles: a histogram's sum over its count is exact,
    // its quantiles no closer than a bucket (often 100–250 ms wide).
    fn mean(d: &ServerDigest, role: Role) -> Option<f64> {
        d.histogram(role)?.mean_ms
    }
    let g = |metric, unit, direction, change, value| ServerDefinition {
        metric,
        unit,
        direction,
        change,
        value,
    };
    let relative = ChangeKind::Relative;
    vec![
        g(
            "server.running_requests_mean",
            "requests",
            HigherIsBetter,
            relative,
            |d| gauge(d, Role::RunningRequests, false),
        ),
        g(
            "server.running_requests_max",
            "requests",
            HigherIsBetter,
            relative,
            |d| gauge(d, Role::RunningRequests, true),
        ),
        g(
            "server.waiting_requests_mean",
            "requests",
            LowerIsBetter,
            relative,
            |d| gauge(d, Role::WaitingRequests, false),
        ),
        g(
            "server.waiting_requests_max",
            "requests",
            LowerIsBetter,
            relative,
            |d| gauge(d, Role::WaitingRequests, true),
        ),
        g(
            "server.kv_cache_usage_mean",
            "share",
            LowerIsBetter,
            ChangeKind::Absolute,
            |d| gauge(d, Role::KvCacheUsage, false),
        ),
        g(
            "server.kv_cache_usage_max",
            "share",
            LowerIsBetter,
            ChangeKind::Absolute,
            |d| gauge(d, Role::KvCacheUsage, true),
        ),
        g(
            "server.preemptions",
            "count",
            LowerIsBetter,
            relative,
            |d| d.counter(Role::Preemptions).map(|c| c.increase),
        ),
        g(
            "server.generation_tokens_per_s",
            "tokens/s",
            HigherIsBetter,
            relative,
            |d| d.counter(Role::GenerationTokens).map(|c| c.rate_per_s),
        ),
        g("server.ttft_mean", "ms", LowerIsBetter, relative, |d| {
            mean(d, Role::Ttft)
        }),
        g("server.itl_mean", "ms", LowerIsBetter, relative, |d| {
            mean(d, Role::Itl)
        }),
        g("server.e2e_mean", "ms", LowerIsBetter, relative, |d| {
            mean(d, Role::E2e)
        }),
        g(
            "server.queue_time_mean",
            "ms",
            LowerIsBetter,
            relative,
            |d| mean(d, Role::QueueTime),
        ),
    ]
}

/// Every metric name a comparison can judge: the client's, then the server's.
pub fn all_metric_names() -> Vec<String> {
    let mut names = metric_names();
    names.extend(server_definitions().iter().map(|d| d.metric.to_string()));
    names
}

/// Whether `metric` is named by `pattern`: equal, or matching a pattern
/// with `*` standing for any run of characters (`ttft_*`, `server.*`).
pub fn matches(pattern: &str, metric: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = metric.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_globs() {
        assert!(matches("ttft_p50", "ttft_p50"));
        assert!(!matches("ttft_p50", "ttft_p90"));
        assert!(matches("ttft_*", "ttft_p99"));
        assert!(!matches("ttft_*", "itl_p99"));
        assert!(matches("server.*", "server.kv_cache_usage_max"));
        assert!(matches("*_p99", "e2e_p99"));
        assert!(matches("server.*_max", "server.waiting_requests_max"));
        assert!(!matches("server.*_max", "server.waiting_requests_mean"));
        assert!(matches("*", "error_rate"));
        assert!(!matches("a*a", "a"));
    }

    #[test]
    fn server_names_are_prefixed_and_unique() {
        let names = all_metric_names();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(names.iter().any(|n| n == "server.kv_cache_usage_max"));
        for d in server_definitions() {
            assert!(d.metric.starts_with("server."), "{}", d.metric);
        }
    }
}
