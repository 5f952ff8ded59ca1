//! How trustworthy and how costly the baseline verdicts are, on synthetic
//! results with known shifts (`llmperf::baseline::synthetic`):
//! - detection: how often a 10% TTFT shift at 200 requests a side is
//!   called `regressed`, at TTFT CVs of 10%, 20% and 30%;
//! - false positives: how often an unchanged endpoint gets any
//!   `regressed`/`improved` verdict, per metric (ttft_p50) and for the
//!   whole level (Holm keeps that at the significance level);
//! - cost: the time of one level's comparison at 200 and 2,000 requests.
//!
//! `cargo bench -p llmperf --bench verdicts` (release, default 10,000
//! resamples for the cost; 1,000 for the rates, over 200 seeds). Without
//! `--bench` (as under `cargo test --benches`) it runs 10 seeds as a smoke
//! test.

use std::process::ExitCode;
use std::time::Instant;

// Only the selection flags are used here.
#[allow(dead_code)]
mod support;

use llmperf::baseline::{compare, synthetic::Synthetic, CompareSettings, Verdict};

fn verdict(comparison: &llmperf::baseline::Comparison, metric: &str) -> Verdict {
    comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == metric)
        .map_or(Verdict::Inconclusive, |m| m.verdict)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !support::selected("verdicts", &args) {
        return ExitCode::SUCCESS;
    }
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let seeds: u64 = if measuring { 200 } else { 10 };
    let rates = CompareSettings {
        nresamples: 1_000,
        ..CompareSettings::default()
    };
    println!(
        "verdicts over {seeds} seeds, 200 requests a side, {} resamples",
        rates.nresamples
    );
    println!(
        "{:<8} {:>22} {:>22} {:>22}",
        "TTFT CV", "10% shift: regressed", "0%: ttft_p50 flagged", "0%: any metric flagged"
    );
    for sigma in [0.1, 0.2, 0.3] {
        let (mut detected, mut flagged, mut any) = (0, 0, 0);
        for seed in 0..seeds {
            let side = |ttft: f64, seed: u64| {
                let mut s = Synthetic::new(200, ttft, seed);
                s.ttft_sigma = sigma;
                s.baseline("synthetic")
            };
            let base = side(500.0, seed);
            let shifted = compare(&base, &side(550.0, 100_000 + seed), &rates);
            detected += u32::from(verdict(&shifted, "ttft_p50") == Verdict::Regressed);
            let same = compare(&base, &side(500.0, 200_000 + seed), &rates);
            flagged += u32::from(verdict(&same, "ttft_p50") != Verdict::NoChange);
            any += u32::from(
                same.levels[0]
                    .metrics
                    .iter()
                    .any(|m| matches!(m.verdict, Verdict::Regressed | Verdict::Improved)),
            );
        }
        let pct = |n: u32| format!("{n}/{seeds} ({:.1}%)", 100.0 * f64::from(n) / seeds as f64);
        println!(
            "{:<8} {:>22} {:>22} {:>22}",
            format!("{:.0}%", 100.0 * ((sigma * sigma).exp() - 1.0_f64).sqrt()),
            pct(detected),
            pct(flagged),
            pct(any)
        );
    }
    let defaults = CompareSettings::default();
    for requests in [200, 2_000] {
        let a = Synthetic::new(requests, 500.0, 1).baseline("a");
        let b = Synthetic::new(requests, 510.0, 2).baseline("b");
        let runs = if measuring { 5 } else { 1 };
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(compare(&a, &b, &defaults));
        }
        println!(
            "one level's comparison, {requests} requests a side, {} resamples: {:.0} ms",
            defaults.nresamples,
            start.elapsed().as_secs_f64() * 1e3 / f64::from(runs)
        );
    }
    ExitCode::SUCCESS
}
