//! Levels of a run and the curve across them: throughput and latency per
//! level, the objectives each met, and the knee.

use serde::{Deserialize, Serialize};

use super::server::{Role, ServerDigest};
use super::slo::SloReport;
use super::Summary;
use crate::load::Stop;
use crate::spec::{Level, Slo};

/// One level's result: its load, why it ended, its full summary and its
/// objectives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelResult {
    /// Index in the run (records carry it as `level`).
    pub index: u32,
    /// The load of this level.
    pub level: Level,
    /// Why the level ended.
    pub stop: Stop,
    /// The statistics of its measured requests.
    pub summary: Summary,
    /// Its objectives and goodput.
    pub slo: SloReport,
    /// What to know before trusting its figures (an automatic sweep's probe
    /// that measured too little, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the server's own metrics said over the level (when scraped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerDigest>,
}

/// One point of the curve across levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Level index.
    pub level: u32,
    /// `c=16`, `5 req/s`.
    pub label: String,
    /// Concurrency, or requests per second offered.
    pub value: f64,
    /// Requests per second sent.
    pub achieved_rate_per_s: Option<f64>,
    /// Completed requests per second.
    pub completed_per_s: f64,
    /// Output tokens per second.
    pub output_tokens_per_s: f64,
    /// TTFT p50, ms.
    pub ttft_p50_ms: Option<f64>,
    /// TTFT p99, ms.
    pub ttft_p99_ms: Option<f64>,
    /// TPOT p50, ms.
    pub tpot_p50_ms: Option<f64>,
    /// TPOT p99, ms.
    pub tpot_p99_ms: Option<f64>,
    /// E2E p50, ms.
    pub e2e_p50_ms: Option<f64>,
    /// E2E p99, ms.
    pub e2e_p99_ms: Option<f64>,
    /// Requests per second meeting every objective.
    pub goodput_per_s: f64,
    /// Failed / sent.
    pub error_rate: f64,
    /// Every objective held.
    pub met_slos: bool,
    /// The server's most waiting requests over the level (when scraped):
    /// where the queue starts to grow explains the knee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_waiting_max: Option<f64>,
    /// The server's highest KV-cache usage over the level, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_kv_cache_usage_max: Option<f64>,
}

/// The curve of a sweep and its knee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// The objectives levels were judged by.
    pub slos: Vec<Slo>,
    /// One point per level, in the order run.
    pub curve: Vec<CurvePoint>,
    /// The knee: among the levels meeting every objective, the one with
    /// the highest completed-request rate (`None`: no level met them).
    pub knee: Option<u32>,
}

impl CurvePoint {
    /// The point of `level`.
    pub fn of(level: &LevelResult) -> CurvePoint {
        let s = &level.summary;
        let p = |stats: Option<super::Stats>, high: bool| {
            stats.map(|st| if high { st.p99 } else { st.p50 })
        };
        CurvePoint {
            level: level.index,
            label: level.level.label(),
            value: level.level.value(),
            achieved_rate_per_s: s.send.achieved_rate_per_s,
            completed_per_s: s.throughput.requests_per_minute / 60.0,
            output_tokens_per_s: s.throughput.output_tokens_per_s,
            ttft_p50_ms: p(s.ttft_ms, false),
            ttft_p99_ms: p(s.ttft_ms, true),
            tpot_p50_ms: p(s.tpot_ms, false),
            tpot_p99_ms: p(s.tpot_ms, true),
            e2e_p50_ms: p(s.e2e_ms, false),
            e2e_p99_ms: p(s.e2e_ms, true),
            goodput_per_s: level.slo.goodput_per_s,
            error_rate: s.requests.error_rate,
            met_slos: level.slo.met,
            server_waiting_max: server_max(level, Role::WaitingRequests),
            server_kv_cache_usage_max: server_max(level, Role::KvCacheUsage),
        }
    }
}

/// A server gauge's maximum over `level`.
fn server_max(level: &LevelResult, role: Role) -> Option<f64> {
    level.server.as_ref()?.gauge(role).map(|g| g.max)
}

impl SweepSummary {
    /// The curve and knee of `levels`.
    pub fn of(levels: &[LevelResult], slos: &[Slo]) -> SweepSummary {
        let curve: Vec<CurvePoint> = levels.iter().map(CurvePoint::of).collect();
        let knee = curve
            .iter()
            .filter(|p| p.met_slos)
            .max_by(|a, b| a.completed_per_s.total_cmp(&b.completed_per_s))
            .map(|p| p.level);
        SweepSummary {
            slos: slos.to_vec(),
            curve,
            knee,
        }
    }
}
