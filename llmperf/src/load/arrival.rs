//! Open-loop send schedules, computed before the clock starts.
//!
//! Gaps are drawn in "operational time", where arrivals come at unit rate
//! (exponential gaps for Poisson, equal gaps for constant, gamma gaps of
//! mean 1 for gamma), then mapped to wall time through the cumulative
//! intensity of the target rate: `Λ(t) = rate · t`, or with a linear
//! ramp-up over `R`, `rate · t² / 2R` until `R` and a straight line after.
//! The same seed always gives the same schedule.

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Gamma};

use crate::spec::{Arrival, Rate};

/// Send offsets from a level's start, in order: at most `max_count`, and
/// with `until`, only those before it — then `extra` more after it
/// (cooldown requests continue the same process).
///
/// ```
/// use std::time::Duration;
/// use llmperf::load::arrival::schedule;
/// use llmperf::Load;
/// let rate = Load::rate(100.0).rate.unwrap();
/// let sends = schedule(&rate, 1_000, Some(Duration::from_secs(2)), 0, 7);
/// assert!(sends.len() > 150 && sends.len() < 250);
/// assert!(sends.windows(2).all(|w| w[0] <= w[1]));
/// ```
pub fn schedule(
    rate: &Rate,
    max_count: u64,
    until: Option<Duration>,
    extra: u64,
    seed: u64,
) -> Vec<Duration> {
    schedule_phased(rate, max_count, until, extra, seed, 0.0)
}

/// [`schedule`], with the first send `phase` mean gaps after the level's
/// start rather than at it (a shard's stream, interleaving with the
/// others': [`crate::shard::Shard::arrival_phase`]).
pub fn schedule_phased(
    rate: &Rate,
    max_count: u64,
    until: Option<Duration>,
    extra: u64,
    seed: u64,
    phase: f64,
) -> Vec<Duration> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Streams 0–15 belong to the workload (lengths, text, numbers, datasets…).
    rng.set_stream(16);
    let gamma = match rate.arrival {
        Arrival::Gamma { burstiness } => Gamma::new(burstiness, 1.0 / burstiness).ok(),
        _ => None,
    };
    let mut gap = move || -> f64 {
        match rate.arrival {
            Arrival::Poisson => Exp1.sample(&mut rng),
            Arrival::Constant => 1.0,
            Arrival::Gamma { .. } => gamma.as_ref().map_or(1.0, |g| g.sample(&mut rng)),
        }
    };
    let ramp_s = rate.ramp_up.map_or(0.0, |r| r.as_secs_f64());
    let to_time = |operational: f64| -> f64 { wall_seconds(operational, rate.per_s, ramp_s) };
    let limit_s = until.map(|u| u.as_secs_f64());
    let mut sends = Vec::new();
    let mut operational = phase.max(0.0);
    let mut after_limit = 0;
    while (sends.len() as u64) < max_count.saturating_add(extra) {
        let at = to_time(operational);
        let past_limit =
            limit_s.is_some_and(|limit| at >= limit) || sends.len() as u64 >= max_count;
        if past_limit {
            if after_limit >= extra {
                break;
            }
            after_limit += 1;
        }
        sends.push(Duration::from_secs_f64(at));
        operational += gap();
    }
    sends
}

/// Wall time (s) at which the cumulative intensity reaches `operational`.
fn wall_seconds(operational: f64, per_s: f64, ramp_s: f64) -> f64 {
    let ramp_arrivals = per_s * ramp_s / 2.0;
    if ramp_s > 0.0 && operational < ramp_arrivals {
        (2.0 * ramp_s * operational / per_s).sqrt()
    } else {
        ramp_s + (operational - ramp_arrivals.min(operational)) / per_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_s: f64, arrival: Arrival) -> Rate {
        Rate {
            per_s,
            arrival,
            max_in_flight: None,
            ramp_up: None,
        }
    }

    fn gaps_s(sends: &[Duration]) -> Vec<f64> {
        sends
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect()
    }

    /// Kolmogorov–Smirnov distance between the gaps and Exp(per_s).
    fn ks_exponential(gaps: &[f64], per_s: f64) -> f64 {
        let mut sorted = gaps.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let cdf = 1.0 - (-per_s * x).exp();
                (cdf - i as f64 / n)
                    .abs()
                    .max(((i + 1) as f64 / n - cdf).abs())
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn poisson_gaps_are_exponential_with_the_target_mean() {
        let per_s = 250.0;
        let sends = schedule(&rate(per_s, Arrival::Poisson), 20_001, None, 0, 11);
        let gaps = gaps_s(&sends);
        let n = gaps.len() as f64;
        // KS at α = 0.01: reject when D > 1.628 / √n.
        let d = ks_exponential(&gaps, per_s);
        assert!(d < 1.628 / n.sqrt(), "KS distance {d}");
        // The mean gap: z-test at α = 0.01 (an exponential's sd equals its mean).
        let mean = gaps.iter().sum::<f64>() / n;
        let z = (mean - 1.0 / per_s) / (1.0 / per_s / n.sqrt());
        assert!(z.abs() < 2.576, "mean gap {mean}, z = {z}");
        // The same gaps fail the test against twice the rate: it has power.
        assert!(ks_exponential(&gaps, 2.0 * per_s) > 1.628 / n.sqrt());
    }

    #[test]
    fn poisson_counts_per_window_have_unit_dispersion() {
        // Counts in 1 s windows of a 20 req/s Poisson process: variance /
        // mean = 1. (windows − 1) · var / mean is χ² with windows − 1
        // degrees of freedom; two-sided test at α = 0.01 via the normal
        // approximation (df = 1,999).
        let per_s = 20.0;
        let windows = 2_000;
        let sends = schedule(
            &rate(per_s, Arrival::Poisson),
            u64::MAX,
            Some(Duration::from_secs(windows)),
            0,
            5,
        );
        let mut counts = vec![0f64; windows as usize];
        for send in &sends {
            counts[send.as_secs() as usize] += 1.0;
        }
        let k = counts.len() as f64;
        let mean = counts.iter().sum::<f64>() / k;
        let variance = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (k - 1.0);
        let statistic = (k - 1.0) * variance / mean;
        let z = (statistic - (k - 1.0)) / (2.0 * (k - 1.0)).sqrt();
        assert!(z.abs() < 2.576, "dispersion {}, z = {z}", variance / mean);
        assert!(
            (mean - per_s).abs() < 2.576 * (per_s / k).sqrt(),
            "mean count {mean}"
        );
    }

    #[test]
    fn constant_gaps_are_equal_and_gamma_sets_the_dispersion() {
        let constant = schedule(&rate(50.0, Arrival::Constant), 101, None, 0, 1);
        assert!(gaps_s(&constant).iter().all(|g| (g - 0.02).abs() < 1e-9));
        assert_eq!(constant[100], Duration::from_secs(2));
        // Gamma gaps with shape b have squared coefficient of variation 1/b.
        for burstiness in [0.25, 4.0] {
            let sends = schedule(
                &rate(100.0, Arrival::Gamma { burstiness }),
                40_001,
                None,
                0,
                3,
            );
            let gaps = gaps_s(&sends);
            let n = gaps.len() as f64;
            let mean = gaps.iter().sum::<f64>() / n;
            let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let cv2 = variance / mean.powi(2);
            assert!((mean - 0.01).abs() < 0.01 * 4.0 / (burstiness * n).sqrt());
            assert!(
                (cv2 * burstiness - 1.0).abs() < 0.1,
                "burstiness {burstiness}: cv² {cv2}"
            );
        }
    }

    #[test]
    fn a_ramp_sends_fewer_early_and_reaches_the_rate() {
        let ramped = Rate {
            ramp_up: Some(Duration::from_secs(10)),
            ..rate(10.0, Arrival::Constant)
        };
        let sends = schedule(&ramped, u64::MAX, Some(Duration::from_secs(20)), 0, 1);
        // Λ(10 s) = 10 · 10 / 2 = 50 arrivals during the ramp, then 10/s.
        let during = sends.iter().filter(|s| s.as_secs_f64() < 10.0).count();
        assert_eq!(during, 50);
        assert_eq!(sends.len(), 150);
        let first_half = sends.iter().filter(|s| s.as_secs_f64() < 5.0).count();
        assert_eq!(first_half, 13, "Λ(5 s) = 12.5");
    }

    #[test]
    fn cooldown_requests_continue_past_the_limit() {
        let r = rate(10.0, Arrival::Constant);
        let sends = schedule(&r, u64::MAX, Some(Duration::from_secs(1)), 3, 1);
        assert_eq!(sends.len(), 13);
        assert_eq!(schedule(&r, 5, None, 2, 1).len(), 7);
        let seeded = |seed| schedule(&rate(10.0, Arrival::Poisson), 50, None, 0, seed);
        assert_eq!(seeded(4), seeded(4));
        assert_ne!(seeded(4), seeded(5));
    }
}
