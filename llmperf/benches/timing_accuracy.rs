//! Timing accuracy and client cost at 1, 64 and 512 concurrent streams.
//!
//! The built-in endpoint runs in a child process (this same executable,
//! re-run with `LLMPERF_TIMING_BUILTIN` set; a fresh one per level) so that the
//! CPU time and peak memory read here are the client's alone. Its script:
//! TTFT 100 ms, 10 ms per token, 128 tokens. For each level this prints the
//! measured p50/p99 TTFT and inter-token latency, their error against the
//! script, how late the server itself sent its events (from the endpoint's
//! `/v1/builtin/stats`), the client's CPU time per 1,000 stream events during
//! the run, and its peak RSS.
//!
//! `cargo bench -p llmperf --bench timing_accuracy` runs the full
//! measurement; without `--bench` (under `cargo test --benches`) it runs a
//! small smoke version.

use std::process::ExitCode;
use std::time::Duration;

mod support;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Load, Script, Workload};

const TTFT_MS: f64 = 100.0;
const ITL_MS: f64 = 10.0;
const TOKENS: u32 = 128;
const CHILD_ENV: &str = "LLMPERF_TIMING_BUILTIN";

fn script() -> Script {
    Script::new()
        .ttft(Duration::from_millis(TTFT_MS as u64))
        .inter_token(Duration::from_millis(ITL_MS as u64))
        .output_tokens(TOKENS)
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        return support::serve(script());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !support::selected("timing_accuracy", &args) {
        return ExitCode::SUCCESS;
    }
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let levels: &[(usize, u64)] = if measuring {
        &[(1, 10), (64, 256), (512, 1024)]
    } else {
        &[(1, 2), (8, 8)]
    };
    // Load the bundled tokenizer now so its one-off start-up is not charged
    // to the first level.
    let _ = llmperf::Tokenizer::bundled().count("warm up");
    println!(
        "timing accuracy against the built-in endpoint (separate process): TTFT {TTFT_MS} ms, {ITL_MS} ms/token, {TOKENS} tokens"
    );
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>15} {:>11} {:>9}",
        "streams",
        "requests",
        "ttft p50",
        "ttft p99",
        "ttft err",
        "itl p50",
        "itl p99",
        "itl err",
        "server late",
        "cpu/1k ev",
        "peak RSS"
    );
    let mut failed = false;
    for &(concurrency, requests) in levels {
        let (mut child, base_url) = match support::spawn_endpoint(CHILD_ENV) {
            Ok(spawned) => spawned,
            Err(error) => {
                eprintln!("cannot start the endpoint process: {error}");
                return ExitCode::FAILURE;
            }
        };
        let bench = Benchmark::new()
            .endpoint(support::child_endpoint(&base_url))
            .workload(Workload::token_lengths(64, 0, TOKENS, 0))
            .load(Load::closed(concurrency).requests(requests));
        support::reset_peak_rss();
        let cpu_before = support::cpu_time();
        let result = run_benchmark("timing_accuracy", &bench, &RunOptions::default());
        let cpu = support::cpu_time().saturating_sub(cpu_before);
        let late = support::server_lateness(&base_url);
        drop(child.stdin.take());
        let _ = child.wait();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("run failed: {error}");
                failed = true;
                break;
            }
        };
        let summary = &outcome.summary.summary;
        let events = support::stream_events(&outcome.records);
        let (Some(ttft), Some(itl)) = (summary.ttft_ms, summary.inter_token_latency_ms) else {
            eprintln!(
                "no successful requests at {concurrency} streams: {:?}",
                summary.requests
            );
            failed = true;
            break;
        };
        let late = late.map_or("-".to_string(), |(p50, p99)| format!("{p50}/{p99} µs"));
        println!(
            "{:>7} {:>9} {:>7.2}ms {:>7.2}ms {:>+7.2}ms {:>7.3}ms {:>7.3}ms {:>+7.3}ms {:>15} {:>9.1}ms {:>6.1}MiB",
            concurrency,
            format!("{}/{}", summary.requests.completed, summary.requests.total),
            ttft.p50,
            ttft.p99,
            ttft.p50 - TTFT_MS,
            itl.p50,
            itl.p99,
            itl.p50 - ITL_MS,
            late,
            cpu.as_secs_f64() * 1e3 / (events as f64 / 1e3),
            support::peak_rss_mib()
        );
        failed |= summary.requests.failed > 0;
    }
    println!(
        "(err: measured p50 − script. server late: p50/p99 of how late the endpoint handed events to \
         the connection. cpu: the client process during the run, incl. planning, per content event \
         plus the role, finish, usage and [DONE] events.)"
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
