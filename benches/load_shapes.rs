//! Example load shapes: a concurrency sweep that finds the knee, an open
//! loop at a Poisson rate, a rate sweep with an in-flight cap, and the
//! automatic sweep.
//!
//! With nothing configured they run against the built-in endpoint,
//! scripted as a server that batches at most 4 requests at a time (more
//! wait in its queue, as in a saturated serving stack), so the sweep's
//! knee sits at concurrency 4. With `OPENAI_API_BASE` set they measure
//! that endpoint instead.
//!
//! `cargo bench --bench load_shapes` runs them; `cargo bench -- load/sweep` one.

use std::time::Duration;

use llmperf::spec::{Slo, SloMetric};
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// A server that serves 4 requests at once and queues the rest.
fn four_slot_server() -> Script {
    Script::new()
        .ttft(Duration::from_millis(50))
        .inter_token(Duration::from_millis(5))
        .concurrency_limit(4)
}

fn short_chat() -> Benchmark {
    Benchmark::new()
        .endpoint(Endpoint::openai_chat())
        .workload(Workload::token_lengths(200, 50, 20, 0))
        .builtin_script(four_slot_server())
}

/// Closed loops at 1, 2, 4, 8 and 16 in flight; the knee is the busiest
/// level whose TTFT p90 stays under 150 ms (queueing behind a full batch
/// costs a whole request, ~150 ms, on this server).
#[llmperf::bench(group = "load", requests = 24, concurrency = [1, 2, 4, 8, 16])]
fn sweep() -> Benchmark {
    short_chat()
        .load(Load::closed(1).warmup_requests(4))
        .slo(Slo::new(SloMetric::Ttft, 90.0, Duration::from_millis(150)))
}

/// An open loop: Poisson arrivals at 10 requests/s for 4 s after 1 s of
/// warmup; latency is also reported from each scheduled send.
#[llmperf::bench(group = "load")]
fn poisson() -> Benchmark {
    short_chat().load(
        Load::rate(10.0)
            .duration(Duration::from_secs(4))
            .warmup_duration(Duration::from_secs(1)),
    )
}

/// Open loops at rising rates with at most 8 requests in flight: past what
/// the server can take, sends queue at the cap (counted) and latency from
/// the scheduled send grows while latency from the actual send does not.
#[llmperf::bench(group = "load", requests = 20, rates = [5, 15, 40])]
fn capped_rates() -> Benchmark {
    short_chat()
        .load(Load::rate(5.0).max_in_flight(8))
        .slo(Slo::new(
            SloMetric::TtftFromScheduled,
            90.0,
            Duration::from_millis(300),
        ))
}

/// The automatic sweep: synchronous, max throughput (a closed loop at 8,
/// twice what this server serves at once), then 3 rates between. The
/// attribute's `sweep = "auto"` sweeps the same way at 64 in flight and 5
/// rates, which against this 4-slot server means over a minute of
/// queueing: pick the maximum for the endpoint at hand.
#[llmperf::bench(group = "load", requests = 24)]
fn auto() -> Benchmark {
    short_chat().load(Load::auto_sweep(3, 8))
}

llmperf::main!();
