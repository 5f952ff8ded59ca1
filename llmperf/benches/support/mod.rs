//! What the measurement benches share: the harness's selection flags for a
//! plain `fn main()` bench, and the built-in endpoint in a child process
//! (this same executable, re-run with an environment variable set), so the
//! CPU time and memory a bench reads are the client's alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use llmperf::builtin::{Script, Server};

/// The child's side: serves `script`, prints the base URL, and stops when
/// the parent closes our stdin.
pub fn serve(script: Script) -> ExitCode {
    let server = match Server::start(script) {
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

/// Re-runs this executable with `child_env` set (its `main` then calls
/// [`serve`]) and returns the child and the base URL it serves.
#[allow(dead_code)] // not every bench spawns the default script
pub fn spawn_endpoint(child_env: &str) -> std::io::Result<(Child, String)> {
    spawn_endpoint_with(child_env, "1")
}

/// The endpoint a spawned child serves at `base_url`.
#[allow(dead_code)] // only the benches that spawn a child
pub fn child_endpoint(base_url: &str) -> llmperf::Endpoint {
    llmperf::Endpoint::openai_chat()
        .base_url(base_url)
        .model("llmperf-builtin")
}

/// [`spawn_endpoint`] with `child_env` set to `value` (which script to serve).
pub fn spawn_endpoint_with(child_env: &str, value: &str) -> std::io::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(child_env, value)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut url)?;
    }
    Ok((child, url.trim().to_string()))
}

/// The endpoint's own send lateness p50/p99, µs (`GET /v1/builtin/stats`
/// over a plain socket).
#[allow(dead_code)] // not every bench reads the endpoint's lateness
pub fn server_lateness(base_url: &str) -> Option<(u64, u64)> {
    server_percentiles(base_url, "send_lateness")
}

/// How late the endpoint sent each response's first generated event,
/// p50/p99, µs: its own time to first token is the script's TTFT plus this.
#[allow(dead_code)] // not every bench reads the endpoint's lateness
pub fn server_first_event_lateness(base_url: &str) -> Option<(u64, u64)> {
    server_percentiles(base_url, "first_event_lateness")
}

/// `{name}_p50_us` and `{name}_p99_us` of the endpoint's counters.
#[allow(dead_code)] // not every bench reads the endpoint's lateness
fn server_percentiles(base_url: &str, name: &str) -> Option<(u64, u64)> {
    let stats = server_stats(base_url)?;
    Some((
        stats.get(format!("{name}_p50_us"))?.as_u64()?,
        stats.get(format!("{name}_p99_us"))?.as_u64()?,
    ))
}

/// The endpoint's `/v1/builtin/stats`, read over a plain socket.
#[allow(dead_code)] // not every bench reads the endpoint's counters
fn server_stats(base_url: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&get(base_url, "/v1/builtin/stats")?).ok()
}

/// The body of `GET path` at the origin of `base_url`, over a plain socket.
#[allow(dead_code)] // not every bench reads the endpoint's pages
pub fn get(base_url: &str, path: &str) -> Option<String> {
    let authority = base_url.strip_prefix("http://")?.split('/').next()?;
    let mut stream = TcpStream::connect(authority).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_string())
}

/// CPU time (user + system) of this process so far, from getrusage.
#[allow(dead_code)] // not every bench reads CPU time
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Whether the harness's selection flags (`--list`, a filter, `--skip`,
/// `--ignored`) leave the bench target `name` to run, so `cargo bench --
/// --list` and `cargo bench -- chat/` treat it like the others; prints the
/// listing for `--list`.
pub fn selected(name: &str, args: &[String]) -> bool {
    if args.iter().any(|a| a == "--list") {
        println!("{name}: benchmark");
        return false;
    }
    const TAKES_VALUE: [&str; 8] = [
        "--client-threads",
        "--test-threads",
        "--format",
        "--skip",
        "--results-dir",
        "--requests",
        "--concurrency",
        "--color",
    ];
    let mut filter = None;
    let mut skipped = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if TAKES_VALUE.contains(&arg.as_str()) {
            let value = rest.next();
            skipped |= arg == "--skip" && value.is_some_and(|v| name.contains(v.as_str()));
        } else if !arg.starts_with('-') && filter.is_none() {
            filter = Some(arg.as_str());
        }
    }
    let chosen = filter.is_none_or(|f| name.contains(f));
    chosen && !skipped && !args.iter().any(|a| a == "--ignored")
}

/// Peak resident memory since the last reset, in MiB (Linux; NaN elsewhere).
#[allow(dead_code)] // not every bench reads memory
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .unwrap_or(f64::NAN)
}

/// Resets the peak that [`peak_rss_mib`] reads.
#[allow(dead_code)] // not every bench reads memory
pub fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0+); harmless elsewhere.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Resident memory now, in MiB (Linux).
#[allow(dead_code)] // not every bench reads memory
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The stream events a run's responses carried: each content event, plus
/// the role, finish, usage and `[DONE]` events of an OpenAI chat stream.
#[allow(dead_code)] // only the benches that count CPU per event
pub fn stream_events(records: &[llmperf::record::RequestRecord]) -> usize {
    records.iter().map(|r| r.content_events_us.len() + 4).sum()
}
