//! Summary statistics of many requests, computed from records only (one
//! request's own timing is [`crate::record::timing`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::load::Phase;
pub use crate::record::timing::{
    event_gaps_ms, inter_token_latencies_ms, tokens_per_event, RequestMetrics, MAX_TOKENS_PER_EVENT,
};
use crate::record::{RequestRecord, ValidationOutcome};
use connections::ConnectionBuilder;
use send::SendBuilder;

pub mod column;
pub mod connections;
pub(crate) mod level;
pub mod send;
pub mod server;
pub mod slo;
mod stats;
pub mod sweep;

pub use column::Column;
pub use connections::ConnectionStats;
pub(crate) use level::{level_result, LevelFigures};
pub use send::{OutputLimitCheck, SendStats};
pub use slo::{SloBuilder, SloCheck, SloReport};
pub use stats::{percentile, Stats};
pub use sweep::{CurvePoint, LevelResult, SweepSummary};

/// TTFT above which a request counts toward the overload verdict.
pub const OVERLOAD_TTFT_MS: f64 = 3_000.0;
/// Share of slow-TTFT requests above which a run is `overloaded`.
pub const OVERLOAD_SHARE: f64 = 0.05;
/// Validation problems listed one by one in a summary (the counts cover all).
const LISTED_VALIDATION_ISSUES: usize = 50;

/// The summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Request counts and errors.
    pub requests: RequestCounts,
    /// Time to first token, ms.
    pub ttft_ms: Option<Stats>,
    /// Per-token inter-token latency, ms.
    pub inter_token_latency_ms: Option<Stats>,
    /// Gap between content events, ms.
    pub inter_event_latency_ms: Option<Stats>,
    /// Time per output token, ms.
    pub tpot_ms: Option<Stats>,
    /// End-to-end latency, ms.
    pub e2e_ms: Option<Stats>,
    /// Time to first reasoning token, ms (reasoning models).
    pub time_to_first_reasoning_ms: Option<Stats>,
    /// Output tokens/s of each request.
    pub request_output_tokens_per_s: Option<Stats>,
    /// Input tokens per request.
    pub input_tokens: Option<Stats>,
    /// Output tokens per request.
    pub output_tokens: Option<Stats>,
    /// Whole-run throughput.
    pub throughput: Throughput,
    /// The TTFT > 3 s overload rule.
    pub overload: Overload,
    /// Server vs client token counts.
    pub token_counts: TokenCountCheck,
    /// Sending against the schedule: rates, send lag, queueing, latency
    /// from the scheduled send.
    #[serde(default)]
    pub send: SendStats,
    /// Output lengths against each request's `max_tokens`.
    #[serde(default)]
    pub output_limits: OutputLimitCheck,
    /// New and reused connections, connect times, re-sent requests.
    #[serde(default)]
    pub connections: ConnectionStats,
    /// Validation results, when validated (over every request that
    /// brought an answer, warmup and cooldown included: a cross-over is
    /// never excused).
    pub validation: Option<ValidationSummary>,
}

/// Request counts and errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests sent.
    pub total: u64,
    /// Requests that succeeded.
    pub completed: u64,
    /// Requests that failed.
    pub failed: u64,
    /// failed / total.
    pub error_rate: f64,
    /// Failures by error kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failures by HTTP status (error statuses only).
    pub errors_by_status: BTreeMap<String, u64>,
    /// Warmup requests left out of these figures.
    #[serde(default)]
    pub warmup: u64,
    /// Cooldown requests left out of these figures.
    #[serde(default)]
    pub cooldown: u64,
    /// Warmup and cooldown requests that failed, by error kind: left out of
    /// the figures, never out of sight.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub excluded_errors_by_kind: BTreeMap<String, u64>,
}

/// Whole-run throughput over the measured window (first send to last end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// The window, seconds.
    pub window_s: f64,
    /// Completed requests per minute.
    pub requests_per_minute: f64,
    /// Output tokens of completed requests per second.
    pub output_tokens_per_s: f64,
    /// Input and output tokens of completed requests per second.
    pub total_tokens_per_s: f64,
    /// Input tokens of completed requests.
    pub total_input_tokens: u64,
    /// Output tokens of completed requests.
    pub total_output_tokens: u64,
}

/// The overload verdict: more than 5% of requests over 3 s to first token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overload {
    /// The TTFT threshold, ms.
    pub ttft_threshold_ms: f64,
    /// Share of requests above it (failed requests that waited longer
    /// without a first token count as above).
    pub share_over_threshold: f64,
    /// The share above which the run is overloaded.
    pub share_limit: f64,
    /// The verdict.
    pub overloaded: bool,
}

/// Server counts compared with the client tokenizer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCountCheck {
    /// Requests whose server reported usage.
    pub requests_with_server_counts: u64,
    /// Successful requests whose output count is a client estimate (the
    /// server sent no usage): their tokens, throughput and TPOT are estimates.
    #[serde(default)]
    pub client_estimated_requests: u64,
    /// Of those, requests counted one token per content event (the stream
    /// sends one token per event); the rest are re-tokenised by the client.
    #[serde(default)]
    pub counted_by_events: u64,
    /// Requests whose server and client counts differ.
    pub mismatched_requests: u64,
    /// Mean |server − client| / server over output counts.
    pub mean_output_relative_difference: f64,
}

/// Validation results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationSummary {
    /// Validated requests that brought an answer (failed ones included).
    pub validated: u64,
    /// Right answers.
    pub passed: u64,
    /// Answers carrying another request's number.
    pub cross_overs: u64,
    /// Answers with no right number.
    pub mismatches: u64,
    /// Answers cut short (their token limit, a broken stream) before a
    /// right number: neither right nor wrong.
    #[serde(default)]
    pub truncated: u64,
    /// Every cross-over.
    pub cross_over_requests: Vec<ValidationIssue>,
    /// The first mismatches (up to 50).
    pub mismatch_requests: Vec<ValidationIssue>,
    /// The first truncated answers (up to 50).
    #[serde(default)]
    pub truncated_requests: Vec<ValidationIssue>,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// The request.
    pub request_id: u64,
    /// Its number.
    pub expected: u64,
    /// The other request's number found instead (cross-over).
    pub found: Option<u64>,
    /// The other request (cross-over).
    pub other_request_id: Option<u64>,
    /// The start of the response.
    pub excerpt: String,
}

impl Summary {
    /// Summarizes the records of one level: its measured requests (warmup
    /// and cooldown are counted, not measured). The same as adding each
    /// to a [`SummaryBuilder`], in any order.
    pub fn of(all: &[RequestRecord]) -> Summary {
        let mut builder = SummaryBuilder::default();
        for record in all {
            builder.add(record);
        }
        builder.finish()
    }
}

/// A level's [`Summary`], built one record at a time as requests end, in
/// any order. Its memory does not grow with the requests past each
/// metric's [`Column`] bound (exact figures up to
/// [`column::EXACT_SAMPLES`] samples, within 0.01% past it) and the
/// validation problems it lists.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    total: u64,
    completed: u64,
    errors_by_kind: BTreeMap<String, u64>,
    errors_by_status: BTreeMap<String, u64>,
    warmup: u64,
    cooldown: u64,
    excluded_errors_by_kind: BTreeMap<String, u64>,
    first_sent_us: Option<u64>,
    last_end_us: Option<u64>,
    ttft_ms: Column,
    inter_token_latency_ms: Column,
    inter_event_latency_ms: Column,
    tpot_ms: Column,
    e2e_ms: Column,
    time_to_first_reasoning_ms: Column,
    request_output_tokens_per_s: Column,
    input_tokens: Column,
    output_tokens: Column,
    total_input_tokens: u64,
    total_output_tokens: u64,
    /// Requests that count toward the overload share, and the slow ones.
    first_token_judged: u64,
    first_token_slow: u64,
    token_counts: TokenCountBuilder,
    send: SendBuilder,
    output_limits: OutputLimitCheck,
    connections: ConnectionBuilder,
    validation: ValidationBuilder,
}

impl SummaryBuilder {
    /// Adds one record (any phase) of the level.
    pub fn add(&mut self, record: &RequestRecord) {
        // A cross-over is never excused, whatever the phase.
        self.validation.add(record);
        if record.phase != Phase::Measured {
            match record.phase {
                Phase::Warmup => self.warmup += 1,
                _ => self.cooldown += 1,
            }
            if !record.ok {
                let kind = record.error.as_ref().map_or("unknown", |e| e.kind.as_str());
                *self
                    .excluded_errors_by_kind
                    .entry(kind.to_string())
                    .or_insert(0) += 1;
            }
            return;
        }
        self.total += 1;
        self.first_sent_us = Some(
            self.first_sent_us
                .map_or(record.sent_us, |t| t.min(record.sent_us)),
        );
        self.last_end_us = Some(
            self.last_end_us
                .map_or(record.end_us, |t| t.max(record.end_us)),
        );
        // Requests with a first token, plus failed requests that waited
        // longer than the threshold without one (a timeout under overload
        // is the slowest of all).
        match record.metrics.ttft_ms {
            Some(ttft) => {
                self.first_token_judged += 1;
                self.first_token_slow += u64::from(ttft > OVERLOAD_TTFT_MS);
            }
            None if !record.ok && record.metrics.e2e_ms > OVERLOAD_TTFT_MS => {
                self.first_token_judged += 1;
                self.first_token_slow += 1;
            }
            None => {}
        }
        self.send.add(record);
        self.connections.add(record);
        if !record.ok {
            if let Some(error) = &record.error {
                *self
                    .errors_by_kind
                    .entry(error.kind.as_str().to_string())
                    .or_insert(0) += 1;
                if let Some(status) = error.http_status {
                    *self.errors_by_status.entry(status.to_string()).or_insert(0) += 1;
                }
            }
            return;
        }
        self.completed += 1;
        let metrics = &record.metrics;
        let push = |column: &mut Column, value: Option<f64>| {
            if let Some(value) = value {
                column.push(value);
            }
        };
        push(&mut self.ttft_ms, metrics.ttft_ms);
        push(&mut self.tpot_ms, metrics.tpot_ms);
        push(&mut self.e2e_ms, Some(metrics.e2e_ms));
        push(
            &mut self.time_to_first_reasoning_ms,
            metrics.time_to_first_reasoning_ms,
        );
        push(
            &mut self.request_output_tokens_per_s,
            metrics.output_tokens_per_s,
        );
        push(
            &mut self.input_tokens,
            Some(f64::from(record.input_tokens())),
        );
        push(
            &mut self.output_tokens,
            Some(f64::from(record.output_tokens())),
        );
        for itl in inter_token_latencies_ms(record) {
            self.inter_token_latency_ms.push(itl);
        }
        for gap in event_gaps_ms(record) {
            self.inter_event_latency_ms.push(gap);
        }
        self.total_input_tokens += u64::from(record.input_tokens());
        self.total_output_tokens += u64::from(record.output_tokens());
        self.token_counts.add(record);
        self.output_limits.add(record);
    }

    /// Records added, of every phase.
    pub fn requests(&self) -> u64 {
        self.total + self.warmup + self.cooldown
    }

    /// The summary of the records added so far.
    pub fn finish(&self) -> Summary {
        let (total, completed) = (self.total, self.completed);
        let window_s = match (self.first_sent_us, self.last_end_us) {
            (Some(start), Some(end)) => end.saturating_sub(start) as f64 / 1e6,
            _ => 0.0,
        };
        let per_s = |x: f64| if window_s > 0.0 { x / window_s } else { 0.0 };
        let share_over_threshold = if self.first_token_judged == 0 {
            0.0
        } else {
            self.first_token_slow as f64 / self.first_token_judged as f64
        };
        Summary {
            requests: RequestCounts {
                total,
                completed,
                failed: total - completed,
                error_rate: if total > 0 {
                    (total - completed) as f64 / total as f64
                } else {
                    0.0
                },
                errors_by_kind: self.errors_by_kind.clone(),
                errors_by_status: self.errors_by_status.clone(),
                warmup: self.warmup,
                cooldown: self.cooldown,
                excluded_errors_by_kind: self.excluded_errors_by_kind.clone(),
            },
            ttft_ms: self.ttft_ms.stats(),
            inter_token_latency_ms: self.inter_token_latency_ms.stats(),
            inter_event_latency_ms: self.inter_event_latency_ms.stats(),
            tpot_ms: self.tpot_ms.stats(),
            e2e_ms: self.e2e_ms.stats(),
            time_to_first_reasoning_ms: self.time_to_first_reasoning_ms.stats(),
            request_output_tokens_per_s: self.request_output_tokens_per_s.stats(),
            input_tokens: self.input_tokens.stats(),
            output_tokens: self.output_tokens.stats(),
            throughput: Throughput {
                window_s,
                requests_per_minute: per_s(completed as f64) * 60.0,
                output_tokens_per_s: per_s(self.total_output_tokens as f64),
                total_tokens_per_s: per_s(
                    (self.total_input_tokens + self.total_output_tokens) as f64,
                ),
                total_input_tokens: self.total_input_tokens,
                total_output_tokens: self.total_output_tokens,
            },
            overload: Overload {
                ttft_threshold_ms: OVERLOAD_TTFT_MS,
                share_over_threshold,
                share_limit: OVERLOAD_SHARE,
                overloaded: share_over_threshold > OVERLOAD_SHARE,
            },
            token_counts: self.token_counts.finish(),
            send: self.send.finish(),
            output_limits: self.output_limits.clone(),
            connections: self.connections.finish(),
            validation: self.validation.finish(),
        }
    }
}

/// Server and client token counts of successful requests, as they end.
#[derive(Debug, Default)]
struct TokenCountBuilder {
    with_server: u64,
    estimated: u64,
    counted_by_events: u64,
    mismatched: u64,
    /// |server − client| / server of each request the server counted.
    relative: Column,
}

impl TokenCountBuilder {
    fn add(&mut self, record: &RequestRecord) {
        self.mismatched += u64::from(record.token_count_mismatch);
        match record.output_tokens_server {
            Some(server) => {
                self.with_server += 1;
                if server > 0 {
                    let server = f64::from(server);
                    self.relative
                        .push((server - f64::from(record.output_tokens_client)).abs() / server);
                }
            }
            None => {
                self.estimated += 1;
                self.counted_by_events += u64::from(record.counted_by_events());
            }
        }
    }

    fn finish(&self) -> TokenCountCheck {
        TokenCountCheck {
            requests_with_server_counts: self.with_server,
            client_estimated_requests: self.estimated,
            counted_by_events: self.counted_by_events,
            mismatched_requests: self.mismatched,
            mean_output_relative_difference: self.relative.stats().map_or(0.0, |s| s.mean),
        }
    }
}

/// Validation over every request that brought an answer, failed or not:
/// a cross-over is serious even in a request that later broke. Lists every
/// cross-over and the first [`LISTED_VALIDATION_ISSUES`] other problems
/// (by request id); counts them all.
#[derive(Debug, Default)]
struct ValidationBuilder {
    validated: u64,
    passed: u64,
    mismatches: u64,
    truncated: u64,
    cross_over_requests: Vec<ValidationIssue>,
    mismatch_requests: Vec<ValidationIssue>,
    truncated_requests: Vec<ValidationIssue>,
}

impl ValidationBuilder {
    fn add(&mut self, record: &RequestRecord) {
        if !record.ok && record.content_events_us.is_empty() {
            return;
        }
        let Some(validation) = &record.validation else {
            return;
        };
        self.validated += 1;
        let issue = || ValidationIssue {
            request_id: record.id,
            expected: validation.expected,
            found: validation.other_number,
            other_request_id: validation.other_request_id,
            excerpt: record.text_excerpt.clone(),
        };
        let listed = match validation.outcome {
            ValidationOutcome::Pass => {
                self.passed += 1;
                return;
            }
            ValidationOutcome::CrossOver => {
                self.cross_over_requests.push(issue());
                return;
            }
            ValidationOutcome::Mismatch => {
                self.mismatches += 1;
                &mut self.mismatch_requests
            }
            ValidationOutcome::Truncated => {
                self.truncated += 1;
                &mut self.truncated_requests
            }
        };
        // Keep the first ones by id, however the records arrive.
        let at = listed.partition_point(|listed| listed.request_id <= record.id);
        if at < LISTED_VALIDATION_ISSUES {
            listed.insert(at, issue());
            listed.truncate(LISTED_VALIDATION_ISSUES);
        }
    }

    fn finish(&self) -> Option<ValidationSummary> {
        if self.validated == 0 {
            return None;
        }
        let mut cross_over_requests = self.cross_over_requests.clone();
        cross_over_requests.sort_by_key(|issue| issue.request_id);
        Some(ValidationSummary {
            validated: self.validated,
            passed: self.passed,
            cross_overs: cross_over_requests.len() as u64,
            mismatches: self.mismatches,
            cross_over_requests,
            mismatch_requests: self.mismatch_requests.clone(),
            truncated: self.truncated,
            truncated_requests: self.truncated_requests.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        sent_us: u64,
        events_us: &[u64],
        tokens: &[u32],
        server_out: Option<u32>,
    ) -> RequestRecord {
        let mut record = RequestRecord {
            id: 0,
            level: 0,
            phase: Phase::Measured,
            turn: None,
            ok: true,
            error: None,
            http_status: Some(200),
            connection: None,
            scheduled_us: sent_us,
            queued_us: 0,
            sent_us,
            headers_us: Some(sent_us),
            first_token_us: events_us.first().copied(),
            first_reasoning_us: None,
            end_us: events_us.last().copied().unwrap_or(sent_us),
            content_events_us: events_us.to_vec(),
            content_event_tokens: tokens.to_vec(),
            single_token_events: false,
            reasoning_events: 0,
            max_tokens: None,
            finish_reason: None,
            input_tokens_server: None,
            input_tokens_client: 10,
            output_tokens_server: server_out,
            output_tokens_client: tokens.iter().sum(),
            reasoning_tokens_server: None,
            reasoning_tokens_client: 0,
            token_count_mismatch: false,
            text_excerpt: String::new(),
            validation: None,
            metrics: RequestMetrics::default(),
        };
        record.metrics = RequestMetrics::of(&record);
        record
    }

    #[test]
    fn ttft_is_not_an_inter_token_latency_and_tpot_excludes_it() {
        // Sent at 0, first token at 100 ms, then 4 tokens 10 ms apart.
        let r = record(
            0,
            &[100_000, 110_000, 120_000, 130_000, 140_000],
            &[1; 5],
            Some(5),
        );
        assert_eq!(r.metrics.ttft_ms, Some(100.0));
        assert_eq!(r.metrics.e2e_ms, 140.0);
        assert_eq!(r.metrics.tpot_ms, Some(10.0));
        assert_eq!(inter_token_latencies_ms(&r), vec![10.0; 4]);
    }

    #[test]
    fn an_absurd_token_count_is_capped_not_allocated() {
        let mut r = record(
            0,
            &[100_000, 110_000, 120_000],
            &[1, 1, 3_000_000_000],
            None,
        );
        r.content_event_tokens = vec![1, 3_000_000_000, 3_000_000_000];
        let counts = tokens_per_event(&r);
        assert_eq!(counts, vec![1, MAX_TOKENS_PER_EVENT, MAX_TOKENS_PER_EVENT]);
        assert_eq!(
            inter_token_latencies_ms(&r).len(),
            2 * MAX_TOKENS_PER_EVENT as usize
        );
    }

    #[test]
    fn an_event_with_several_tokens_spreads_its_gap_over_them() {
        // Events of 3 tokens every 30 ms: nine tokens, per-token ITL 10 ms.
        let r = record(0, &[100_000, 130_000, 160_000], &[3, 3, 3], Some(9));
        assert_eq!(inter_token_latencies_ms(&r), vec![10.0; 6]);
        assert_eq!(event_gaps_ms(&r), vec![30.0, 30.0]);
        assert_eq!(r.metrics.tpot_ms, Some(60.0 / 8.0));
    }

    #[test]
    fn server_usage_rescales_client_event_counts() {
        // The client saw 1 token per event, the server says 2 per event.
        let r = record(0, &[0, 20_000, 40_000], &[1, 1, 1], Some(6));
        assert_eq!(inter_token_latencies_ms(&r), vec![10.0; 4]);
    }

    #[test]
    fn uneven_rescaling_keeps_the_server_total_and_the_real_gaps() {
        // 4 events of one client token, the server says 6: two events carry 2.
        let r = record(0, &[0, 10_000, 20_000, 30_000], &[1, 1, 1, 1], Some(6));
        let counts = tokens_per_event(&r);
        assert_eq!(counts.iter().sum::<u32>(), 6);
        let itl = inter_token_latencies_ms(&r);
        assert_eq!(itl.len() as u32, 6 - counts[0]);
        // Every gap is 10 ms: the samples of each event add back up to it.
        assert!((itl.iter().sum::<f64>() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn tpot_counts_content_tokens_only() {
        // 10 reasoning tokens before the first content token, then 20 content
        // tokens 5 ms apart: TPOT is 5 ms, not diluted by the reasoning.
        let events: Vec<u64> = (0..20).map(|i| 100_000 + i * 5_000).collect();
        let mut r = record(0, &events, &[1; 20], Some(30));
        r.reasoning_tokens_server = Some(10);
        r.reasoning_tokens_client = 10;
        let metrics = RequestMetrics::of(&r);
        assert_eq!(metrics.tpot_ms, Some(5.0));
        r.metrics = metrics;
        assert_eq!(inter_token_latencies_ms(&r), vec![5.0; 19]);
    }

    #[test]
    fn percentiles_match_numpy_linear_interpolation() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let stats = Stats::of(samples).unwrap();
        assert_eq!(stats.p50, 50.5);
        assert!((stats.p90 - 90.1).abs() < 1e-9);
        assert!((stats.p99 - 99.01).abs() < 1e-9);
        assert_eq!(Stats::of(vec![]), None);
    }

    #[test]
    fn the_overload_verdict_needs_more_than_five_percent_slow() {
        let mut records: Vec<RequestRecord> = (0..100)
            .map(|_| record(0, &[100_000, 110_000], &[1, 1], None))
            .collect();
        for slow in records.iter_mut().take(5) {
            *slow = record(0, &[3_500_000, 3_510_000], &[1, 1], None);
        }
        assert!(!Summary::of(&records).overload.overloaded);
        records[5] = record(0, &[3_500_000, 3_510_000], &[1, 1], None);
        let summary = Summary::of(&records);
        assert!(summary.overload.overloaded);
        assert!((summary.overload.share_over_threshold - 0.06).abs() < 1e-12);
    }

    #[test]
    fn requests_that_timed_out_without_a_first_token_count_as_slow() {
        let mut records: Vec<RequestRecord> = (0..19)
            .map(|_| record(0, &[100_000, 110_000], &[1, 1], None))
            .collect();
        let mut timed_out = record(0, &[], &[], None);
        timed_out.ok = false;
        timed_out.end_us = 60_000_000;
        timed_out.metrics = RequestMetrics::of(&timed_out);
        records.push(timed_out);
        let summary = Summary::of(&records);
        assert!((summary.overload.share_over_threshold - 0.05).abs() < 1e-12);
    }
}
