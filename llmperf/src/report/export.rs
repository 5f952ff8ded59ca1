//! Machine-readable output: llmperf's own JSON messages, and the formats
//! CI dashboards read.
//!
//! - `json`: one JSON object per benchmark per line ([`message`]), schema
//!   [`MESSAGE_SCHEMA_VERSION`], documented in `docs/baselines.md`.
//! - `github-smaller` / `github-bigger`: github-action-benchmark's
//!   `customSmallerIsBetter` / `customBiggerIsBetter` files, one array of
//!   `{name, unit, value, extra}` holding every benchmark's lower-is-better
//!   (latencies, error rates) or higher-is-better (throughputs) figures.
//! - `bencher`: Bencher Metric Format, one object keyed by benchmark, then
//!   measure slug (`ttft-p50`), holding `{value}`.
//!
//! The two dashboard formats must be one JSON value per file, so they are
//! printed once, after every benchmark (or by `llmperf export` over stored
//! results, which gathers several bench targets into one file). Each format
//! reaches standard output through its [`super::reporter::Reporter`].

use serde::Serialize;
use serde_json::{json, Value};

use crate::baseline::{figures, Comparison, Direction};
use crate::results::SummaryFile;

/// Version of the `--output-format json` message schema.
pub const MESSAGE_SCHEMA_VERSION: u32 = 1;

/// Where machine output goes instead of the terminal block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The human block (default).
    Terminal,
    /// One llmperf JSON message per benchmark per line.
    Json,
    /// github-action-benchmark `customSmallerIsBetter` (latencies, error rates).
    GithubSmaller,
    /// github-action-benchmark `customBiggerIsBetter` (throughputs).
    GithubBigger,
    /// Bencher Metric Format.
    Bencher,
}

/// What the gate decided for one benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GateOutcome {
    /// Whether anything could fail the run: regressions against a named
    /// baseline (`--fail-on-regression` or the benchmark's policy), or
    /// cross-overs (unless `--allow-cross-overs`).
    pub enabled: bool,
    /// What failed it: regressed metrics, cross-overs.
    pub failures: Vec<String>,
}

impl GateOutcome {
    /// Whether the gate fails the run.
    pub fn fails(&self) -> bool {
        self.enabled && !self.failures.is_empty()
    }
}

/// The `json` message of one benchmark.
pub fn message(
    file: &SummaryFile,
    comparison: Option<&Comparison>,
    gate: &GateOutcome,
    results_dir: Option<&std::path::Path>,
) -> Value {
    let levels: Vec<Value> = file
        .levels
        .iter()
        .map(|level| {
            json!({
                "index": level.index,
                "level": level.level.label(),
                "stop": level.stop,
                "requests": level.summary.requests.total,
                "failed": level.summary.requests.failed,
                "figures": figures(&level.summary),
                "slo_met": level.slo.met,
            })
        })
        .collect();
    json!({
        "reason": "benchmark-complete",
        "schema_version": MESSAGE_SCHEMA_VERSION,
        "id": file.benchmark,
        "started_at": file.started_at,
        "interrupted": file.interrupted,
        "headline_level": file.headline_level,
        "knee": file.sweep.as_ref().and_then(|s| s.knee),
        "levels": levels,
        "comparison": comparison,
        "gate": {
            "enabled": gate.enabled,
            "passed": !gate.fails(),
            "failures": gate.failures,
        },
        "results_dir": results_dir.map(|p| p.display().to_string()),
    })
}

/// The name of a benchmark's level in a dashboard: `id`, or `id [c=4]`
/// when the benchmark ran several levels.
fn entry_name(file: &SummaryFile, level: usize) -> String {
    if file.levels.len() > 1 {
        format!("{} [{}]", file.benchmark, file.levels[level].level.label())
    } else {
        file.benchmark.clone()
    }
}

/// Shares are shown in percent on dashboards.
fn dashboard_value(value: f64, unit: &str) -> (f64, String) {
    if unit == "share" {
        (value * 100.0, "%".to_string())
    } else {
        (value, unit.to_string())
    }
}

/// github-action-benchmark entries of `direction` for every level of every file.
pub fn github(files: &[SummaryFile], direction: Direction) -> Value {
    let mut entries = Vec::new();
    for file in files {
        for (i, level) in file.levels.iter().enumerate() {
            for figure in figures(&level.summary) {
                if figure.direction != direction {
                    continue;
                }
                let (value, unit) = dashboard_value(figure.value, &figure.unit);
                entries.push(json!({
                    "name": format!("{} - {}", entry_name(file, i), figure.metric),
                    "unit": unit,
                    "value": value,
                    "extra": format!(
                        "{} requests, {} failed; {}",
                        level.summary.requests.total,
                        level.summary.requests.failed,
                        file.started_at
                    ),
                }));
            }
        }
    }
    Value::Array(entries)
}

/// Bencher Metric Format for every level of every file.
pub fn bencher(files: &[SummaryFile]) -> Value {
    let mut out = serde_json::Map::new();
    for file in files {
        for (i, level) in file.levels.iter().enumerate() {
            let measures: serde_json::Map<String, Value> = figures(&level.summary)
                .into_iter()
                .map(|figure| {
                    let (value, _) = dashboard_value(figure.value, &figure.unit);
                    (figure.metric.replace('_', "-"), json!({ "value": value }))
                })
                .collect();
            out.insert(entry_name(file, i), Value::Object(measures));
        }
    }
    Value::Object(out)
}
