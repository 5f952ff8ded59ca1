//! How a benchmark's comparisons with a baseline are judged and gated.

use serde::{Deserialize, Serialize};

/// A benchmark's own comparison settings; command-line flags
/// (`--noise-threshold`, `--significance-level`, `--fail-on-regression`,
/// `--gate`) win over them, and unset ones take the defaults of
/// [`crate::baseline::CompareSettings`].
///
/// ```
/// use llmperf::Benchmark;
/// // A noisy shared endpoint: only changes beyond 10% count, and CI fails on one.
/// let bench = Benchmark::new().noise_threshold(0.10).fail_on_regression(true);
/// assert_eq!(bench.regression_policy().noise_threshold, Some(0.10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionPolicy {
    /// Relative changes within ± this share are noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_threshold: Option<f64>,
    /// Changes with an adjusted p-value below this are significant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance_level: Option<f64>,
    /// Exit non-zero when a metric regressed against the baseline.
    #[serde(default)]
    pub fail_on_regression: bool,
    /// The metrics that gate (names or `*` patterns, as `--gate`); empty:
    /// every client metric, the server's informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate: Vec<String>,
}
