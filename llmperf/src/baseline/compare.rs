//! Comparing a result with a baseline: the change of every metric, its
//! confidence interval, and a verdict.
//!
//! How a verdict is reached, per metric and per level:
//! 1. Too few samples for the statistic is `inconclusive`: a quantile `q`
//!    needs `5 / min(q, 1 − q)` values a side (10 for p50, 50 for p90, 500
//!    for p99), so a p99 is never judged from its two largest requests.
//! 2. The bootstrap over requests gives the change,
//!    its interval at the confidence level, and a p-value for "no change".
//! 3. The p-values of one level's metrics are adjusted together (Holm), so
//!    the chance that *any* metric of an unchanged endpoint is called
//!    changed stays at the significance level, not 16 times it.
//! 4. Not significant, or significant but within the noise threshold, is
//!    `no change`; beyond it is `regressed` or `improved` by the metric's
//!    direction (lower latency is better, higher throughput is better).
//!    Error and mismatch rates are changes in percentage points: any
//!    significant increase is a regression.
//!
//! Validation cross-overs are not statistics: any cross-over in the
//! current result fails the gate, whatever the baseline had.

use serde::{Deserialize, Serialize};

use super::bootstrap::{self, ChangeKind, Estimator, Resampling, Statistic, Test};
pub use super::catalogue::{all_metric_names, figures, matches, metric_names, Direction, Figure};
use super::catalogue::{
    definitions, quantile_of, server_definitions, Definition, Form, ServerDefinition,
};
use super::samples::Samples;
use super::Baseline;
use crate::metrics::LevelResult;

/// Default noise threshold: changes within ±5% are noise.
pub const DEFAULT_NOISE_THRESHOLD: f64 = 0.05;
/// Default significance level.
pub const DEFAULT_SIGNIFICANCE_LEVEL: f64 = 0.05;
/// Default confidence level of the intervals.
pub const DEFAULT_CONFIDENCE_LEVEL: f64 = 0.95;
/// Default number of bootstrap resamples.
pub const DEFAULT_NRESAMPLES: usize = 10_000;

/// How a comparison judges changes (criterion's knobs, same names), and
/// which metrics gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSettings {
    /// Relative changes within ± this share are noise (0.05 = 5%).
    pub noise_threshold: f64,
    /// A change is significant when its adjusted p-value is below this.
    pub significance_level: f64,
    /// Confidence level of the intervals.
    pub confidence_level: f64,
    /// Bootstrap resamples.
    pub nresamples: usize,
    /// The metrics a regression of which fails the gate: names or
    /// patterns with `*` (`ttft_*`, `server.kv_cache_usage_max`). Empty:
    /// every client metric; the server's figures are then informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate: Vec<String>,
}

impl Default for CompareSettings {
    fn default() -> Self {
        CompareSettings {
            noise_threshold: DEFAULT_NOISE_THRESHOLD,
            significance_level: DEFAULT_SIGNIFICANCE_LEVEL,
            confidence_level: DEFAULT_CONFIDENCE_LEVEL,
            nresamples: DEFAULT_NRESAMPLES,
            gate: Vec::new(),
        }
    }
}

impl CompareSettings {
    /// Checks the ranges: shares in (0, 1), at least 100 resamples.
    pub fn check(&self) -> Result<(), String> {
        let share = |name: &str, x: f64, low_inclusive: bool| {
            let ok = x < 1.0 && if low_inclusive { x >= 0.0 } else { x > 0.0 };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{name} {x} is out of range: give a share such as 0.05"
                ))
            }
        };
        share("the noise threshold", self.noise_threshold, true)?;
        share("the significance level", self.significance_level, false)?;
        share("the confidence level", self.confidence_level, false)?;
        // The smallest p-value is 1 / (resamples + 1), and Holm multiplies
        // it by up to one per metric: fewer could never reach significance.
        let least = (metric_names().len() as f64 / self.significance_level).ceil() as usize;
        let least = least.max(100);
        if self.nresamples < least {
            return Err(format!(
                "{} resamples are too few for a verdict at significance {}: give {least} or more",
                self.nresamples, self.significance_level
            ));
        }
        let names = all_metric_names();
        if let Some(pattern) = self
            .gate
            .iter()
            .find(|p| !names.iter().any(|name| matches(p, name)))
        {
            return Err(format!(
                "the gate names {pattern}, which is no metric: give one of {}",
                names.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether a regression of `metric` fails the gate.
    pub fn gates(&self, metric: &str) -> bool {
        if self.gate.is_empty() {
            !metric.starts_with("server.")
        } else {
            self.gate.iter().any(|pattern| matches(pattern, metric))
        }
    }
}

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly better, beyond the noise threshold.
    Improved,
    /// Significantly worse, beyond the noise threshold.
    Regressed,
    /// Not significant, or within the noise threshold.
    NoChange,
    /// Too few samples (or none stored) to judge.
    Inconclusive,
}

impl Verdict {
    /// `improved`, `regressed`, `no change`, `inconclusive`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::NoChange => "no change",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// How a metric's change is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeUnit {
    /// `current / baseline − 1` (0.1 is +10%).
    Relative,
    /// `current − baseline`, in the metric's unit (rates: 0.01 is +1 point).
    Absolute,
}

/// One metric compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    /// `ttft_p50`, `output_tokens_per_s`, `error_rate`, …
    pub metric: String,
    /// `ms`, `tokens/s`, `requests/min`, `share`, `count`.
    pub unit: String,
    /// Which way is better.
    pub direction: Direction,
    /// The baseline's figure (from its summary).
    pub baseline: Option<f64>,
    /// The current figure (from its summary).
    pub current: Option<f64>,
    /// How `change` and `interval` are expressed.
    pub change_unit: ChangeUnit,
    /// The change, computed from the samples.
    pub change: Option<f64>,
    /// Its confidence interval, `[low, high]`.
    pub interval: Option<[f64; 2]>,
    /// The bootstrap p-value of "no change".
    pub p_value: Option<f64>,
    /// The p-value adjusted for the level's other metrics (Holm).
    pub p_adjusted: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
    /// Whether a regression of it fails the gate ([`CompareSettings::gate`]).
    #[serde(default = "gated_by_default")]
    pub gated: bool,
}

fn gated_by_default() -> bool {
    true
}

/// One level compared (a run without a sweep has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelComparison {
    /// `c=4`, `100 req/s`.
    pub level: String,
    /// The level's index in the baseline.
    pub baseline_index: u32,
    /// The level's index in the current result.
    pub current_index: u32,
    /// Every metric.
    pub metrics: Vec<MetricChange>,
}

/// A result compared with a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The benchmark id.
    pub benchmark: String,
    /// The baseline's name (or where it was read from).
    pub baseline: String,
    /// The settings used.
    pub settings: CompareSettings,
    /// How the two runs' configs and environments differ (empty: alike).
    pub differences: Vec<String>,
    /// Levels present on both sides, in the current result's order.
    pub levels: Vec<LevelComparison>,
    /// Levels present on one side only.
    pub unmatched_levels: Vec<String>,
    /// Cross-overs in the current result (any phase): each fails the gate.
    pub cross_overs: u64,
    /// Where the baseline was read from (a baseline file or a results
    /// directory), when the caller knows: reports overlay its samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_source: Option<String>,
}

/// How a gate names `n` cross-overs among its failures.
pub fn cross_over_failure(n: u64) -> String {
    format!("{n} validation cross-over(s)")
}

impl Comparison {
    /// Gated failures: every regressed metric (`c=4 ttft_p50`, or just
    /// `ttft_p50` for a single level), any cross-over, and a comparison
    /// that judged no metric at all (no level matched, no samples).
    pub fn gate_failures(&self) -> Vec<String> {
        let mut failures = self.regression_failures();
        if self.cross_overs > 0 {
            failures.push(cross_over_failure(self.cross_overs));
        }
        failures
    }

    /// [`Comparison::gate_failures`] without the cross-overs: what
    /// `--fail-on-regression` judges.
    pub fn regression_failures(&self) -> Vec<String> {
        let single = self.levels.len() == 1;
        let mut failures: Vec<String> = self
            .levels
            .iter()
            .flat_map(|level| {
                level
                    .metrics
                    .iter()
                    .filter(|m| m.gated && m.verdict == Verdict::Regressed)
                    .map(move |m| {
                        if single {
                            m.metric.clone()
                        } else {
                            format!("{} {}", level.level, m.metric)
                        }
                    })
            })
            .collect();
        // A gate that judged nothing must not pass silently.
        let judged = self.levels.iter().flat_map(|l| &l.metrics).any(|m| {
            m.gated
                && matches!(
                    m.verdict,
                    Verdict::Regressed | Verdict::Improved | Verdict::NoChange
                )
        });
        if !judged {
            failures.push(if self.levels.is_empty() {
                "no level matched the baseline's".to_string()
            } else {
                "no metric could be judged (too few samples, or none stored)".to_string()
            });
        }
        failures
    }
}

/// Compares `current` with `baseline`. The resampling is seeded from the
/// current result's seed, so the same pair always gets the same verdicts.
pub fn compare(baseline: &Baseline, current: &Baseline, settings: &CompareSettings) -> Comparison {
    let (base_levels, current_levels) = (&baseline.result.levels, &current.result.levels);
    // Levels pair up by label (`c=4`, `20 req/s`). An automatic sweep's
    // open-loop rates come from what its closed levels measured, so they
    // differ a little from run to run: those pair up in order.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut used = vec![false; base_levels.len()];
    let mut unpaired = Vec::new();
    for (ci, level) in current_levels.iter().enumerate() {
        let label = level.level.label();
        match (0..base_levels.len()).find(|&bi| !used[bi] && base_levels[bi].level.label() == label)
        {
            Some(bi) => {
                used[bi] = true;
                pairs.push((bi, ci));
            }
            None => unpaired.push(ci),
        }
    }
    let auto = |b: &Baseline| {
        matches!(
            b.result.config.load.sweep,
            Some(crate::spec::Sweep::Auto { .. })
        )
    };
    let mut unmatched = Vec::new();
    if auto(baseline) && auto(current) {
        let spare: Vec<usize> = (0..base_levels.len())
            .filter(|&bi| !used[bi] && matches!(base_levels[bi].level, crate::spec::Level::Rate(_)))
            .collect();
        let mut spare = spare.into_iter();
        unpaired.retain(|&ci| {
            if !matches!(current_levels[ci].level, crate::spec::Level::Rate(_)) {
                return true;
            }
            match spare.next() {
                Some(bi) => {
                    used[bi] = true;
                    pairs.push((bi, ci));
                    false
                }
                None => true,
            }
        });
    }
    pairs.sort_by_key(|&(_, ci)| ci);
    let levels = pairs
        .into_iter()
        .map(|(bi, ci)| {
            let mut compared = compare_level(
                (&base_levels[bi], baseline.samples.get(bi)),
                (&current_levels[ci], current.samples.get(ci)),
                settings,
                current.result.config.seed ^ (ci as u64).wrapping_mul(0x9E37_79B9),
            );
            let base_label = base_levels[bi].level.label();
            if base_label != compared.level {
                compared.level = format!("{} (baseline {base_label})", compared.level);
            }
            compared
        })
        .collect();
    for ci in unpaired {
        unmatched.push(format!(
            "{} (not in the baseline)",
            current_levels[ci].level.label()
        ));
    }
    for (bi, level) in base_levels.iter().enumerate() {
        if !used[bi] {
            unmatched.push(format!("{} (only in the baseline)", level.level.label()));
        }
    }
    Comparison {
        benchmark: current.result.benchmark.clone(),
        baseline: baseline.name.clone(),
        settings: settings.clone(),
        differences: super::differences(baseline, current),
        levels,
        unmatched_levels: unmatched,
        baseline_source: None,
        cross_overs: current
            .result
            .levels
            .iter()
            .filter_map(|l| l.summary.validation.as_ref())
            .map(|v| v.cross_overs)
            .sum(),
    }
}

fn compare_level(
    baseline: (&LevelResult, Option<&Samples>),
    current: (&LevelResult, Option<&Samples>),
    settings: &CompareSettings,
    seed: u64,
) -> LevelComparison {
    let definitions = definitions();
    fn usable(s: Option<&Samples>) -> Option<&Samples> {
        s.filter(|s| s.is_consistent() && s.sampled_requests > 0)
    }
    let sides = usable(baseline.1).zip(usable(current.1));
    // Which metrics have enough samples on both sides.
    let reasons: Vec<Option<String>> = definitions
        .iter()
        .map(|definition| {
            let q = quantile_of(definition.form);
            let bv = (definition.value)(&baseline.0.summary, q);
            let cv = (definition.value)(&current.0.summary, q);
            match sides {
                None => Some("no per-request samples stored on both sides".to_string()),
                Some(_) if bv.is_none() || cv.is_none() => {
                    Some("not measured on both sides".to_string())
                }
                Some((b, c)) => {
                    let (nb, nc) = ((definition.count)(b), (definition.count)(c));
                    (nb.min(nc) < definition.min_samples).then(|| {
                        format!(
                            "needs {} samples a side for a verdict, has {nb} and {nc}",
                            definition.min_samples
                        )
                    })
                }
            }
        })
        .collect();
    // One statistic per family: its tested metrics' quantiles in one walk.
    let mut statistics: Vec<Statistic> = Vec::new();
    let mut slots: Vec<Option<(usize, usize)>> = vec![None; definitions.len()];
    if let Some((b, c)) = sides {
        let mut family_of: Vec<&str> = Vec::new();
        for (i, definition) in definitions.iter().enumerate() {
            if reasons[i].is_some() {
                continue;
            }
            let index = match family_of.iter().position(|f| *f == definition.family) {
                Some(index) => index,
                None => {
                    family_of.push(definition.family);
                    statistics.push(Statistic {
                        estimator: match definition.form {
                            Form::Quantile(_) => Estimator::Quantiles(Vec::new()),
                            Form::WeightedQuantile(_) => Estimator::WeightedQuantiles(Vec::new()),
                            Form::Ratio => Estimator::Ratio,
                        },
                        change: definition.change,
                        baseline: (definition.data)(b),
                        current: (definition.data)(c),
                        scales: ((definition.scale)(b), (definition.scale)(c)),
                    });
                    statistics.len() - 1
                }
            };
            let output = match (&mut statistics[index].estimator, definition.form) {
                (Estimator::Quantiles(qs), Form::Quantile(q))
                | (Estimator::WeightedQuantiles(qs), Form::WeightedQuantile(q)) => {
                    qs.push(q);
                    qs.len() - 1
                }
                _ => 0,
            };
            slots[i] = Some((index, output));
        }
    }
    let tests: Vec<Vec<Option<Test>>> = match sides {
        Some((b, c)) if !statistics.is_empty() => bootstrap::run(
            &statistics,
            (b.ok.len(), c.ok.len()),
            Resampling {
                resamples: settings.nresamples,
                confidence_level: settings.confidence_level,
                seed,
            },
        ),
        _ => Vec::new(),
    };
    let results: Vec<Option<Test>> = slots
        .iter()
        .map(|slot| slot.and_then(|(i, k)| tests.get(i)?.get(k).copied().flatten()))
        .collect();
    let adjusted = holm(
        &results
            .iter()
            .map(|t| t.map(|t| t.p_value))
            .collect::<Vec<_>>(),
    );
    let mut metrics: Vec<MetricChange> = definitions
        .iter()
        .zip(results)
        .zip(reasons)
        .zip(adjusted)
        .map(|(((definition, test), reason), p_adjusted)| {
            let q = quantile_of(definition.form);
            let bv = (definition.value)(&baseline.0.summary, q);
            let cv = (definition.value)(&current.0.summary, q);
            judge(definition, bv, cv, test, p_adjusted, reason, settings)
        })
        .collect();
    if let (Some(b), Some(c)) = (&baseline.0.server, &current.0.server) {
        metrics.extend(
            server_definitions()
                .iter()
                .filter_map(|d| Some(judge_figure(d, (d.value)(b)?, (d.value)(c)?, settings))),
        );
    }
    for metric in &mut metrics {
        metric.gated = settings.gates(&metric.metric);
    }
    LevelComparison {
        level: current.0.level.label(),
        baseline_index: baseline.0.index,
        current_index: current.0.index,
        metrics,
    }
}

fn judge(
    definition: &Definition,
    baseline: Option<f64>,
    current: Option<f64>,
    test: Option<Test>,
    p_adjusted: Option<f64>,
    reason: Option<String>,
    settings: &CompareSettings,
) -> MetricChange {
    let change_unit = match definition.change {
        ChangeKind::Relative => ChangeUnit::Relative,
        ChangeKind::Absolute => ChangeUnit::Absolute,
    };
    let mut change = MetricChange {
        metric: definition.metric.clone(),
        unit: definition.unit.to_string(),
        direction: definition.direction,
        baseline,
        current,
        change_unit,
        change: None,
        interval: None,
        p_value: None,
        p_adjusted: None,
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        gated: true,
    };
    let (Some(test), Some(p)) = (test, p_adjusted) else {
        change.reason = reason.unwrap_or_else(|| "cannot be computed".to_string());
        change.change = baseline
            .zip(current)
            .and_then(|(b, c)| definition.change.of(b, c));
        return change;
    };
    change.change = Some(test.change);
    change.interval = Some([test.interval.0, test.interval.1]);
    change.p_value = Some(test.p_value);
    change.p_adjusted = Some(p);
    let alpha = settings.significance_level;
    let worse = match definition.direction {
        Direction::LowerIsBetter => test.change > 0.0,
        Direction::HigherIsBetter => test.change < 0.0,
    };
    let beyond_noise = match definition.change {
        ChangeKind::Relative => test.change.abs() > settings.noise_threshold,
        ChangeKind::Absolute => test.change != 0.0,
    };
    (change.verdict, change.reason) = if p >= alpha {
        (Verdict::NoChange, format!("p = {p:.4} ≥ {alpha}"))
    } else if !beyond_noise {
        (
            Verdict::NoChange,
            format!(
                "p = {p:.4}, but within the ±{}% noise threshold",
                crate::spec::trim_float(settings.noise_threshold * 100.0)
            ),
        )
    } else if worse {
        (Verdict::Regressed, format!("p = {p:.4} < {alpha}"))
    } else {
        (Verdict::Improved, format!("p = {p:.4} < {alpha}"))
    };
    change
}

/// A server figure: one value a side, so no interval and no test; a
/// change beyond the noise threshold (relative, or in points for a share)
/// is a verdict, in the figure's better or worse direction.
fn judge_figure(
    definition: &ServerDefinition,
    baseline: f64,
    current: f64,
    settings: &CompareSettings,
) -> MetricChange {
    let change = definition.change.of(baseline, current);
    let (verdict, reason) = match change {
        None if current == baseline => (Verdict::NoChange, "equal".to_string()),
        // From zero (no preemptions, no queue) to some: no ratio, but a change.
        None => (
            match definition.direction {
                Direction::LowerIsBetter => Verdict::Regressed,
                Direction::HigherIsBetter => Verdict::Improved,
            },
            "one figure a side, up from 0".to_string(),
        ),
        Some(change) if change.abs() <= settings.noise_threshold => (
            Verdict::NoChange,
            format!(
                "one figure a side, within the ±{} noise threshold",
                threshold_text(definition.change, settings.noise_threshold)
            ),
        ),
        Some(change) => {
            let worse = match definition.direction {
                Direction::LowerIsBetter => change > 0.0,
                Direction::HigherIsBetter => change < 0.0,
            };
            (
                if worse {
                    Verdict::Regressed
                } else {
                    Verdict::Improved
                },
                format!(
                    "one figure a side, beyond the ±{} noise threshold (no test)",
                    threshold_text(definition.change, settings.noise_threshold)
                ),
            )
        }
    };
    MetricChange {
        metric: definition.metric.to_string(),
        unit: definition.unit.to_string(),
        direction: definition.direction,
        baseline: Some(baseline),
        current: Some(current),
        change_unit: match definition.change {
            ChangeKind::Relative => ChangeUnit::Relative,
            ChangeKind::Absolute => ChangeUnit::Absolute,
        },
        change,
        interval: None,
        p_value: None,
        p_adjusted: None,
        verdict,
        reason,
        gated: false,
    }
}

fn threshold_text(change: ChangeKind, threshold: f64) -> String {
    let number = crate::spec::trim_float(threshold * 100.0);
    match change {
        ChangeKind::Relative => format!("{number}%"),
        ChangeKind::Absolute => format!("{number} pt"),
    }
}

/// Holm's step-down adjustment of the p-values present.
fn holm(p_values: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<(usize, f64)> = p_values
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (i, p)))
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = order.len();
    let mut adjusted = vec![None; p_values.len()];
    let mut running: f64 = 0.0;
    for (rank, (i, p)) in order.into_iter().enumerate() {
        running = running.max(((m - rank) as f64 * p).min(1.0));
        adjusted[i] = Some(running);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_multiplies_the_smallest_by_the_count_and_keeps_order() {
        let adjusted = holm(&[Some(0.01), None, Some(0.04), Some(0.03)]);
        assert_eq!(adjusted[1], None);
        assert!((adjusted[0].unwrap() - 0.03).abs() < 1e-12);
        assert!((adjusted[3].unwrap() - 0.06).abs() < 1e-12);
        // 0.04 × 1 = 0.04, but never below an earlier adjusted value.
        assert!((adjusted[2].unwrap() - 0.06).abs() < 1e-12);
    }

    #[test]
    fn settings_out_of_range_are_refused_with_the_fix() {
        let bad = CompareSettings {
            significance_level: 1.5,
            ..CompareSettings::default()
        };
        assert!(bad.check().unwrap_err().contains("significance level"));
        let few = CompareSettings {
            nresamples: 10,
            ..CompareSettings::default()
        };
        assert!(few.check().unwrap_err().contains("320 or more"));
        let strict = CompareSettings {
            significance_level: 0.01,
            nresamples: 1_000,
            ..CompareSettings::default()
        };
        assert!(strict.check().unwrap_err().contains("1600 or more"));
        assert!(CompareSettings::default().check().is_ok());
    }
}
