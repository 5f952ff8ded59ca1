//! Timing accuracy and client cost at 1, 64 and 512 concurrent streams.
//!
//! The built-in endpoint runs in a child process (this same executable,
//! re-run with `LLMPERF_TIMING_MOCK_PORT_FILE` set) so that the CPU time and
//! peak memory read here are the client's alone. Its script: TTFT 100 ms,
//! 10 ms per token, 128 tokens. For each level this prints the measured
//! p50/p99 TTFT and inter-token latency, their error against the script,
//! the client's CPU time per 1,000 stream events, and its peak RSS.
//!
//! `cargo bench --bench timing_accuracy` runs the full measurement; without
//! `--bench` (under `cargo test --benches`) it runs a small smoke version.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Load, MockScript, MockServer, Workload};

const TTFT_MS: f64 = 100.0;
const ITL_MS: f64 = 10.0;
const TOKENS: u32 = 128;
const CHILD_ENV: &str = "LLMPERF_TIMING_MOCK";

fn script() -> MockScript {
    MockScript::new()
        .ttft(Duration::from_millis(TTFT_MS as u64))
        .inter_token(Duration::from_millis(ITL_MS as u64))
        .output_tokens(TOKENS)
}

/// The child: serve until the parent closes our stdin.
fn serve() -> ExitCode {
    let server = match MockServer::start(script()) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot start the built-in endpoint: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.base_url());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

fn spawn_endpoint() -> std::io::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut url)?;
    }
    Ok((child, url.trim().to_string()))
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks.
    let ticks_per_s = 100.0;
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some(Duration::from_secs_f64((utime + stime) / ticks_per_s))
        })
        .unwrap_or_default()
}

/// Peak resident memory since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .unwrap_or(f64::NAN)
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0+); harmless elsewhere.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        return serve();
    }
    let measuring = std::env::args().any(|a| a == "--bench");
    let levels: &[(usize, u64)] = if measuring {
        &[(1, 10), (64, 256), (512, 1024)]
    } else {
        &[(1, 2), (8, 8)]
    };
    let (mut child, base_url) = match spawn_endpoint() {
        Ok(spawned) => spawned,
        Err(error) => {
            eprintln!("cannot start the endpoint process: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "timing accuracy against the built-in endpoint (separate process): TTFT {TTFT_MS} ms, {ITL_MS} ms/token, {TOKENS} tokens"
    );
    println!(
        "{:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "streams",
        "requests",
        "ttft p50",
        "ttft p99",
        "ttft err",
        "itl p50",
        "itl p99",
        "itl err",
        "cpu/1k evts",
        "peak RSS"
    );
    let mut failed = false;
    for &(concurrency, requests) in levels {
        let bench = Benchmark::new()
            .endpoint(
                Endpoint::openai_chat()
                    .base_url(base_url.as_str())
                    .model("llmperf-mock"),
            )
            .workload(Workload::token_lengths(64, 0, TOKENS, 0))
            .load(Load::closed(concurrency).requests(requests));
        reset_peak_rss();
        let cpu_before = cpu_time();
        let outcome = match run_benchmark("timing_accuracy", &bench, &RunOptions::default()) {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("run failed: {error}");
                failed = true;
                break;
            }
        };
        let cpu = cpu_time().saturating_sub(cpu_before);
        let summary = &outcome.summary.summary;
        let events: usize = outcome
            .records
            .iter()
            .map(|r| r.content_events_us.len() + 4)
            .sum();
        let (Some(ttft), Some(itl)) = (summary.ttft_ms, summary.inter_token_latency_ms) else {
            eprintln!(
                "no successful requests at {concurrency} streams: {:?}",
                summary.requests
            );
            failed = true;
            break;
        };
        println!(
            "{:>7} {:>8} {:>8.2}ms {:>8.2}ms {:>+8.2}ms {:>8.3}ms {:>8.3}ms {:>+8.3}ms {:>10.1}ms {:>7.1}MiB",
            concurrency,
            format!("{}/{}", summary.requests.completed, summary.requests.total),
            ttft.p50,
            ttft.p99,
            ttft.p50 - TTFT_MS,
            itl.p50,
            itl.p99,
            itl.p50 - ITL_MS,
            cpu.as_secs_f64() * 1e3 / (events as f64 / 1e3),
            peak_rss_mib()
        );
        failed |= summary.requests.failed > 0;
    }
    println!("(events per request: content events plus the role, finish, usage and [DONE] events; CPU from /proc/self/stat, 10 ms ticks)");
    drop(child.stdin.take());
    let _ = child.wait();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
