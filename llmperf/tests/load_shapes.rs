//! Load shapes end to end, over real loopback HTTP against the built-in
//! endpoint: a sweep finds the knee the script puts there, open loops keep
//! (or visibly fail to keep) their schedule, stop conditions end a run
//! early, warmup and cooldown stay out of the statistics, conversations
//! carry their answers, and a sweep's results come back from disk.
//!
//! Scripted times are floors (the built-in endpoint never answers early);
//! ceilings are loose, because CI machines are busy.

use std::time::Duration;

use llmperf::load::arrival::schedule;
use llmperf::load::{Phase, Stop};
use llmperf::metrics::send::CLIENT_LAG_LIMIT_MS;
use llmperf::metrics::Stats;
use llmperf::record::RequestRecord;
use llmperf::results::{read_records, read_summary, REQUESTS_FILE};
use llmperf::run::{run_benchmark, RunOptions};
use llmperf::spec::{Arrival, Level, Slo, SloMetric};
use llmperf::{Benchmark, Endpoint, Fault, FaultSchedule, Load, Script, Workload};

mod fault_matrix;
use fault_matrix::{fast_script, quiet, run};

fn builtin() -> Endpoint {
    Endpoint::openai_chat().builtin()
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn stats(stats: Option<Stats>, what: &str) -> Stats {
    stats.unwrap_or_else(|| panic!("no {what} statistics"))
}

/// The knee script: the first token 50 ms after admission, then 5 more
/// 10 ms apart, so a request holds one of the server's 4 slots for 100 ms.
const KNEE_TTFT_MS: f64 = 50.0;
const KNEE_SERVICE_MS: f64 = 100.0;
/// How much earlier than its floor a queued request's TTFT may be measured:
/// the 16 first sends of a level reach the server a few ms apart.
const SEND_STAGGER_MS: f64 = 25.0;

#[test]
fn a_concurrency_sweep_puts_the_knee_at_the_servers_concurrency_limit() {
    // Past 4 requests in flight, requests queue inside the server, and each
    // waits whole service times before its 50 ms to the first token.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 6, 0))
        .load(Load::concurrency_sweep([1, 2, 4, 8, 16]).requests(20))
        .builtin_script(
            Script::new()
                .ttft(ms(50))
                .inter_token(ms(10))
                .concurrency_limit(4),
        )
        // Between the unqueued (50 ms) and the queued (150 ms and more) TTFT.
        .slo(Slo::new(SloMetric::Ttft, 90.0, ms(100)));
    let outcome = run(&bench);
    let file = &outcome.summary;

    assert_eq!(file.levels.len(), 5, "one result per level");
    assert_eq!(outcome.records.len(), 5 * 20);
    for (index, level) in file.levels.iter().enumerate() {
        assert_eq!(level.index, index as u32);
        assert_eq!(level.stop, Stop::Completed);
        assert_eq!(
            level.summary.requests.completed,
            20,
            "{}",
            level.level.label()
        );
        let carried = outcome
            .records
            .iter()
            .filter(|r| r.level == index as u32)
            .count();
        assert_eq!(carried, 20, "records of level {index}");
    }
    let ttft_p90: Vec<f64> = file
        .levels
        .iter()
        .map(|l| stats(l.summary.ttft_ms, "ttft").p90)
        .collect();
    let met: Vec<bool> = file.levels.iter().map(|l| l.slo.met).collect();
    assert_eq!(
        met,
        [true, true, true, false, false],
        "TTFT p90 per level: {ttft_p90:?} ms"
    );

    let sweep = file.sweep.as_ref().expect("a sweep has a curve");
    assert_eq!(sweep.knee, Some(2), "the knee is c=4");
    assert_eq!(file.headline_level, 2);
    assert_eq!(file.summary, file.levels[2].summary);
    let labels: Vec<&str> = sweep.curve.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["c=1", "c=2", "c=4", "c=8", "c=16"]);

    // Queued requests wait whole service times: one at c=8 (4 ahead in
    // service, 4 queued), three for the last of 16.
    let ttft = |level: usize| stats(file.levels[level].summary.ttft_ms, "ttft");
    let one_wait = KNEE_TTFT_MS + KNEE_SERVICE_MS - SEND_STAGGER_MS;
    assert!(ttft(3).p50 >= one_wait, "c=8 TTFT p50 {}", ttft(3).p50);
    let three_waits = KNEE_TTFT_MS + 3.0 * KNEE_SERVICE_MS - SEND_STAGGER_MS;
    assert!(ttft(4).p90 >= three_waits, "c=16 TTFT p90 {}", ttft(4).p90);
    // Throughput doubles up to the limit and stops growing past it.
    let completed: Vec<f64> = sweep.curve.iter().map(|p| p.completed_per_s).collect();
    assert!(completed[2] > 1.5 * completed[1], "{completed:?} req/s");
    assert!(completed[4] < 1.25 * completed[2], "{completed:?} req/s");
}

#[test]
fn an_open_loop_that_keeps_up_achieves_its_offered_rate_within_one_percent() {
    // 200 requests at 50 req/s: 4 s of schedule, so 1% is 40 ms of drift
    // between the first and the last send.
    for arrival in [Arrival::Constant, Arrival::Poisson] {
        let load = Load::rate(50.0).arrival(arrival).requests(200);
        let planned = schedule(&load.rate.expect("an open loop"), 200, None, 0, 7);
        let bench = Benchmark::new()
            .endpoint(builtin())
            .workload(Workload::token_lengths(20, 0, 2, 0))
            .load(load)
            .seed(7)
            .builtin_script(fast_script());
        let outcome = run(&bench);
        let summary = &outcome.summary.summary;
        assert_eq!(summary.requests.completed, 200, "{arrival:?}");
        let send = &summary.send;
        let offered = send.offered_rate_per_s.expect("offered rate");
        let achieved = send.achieved_rate_per_s.expect("achieved rate");
        // The offered rate is the seeded schedule's own.
        let scheduled = 199.0 / planned[199].as_secs_f64();
        assert!(
            (offered - scheduled).abs() / scheduled < 1e-4,
            "{arrival:?}: offered {offered} req/s, scheduled {scheduled} req/s"
        );
        let lag = stats(send.send_lag_ms, "send lag");
        if send.client_fell_behind {
            // The host starved the client (a machine busy with other work):
            // the claim is about a client that keeps up, and the engine said
            // this one did not. It must still never report more than offered.
            // (Its detector is held to account by the capped and the
            // overloaded tests, which assert false and true.)
            eprintln!(
                "note: {arrival:?}: the client fell behind on this machine (send lag {lag:?}); rate claim skipped"
            );
            assert!(
                achieved <= offered * 1.01,
                "achieved {achieved} of {offered}"
            );
            continue;
        }
        let (first_lag, last_lag) = (
            outcome.records[0].metrics.send_lag_ms,
            outcome.records[199].metrics.send_lag_ms,
        );
        assert!(
            (achieved - offered).abs() / offered < 0.01,
            "{arrival:?}: achieved {achieved} req/s against {offered} offered \
             (first send {first_lag} ms late, last {last_lag} ms; send lag {lag:?})"
        );
        assert!(lag.p50 < 5.0, "{arrival:?}: send lag {lag:?}");
        assert_eq!(send.queued_requests, 0);
    }
}

#[test]
fn an_in_flight_cap_queues_overdue_requests_counts_the_wait_and_drops_none() {
    // 1,000 req/s offered, but 2 in flight of 20 ms each serve under
    // 100 req/s: every request after the first two waits in line for a slot.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 1, 0))
        .load(
            Load::rate(1_000.0)
                .arrival(Arrival::Constant)
                .max_in_flight(2)
                .requests(100),
        )
        .builtin_script(Script::new().ttft(ms(20)));
    let outcome = run(&bench);
    let summary = &outcome.summary.summary;
    assert_eq!(
        outcome.records.len(),
        100,
        "queued requests are never dropped"
    );
    assert_eq!(summary.requests.completed, 100);
    let send = &summary.send;
    assert_eq!(send.queued_requests, 98, "all but the first two queued");
    // Request k starts no earlier than (k/2 − 1) · 20 ms, k ms after it was due.
    let wait = stats(send.queue_wait_ms, "queue wait");
    assert!(wait.p50 >= 300.0, "queue wait {wait:?}");
    let e2e = stats(summary.e2e_ms, "e2e");
    let from_scheduled = stats(send.e2e_from_scheduled_ms, "e2e from scheduled");
    assert!(
        from_scheduled.p50 > 10.0 * e2e.p50,
        "e2e p50 {} ms from the scheduled send, {} ms from the actual one",
        from_scheduled.p50,
        e2e.p50
    );
    let (offered, achieved) = (
        send.offered_rate_per_s.expect("offered"),
        send.achieved_rate_per_s.expect("achieved"),
    );
    assert!(achieved < offered / 4.0, "achieved {achieved} of {offered}");
    // Waiting for the cap is not the client falling behind.
    assert!(
        !send.client_fell_behind,
        "client lag {:?} (queue wait {wait:?})",
        send.client_lag_ms
    );
}

#[test]
fn a_client_that_cannot_send_at_the_offered_rate_is_reported_as_falling_behind() {
    // 400 requests in 4 ms, each on a fresh connection: no client keeps
    // that schedule (a debug build manages a few thousand per second
    // here), and with no cap the whole delay is the client's own.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(10, 0, 1, 0))
        .load(
            Load::rate(100_000.0)
                .arrival(Arrival::Constant)
                .requests(400),
        )
        .builtin_script(Script::new().ttft(ms(1)));
    let outcome = run(&bench);
    assert_eq!(
        outcome.records.len(),
        400,
        "late requests are never dropped"
    );
    let send = &outcome.summary.summary.send;
    assert!(send.client_fell_behind);
    let lag = stats(send.client_lag_ms, "client lag");
    assert!(lag.p99 > 2.0 * CLIENT_LAG_LIMIT_MS, "client lag {lag:?}");
    assert_eq!(send.queued_requests, 0, "no cap, so no queue");
    let (offered, achieved) = (
        send.offered_rate_per_s.expect("offered"),
        send.achieved_rate_per_s.expect("achieved"),
    );
    assert!(achieved < offered / 2.0, "achieved {achieved} of {offered}");
}

#[test]
fn max_errors_stops_a_failing_sweep_early() {
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::concurrency_sweep([2, 4]).requests(200).max_errors(5))
        .builtin_script(fast_script().fault(Fault::Status(500), FaultSchedule::Every(1)));
    let outcome = run(&bench);
    let file = &outcome.summary;
    assert_eq!(file.levels.len(), 1, "the sweep stops with its level");
    assert_eq!(file.levels[0].stop, Stop::MaxErrors { errors: 5 });
    let sent = outcome.records.len();
    assert!((5..20).contains(&sent), "{sent} of 200 requests sent");
    assert!(outcome.records.iter().all(|r| !r.ok));
}

#[test]
fn max_error_rate_stops_once_enough_requests_finished_to_judge() {
    // Every other request fails: 50% from the start, but the share is only
    // judged from the 20th finished request on.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::closed(1).requests(200).max_error_rate(0.3))
        .builtin_script(fast_script().fault(Fault::Status(500), FaultSchedule::Every(2)));
    let outcome = run(&bench);
    assert_eq!(
        outcome.summary.levels[0].stop,
        Stop::MaxErrorRate {
            error_rate: 0.5,
            finished: 20
        }
    );
    // The request in flight when it tripped still finishes.
    let sent = outcome.records.len();
    assert!((20..30).contains(&sent), "{sent} of 200 requests sent");
}

#[test]
fn a_duration_limited_closed_loop_stops_sending_at_the_duration() {
    // Each request takes at least 50 ms: two slots send at most 21 each
    // before the 1 s deadline.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::closed(2).duration(Duration::from_secs(1)))
        .builtin_script(Script::new().ttft(ms(40)).inter_token(ms(10)))
        // Two-token answers: no validation line, whose room would lengthen them.
        .validate(false);
    let outcome = run(&bench);
    let level = &outcome.summary.levels[0];
    assert_eq!(level.stop, Stop::Duration);
    let sent = outcome.records.len();
    assert!((10..=42).contains(&sent), "{sent} requests in 1 s");
    assert!(outcome.records.iter().all(|r| r.phase == Phase::Measured));
    let first = outcome
        .records
        .iter()
        .map(|r| r.scheduled_us)
        .min()
        .unwrap();
    let last_send = outcome
        .records
        .iter()
        .map(|r| r.scheduled_us)
        .max()
        .unwrap();
    let last_end = outcome.records.iter().map(|r| r.end_us).max().unwrap();
    assert!(last_send - first < 1_000_000, "a send after the deadline");
    let span_s = (last_end - first) as f64 / 1e6;
    assert!((0.99..1.5).contains(&span_s), "the level took {span_s} s");
}

#[test]
fn warmup_and_cooldown_requests_are_kept_flagged_and_left_out_of_the_statistics() {
    // One at a time, so the server's request n is id n − 1: the fault on
    // every third hits ids 2 (warmup), 5, 8, 11 (measured) and 14 (cooldown).
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(
            Load::closed(1)
                .requests(10)
                .warmup_requests(3)
                .cooldown_requests(2),
        )
        .builtin_script(fast_script().fault(Fault::Status(500), FaultSchedule::Every(3)));
    let outcome = run(&bench);
    assert_eq!(
        outcome.records.len(),
        15,
        "warmup and cooldown records kept"
    );
    for record in &outcome.records {
        let expected = match record.id {
            0..=2 => Phase::Warmup,
            3..=12 => Phase::Measured,
            _ => Phase::Cooldown,
        };
        assert_eq!(record.phase, expected, "request {}", record.id);
        assert_eq!(record.ok, (record.id + 1) % 3 != 0, "request {}", record.id);
    }
    let requests = &outcome.summary.summary.requests;
    assert_eq!(
        (requests.total, requests.completed, requests.failed),
        (10, 7, 3),
        "{requests:?}"
    );
    assert_eq!((requests.warmup, requests.cooldown), (3, 2));
    assert_eq!(stats(outcome.summary.summary.ttft_ms, "ttft").count, 7);
    // Left out of the figures, the warmup's and cooldown's failures are
    // still in sight: ids 2 and 14.
    assert_eq!(
        requests.excluded_errors_by_kind.values().sum::<u64>(),
        2,
        "{requests:?}"
    );
    let text = llmperf::report::terminal::render(
        &outcome.summary,
        llmperf::report::terminal::Palette::new(false),
    );
    assert!(
        text.contains("2 of the 5 warmup and cooldown requests failed"),
        "{text}"
    );
}

#[test]
fn an_open_loops_warmup_duration_covers_the_requests_scheduled_in_it() {
    // 40 req/s, constant: sends every 25 ms. Warmup until 210 ms (sends at
    // 0–200 ms), measured until 810 ms (225–800 ms), then 5 cooldown sends.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(
            Load::rate(40.0)
                .arrival(Arrival::Constant)
                .warmup_duration(ms(210))
                .duration(ms(600))
                .cooldown_requests(5),
        )
        .builtin_script(fast_script());
    let outcome = run(&bench);
    let count = |phase: Phase| outcome.records.iter().filter(|r| r.phase == phase).count();
    assert_eq!(
        (
            count(Phase::Warmup),
            count(Phase::Measured),
            count(Phase::Cooldown)
        ),
        (9, 24, 5)
    );
    let file = &outcome.summary;
    assert_eq!(file.levels[0].stop, Stop::Duration);
    assert_eq!(file.summary.requests.total, 24);
    assert_eq!(
        (file.summary.requests.warmup, file.summary.requests.cooldown),
        (9, 5)
    );
}

#[test]
fn each_turn_of_a_conversation_carries_the_previous_actual_answer() {
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(30, 0, 12, 0).multi_turn(3))
        .load(Load::closed(2).requests(9))
        .builtin_script(fast_script())
        // Exact twelve-token answers: no validation line, whose room could raise them.
        .validate(false);
    let outcome = run(&bench);
    assert_eq!(outcome.records.len(), 9);
    assert!(outcome.records.iter().all(|r| r.ok));
    for conversation in 0..3 {
        let mut turns: Vec<&RequestRecord> = outcome
            .records
            .iter()
            .filter(|r| r.turn.is_some_and(|t| t.conversation == conversation))
            .collect();
        turns.sort_by_key(|r| r.turn.map(|t| t.index));
        let indices: Vec<u32> = turns
            .iter()
            .filter_map(|r| r.turn.map(|t| t.index))
            .collect();
        assert_eq!(indices, [0, 1, 2], "conversation {conversation}");
        for pair in turns.windows(2) {
            let (previous, next) = (pair[0], pair[1]);
            let (previous_in, answer, next_in) = (
                previous.input_tokens_server.expect("server prompt count"),
                previous.output_tokens_server.expect("server answer count"),
                next.input_tokens_server.expect("server prompt count"),
            );
            assert_eq!(answer, 12);
            assert!(
                next_in >= previous_in + answer,
                "conversation {conversation}: prompt of {next_in} tokens after {previous_in} + an answer of {answer}"
            );
            assert!(
                next.sent_us >= previous.end_us,
                "a turn sent before the previous ended"
            );
        }
    }
}

#[test]
fn a_bursty_ramped_open_loop_sends_on_its_seeded_schedule() {
    let load = Load::rate(100.0)
        .arrival(Arrival::Gamma { burstiness: 0.5 })
        .ramp_up(ms(300))
        .requests(40);
    let planned = schedule(&load.rate.expect("an open loop"), 40, None, 0, 11);
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(load)
        .seed(11)
        .builtin_script(fast_script());
    let outcome = run(&bench);
    assert_eq!(outcome.summary.levels[0].stop, Stop::Completed);
    assert_eq!(outcome.summary.summary.requests.completed, 40);
    let first = outcome.records[0].scheduled_us;
    for (record, offset) in outcome.records.iter().zip(&planned) {
        let scheduled = (record.scheduled_us - first) as i64;
        let planned_us = offset.as_micros() as i64;
        assert!(
            (scheduled - planned_us).abs() <= 1,
            "request {} scheduled at {scheduled} µs, planned at {planned_us} µs",
            record.id
        );
        assert!(record.sent_us >= record.scheduled_us);
    }
    // The ramp starts slow: fewer sends in its first half than in its second.
    let in_window = |from: u64, to: u64| {
        planned
            .iter()
            .filter(|o| (from..to).contains(&(o.as_millis() as u64)))
            .count()
    };
    assert!(in_window(0, 150) < in_window(150, 300));
}

#[test]
fn an_automatic_sweep_spreads_its_rates_between_the_synchronous_and_the_maximum_rate() {
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::auto_sweep(2, 4).requests(12))
        .builtin_script(Script::new().ttft(ms(20)).inter_token(ms(5)));
    let outcome = run(&bench);
    let levels = &outcome.summary.levels;
    let kinds: Vec<String> = levels.iter().map(|l| l.level.label()).collect();
    assert_eq!(levels.len(), 4, "{kinds:?}");
    assert_eq!((kinds[0].as_str(), kinds[1].as_str()), ("c=1", "c=4"));
    let completed = |index: usize| levels[index].summary.throughput.requests_per_minute / 60.0;
    let (low, high) = (completed(0), completed(1));
    assert!(high > 2.0 * low, "c=4 completes {high} req/s, c=1 {low}");
    for (k, level) in levels[2..].iter().enumerate() {
        let Level::Rate(rate) = level.level else {
            panic!("level {} is not an open loop: {kinds:?}", level.index);
        };
        let expected = low + (high - low) * (k + 1) as f64 / 3.0;
        assert!(
            (rate.per_s - expected).abs() < 1e-9,
            "level {}: {} req/s, expected {expected}",
            level.index,
            rate.per_s
        );
        assert_eq!(level.summary.requests.completed, 12);
    }
}

#[test]
fn a_sweeps_levels_curve_and_knee_are_read_back_from_summary_json() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 4, 0))
        .load(Load::concurrency_sweep([1, 2]).requests(6))
        .builtin_script(Script::new().ttft(ms(30)).inter_token(ms(5)))
        .slo(Slo::new(SloMetric::Ttft, 90.0, Duration::from_secs(1)));
    let options = RunOptions {
        results_dir: Some(dir.path().to_path_buf()),
        ..quiet()
    };
    let outcome = run_benchmark("sweep", &bench, &options).expect("the run");
    let path = outcome.summary_path.clone().expect("summary.json written");
    let back = read_summary(&path).expect("summary.json reads back");
    assert_eq!(back, outcome.summary);

    assert_eq!(back.levels.len(), 2);
    let sweep = back.sweep.as_ref().expect("the sweep");
    let labels: Vec<&str> = sweep.curve.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["c=1", "c=2"]);
    assert!(sweep.curve.iter().all(|p| p.met_slos));
    assert_eq!(sweep.knee, Some(1), "two slots complete more than one");
    assert_eq!(back.headline_level, 1);
    assert_eq!(back.summary, back.levels[1].summary);

    let records = read_records(&dir.path().join(REQUESTS_FILE)).expect("requests.jsonl");
    let per_level = |level: u32| records.iter().filter(|r| r.level == level).count();
    assert_eq!((per_level(0), per_level(1)), (6, 6));
}

#[test]
fn a_level_that_sends_its_count_before_its_duration_ends_as_completed() {
    // Seven requests (5 measured, 2 cooldown) take milliseconds; the 60 s
    // duration never cuts anything, so the stop reason is not `duration`.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(
            Load::closed(2)
                .duration(Duration::from_secs(60))
                .requests(5)
                .cooldown_requests(2),
        )
        .builtin_script(fast_script());
    let outcome = run(&bench);
    let level = &outcome.summary.levels[0];
    assert_eq!(level.stop, Stop::Completed);
    assert_eq!(outcome.records.len(), 7);
    assert_eq!(outcome.summary.summary.requests.cooldown, 2);
    // It ran out of planned requests before its duration, and says so.
    assert!(
        level
            .notes
            .iter()
            .any(|n| n.contains("sent all 7 requests it planned before --duration 1m ran out")),
        "{:?}",
        level.notes
    );
}

#[test]
fn an_automatic_sweep_that_completes_nothing_runs_no_open_loop_levels() {
    // Every request fails: there is no measured range to spread rates over,
    // so the sweep ends after its two closed levels instead of crawling.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::auto_sweep(3, 2).requests(4))
        .builtin_script(fast_script().fault(Fault::Status(500), FaultSchedule::Every(1)));
    let outcome = run(&bench);
    assert_eq!(outcome.summary.levels.len(), 2);
    assert!(outcome.records.iter().all(|r| !r.ok));
}

#[test]
fn a_warmup_by_time_needs_a_duration() {
    let bench = Benchmark::new()
        .endpoint(builtin())
        .load(Load::rate(5.0).warmup_duration(Duration::from_secs(1)));
    let error = run_benchmark("warmup", &bench, &quiet()).unwrap_err();
    assert!(error.to_string().contains("--duration"), "{error}");
}

/// A measuring run (not a smoke test), writing nothing.
fn measuring() -> RunOptions {
    RunOptions {
        mode: llmperf::results::RunMode::Run,
        ..RunOptions::default()
    }
}

#[test]
fn an_automatic_sweep_sizes_its_levels_so_what_they_measure_is_real() {
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::auto_sweep(2, 4).requests(3))
        .builtin_script(Script::new().ttft(ms(20)).inter_token(ms(5)))
        .validate(false);
    let outcome = run_benchmark("auto", &bench, &measuring()).expect("the run");
    let levels = &outcome.summary.levels;
    let per_level = |index: u32| outcome.records.iter().filter(|r| r.level == index).count();
    assert_eq!(per_level(0), 3, "the synchronous level keeps -r");
    assert_eq!(per_level(1), 20, "5 requests for each of 4 slots");
    assert!(levels[1].notes.is_empty(), "{:?}", levels[1].notes);
    let e2e_s = levels[1].summary.e2e_ms.expect("e2e").p50 / 1e3;
    for level in &levels[2..] {
        let Level::Rate(rate) = level.level else {
            panic!("not an open loop");
        };
        let least = (rate.per_s * 5.0 * e2e_s).ceil() as usize;
        assert_eq!(per_level(level.index), least.max(3), "{} req/s", rate.per_s);
    }
    // A smoke test keeps two requests a level, as ever.
    let smoke = run(&bench.clone().load(Load::auto_sweep(1, 4).requests(2)));
    assert!(smoke
        .summary
        .levels
        .iter()
        .all(|l| l.summary.requests.total == 2));
}

#[test]
fn a_max_throughput_level_cut_short_says_its_rate_may_understate_the_maximum() {
    // 100 ms a request, 4 slots, 250 ms: about two requests per slot.
    let bench = Benchmark::new()
        .endpoint(builtin())
        .workload(Workload::token_lengths(20, 0, 2, 0))
        .load(Load::auto_sweep(1, 4).duration(ms(250)))
        .builtin_script(Script::new().ttft(ms(90)).inter_token(ms(5)))
        .validate(false);
    let outcome = run_benchmark("auto", &bench, &measuring()).expect("the run");
    let probe = &outcome.summary.levels[1];
    assert_eq!(probe.notes.len(), 1, "{:?}", probe.notes);
    assert!(
        probe.notes[0].contains("fewer than 5"),
        "{}",
        probe.notes[0]
    );
    let text = llmperf::report::terminal::render(
        &outcome.summary,
        llmperf::report::terminal::Palette::new(false),
    );
    assert!(text.contains("may understate"), "{text}");
}
