//! Open-loop sending at 100, 1,000 and 5,000 requests per second: does the
//! client send on schedule, and what does that cost?
//!
//! Each level sends Poisson arrivals (`Load::rate`) for about
//! [`SECONDS_PER_LEVEL`] against the built-in endpoint with short answers
//! (TTFT 5 ms, then 4 tokens 1 ms apart: a request lives about 8 ms, so
//! what is measured is the sending, not the streaming). The endpoint runs
//! in a child process (this same executable, re-run with
//! `LLMPERF_ARRIVAL_BUILTIN` set; a fresh one per level, so its counters and
//! connections are the level's own). Client and endpoint then compete only
//! for the CPU, as they would with a real endpoint on the same machine, and
//! the CPU figures are each one's own. Everything stays on 127.0.0.1, and
//! every level is bounded by its request count and a 10 s per-request
//! timeout.
//!
//! # Reading the table
//!
//! - `offered/s` is the rate the schedule asked for, `achieved/s` the rate
//!   requests actually went out at, `ach/off` their ratio: clearly below 1
//!   the client did not keep up.
//! - `send lag` is actual − scheduled send (p50/p99, ms), `client lag` the
//!   client's own part of it (waiting for an in-flight slot excluded; there
//!   is no cap here, so `queued` is 0 and the two agree). The send is
//!   stamped when the request's task first runs on the client's runtime,
//!   so the lag includes the dispatcher waking late and the task waiting
//!   for a busy runtime worker. `behind` is `SendStats::client_fell_behind`
//!   (client lag p99 over 10 ms): latencies counted from the actual send
//!   then understate what users arriving on schedule would see.
//! - `ttft` is counted from the actual send (p50/p99, ms) against the
//!   script's 5 ms: a connection opened for the request, a busy endpoint,
//!   or a client reading late all show here.
//! - `server late` is how late the endpoint itself handed events to the
//!   connection against their deadlines (p50/p99, ms, from its
//!   `/v1/builtin/stats`; its histogram stops at 100 ms, shown as `≥100`).
//!   When it grows, the endpoint is behind too.
//! - `conns` is the most connections the endpoint held open at once: the
//!   client keeps one per request in flight (HTTP/1.1), so it follows the
//!   peak of requests in flight; far above rate × request time it means
//!   requests piled up and new connections were opened for them.
//! - `client`, `server` and `other` are cores busy during the sending
//!   window (`1.00` = one core): this process, the endpoint's, and the rest
//!   of the machine. When their sum nears the machine's cores, client and
//!   endpoint starve each other and lags grow in bursts.
//!
//! # Running it
//!
//! `cargo bench -p llmperf --bench arrival_rates` runs the full
//! measurement (about 25 s). `LLMPERF_ARRIVAL_RATES=2000,10000` measures
//! other rates (each for the same time). Without `--bench` (under `cargo
//! test --benches`) it sends a few requests at a low rate and exits
//! non-zero if any fails.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

const TTFT_MS: u64 = 5;
const ITL_MS: u64 = 1;
const TOKENS: u32 = 4;
/// Sending time per measured level (its request count is rate × this).
const SECONDS_PER_LEVEL: f64 = 6.0;
const RATES_PER_S: [f64; 3] = [100.0, 1_000.0, 5_000.0];
const RATES_ENV: &str = "LLMPERF_ARRIVAL_RATES";
const CHILD_ENV: &str = "LLMPERF_ARRIVAL_BUILTIN";
const NAME: &str = "arrival_rates";
/// How often the CPU counters are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// The endpoint's connections are counted on every this many samples:
/// listing 5,000 descriptors takes a couple of milliseconds of the
/// client's CPU, and within a level the count only grows (the client's
/// pool keeps its connections), so the peak is not missed.
const COUNT_CONNECTIONS_EVERY: usize = 5;
/// Where the endpoint's lateness histogram stops, µs.
const LATENESS_CAP_US: u64 = 100_000;

fn script() -> Script {
    Script::new()
        .ttft(Duration::from_millis(TTFT_MS))
        .inter_token(Duration::from_millis(ITL_MS))
        .output_tokens(TOKENS)
}

/// `/proc` clock ticks as a duration.
fn ticks(count: u64) -> Option<Duration> {
    // SAFETY: sysconf reads a configuration value and has no preconditions.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_s > 0).then(|| Duration::from_secs_f64(count as f64 / per_s as f64))
}

/// CPU time (user + system) of process `pid` so far, from `/proc/PID/stat`
/// (`None` off Linux).
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are the 14th and 15th fields: the 12th and 13th
    // after the parenthesized command name.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    ticks(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// CPU time all cores spent busy so far (`/proc/stat`: everything but
/// idle and I/O wait; steal counts as busy).
fn machine_busy_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let (idle, iowait) = (fields.get(3)?, fields.get(4)?);
    ticks(fields.iter().sum::<u64>() - idle - iowait)
}

/// Open file descriptors of process `pid`.
fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    client_cpu: Duration,
    server_cpu: Option<Duration>,
    machine_busy: Option<Duration>,
    server_files: Option<usize>,
}

impl Sample {
    fn take(server_pid: u32, count_files: bool) -> Sample {
        Sample {
            at: Instant::now(),
            client_cpu: support::cpu_time(),
            server_cpu: process_cpu_time(server_pid),
            machine_busy: machine_busy_time(),
            server_files: count_files.then(|| open_files(server_pid)).flatten(),
        }
    }
}

/// Cores busy between two samples: this process, the endpoint, and the
/// rest of the machine.
#[derive(Debug, Clone, Copy)]
struct CoresBusy {
    client: f64,
    server: Option<f64>,
    other: Option<f64>,
}

impl CoresBusy {
    fn between(from: &Sample, to: &Sample) -> CoresBusy {
        let wall_s = (to.at - from.at).as_secs_f64().max(1e-3);
        let cores = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() / wall_s;
        let client = cores(from.client_cpu, to.client_cpu);
        let server = from.server_cpu.zip(to.server_cpu).map(|(a, b)| cores(a, b));
        let other = from
            .machine_busy
            .zip(to.machine_busy)
            .zip(server)
            .map(|((a, b), server)| (cores(a, b) - client - server).max(0.0));
        CoresBusy {
            client,
            server,
            other,
        }
    }
}

/// What a level used, read from outside the client.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// Over the sending window.
    cores: Option<CoresBusy>,
    /// Most connections the endpoint held at once.
    peak_connections: Option<usize>,
}

/// Reads the counters on a thread every [`SAMPLE_EVERY`] until finished,
/// so the sending window can be cut out of the level afterwards (the
/// client plans every request before its first send).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start(server_pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut samples = vec![Sample::take(server_pid, true)];
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                let count_files = samples.len() % COUNT_CONNECTIONS_EVERY == 0;
                samples.push(Sample::take(server_pid, count_files));
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// The usage from `from` to `to` (the samples nearest each).
    fn finish(self, from: Instant, to: Instant) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let Ok(samples) = self.thread.join() else {
            return Usage::default();
        };
        let distance = |s: &&Sample, t: Instant| {
            s.at.saturating_duration_since(t)
                .max(t.saturating_duration_since(s.at))
        };
        let first = samples.iter().min_by_key(|s| distance(s, from));
        let last = samples.iter().min_by_key(|s| distance(s, to));
        let cores = first
            .zip(last)
            .filter(|(first, last)| last.at > first.at)
            .map(|(first, last)| CoresBusy::between(first, last));
        // The files the endpoint held before the first request (listener,
        // pipes, runtime) are not connections.
        let before = samples.first().and_then(|s| s.server_files);
        let peak = samples.iter().filter_map(|s| s.server_files).max();
        Usage {
            cores,
            peak_connections: before.zip(peak).map(|(b, p)| p.saturating_sub(b)),
        }
    }
}

/// The rates to measure: [`RATES_PER_S`], or those in [`RATES_ENV`].
fn rates() -> Result<Vec<f64>, String> {
    let Ok(list) = std::env::var(RATES_ENV) else {
        return Ok(RATES_PER_S.to_vec());
    };
    list.split(',')
        .map(|rate| match rate.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
            _ => Err(format!(
                "{RATES_ENV}: `{rate}` is not a positive rate; give requests per second, e.g. 2000,10000"
            )),
        })
        .collect()
}

/// `p50/p99` of a statistic, `-` when missing.
fn p50_p99(stats: Option<llmperf::metrics::Stats>, decimals: usize) -> String {
    stats.map_or("-".to_string(), |s| {
        format!("{:.decimals$}/{:.decimals$}", s.p50, s.p99)
    })
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The endpoint's lateness, µs, as ms (`≥100` at the histogram's end).
fn lateness_ms(us: u64) -> String {
    if us >= LATENESS_CAP_US {
        "≥100".to_string()
    } else {
        format!("{:.2}", us as f64 / 1e3)
    }
}

const HEADER: [&str; 16] = [
    "rate",
    "requests",
    "offered/s",
    "achieved/s",
    "ach/off",
    "send lag",
    "client lag",
    "queued",
    "ok/failed",
    "behind",
    "ttft",
    "server late",
    "conns",
    "client",
    "server",
    "other",
];
const WIDTHS: [usize; 16] = [6, 8, 9, 10, 7, 14, 14, 6, 11, 6, 13, 12, 6, 6, 6, 6];

fn print_row(cells: &[String]) {
    let line: Vec<String> = cells
        .iter()
        .zip(WIDTHS)
        .map(|(cell, width)| format!("{cell:>width$}"))
        .collect();
    println!("{}", line.join(" "));
}

/// Runs one level against a fresh endpoint process and prints its row;
/// `Err` says why the level failed.
fn run_level(rate_per_s: f64, requests: u64) -> Result<(), String> {
    let (mut child, base_url) = support::spawn_endpoint(CHILD_ENV)
        .map_err(|e| format!("cannot start the endpoint process: {e}"))?;
    let bench = Benchmark::new()
        .endpoint(
            Endpoint::openai_chat()
                .base_url(base_url.as_str())
                .model("llmperf-builtin"),
        )
        .workload(Workload::token_lengths(64, 0, TOKENS, 0))
        .load(
            Load::rate(rate_per_s)
                .requests(requests)
                .timeout(Duration::from_secs(10)),
        );
    let sampler = Sampler::start(child.id());
    // Record times count from the run's start, a moment after this.
    let started = Instant::now();
    let result = run_benchmark(NAME, &bench, &RunOptions::default());
    let (first_send_us, last_end_us) = result.as_ref().map_or((0, 0), |outcome| {
        let records = &outcome.records;
        (
            records.iter().map(|r| r.scheduled_us).min().unwrap_or(0),
            records.iter().map(|r| r.end_us).max().unwrap_or(0),
        )
    });
    let usage = sampler.finish(
        started + Duration::from_micros(first_send_us),
        started + Duration::from_micros(last_end_us),
    );
    let late = support::server_lateness(&base_url);
    drop(child.stdin.take());
    let _ = child.wait();
    let outcome = result.map_err(|e| format!("{rate_per_s} req/s: run failed: {e}"))?;
    let summary = &outcome.summary.summary;
    let send = &summary.send;
    let counts = &summary.requests;
    let ratio = send
        .achieved_rate_per_s
        .zip(send.offered_rate_per_s)
        .map(|(achieved, offered)| achieved / offered);
    let cores = usage.cores;
    print_row(&[
        rate_per_s.to_string(),
        requests.to_string(),
        optional(send.offered_rate_per_s, 1),
        optional(send.achieved_rate_per_s, 1),
        optional(ratio, 3),
        p50_p99(send.send_lag_ms, 3),
        p50_p99(send.client_lag_ms, 3),
        send.queued_requests.to_string(),
        format!("{}/{}", counts.completed, counts.failed),
        (if send.client_fell_behind { "yes" } else { "no" }).to_string(),
        p50_p99(summary.ttft_ms, 2),
        late.map_or("-".to_string(), |(p50, p99)| {
            format!("{}/{}", lateness_ms(p50), lateness_ms(p99))
        }),
        usage
            .peak_connections
            .map_or("-".to_string(), |c| c.to_string()),
        optional(cores.map(|c| c.client), 2),
        optional(cores.and_then(|c| c.server), 2),
        optional(cores.and_then(|c| c.other), 2),
    ]);
    if counts.failed > 0 || counts.completed < requests {
        return Err(format!(
            "{rate_per_s} req/s: {} of {requests} requests completed, errors {:?}",
            counts.completed, counts.errors_by_kind
        ));
    }
    if send.achieved_rate_per_s.is_none() {
        return Err(format!("{rate_per_s} req/s: no achieved rate measured"));
    }
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD_ENV).is_some() {
        return support::serve(script());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !support::selected(NAME, &args) {
        return ExitCode::SUCCESS;
    }
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let levels: Vec<(f64, u64)> = if measuring {
        match rates() {
            Ok(rates) => rates
                .into_iter()
                .map(|rate| (rate, (rate * SECONDS_PER_LEVEL).ceil() as u64))
                .collect(),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        vec![(20.0, 10)]
    };
    // Load the bundled tokenizer now so its one-off start-up is not charged
    // to the first level.
    let _ = llmperf::Tokenizer::bundled().count("warm up");
    println!(
        "open-loop Poisson arrivals against the built-in endpoint (separate process): \
         TTFT {TTFT_MS} ms, {TOKENS} tokens {ITL_MS} ms apart; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_row(&HEADER.map(str::to_string));
    let mut failed = false;
    for (rate_per_s, requests) in levels {
        if let Err(message) = run_level(rate_per_s, requests) {
            eprintln!("{message}");
            failed = true;
        }
    }
    println!(
        "(send lag, client lag, ttft: p50/p99 ms; ttft from the actual send, script {TTFT_MS} ms. \
         server late: p50/p99 ms the endpoint handed events to the connection after their \
         deadline. conns: most connections open at the endpoint. client, server, other: cores \
         busy during the sending window in this process, the endpoint's, and the rest of the \
         machine.)"
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
