//! The `cargo bench` harness: command line, discovery, modes.
//!
//! `cargo bench` runs each bench target with `--bench`: every selected
//! benchmark runs in full and writes `target/llmperf/<id>/new/`. Without
//! `--bench` (as under `cargo test --benches`) each benchmark runs a quick
//! smoke test of two requests and writes nothing, so benches are compile-
//! and run-checked by the test suite. `--list` prints `id: benchmark` lines
//! as libtest does.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

mod baselines;

use crate::load::Stop;
use crate::registry::{self, BenchEntry};
use crate::report::terminal::Palette;
use crate::results::RunMode;
use crate::run::{run_benchmark, RunOptions};
use crate::spec::Benchmark;

/// Requests per benchmark in test mode.
const TEST_MODE_REQUESTS: u64 = 2;

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `cargo bench -- [OPTIONS] [FILTER]`. The process exits non-zero when a
/// benchmark cannot run or all of its requests failed.
#[derive(Debug, Parser)]
#[command(
    name = "cargo bench --",
    about = "Runs this target's llmperf endpoint benchmarks.",
    after_help = "Without --bench (as under `cargo test --benches`) each benchmark runs a two-request smoke test and writes nothing."
)]
pub struct BenchArgs {
    /// Run only benchmarks whose id contains this text.
    pub filter: Option<String>,
    /// Match the filter against the whole id.
    #[arg(long)]
    pub exact: bool,
    /// List the benchmarks (`id: benchmark`) and exit.
    #[arg(long)]
    pub list: bool,
    /// Measure (cargo bench passes this); without it, run a smoke test.
    #[arg(long)]
    pub bench: bool,
    /// Run the smoke test even under `cargo bench` (wins over --bench).
    #[arg(long)]
    pub test: bool,
    /// Skip benchmarks whose id contains this text (repeatable, as libtest).
    #[arg(long, value_name = "FILTER")]
    pub skip: Vec<String>,
    /// Override every benchmark's number of requests.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Override every benchmark's concurrency; a list (1,4,16,64) runs a
    /// concurrency sweep.
    #[arg(long, value_parser = crate::cli::parse_positive, value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Override every benchmark's duration per level (e.g. 60s); requests
    /// are then capped as `Load::duration` says.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Do not scrape the servers' Prometheus metrics (by default each run
    /// reads /metrics at the endpoint's origin, or what the benchmark names).
    #[arg(long)]
    pub no_server_metrics: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: crate::cli::ConnectArgs,
    /// Threads that send the requests and read their streams (default: one
    /// per two cores, at least one).
    #[arg(long, value_name = "N", env = "LLMPERF_CLIENT_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub client_threads: Option<u16>,
    /// Where results go (default: target/llmperf); each benchmark writes `<dir>/<id>/new/`.
    #[arg(long, env = "LLMPERF_RESULTS_DIR")]
    pub results_dir: Option<PathBuf>,
    /// Save each benchmark's result as baseline NAME (`<baselines dir>/<id>/NAME.json`, meant to be committed).
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare each benchmark with baseline NAME (a missing one is an error unless --baseline-lenient).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// With --baseline: a benchmark without that baseline just runs.
    #[arg(long, requires = "baseline")]
    pub baseline_lenient: bool,
    /// Run nothing: show stored baseline NAME (compared with --baseline when given).
    #[arg(long, value_name = "NAME", conflicts_with = "save_baseline")]
    pub load_baseline: Option<String>,
    /// Where baselines live (default: benches/baselines in the benchmarked package).
    #[arg(long, value_name = "DIR", env = "LLMPERF_BASELINES_DIR")]
    pub baselines_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub compare: crate::cli::CompareArgs,
    /// Report validation cross-overs (responses that answered another request) without failing: by default they exit non-zero.
    #[arg(long)]
    pub allow_cross_overs: bool,
    /// Skip the HTML report's charts (the report itself is still written).
    #[arg(long)]
    pub noplot: bool,
    /// Print one line per benchmark.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print configuration and file paths too.
    #[arg(long, short)]
    pub verbose: bool,
    /// Colour output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// (libtest flag, accepted and ignored)
    #[arg(long, hide = true)]
    pub nocapture: bool,
    /// (libtest flag, accepted and ignored)
    #[arg(long, hide = true)]
    pub show_output: bool,
    /// (libtest flag: run only ignored tests; no benchmark is ignored, so none runs)
    #[arg(long, hide = true)]
    pub ignored: bool,
    /// (libtest flag, accepted and ignored)
    #[arg(long, hide = true)]
    pub include_ignored: bool,
    /// (libtest flag, accepted and ignored)
    #[arg(long, hide = true)]
    pub test_threads: Option<String>,
    /// (libtest flag, accepted and ignored)
    #[arg(long, hide = true)]
    pub format: Option<String>,
}

/// The smoke-test version of `bench`: at most [`TEST_MODE_REQUESTS`] per
/// level, no duration, warmup or cooldown, every level of a sweep kept.
fn smoke(bench: Benchmark) -> Benchmark {
    let mut load = bench.load_spec().clone();
    load.requests = load.requests.min(TEST_MODE_REQUESTS);
    load.duration = None;
    load.warmup = None;
    load.cooldown_requests = 0;
    // A smoke test writes nothing: no server metrics to keep.
    bench
        .load(load)
        .server_metrics(crate::spec::ServerMetrics::off())
}

/// Every `#[llmperf::bench]` linked into this binary, sorted by id.
pub fn registered() -> Vec<&'static BenchEntry> {
    registry::entries()
}

/// Runs the harness with the process's arguments (what `llmperf::main!()` calls).
pub fn main() -> ExitCode {
    crate::report::stdout::own();
    let args = match BenchArgs::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(message) = load_dotenv() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    run(&args, registered())
}

/// Loads `.env` from the working directory or a parent; a missing file is fine.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(error) if error.not_found() => Ok(()),
        Err(error) => Err(format!(
            "cannot read .env ({error}): fix the file or remove it"
        )),
    }
}

impl ColorChoice {
    /// Whether to colour standard output.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

fn selected<'a>(args: &BenchArgs, entries: Vec<&'a BenchEntry>) -> Vec<&'a BenchEntry> {
    if args.ignored {
        return Vec::new();
    }
    entries
        .into_iter()
        .filter(|entry| {
            let id = entry.id();
            let chosen = match &args.filter {
                None => true,
                Some(filter) if args.exact => id == *filter,
                Some(filter) => id.contains(filter.as_str()),
            };
            chosen && !args.skip.iter().any(|skip| id.contains(skip.as_str()))
        })
        .collect()
}

/// The target directory of this cargo build: `CARGO_TARGET_DIR`, else
/// derived from the bench executable's path (`<target>/<profile>/deps/`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            (deps.file_name()? == "deps").then(|| deps.parent()?.parent().map(Path::to_path_buf))?
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Runs the selected entries as `args` say.
pub fn run(args: &BenchArgs, entries: Vec<&'static BenchEntry>) -> ExitCode {
    let entries = selected(args, entries);
    if args.list {
        for entry in &entries {
            crate::report::stdout::line(&format!("{}: benchmark", entry.id()));
        }
        return ExitCode::SUCCESS;
    }
    let measuring = args.bench && !args.test;
    let palette = Palette::new(args.color.enabled());
    let mut reporter = args.compare.output_format.reporter(palette, args.quiet);
    let baselines = match baselines::Baselines::new(args, palette) {
        Ok(baselines) => baselines,
        Err(error) => {
            eprintln!("{} {error}", palette.red("error:"));
            return ExitCode::from(2);
        }
    };
    let baseline_flags = args.save_baseline.is_some()
        || args.baseline.is_some()
        || args.load_baseline.is_some()
        || args.compare.fail_on_regression;
    if !measuring && baseline_flags {
        eprintln!(
            "note: smoke tests (no --bench) save and compare no baselines: the baseline flags are ignored"
        );
    }
    let results_root = args
        .results_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("llmperf"));
    let mut failures = 0;
    for entry in &entries {
        let id = entry.id();
        let mut bench = entry.benchmark();
        if let (true, Some(name)) = (measuring, &args.load_baseline) {
            failures += baselines.show_stored(reporter.as_mut(), &id, &bench, name);
            continue;
        }
        if let (true, Err(error)) = (measuring, baselines.check(&bench)) {
            failures += 1;
            eprintln!("{} {id}: {error}", palette.red("error:"));
            continue;
        }
        if let Some(duration) = args.duration {
            let load = bench.load_spec().clone().duration(duration);
            bench = bench.load(load);
        }
        if !measuring {
            bench = smoke(bench);
        }
        if let Some(requests) = args.requests {
            bench = bench.requests(requests);
        }
        if args.no_server_metrics {
            bench = bench.server_metrics(crate::spec::ServerMetrics::off());
        }
        match args.connect.apply(bench.endpoint_spec().clone()) {
            Ok(endpoint) => bench = bench.endpoint(endpoint),
            Err(error) => {
                eprintln!("{} {error}", palette.red("error:"));
                return ExitCode::from(2);
            }
        }
        match args.concurrency[..] {
            [] => {}
            [concurrency] => {
                let mut load = bench.load_spec().clone();
                load.concurrency = concurrency;
                load.rate = None;
                load.sweep = None;
                bench = bench.load(load);
            }
            ref levels => {
                let mut load = bench.load_spec().clone();
                load.rate = None;
                load.sweep = Some(crate::spec::Sweep::Concurrency {
                    levels: levels.to_vec(),
                });
                bench = bench.load(load);
            }
        }
        let options = RunOptions {
            results_dir: measuring.then(|| results_root.join(&id).join("new")),
            progress: measuring && !args.quiet && std::io::stderr().is_terminal(),
            mode: if measuring {
                RunMode::Bench
            } else {
                RunMode::Test
            },
            handle_interrupt: measuring,
            client_threads: args.client_threads.map(usize::from),
            ..RunOptions::default()
        };
        if !measuring {
            reporter.progress(&format!("Testing {id} ... "));
        }
        let previous = options
            .results_dir
            .as_deref()
            .and_then(|dir| baselines.keep_previous(dir));
        match run_benchmark(&id, &bench, &options) {
            Ok(outcome) => {
                let requests = &outcome.summary.summary.requests;
                let none_completed = !outcome.any_ok;
                let cross_overs = outcome.summary.cross_overs();
                if !measuring
                    && cross_overs > 0
                    && bench.fails_on_cross_over()
                    && !args.allow_cross_overs
                {
                    // Measured runs gate them with their comparison (baselines.rs).
                    failures += 1;
                    reporter.progress(&format!(
                        "{}\n",
                        palette.red(&format!(
                            "FAILED: {cross_overs} response(s) answered another request (cross-overs); --allow-cross-overs only reports them"
                        ))
                    ));
                } else if !measuring {
                    if none_completed {
                        failures += 1;
                        reporter.progress(&format!(
                            "{}\n",
                            palette.red(&format!("FAILED: all {} requests failed", requests.total))
                        ));
                        if let Some(error) = &outcome.first_failure {
                            reporter.progress(&format!("  {}: {}\n", error.kind, error.message));
                        }
                    } else {
                        reporter.progress(&format!("{}\n", palette.green("Success")));
                    }
                } else {
                    reporter.result(&outcome.summary);
                    if args.verbose && !args.quiet {
                        if let Some(path) = &outcome.summary_path {
                            reporter.note(&format!("  results    {}", path.display()));
                        }
                        reporter.note(&format!(
                            "  workload   {}",
                            serde_json::to_string(&outcome.summary.config.workload)
                                .unwrap_or_default()
                        ));
                    }
                    failures += baselines.after_run(
                        reporter.as_mut(),
                        &id,
                        &bench,
                        &outcome,
                        previous.as_deref(),
                        options.results_dir.as_deref(),
                    );
                }
                for level in &outcome.summary.levels {
                    if let (true, Some(message)) = (
                        matches!(
                            level.stop,
                            Stop::MaxErrors { .. } | Stop::MaxErrorRate { .. }
                        ),
                        level.stop.message(),
                    ) {
                        // A stop condition tripped: the endpoint is broken, CI must see it.
                        failures += 1;
                        eprintln!(
                            "{} {id} [{}]: {message}",
                            palette.red("error:"),
                            level.level.label()
                        );
                    }
                }
                if measuring && none_completed {
                    // Every request failed: the figures mean nothing, and CI must see it.
                    failures += 1;
                    eprintln!(
                        "{} {id}: all {} requests failed",
                        palette.red("error:"),
                        requests.total
                    );
                }
            }
            Err(error) => {
                failures += 1;
                if !measuring {
                    reporter.progress(&format!("{}\n", palette.red("FAILED")));
                }
                eprintln!(
                    "{} {id} ({}:{}): {error}",
                    palette.red("error:"),
                    entry.file,
                    entry.line
                );
            }
        }
    }
    if measuring && !entries.is_empty() && args.load_baseline.is_none() {
        // Every measured run renders the report of everything under the results root.
        let out = results_root.join("report");
        let options = crate::report::html::HtmlOptions {
            templates: None,
            noplot: args.noplot,
        };
        match crate::report::html::render_report(&results_root, &out, &options) {
            Ok(pages) => {
                if !args.quiet {
                    reporter.note(&format!("report: {}", pages.index.display()));
                }
            }
            Err(error) => eprintln!("{} no HTML report: {error}", palette.yellow("warning:")),
        }
    }
    if measuring {
        reporter.finish();
    } else {
        reporter.progress(&format!(
            "\n{} passed, {failures} failed\n",
            entries.len() - failures
        ));
    }
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_and_libtest_flags_are_accepted_and_unknown_flags_are_errors() {
        let args = BenchArgs::try_parse_from([
            "bench",
            "--bench",
            "chat",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .unwrap();
        assert!(args.bench);
        assert_eq!(args.filter.as_deref(), Some("chat"));
        let error = BenchArgs::try_parse_from(["bench", "--frobnicate"]).unwrap_err();
        assert!(error.to_string().contains("--frobnicate"));
        assert!(BenchArgs::try_parse_from(["bench", "--concurrency", "0"]).is_err());
        let threads = BenchArgs::try_parse_from(["bench", "--client-threads", "2"]).unwrap();
        assert_eq!(threads.client_threads, Some(2));
        assert!(BenchArgs::try_parse_from(["bench", "--client-threads", "0"]).is_err());
    }
}
