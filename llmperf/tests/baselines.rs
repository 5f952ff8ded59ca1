//! Baselines end to end: the harness saves and compares them, the gate
//! sets the exit code, and `llmperf compare` / `llmperf export` read the
//! results, all against the built-in endpoint over real sockets.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use llmperf::harness::{self, BenchArgs};
use llmperf::{Benchmark, Fault, FaultSchedule, Load, Script, Workload};

/// The scripted TTFT of `gate/endpoint`, changed by tests between runs.
static TTFT_MS: AtomicU64 = AtomicU64::new(100);

#[llmperf::bench(group = "gate", requests = 60, concurrency = 6)]
fn endpoint() -> Benchmark {
    Benchmark::new()
        .workload(Workload::token_lengths(100, 0, 8, 0))
        .load(Load::closed(6))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(TTFT_MS.load(Ordering::SeqCst)))
                // Jitter well inside the gap: a gap of 2 ± 3 ms made events
                // coalesce, and the ITL median noise a busy machine could
                // call a regression.
                .inter_token(Duration::from_millis(5))
                .jitter(Duration::from_millis(1)),
        )
}

/// The metrics the "unchanged passes" checks gate on (see the first test).
const GATE_ON_TTFT: &str = "ttft_*";

/// Answers that sometimes go to the wrong request.
#[llmperf::bench(group = "gate", requests = 20, concurrency = 4)]
fn crossing() -> Benchmark {
    Benchmark::new()
        .workload(Workload::validation_only())
        .validate(true)
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(5))
                .inter_token(Duration::from_millis(1))
                .fault(Fault::CrossOver, FaultSchedule::Every(5)),
        )
}

struct Dirs {
    _root: tempfile::TempDir,
    baselines: PathBuf,
    results: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    Dirs {
        baselines: root.path().join("baselines"),
        results: root.path().join("results"),
        _root: root,
    }
}

/// Runs the harness over this file's benchmarks; `true` on success.
fn bench(dirs: &Dirs, id: &str, extra: &[&str]) -> bool {
    let mut argv = vec![
        "bench",
        "--bench",
        "--exact",
        id,
        "--color",
        "never",
        "--nresamples",
        "2000",
        "--baselines-dir",
        dirs.baselines.to_str().unwrap(),
        "--results-dir",
        dirs.results.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let args = BenchArgs::try_parse_from(argv).expect("valid flags");
    let code = harness::run(&args, harness::registered());
    format!("{code:?}") == format!("{:?}", ExitCode::SUCCESS)
}

fn llmperf(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llmperf"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the llmperf binary runs")
}

fn comparison(dirs: &Dirs, id: &str) -> serde_json::Value {
    let path = dirs.results.join(id).join("new").join("comparison.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn verdict<'a>(comparison: &'a serde_json::Value, metric: &str) -> &'a str {
    comparison["levels"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == metric)
        .and_then(|m| m["verdict"].as_str())
        .unwrap_or_else(|| panic!("no {metric} in {comparison}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_unchanged_endpoint_passes_the_gate_and_a_slower_one_fails_it() {
    let dirs = dirs();
    TTFT_MS.store(100, Ordering::SeqCst);
    assert!(bench(&dirs, "gate/endpoint", &["--save-baseline", "main"]));
    let saved = dirs.baselines.join("gate/endpoint/main.json");
    assert!(saved.exists(), "{saved:?}");

    // The same script again: within noise, and the gate passes. The gate
    // is on TTFT, what this script changes: inter-token tails move with
    // a shared 2-core CI machine's load, a real change but not the
    // endpoint's (--gate is how a CI user makes the same choice).
    assert!(bench(
        &dirs,
        "gate/endpoint",
        &[
            "--baseline",
            "main",
            "--fail-on-regression",
            "--gate",
            GATE_ON_TTFT
        ]
    ));
    let same = comparison(&dirs, "gate/endpoint");
    assert_eq!(verdict(&same, "ttft_p50"), "no_change", "{same:#}");
    assert_eq!(same["differences"].as_array().unwrap().len(), 0, "{same:#}");

    // 30 ms more to the first token: a regression, and the exit code says so.
    TTFT_MS.store(130, Ordering::SeqCst);
    assert!(!bench(
        &dirs,
        "gate/endpoint",
        &["--baseline", "main", "--fail-on-regression"]
    ));
    let slower = comparison(&dirs, "gate/endpoint");
    assert_eq!(verdict(&slower, "ttft_p50"), "regressed", "{slower:#}");
    let change = slower["levels"][0]["metrics"][0]["change"]
        .as_f64()
        .unwrap();
    assert!((0.2..0.4).contains(&change), "TTFT change {change}");
    // The runs' configs differ, and the comparison says how.
    let differences = slower["differences"].to_string();
    assert!(
        differences.contains("config.mock.ttft_ms: 100.0 → 130.0"),
        "{differences}"
    );
    // Without the gate the same regression is reported but does not fail.
    assert!(bench(&dirs, "gate/endpoint", &["--baseline", "main"]));
    TTFT_MS.store(100, Ordering::SeqCst);

    // `llmperf compare` judges the stored results the same way: the run
    // before last (previous/) was the slow one, the last the same script.
    let base = saved;
    let slow = dirs.results.join("gate/endpoint/previous");
    let output = llmperf(&[
        "compare",
        path(&base),
        path(&slow),
        "--nresamples",
        "2000",
        "--fail-on-regression",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("regressed: "), "{stdout}");
    assert!(stdout.contains("ttft_p50"), "{stdout}");
    assert!(stdout.contains("warning: the runs differ"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("regressed: ttft_p50"), "{stderr}");
}

#[test]
fn machine_formats_are_one_json_value_each_with_every_figure() {
    let dirs = dirs();
    TTFT_MS.store(100, Ordering::SeqCst);
    assert!(bench(&dirs, "gate/endpoint", &[]));
    assert!(bench(&dirs, "gate/endpoint", &[]));
    let new = dirs.results.join("gate/endpoint/new");
    let previous = dirs.results.join("gate/endpoint/previous");

    let output = llmperf(&[
        "compare",
        path(&previous),
        path(&new),
        "--output-format",
        "json",
        "--nresamples",
        "500",
    ]);
    assert!(output.status.success());
    let message: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(message["reason"], "benchmark-complete");
    assert_eq!(message["id"], "gate/endpoint");
    assert_eq!(message["gate"]["passed"], true);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new.join("summary.json")).unwrap()).unwrap();
    let ttft = message["levels"][0]["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "ttft_p50")
        .unwrap();
    assert_eq!(ttft["value"], summary["summary"]["ttft_ms"]["p50"]);

    let export = |format: &str| {
        let output = llmperf(&["export", path(&dirs.results), "--format", format]);
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap_or_else(|e| panic!("{format}: {e}"))
    };
    // previous/ is not exported: one benchmark, one set of figures.
    let smaller = export("github-smaller");
    let entries = smaller.as_array().unwrap();
    let ttft = entries
        .iter()
        .find(|e| e["name"] == "gate/endpoint - ttft_p50")
        .unwrap();
    assert_eq!(ttft["unit"], "ms");
    assert_eq!(ttft["value"], summary["summary"]["ttft_ms"]["p50"]);
    assert!(entries
        .iter()
        .all(|e| e["name"] != "gate/endpoint - output_tokens_per_s"));
    let bigger = export("github-bigger");
    assert!(bigger
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "gate/endpoint - output_tokens_per_s"));
    let bencher = export("bencher");
    assert_eq!(
        bencher["gate/endpoint"]["ttft-p50"]["value"],
        summary["summary"]["ttft_ms"]["p50"]
    );
    assert_eq!(bencher["gate/endpoint"]["error-rate"]["value"], 0.0);
}

#[test]
fn cross_overs_fail_the_run_with_or_without_a_baseline_unless_allowed() {
    let dirs = dirs();
    assert!(!bench(&dirs, "gate/crossing", &[]));
    assert!(bench(&dirs, "gate/crossing", &["--allow-cross-overs"]));
    assert!(!bench(&dirs, "gate/crossing", &["--fail-on-regression"]));
    // Saved all the same, and against itself as a baseline too: a
    // cross-over is never excused.
    assert!(!bench(&dirs, "gate/crossing", &["--save-baseline", "main"]));
    assert!(dirs.baselines.join("gate/crossing/main.json").is_file());
    assert!(!bench(&dirs, "gate/crossing", &["--baseline", "main"]));
    assert!(bench(
        &dirs,
        "gate/crossing",
        &["--baseline", "main", "--allow-cross-overs"]
    ));
    assert!(!bench(
        &dirs,
        "gate/crossing",
        &["--baseline", "main", "--fail-on-regression"]
    ));
    // The smoke test (no --bench) fails on them too.
    let smoke = |extra: &[&str]| {
        // Five requests, so the fifth crosses over.
        let mut argv = vec!["bench", "--exact", "gate/crossing", "--requests", "5"];
        argv.extend_from_slice(extra);
        let args = BenchArgs::try_parse_from(argv).unwrap();
        format!("{:?}", harness::run(&args, harness::registered()))
    };
    assert_eq!(smoke(&[]), format!("{:?}", ExitCode::FAILURE));
    assert_eq!(
        smoke(&["--allow-cross-overs"]),
        format!("{:?}", ExitCode::SUCCESS)
    );
    let failures = comparison(&dirs, "gate/crossing")["cross_overs"]
        .as_u64()
        .unwrap();
    assert!(failures >= 1);
}

#[test]
fn missing_corrupt_and_newer_baselines_are_clear_errors() {
    let dirs = dirs();
    // Missing: an error, unless lenient.
    assert!(!bench(&dirs, "gate/endpoint", &["--baseline", "nope"]));
    assert!(bench(
        &dirs,
        "gate/endpoint",
        &["--baseline", "nope", "--baseline-lenient"]
    ));
    assert!(!bench(&dirs, "gate/endpoint", &["--load-baseline", "nope"]));
    // A name that is not a file name is refused before anything runs.
    let args = BenchArgs::try_parse_from([
        "bench",
        "--bench",
        "--save-baseline",
        "../escape",
        "--baselines-dir",
        path(&dirs.baselines),
    ])
    .unwrap();
    assert_eq!(
        format!("{:?}", harness::run(&args, harness::registered())),
        format!("{:?}", ExitCode::from(2))
    );

    TTFT_MS.store(100, Ordering::SeqCst);
    assert!(bench(&dirs, "gate/endpoint", &["--save-baseline", "main"]));
    let file = dirs.baselines.join("gate/endpoint/main.json");
    let text = std::fs::read_to_string(&file).unwrap();
    // --load-baseline shows it without running.
    assert!(bench(&dirs, "gate/endpoint", &["--load-baseline", "main"]));

    let check = |contents: &str, expected: &str| {
        std::fs::write(&file, contents).unwrap();
        assert!(!bench(&dirs, "gate/endpoint", &["--baseline", "main"]));
        let output = llmperf(&["compare", path(&file), path(&file)]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let newer = text.replacen(
        "\n  \"schema_version\": 1\n}",
        "\n  \"schema_version\": 7\n}",
        1,
    );
    assert_ne!(
        newer, text,
        "the top-level schema_version is where the test expects it"
    );
    check(&newer, "newer than this llmperf understands");
    check(&text[..text.len() / 2], "not a valid llmperf");
    let uneven = text.replacen("\"ok\": [true, ", "\"ok\": [", 1);
    check(&uneven, "columns of different lengths");
    check("{}", "not a valid llmperf");
}

#[test]
fn the_previous_run_informs_but_only_a_named_baseline_gates() {
    let dirs = dirs();
    TTFT_MS.store(100, Ordering::SeqCst);
    assert!(bench(&dirs, "gate/endpoint", &["--save-baseline", "main"]));
    // Slower than the previous run, but no --baseline: reported, not gated.
    TTFT_MS.store(130, Ordering::SeqCst);
    assert!(bench(&dirs, "gate/endpoint", &["--fail-on-regression"]));
    assert_eq!(
        verdict(&comparison(&dirs, "gate/endpoint"), "ttft_p50"),
        "regressed"
    );
    // The same name saved and compared: compared with the old one first.
    assert!(!bench(
        &dirs,
        "gate/endpoint",
        &[
            "--save-baseline",
            "main",
            "--baseline",
            "main",
            "--fail-on-regression"
        ]
    ));
    assert_eq!(
        verdict(&comparison(&dirs, "gate/endpoint"), "ttft_p50"),
        "regressed"
    );
    // …and then replaced by the new run: the same slow script now passes.
    assert!(bench(
        &dirs,
        "gate/endpoint",
        &[
            "--baseline",
            "main",
            "--fail-on-regression",
            "--gate",
            GATE_ON_TTFT
        ]
    ));
    TTFT_MS.store(100, Ordering::SeqCst);
}

#[test]
fn comparison_settings_out_of_range_stop_before_anything_runs() {
    let dirs = dirs();
    let args = BenchArgs::try_parse_from([
        "bench",
        "--bench",
        "gate/endpoint",
        "--significance-level",
        "0",
        "--results-dir",
        path(&dirs.results),
    ])
    .unwrap();
    assert_eq!(
        format!("{:?}", harness::run(&args, harness::registered())),
        format!("{:?}", ExitCode::from(2))
    );
    assert!(!dirs.results.exists(), "nothing ran");
}
