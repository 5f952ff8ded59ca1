//! What the client costs: CPU per streamed event, memory per open stream,
//! and memory over a long run.
//!
//! The built-in endpoint runs in a child process (this same executable,
//! re-run with `LLMPERF_COST_BUILTIN` set to the script's name), so the CPU
//! time and memory read here are the client's alone. Three measurements:
//!
//! - **CPU per event** at 128 and 512 streams (TTFT 100 ms, 10 ms per
//!   token, 128 tokens): the client process's CPU time (user + system,
//!   from `getrusage`) for the whole `run_benchmark` call (planning, the
//!   run, statistics and writing `requests.jsonl` and `summary.json`
//!   included), divided by the events received (one per token, plus the
//!   role, finish, usage and `[DONE]` events). Beside it, TTFT p50 against
//!   the server's own: the script's 100 ms plus how late the endpoint sent
//!   the median response's first event (from its `/v1/builtin/stats`).
//!   Beside them, the machine's floor at the same load: a minimal client
//!   written here on raw `epoll` (one thread, one readiness wait, one
//!   `recv` and one clock read per read, a search for `"content"` and the
//!   end marker, nothing else: no HTTP framing, no JSON), measured with
//!   the thread's own CPU time. A client cannot spend less per event on
//!   this kernel; llmperf's figure is read against it.
//! - **Memory per open stream**: 10,000 concurrent streams (TTFT 100 ms,
//!   100 ms per token, 30 tokens: every stream is open at once for about
//!   3 s); the process's resident memory is sampled every 20 ms, and the
//!   highest sample less the one before the run, divided by 10,000, is the
//!   figure (it includes each stream's planned request and its record).
//! - **Memory over a long run**: an open loop at 1,000 requests/s for 100 s
//!   (8 tokens, 5 ms apart), run as `llmperf run` runs (records written to
//!   `requests.jsonl`, none kept in memory); resident memory at a quarter,
//!   at three quarters and at the end, and the growth per 1,000 finished
//!   requests from each to the end. By three quarters every metric's
//!   column holds more than its exact samples (65,536) and is a histogram,
//!   so the last figure is the flat line.
//!
//! - **Planning**: the CPU time of planning 200,000 validated requests
//!   (64-token generated prompts; a run plans them on a thread of its own
//!   as it sends), and what a run waits for and holds before its first
//!   send: the 1,024 requests planned ahead.
//!
//! - **Reading the server's metrics**: parsing, numbering, tracking and
//!   summing one scrape of the built-in endpoint's vLLM-style `/metrics`
//!   (what the scraper thread does each round, its HTTP request aside).
//!
//! `cargo bench -p llmperf --bench client_cost` runs the full measurement
//! (`-- client_cost/cpu`, `client_cost/streams`, `client_cost/long`,
//! `client_cost/plan` or `client_cost/scrape` one part); without `--bench` (under `cargo test
//! --benches`) it runs a small smoke version.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Load, Script, Workload};

const CHILD_ENV: &str = "LLMPERF_COST_BUILTIN";
const TTFT_MS: f64 = 100.0;

/// The scripts the child can serve, by name.
fn script(name: &str) -> Script {
    match name {
        // 10,000 streams open together for about 3 s.
        "wide" => Script::new()
            .ttft(Duration::from_millis(100))
            .inter_token(Duration::from_millis(100))
            .output_tokens(30),
        // Short answers for a long open loop.
        "long" => Script::new()
            .ttft(Duration::from_millis(20))
            .inter_token(Duration::from_millis(5))
            .output_tokens(8),
        _ => Script::new()
            .ttft(Duration::from_millis(TTFT_MS as u64))
            .inter_token(Duration::from_millis(10))
            .output_tokens(128),
    }
}

fn main() -> ExitCode {
    if let Some(name) = std::env::var_os(CHILD_ENV) {
        return support::serve(script(&name.to_string_lossy()));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parts = [
        "client_cost/cpu",
        "client_cost/streams",
        "client_cost/long",
        "client_cost/plan",
        "client_cost/scrape",
    ]
    .map(|part| support::selected(part, &args));
    if !parts.contains(&true) {
        return ExitCode::SUCCESS;
    }
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    // Load the bundled tokenizer now so its one-off start-up is not charged
    // to the first level.
    let _ = llmperf::Tokenizer::bundled().count("warm up");
    let results = std::env::temp_dir().join(format!("llmperf-client-cost-{}", std::process::id()));
    let outcome = measure(measuring, parts, &results);
    let _ = std::fs::remove_dir_all(&results);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("client_cost: {error}");
            ExitCode::FAILURE
        }
    }
}

fn measure(measuring: bool, parts: [bool; 5], results: &std::path::Path) -> Result<(), String> {
    let [cpu, streams, long, plan, scrape] = parts;
    if cpu {
        cpu_per_event_table(measuring, results)?;
    }
    if streams {
        memory_per_stream(if measuring { 10_000 } else { 64 })?;
    }
    if long {
        let (rate, seconds) = if measuring { (1000.0, 100) } else { (50.0, 2) };
        memory_over_time(rate, seconds, results)?;
    }
    if plan {
        planning(if measuring { 200_000 } else { 1_000 })?;
    }
    if scrape {
        scraping(if measuring { 5_000 } else { 20 })?;
    }
    Ok(())
}

/// What reading one scrape of the server's metrics costs the client: the
/// built-in endpoint's vLLM-style `/metrics` after a few requests (its
/// histograms filled), read, numbered, tracked and summed into the known
/// roles, as the scraper does each round (its HTTP request aside).
fn scraping(rounds: u32) -> Result<(), String> {
    use llmperf::metrics::server::{Exposition, Tracker};
    let server = llmperf::builtin::Server::start(script("events").output_tokens(16))
        .map_err(|e| format!("cannot start the endpoint: {e}"))?;
    let bench = Benchmark::new()
        .endpoint(support::child_endpoint(&server.base_url()))
        .workload(Workload::token_lengths(64, 0, 16, 0))
        .load(Load::closed(4).requests(8))
        .server_metrics(llmperf::spec::ServerMetrics::off());
    run_benchmark("client_cost", &bench, &RunOptions::default())
        .map_err(|e| format!("the warm-up run failed: {e}"))?;
    let text = support::get(&server.base_url(), "/metrics")
        .ok_or("cannot read the endpoint's /metrics")?;
    let mut tracker = Tracker::new(1);
    let (mut samples, started) = (0, Instant::now());
    for round in 0..rounds {
        let exposition = Exposition::parse(&text);
        samples = exposition.samples.len();
        let (values, _) = tracker.number(0, &exposition);
        tracker.observe(0, &values);
        std::hint::black_box(tracker.point(u64::from(round)));
    }
    let per_scrape = started.elapsed() / rounds.max(1);
    let default = llmperf::spec::DEFAULT_SCRAPE_INTERVAL;
    println!(
        "\nreading a scrape of {} bytes, {samples} samples (vLLM names): {:.1} µs each, \
         {:.3}% of a core at one scrape every {} ms ({rounds} rounds, wall time on this thread)",
        text.len(),
        per_scrape.as_secs_f64() * 1e6,
        per_scrape.as_secs_f64() / default.as_secs_f64() * 100.0,
        default.as_millis(),
    );
    if samples == 0 {
        return Err("the endpoint's /metrics held no samples".to_string());
    }
    Ok(())
}

fn cpu_per_event_table(measuring: bool, results: &std::path::Path) -> Result<(), String> {
    println!("client CPU per event (built-in endpoint in a separate process: TTFT 100 ms, 10 ms/token, 128 tokens)");
    println!(
        "{:>7} {:>9} {:>9} {:>11} {:>10} {:>13} {:>14} {:>9}",
        "streams", "requests", "events", "cpu", "µs/event", "ttft p50", "vs server", "peak RSS"
    );
    let levels: &[(usize, u64)] = if measuring {
        &[(128, 1024), (512, 2048)]
    } else {
        &[(8, 16)]
    };
    for &(streams, requests) in levels {
        cpu_per_event(streams, requests, results)?;
        floor(streams, requests)?;
    }
    println!(
        "(cpu: user + system of this process for the whole run_benchmark call, output written; \
         vs server: TTFT p50 − (100 ms + the endpoint's median first-event lateness); \
         floor: the minimal epoll client, same load, its thread's CPU)"
    );
    Ok(())
}

/// Runs `measure` with the base URL of the endpoint serving script `name`
/// in a child process, then stops the child.
fn against<T>(name: &str, measure: impl FnOnce(&str) -> T) -> Result<T, String> {
    let (mut child, base_url) = support::spawn_endpoint_with(CHILD_ENV, name)
        .map_err(|e| format!("cannot start the endpoint process: {e}"))?;
    let measured = measure(&base_url);
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(measured)
}

fn cpu_per_event(streams: usize, requests: u64, results: &std::path::Path) -> Result<(), String> {
    let options = RunOptions {
        results_dir: Some(results.join(format!("events-{streams}"))),
        ..RunOptions::default()
    };
    let (result, cpu, late) = against("events", |base_url| {
        let bench = Benchmark::new()
            .endpoint(support::child_endpoint(base_url))
            .workload(Workload::token_lengths(64, 0, 128, 0))
            .load(Load::closed(streams).requests(requests));
        support::reset_peak_rss();
        let cpu_before = support::cpu_time();
        let result = run_benchmark("client_cost", &bench, &options);
        let cpu = support::cpu_time().saturating_sub(cpu_before);
        (result, cpu, support::server_first_event_lateness(base_url))
    })?;
    let outcome = result.map_err(|e| format!("run at {streams} streams failed: {e}"))?;
    let summary = &outcome.summary.summary;
    let events = support::stream_events(&outcome.records);
    let ttft = summary
        .ttft_ms
        .as_ref()
        .ok_or_else(|| format!("no successful request at {streams} streams"))?;
    let versus = late.map_or("-".to_string(), |(p50, _)| {
        format!("{:+.2} ms", ttft.p50 - TTFT_MS - p50 as f64 / 1e3)
    });
    println!(
        "{:>7} {:>9} {:>9} {:>9.0}ms {:>10.2} {:>10.2} ms {:>14} {:>6.1}MiB",
        streams,
        format!("{}/{}", summary.requests.completed, summary.requests.total),
        events,
        cpu.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e6 / events as f64,
        ttft.p50,
        versus,
        support::peak_rss_mib()
    );
    if summary.requests.failed > 0 {
        return Err(format!(
            "{} of {} requests failed at {streams} streams",
            summary.requests.failed, summary.requests.total
        ));
    }
    Ok(())
}

fn planning(count: u64) -> Result<(), String> {
    let workload = Workload::token_lengths(64, 0, 128, 0);
    let planner = || {
        llmperf::workload::Planner::new(
            &workload,
            true,
            count,
            7,
            llmperf::shard::WHOLE,
            llmperf::Tokenizer::bundled(),
        )
        .map(|(planner, _)| planner)
        .map_err(|e| format!("planning failed: {e}"))
    };
    // What planning costs in CPU, on the planner's thread: every request.
    let cpu_before = support::cpu_time();
    let planned = planner()?.count();
    let cpu = support::cpu_time().saturating_sub(cpu_before);
    // What a run holds and waits for before its first send: the units
    // planned ahead.
    let before = support::rss_mib().unwrap_or(f64::NAN);
    let started = Instant::now();
    let feed = llmperf::load::Feed::start(planner()?, 1024)
        .map_err(|e| format!("cannot start the planner: {e}"))?;
    let ready = started.elapsed();
    let held = support::rss_mib().unwrap_or(f64::NAN) - before;
    let mut taken = 0usize;
    while let Some(unit) = feed.take_blocking() {
        taken += unit.plans.len();
    }
    println!(
        "\nplanning {planned} validated requests: {:.1} µs of CPU each (on the planner thread); \
         first send after {:.1} ms, {:+.1} MiB held for the 1,024 planned ahead; {taken} taken in order",
        cpu.as_secs_f64() * 1e6 / planned.max(1) as f64,
        ready.as_secs_f64() * 1e3,
        held,
    );
    if taken as u64 != count {
        return Err(format!("the feed gave {taken} of {count} planned requests"));
    }
    Ok(())
}

/// Samples this process's resident memory every 20 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Duration, f64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (Arc::clone(&stop), Arc::clone(&samples));
            let started = Instant::now();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let (Some(rss), Ok(mut samples)) = (support::rss_mib(), samples.lock()) {
                        samples.push((started.elapsed(), rss));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(Duration, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn memory_per_stream(streams: usize) -> Result<(), String> {
    let before = support::rss_mib().unwrap_or(f64::NAN);
    let (result, samples) = against("wide", |base_url| {
        let bench = Benchmark::new()
            .endpoint(support::child_endpoint(base_url))
            .workload(Workload::token_lengths(64, 0, 30, 0))
            .load(Load::closed(streams).requests(streams as u64));
        let sampler = Sampler::start();
        let result = run_benchmark("client_cost", &bench, &RunOptions::default());
        (result, sampler.finish())
    })?;
    let outcome = result.map_err(|e| format!("run at {streams} streams failed: {e}"))?;
    let requests = &outcome.summary.summary.requests;
    let peak = samples.iter().map(|s| s.1).fold(before, f64::max);
    println!(
        "\nmemory per open stream: {streams} streams ({}/{} ok): RSS {before:.1} MiB before, {peak:.1} MiB at the highest: {:.1} KiB per stream",
        requests.completed,
        requests.total,
        (peak - before) * 1024.0 / streams as f64
    );
    if requests.failed > 0 {
        return Err(format!(
            "{} of {} requests failed with {streams} streams: {:?}",
            requests.failed, requests.total, requests.errors_by_kind
        ));
    }
    Ok(())
}

fn memory_over_time(rate: f64, seconds: u64, results: &std::path::Path) -> Result<(), String> {
    let options = RunOptions {
        results_dir: Some(results.join("long")),
        drop_records: true,
        ..RunOptions::default()
    };
    let before = support::rss_mib().unwrap_or(f64::NAN);
    let (result, samples) = against("long", |base_url| {
        let bench = Benchmark::new()
            .endpoint(support::child_endpoint(base_url))
            .workload(Workload::token_lengths(64, 0, 8, 0))
            .load(Load::rate(rate).duration(Duration::from_secs(seconds)));
        let sampler = Sampler::start();
        let result = run_benchmark("client_cost", &bench, &options);
        (result, sampler.finish())
    })?;
    let outcome = result.map_err(|e| format!("the long run failed: {e}"))?;
    let requests = &outcome.summary.summary.requests;
    let at = |share: f64| -> f64 {
        let when = Duration::from_secs_f64(seconds as f64 * share);
        samples
            .iter()
            .rev()
            .find(|s| s.0 <= when)
            .map_or(before, |s| s.1)
    };
    let (quarter, three_quarters, end) = (at(0.25), at(0.75), at(1.0));
    let per_thousand =
        |from: f64, share: f64| (end - from) * 1000.0 / (requests.total as f64 * share).max(1.0);
    println!(
        "\nmemory over a long run: {rate} requests/s for {seconds} s ({}/{} ok, records not kept): RSS {before:.1} MiB before, {quarter:.1} MiB at a quarter, {three_quarters:.1} at three quarters, {end:.1} MiB at the end: {:+.3} MiB per 1,000 finished requests from a quarter, {:+.3} from three quarters",
        requests.completed,
        requests.total,
        per_thousand(quarter, 0.75),
        per_thousand(three_quarters, 0.25),
    );
    if requests.failed > 0 {
        return Err(format!(
            "{} of {} requests failed in the long run",
            requests.failed, requests.total
        ));
    }
    Ok(())
}

/// The minimal client's CPU per event at the same load.
#[cfg(target_os = "linux")]
fn floor(streams: usize, requests: u64) -> Result<(), String> {
    let measured = against("events", |base_url| {
        minimal::run(base_url, streams, requests)
    })?;
    let (cpu, events) = measured.map_err(|e| format!("the minimal client failed: {e}"))?;
    println!(
        "{:>7} {:>9} {:>9} {:>9.0}ms {:>10.2}   (floor: minimal epoll client)",
        streams,
        requests,
        events,
        cpu.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e6 / events as f64
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn floor(_: usize, _: u64) -> Result<(), String> {
    Ok(())
}

/// The least a streaming client can do: raw `epoll`, one `recv` and one
/// clock read per read, a byte search for each event's `"content"` and
/// for the end marker. No HTTP framing, no JSON, no records.
#[cfg(target_os = "linux")]
mod minimal {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    fn thread_cpu() -> Duration {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        time(usage.ru_utime) + time(usage.ru_stime)
    }

    /// CPU time of the reading thread, and events seen (content events
    /// plus one for each response's other events: role, finish, usage,
    /// end marker counted as in the llmperf rows).
    pub fn run(base_url: &str, streams: usize, requests: u64) -> Result<(Duration, u64), String> {
        let authority = base_url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .ok_or("not an http:// base URL")?
            .to_string();
        let body = r#"{"model":"llmperf-builtin","messages":[{"role":"user","content":"Count to one hundred and twenty-eight."}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":128}"#;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut sockets = Vec::with_capacity(streams);
        for _ in 0..streams {
            let socket = TcpStream::connect(&authority).map_err(|e| e.to_string())?;
            socket.set_nodelay(true).map_err(|e| e.to_string())?;
            sockets.push(socket);
        }
        // SAFETY: plain epoll calls on descriptors this function owns.
        let epoll = unsafe { libc::epoll_create1(0) };
        if epoll < 0 {
            return Err("epoll_create1 failed".into());
        }
        for (index, socket) in sockets.iter().enumerate() {
            socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: index as u64,
            };
            // SAFETY: as above.
            if unsafe {
                libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut event)
            } != 0
            {
                return Err("epoll_ctl failed".into());
            }
        }
        let cpu_before = thread_cpu();
        let mut sent = 0u64;
        let mut finished = 0u64;
        let mut events = 0u64;
        let mut stamps = 0u64;
        // The last bytes of each stream's previous read, so a marker split
        // across reads is still found.
        let mut tails = vec![Vec::<u8>::new(); streams];
        for socket in sockets.iter_mut() {
            if sent < requests {
                socket
                    .write_all(request.as_bytes())
                    .map_err(|e| e.to_string())?;
                sent += 1;
            }
        }
        let mut ready = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(600);
        while finished < requests && Instant::now() < deadline {
            // SAFETY: `ready` has room for its length of events.
            let count =
                unsafe { libc::epoll_wait(epoll, ready.as_mut_ptr(), ready.len() as i32, 1000) };
            for event in ready.iter().take(count.max(0) as usize) {
                let index = event.u64 as usize;
                let socket = &mut sockets[index];
                let read = match socket.read(&mut buf) {
                    Ok(0) => return Err("the endpoint closed a connection".into()),
                    Ok(read) => read,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let _stamp = Instant::now();
                stamps += 1;
                let tail = &mut tails[index];
                tail.extend_from_slice(&buf[..read]);
                events += find(tail, b"\"content\"") as u64;
                let done = find(tail, b"[DONE]");
                let keep = tail.len().saturating_sub(8);
                tail.drain(..keep);
                if done > 0 {
                    tail.clear();
                    finished += 1;
                    events += 3;
                    if sent < requests {
                        socket
                            .write_all(request.as_bytes())
                            .map_err(|e| e.to_string())?;
                        sent += 1;
                    }
                }
            }
        }
        let cpu = thread_cpu().saturating_sub(cpu_before);
        // SAFETY: closes the descriptor created above.
        unsafe { libc::close(epoll) };
        if finished < requests {
            return Err(format!("{finished} of {requests} responses ended in time"));
        }
        std::hint::black_box(stamps);
        Ok((cpu, events))
    }
}
