//! Verdicts on synthetic results with known shifts, and baseline files.

use super::synthetic::Synthetic;
use super::*;

fn verdict(comparison: &Comparison, metric: &str) -> Verdict {
    comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == metric)
        .map(|m| m.verdict)
        .expect("metric compared")
}

fn quick() -> CompareSettings {
    CompareSettings {
        nresamples: 1_000,
        ..CompareSettings::default()
    }
}

#[test]
fn a_ten_percent_ttft_shift_at_200_requests_is_a_regression_nearly_every_time() {
    let seeds = 40;
    let mut detected = 0;
    for seed in 0..seeds {
        let base = Synthetic::new(200, 500.0, seed).baseline("base");
        let slower = Synthetic::new(200, 550.0, 1_000 + seed).baseline("new");
        let comparison = compare(&base, &slower, &quick());
        detected += usize::from(verdict(&comparison, "ttft_p50") == Verdict::Regressed);
        // Never the wrong way.
        assert_ne!(verdict(&comparison, "ttft_p50"), Verdict::Improved);
    }
    // Measured over these seeds; the bootstrap's power here is about 0.9.
    assert!(
        detected * 100 >= seeds as usize * 75,
        "detected {detected} of {seeds}"
    );
    // And a faster endpoint is an improvement, with the interval around +10%.
    let base = Synthetic::new(200, 550.0, 7).baseline("base");
    let faster = Synthetic::new(200, 500.0, 8).baseline("new");
    let comparison = compare(&base, &faster, &quick());
    let ttft = &comparison.levels[0].metrics[0];
    assert_eq!(ttft.metric, "ttft_p50");
    assert_eq!(ttft.verdict, Verdict::Improved, "{ttft:?}");
    let [low, high] = ttft.interval.expect("an interval");
    assert!(low < ttft.change.unwrap() && ttft.change.unwrap() < high);
    assert!(low < -0.0 && high > -0.2, "{ttft:?}");
}

#[test]
fn no_shift_is_no_change_at_the_stated_false_positive_rate() {
    // The rate is measured over many seeds, not one lucky one.
    let seeds = 100u64;
    let settings = quick();
    let (mut ttft_flagged, mut any_flagged) = (0, 0);
    for seed in 0..seeds {
        let a = Synthetic::new(200, 500.0, seed).baseline("base");
        let b = Synthetic::new(200, 500.0, 10_000 + seed).baseline("new");
        let comparison = compare(&a, &b, &settings);
        ttft_flagged += usize::from(verdict(&comparison, "ttft_p50") != Verdict::NoChange);
        any_flagged += usize::from(
            comparison.levels[0]
                .metrics
                .iter()
                .any(|m| matches!(m.verdict, Verdict::Regressed | Verdict::Improved)),
        );
    }
    // At α = 0.05 the expected count is at most 5 of 100; 11 or more would
    // happen by chance less than 1% of the time with a true rate of 5%.
    assert!(
        ttft_flagged <= 10,
        "ttft_p50 flagged in {ttft_flagged} of {seeds}"
    );
    // Holm keeps the family's rate (any of the 16 metrics) at α too.
    assert!(
        any_flagged <= 10,
        "some metric flagged in {any_flagged} of {seeds}"
    );
}

#[test]
fn a_p99_from_200_requests_is_inconclusive_and_says_why() {
    let a = Synthetic::new(200, 500.0, 1).baseline("base");
    let b = Synthetic::new(200, 900.0, 2).baseline("new");
    let comparison = compare(&a, &b, &quick());
    let p99 = comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == "ttft_p99")
        .unwrap();
    assert_eq!(p99.verdict, Verdict::Inconclusive);
    assert!(p99.reason.contains("500 samples"), "{}", p99.reason);
    // Its change is still shown.
    assert!(p99.change.unwrap() > 0.5);
}

#[test]
fn more_errors_are_a_regression_in_points_and_lower_throughput_too() {
    let a = Synthetic::new(200, 500.0, 1).baseline("base");
    let mut failing = Synthetic::new(200, 500.0, 2);
    failing.failures = 30;
    let comparison = compare(&a, &failing.baseline("new"), &quick());
    let errors = comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == "error_rate")
        .unwrap();
    assert_eq!(errors.verdict, Verdict::Regressed);
    assert_eq!(errors.change_unit, ChangeUnit::Absolute);
    assert!((errors.change.unwrap() - 0.15).abs() < 1e-9, "{errors:?}");
    assert!(comparison
        .gate_failures()
        .contains(&"error_rate".to_string()));
    // 15% fewer completed requests in about 15% less time: requests per
    // minute barely moves, but the failures' time went to nobody.
    assert_eq!(
        verdict(&comparison, "output_tokens_per_s"),
        Verdict::Regressed,
        "{:?}",
        comparison.levels[0].metrics
    );
}

#[test]
fn samples_stored_in_a_baseline_file_give_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = BaselineStore::new(dir.path());
    let base = Synthetic::new(200, 500.0, 3).baseline("run");
    let path = store.save("synthetic/ttft", "main", &base).unwrap();
    assert_eq!(path, dir.path().join("synthetic/ttft/main.json"));
    let loaded = store.load("synthetic/ttft", "main").unwrap();
    assert_eq!(loaded.name, "main");
    // Re-saving what was read gives the same bytes: the file is canonical.
    let text = std::fs::read_to_string(&path).unwrap();
    loaded.write(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let current = Synthetic::new(200, 560.0, 4).baseline("new");
    let from_memory = compare(&base, &current, &quick());
    let from_disk = compare(&loaded, &current, &quick());
    for (a, b) in from_memory.levels[0]
        .metrics
        .iter()
        .zip(&from_disk.levels[0].metrics)
    {
        assert_eq!(a.verdict, b.verdict, "{} {a:?} {b:?}", a.metric);
        assert!((a.change.unwrap_or(0.0) - b.change.unwrap_or(0.0)).abs() < 1e-3);
    }
}

#[test]
fn a_throughput_drop_is_judged_even_when_requests_in_flight_changed() {
    // An open loop against a slower server: each request takes twice as
    // long, and more of them are in flight (1.6×), so 20% fewer tokens
    // per second come out. The null distribution must not absorb that.
    let base = Synthetic::new(400, 500.0, 1).baseline("base");
    let mut slower = Synthetic::new(400, 500.0, 2).baseline("new");
    let samples = &mut slower.samples[0];
    samples.e2e_ms.iter_mut().for_each(|e| *e *= 2.0);
    samples.window_s *= 1.25;
    let comparison = compare(&base, &slower, &quick());
    let throughput = comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == "output_tokens_per_s")
        .unwrap();
    assert!(
        (throughput.change.unwrap() + 0.2).abs() < 0.02,
        "{throughput:?}"
    );
    assert_eq!(throughput.verdict, Verdict::Regressed, "{throughput:?}");
}

#[test]
fn a_gate_that_judged_nothing_fails_and_says_why() {
    let base = Synthetic::new(200, 500.0, 1).baseline("base");
    let mut empty = base.clone();
    empty.result.levels.clear();
    empty.samples.clear();
    let current = Synthetic::new(200, 5_000.0, 2).baseline("new");
    let comparison = compare(&empty, &current, &quick());
    assert_eq!(
        comparison.gate_failures(),
        vec!["no level matched the baseline's".to_string()]
    );
    assert_eq!(
        comparison.unmatched_levels,
        vec!["c=1 (not in the baseline)"]
    );
    // Levels that match but carry no samples judge nothing either.
    let mut bare = base.clone();
    bare.samples.clear();
    let comparison = compare(&bare, &current, &quick());
    assert!(comparison.gate_failures()[0].starts_with("no metric could be judged"));
}

#[test]
fn an_impossible_validation_count_in_a_summary_is_no_panic() {
    let mut base = Synthetic::new(50, 500.0, 1).baseline("base");
    base.result.levels[0].summary.validation = Some(crate::metrics::ValidationSummary {
        validated: 1,
        passed: 2,
        cross_overs: 0,
        mismatches: 0,
        cross_over_requests: Vec::new(),
        mismatch_requests: Vec::new(),
        truncated: 0,
        truncated_requests: Vec::new(),
    });
    let figures = figures(&base.result.levels[0].summary);
    let rate = figures
        .iter()
        .find(|f| f.metric == "validation_failure_rate")
        .unwrap();
    assert_eq!(rate.value, 0.0);
}

/// A digest with only a waiting-requests gauge.
fn waiting(max: f64) -> crate::metrics::server::ServerDigest {
    let mut gauges = std::collections::BTreeMap::new();
    gauges.insert(
        "waiting_requests".to_string(),
        crate::metrics::server::GaugeDigest {
            metric: "vllm:num_requests_waiting".to_string(),
            mean: max / 2.0,
            max,
        },
    );
    crate::metrics::server::ServerDigest {
        sources: vec!["http://127.0.0.1:1/metrics".to_string()],
        servers: vec!["vllm".to_string()],
        scrapes: 10,
        failed_scrapes: 0,
        window_s: 1.0,
        gauges,
        counters: Default::default(),
        histograms: Default::default(),
        versus_client: None,
    }
}

#[test]
fn server_figures_are_shown_and_gate_only_when_named() {
    let with_server = |seed, max| {
        let mut b = Synthetic::new(200, 500.0, seed).baseline("b");
        b.result.levels[0].server = Some(waiting(max));
        b
    };
    let (base, queued) = (with_server(1, 1.0), with_server(2, 4.0));
    let comparison = compare(&base, &queued, &quick());
    let figure = comparison.levels[0]
        .metrics
        .iter()
        .find(|m| m.metric == "server.waiting_requests_max")
        .expect("the server figure is compared");
    assert_eq!(figure.verdict, Verdict::Regressed, "{figure:?}");
    assert_eq!(figure.change, Some(3.0));
    assert!(!figure.gated);
    assert!(
        !comparison
            .gate_failures()
            .iter()
            .any(|f| f.contains("server.")),
        "informational by default"
    );
    // Named, it gates; and naming it leaves the client's metrics out.
    let gated = CompareSettings {
        gate: vec!["server.waiting_*".to_string()],
        ..quick()
    };
    let comparison = compare(&base, &queued, &gated);
    assert_eq!(
        comparison.gate_failures(),
        [
            "server.waiting_requests_mean",
            "server.waiting_requests_max"
        ]
    );
    let ttft = &comparison.levels[0].metrics[0];
    assert!(!ttft.gated);
    // Within the noise threshold: no change.
    let comparison = compare(&base, &with_server(3, 1.04), &gated);
    assert!(comparison.gate_failures().is_empty());
    // A gate naming no metric is refused, with the names to choose from.
    let wrong = CompareSettings {
        gate: vec!["server.kv_usage".to_string()],
        ..quick()
    };
    let error = wrong.check().unwrap_err();
    assert!(error.contains("server.kv_cache_usage_max"), "{error}");
}
