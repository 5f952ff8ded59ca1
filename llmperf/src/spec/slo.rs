//! Service-level objectives: the latency a level must keep to count as
//! serving its load (and the requests that count toward goodput).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration_ms, SpecError};

/// The latency an objective is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Time to first token, from the actual send.
    Ttft,
    /// Time per output token after the first.
    Tpot,
    /// End to end, from the actual send.
    E2e,
    /// Time to first token counted from the scheduled send (open loops:
    /// includes the client's and the queue's delay).
    TtftFromScheduled,
    /// End to end from the scheduled send.
    E2eFromScheduled,
}

impl SloMetric {
    /// The name used in `--slo` and in results.
    pub fn name(self) -> &'static str {
        match self {
            SloMetric::Ttft => "ttft",
            SloMetric::Tpot => "tpot",
            SloMetric::E2e => "e2e",
            SloMetric::TtftFromScheduled => "ttft_from_scheduled",
            SloMetric::E2eFromScheduled => "e2e_from_scheduled",
        }
    }

    fn parse(name: &str) -> Option<SloMetric> {
        [
            SloMetric::Ttft,
            SloMetric::Tpot,
            SloMetric::E2e,
            SloMetric::TtftFromScheduled,
            SloMetric::E2eFromScheduled,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// One objective: the `percentile` of `metric` stays at or under `limit`.
///
/// A failed request counts as missing every objective (its latency is
/// taken as unbounded), so errors cannot make a level look fast.
///
/// ```
/// use std::time::Duration;
/// use llmperf::spec::{Slo, SloMetric};
/// let slos = Slo::parse_list("ttft_p99=2s,tpot_p50=50ms").unwrap();
/// assert_eq!(slos[0], Slo::new(SloMetric::Ttft, 99.0, Duration::from_secs(2)));
/// assert_eq!(slos[1].to_string(), "tpot_p50<=50ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The latency measured.
    pub metric: SloMetric,
    /// The percentile (0–100) that must stay under the limit.
    pub percentile: f64,
    /// The limit.
    #[serde(with = "duration_ms", rename = "limit_ms")]
    pub limit: Duration,
}

impl Slo {
    /// `percentile` (0–100) of `metric` at most `limit`.
    pub fn new(metric: SloMetric, percentile: f64, limit: Duration) -> Self {
        Slo {
            metric,
            percentile,
            limit,
        }
    }

    /// The older tool's overload rule as an objective: at most 5% of
    /// requests over 3 s to the first token (TTFT p95 ≤ 3 s).
    pub fn default_overload() -> Self {
        Slo::new(SloMetric::Ttft, 95.0, Duration::from_secs(3))
    }

    /// Parses `metric_pNN=DURATION[,…]`, e.g. `ttft_p99=2s,tpot_p50=50ms`.
    pub fn parse_list(text: &str) -> Result<Vec<Slo>, SpecError> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| Slo::parse(part.trim()))
            .collect()
    }

    fn parse(text: &str) -> Result<Slo, SpecError> {
        let usage = "write METRIC_pNN=DURATION, e.g. ttft_p99=2s or tpot_p50=50ms (metrics: ttft, tpot, e2e, ttft_from_scheduled, e2e_from_scheduled)";
        let (name, limit) = text
            .split_once('=')
            .ok_or_else(|| SpecError::new(format!("`{text}`: {usage}")))?;
        let (metric, percentile) = name
            .rsplit_once("_p")
            .ok_or_else(|| SpecError::new(format!("`{name}` has no percentile: {usage}")))?;
        let metric = SloMetric::parse(metric)
            .ok_or_else(|| SpecError::new(format!("`{metric}` is not a metric: {usage}")))?;
        let percentile: f64 = percentile
            .parse()
            .ok()
            .filter(|p: &f64| (0.0..=100.0).contains(p))
            .ok_or_else(|| {
                SpecError::new(format!(
                    "`{percentile}` is not a percentile (0–100): {usage}"
                ))
            })?;
        let limit = humantime::parse_duration(limit.trim())
            .map_err(|e| SpecError::new(format!("`{limit}` is not a duration ({e}): {usage}")))?;
        Ok(Slo::new(metric, percentile, limit))
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.limit.as_secs_f64() * 1e3;
        let limit = if ms >= 1_000.0 && ms % 1_000.0 == 0.0 {
            format!("{}s", ms / 1e3)
        } else {
            format!("{}ms", (ms * 1e3).round() / 1e3)
        };
        write!(f, "{}_p{}<={limit}", self.metric.name(), self.percentile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_objectives_are_errors_that_show_the_syntax() {
        for bad in ["ttft=2s", "speed_p50=1s", "ttft_p150=1s", "ttft_p99=fast"] {
            let error = Slo::parse_list(bad).unwrap_err().to_string();
            assert!(error.contains("ttft_p99=2s"), "{bad}: {error}");
        }
        let scheduled = Slo::parse_list("ttft_from_scheduled_p90=1500ms").unwrap();
        assert_eq!(scheduled[0].metric, SloMetric::TtftFromScheduled);
        assert_eq!(scheduled[0].limit, Duration::from_millis(1500));
    }
}
