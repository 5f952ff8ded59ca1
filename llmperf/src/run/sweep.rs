//! An automatic sweep's levels: the max-throughput probe sized so its rate
//! is the endpoint's, then open-loop rates spread between the two first
//! levels' completed rates.

use crate::metrics::LevelResult;
use crate::results::RunMode;
use crate::spec::{Arrival, Level, Load, Rate, Sweep};

/// Requests per slot an automatic sweep's max-throughput level sends at least.
pub const AUTO_PROBE_TURNOVERS: u64 = 5;

/// The most requests an automatic sweep's open-loop level is sized up to.
const AUTO_LEVEL_MAX_REQUESTS: u64 = 10_000;

/// The load of an automatic sweep's level, sized so what it measures is
/// real: its max-throughput level (the closed level above one in flight)
/// sends at least [`AUTO_PROBE_TURNOVERS`] requests per slot; an open-loop
/// level sends for at least that many times the max-throughput level's E2E
/// p50 (at most [`AUTO_LEVEL_MAX_REQUESTS`]), so its completed rate is not
/// just its first requests'. `None` for other levels, and in smoke tests.
pub(super) fn auto_probe(
    load: &Load,
    level: &Level,
    measured: &[LevelResult],
    mode: RunMode,
) -> Option<Load> {
    if !matches!(load.sweep, Some(Sweep::Auto { .. })) || mode == RunMode::Test {
        return None;
    }
    let least = match level {
        Level::Concurrency { concurrency } if *concurrency > 1 => {
            AUTO_PROBE_TURNOVERS.saturating_mul(*concurrency as u64)
        }
        Level::Rate(rate) => {
            let e2e_s = measured.get(1)?.summary.e2e_ms?.p50 / 1e3;
            let least = (rate.per_s * AUTO_PROBE_TURNOVERS as f64 * e2e_s).ceil();
            (least.is_finite() && least > 0.0)
                .then(|| (least as u64).min(AUTO_LEVEL_MAX_REQUESTS))?
        }
        Level::Concurrency { .. } => return None,
    };
    let mut probe = load.clone();
    probe.requests = probe.requests.max(least);
    Some(probe)
}

/// The open-loop levels of an automatic sweep, once its synchronous and
/// max-throughput levels ran: `rates` rates spread evenly between the
/// completed-request rates those two measured (both ends excluded).
pub(super) fn auto_rates(load: &Load, levels: &[LevelResult], rates: usize) -> Vec<Level> {
    let measured = |level: &LevelResult| level.summary.throughput.requests_per_minute / 60.0;
    let low = levels.first().map_or(0.0, measured);
    let high = levels.get(1).map_or(0.0, measured).max(low);
    if high <= 0.0 {
        // Nothing completed: there is no range to spread rates over.
        eprintln!(
            "the automatic sweep measured no completed requests at its first two levels: no open-loop levels to run"
        );
        return Vec::new();
    }
    let template = load.rate.unwrap_or(Rate {
        per_s: 1.0,
        arrival: Arrival::Poisson,
        max_in_flight: None,
        ramp_up: None,
    });
    (1..=rates)
        .map(|k| {
            let per_s = if high > low {
                low + (high - low) * k as f64 / (rates + 1) as f64
            } else {
                // Nothing measured apart: spread up to the synchronous rate.
                low * k as f64 / rates as f64
            };
            Level::Rate(Rate { per_s, ..template })
        })
        .collect()
}
