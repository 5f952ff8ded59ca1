//! Peak memory and time of one request against each hostile server: a line
//! that never ends, one 50 MiB content event, 2,000,000 one-token events
//! (the built-in endpoint's hostile faults, in a child process so the memory
//! read here is the client's alone). Each case runs one request with a 20 s
//! timeout, as the cases were first measured, and prints how the request
//! ended, how long the run took from planning to its summary, and the
//! client's peak RSS over that run.
//!
//! `cargo bench -p llmperf --bench hostile_servers` runs the full cases;
//! without `--bench` (under `cargo test --benches`) it runs small ones.

use std::process::ExitCode;
use std::time::{Duration, Instant};

mod support;

use llmperf::run::{run_benchmark, RunOptions};
use llmperf::{Benchmark, Fault, FaultSchedule, Load, Script, Workload};

const CHILD_ENV: &str = "LLMPERF_HOSTILE_BUILTIN";

/// The hostile fault a case name stands for, full size or small.
fn fault(case: &str, full: bool) -> Option<Fault> {
    match case {
        "endless-line" => Some(Fault::EndlessLine),
        "huge-event" => Some(Fault::HugeEvent {
            bytes: if full { 50 << 20 } else { 2 << 20 },
        }),
        "event-flood" => Some(Fault::EventFlood {
            events: if full { 2_000_000 } else { 20_000 },
        }),
        _ => None,
    }
}

/// Classic prompts with no `max_tokens`.
fn unlimited() -> Workload {
    let mut workload = Workload::lines(2, 4, 1);
    workload.max_tokens = None;
    workload
}

fn main() -> ExitCode {
    if let Ok(value) = std::env::var(CHILD_ENV) {
        let (case, full) = value.split_once(':').unwrap_or((value.as_str(), "small"));
        let Some(fault) = fault(case, full == "full") else {
            eprintln!("unknown case {value}");
            return ExitCode::FAILURE;
        };
        return support::serve(
            Script::new()
                .ttft(Duration::from_millis(5))
                .fault(fault, FaultSchedule::Every(1)),
        );
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !support::selected("hostile_servers", &args) {
        return ExitCode::SUCCESS;
    }
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    // The bundled tokenizer's one-off load is not charged to the first case.
    let _ = llmperf::Tokenizer::bundled().count("warm up");
    println!("one request per hostile server (the client: this process; the server: a child), --timeout 20s");
    println!(
        "{:<14} {:<22} {:>10} {:>9} {:>12} {:>11}",
        "case", "ended as", "events", "time", "peak RSS", "RSS before"
    );
    let mut failed = false;
    for case in ["endless-line", "huge-event", "event-flood"] {
        let size = if full { "full" } else { "small" };
        let (mut child, base_url) =
            match support::spawn_endpoint_with(CHILD_ENV, &format!("{case}:{size}")) {
                Ok(spawned) => spawned,
                Err(error) => {
                    eprintln!("cannot start the endpoint process: {error}");
                    return ExitCode::FAILURE;
                }
            };
        let bench = Benchmark::new()
            .endpoint(support::child_endpoint(&base_url))
            // No max_tokens: the answer's bounds are the absolute ones (with a
            // max_tokens they shrink to 8 events a token).
            .workload(unlimited())
            .load(Load::closed(1).requests(1).timeout(Duration::from_secs(20)))
            .validate(false);
        let before = support::peak_rss_mib();
        support::reset_peak_rss();
        let started = Instant::now();
        let result = run_benchmark("hostile_servers", &bench, &RunOptions::default());
        let elapsed = started.elapsed();
        let peak = support::peak_rss_mib();
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
        match result {
            Ok(outcome) => {
                let record = &outcome.records[0];
                let ended = record
                    .error
                    .as_ref()
                    .map_or("ok".to_string(), |e| e.kind.to_string());
                println!(
                    "{:<14} {:<22} {:>10} {:>8.2}s {:>9.1}MiB {:>8.1}MiB",
                    case,
                    ended,
                    record.content_events_us.len(),
                    elapsed.as_secs_f64(),
                    peak,
                    before
                );
                // The endless line and the giant event must end at the bound.
                failed |= case != "event-flood" && ended != "event_too_large" && full;
            }
            Err(error) => {
                eprintln!("{case}: the run failed: {error}");
                failed = true;
            }
        }
    }
    println!("(time: planning to summary, one request; peak RSS: VmHWM of this process over the case, reset before it)");
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
