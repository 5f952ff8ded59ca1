//! How well requests went out on schedule: offered and achieved rates,
//! send lag, queueing, and latencies counted from the scheduled send.

use serde::{Deserialize, Serialize};

use super::Stats;
use crate::record::RequestRecord;

/// p90 of the client's own send lag (queueing excluded) above which the
/// client is reported as not keeping up with its schedule: one request in
/// ten went out this late or later. (A p99 rule flags a busy machine's
/// scheduler hiccups; a client that cannot keep up lags throughout.)
pub const CLIENT_LAG_LIMIT_MS: f64 = 10.0;

/// Sending against the schedule, over a level's measured requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendStats {
    /// Requests per second the schedule asked for: (n − 1) / (last − first
    /// scheduled send). For a closed loop, the rate its slots asked for.
    pub offered_rate_per_s: Option<f64>,
    /// Requests per second actually sent: the offered rate divided by the
    /// least-squares slope of actual against scheduled send times (1 when
    /// every send kept its schedule; above 1 when sends drifted later), so
    /// a single late send barely moves it.
    pub achieved_rate_per_s: Option<f64>,
    /// Actual − scheduled send, ms (queueing included).
    pub send_lag_ms: Option<Stats>,
    /// The client's own part of the send lag (queueing excluded), ms.
    pub client_lag_ms: Option<Stats>,
    /// Requests that waited for an in-flight slot (open loop at its cap).
    pub queued_requests: u64,
    /// How long those waited, ms.
    pub queue_wait_ms: Option<Stats>,
    /// Time to first token from the scheduled send, ms (successful
    /// requests): what a user arriving on schedule saw.
    pub ttft_from_scheduled_ms: Option<Stats>,
    /// End to end from the scheduled send, ms (successful requests).
    pub e2e_from_scheduled_ms: Option<Stats>,
    /// The client's p90 send lag exceeded [`CLIENT_LAG_LIMIT_MS`]: the
    /// figures from the actual send understate latency under this load.
    pub client_fell_behind: bool,
}

/// The least-squares slope of actual (y) against scheduled (x) send times.
/// Sums run in schedule order, so the result does not depend on the order
/// records arrive in (a summary recomputed from `requests.jsonl` is equal).
fn drift(records: &[&RequestRecord]) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = records
        .iter()
        .map(|r| (r.scheduled_us as f64, r.sent_us as f64))
        .collect();
    if points.len() < 2 {
        return None;
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let n = points.len() as f64;
    let x_mean = points.iter().map(|p| p.0).sum::<f64>() / n;
    let y_mean = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (x, y) in &points {
        covariance += (x - x_mean) * (y - y_mean);
        variance += (x - x_mean) * (x - x_mean);
    }
    (variance > 0.0).then(|| covariance / variance)
}

fn rate(mut times_us: Vec<u64>) -> Option<f64> {
    times_us.sort_unstable();
    let (first, last) = (times_us.first()?, times_us.last()?);
    let span_s = last.saturating_sub(*first) as f64 / 1e6;
    (times_us.len() > 1 && span_s > 0.0).then(|| (times_us.len() - 1) as f64 / span_s)
}

impl SendStats {
    /// The send statistics of `records` (one level's measured requests).
    pub fn of(records: &[&RequestRecord]) -> SendStats {
        let client_lag_ms = Stats::of(
            records
                .iter()
                .map(|r| (r.metrics.send_lag_ms - r.queued_us as f64 / 1e3).max(0.0))
                .collect(),
        );
        let queued: Vec<f64> = records
            .iter()
            .filter(|r| r.queued_us > 0)
            .map(|r| r.queued_us as f64 / 1e3)
            .collect();
        let offered = rate(records.iter().map(|r| r.scheduled_us).collect());
        SendStats {
            offered_rate_per_s: offered,
            achieved_rate_per_s: offered
                .zip(drift(records))
                .filter(|(_, slope)| *slope > 0.0)
                .map(|(offered, slope)| offered / slope),
            send_lag_ms: Stats::of(records.iter().map(|r| r.metrics.send_lag_ms).collect()),
            client_fell_behind: client_lag_ms.is_some_and(|s| s.p90 > CLIENT_LAG_LIMIT_MS),
            client_lag_ms,
            queued_requests: queued.len() as u64,
            queue_wait_ms: Stats::of(queued),
            ttft_from_scheduled_ms: Stats::of(
                records
                    .iter()
                    .filter(|r| r.ok)
                    .filter_map(|r| r.metrics.ttft_from_scheduled_ms)
                    .collect(),
            ),
            e2e_from_scheduled_ms: Stats::of(
                records
                    .iter()
                    .filter(|r| r.ok)
                    .map(|r| r.metrics.e2e_from_scheduled_ms)
                    .collect(),
            ),
        }
    }
}

/// Output lengths against the `max_tokens` each request sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputLimitCheck {
    /// Successful requests that sent a `max_tokens`.
    pub requests_with_max_tokens: u64,
    /// Of those, requests that ended before it (e.g. on EOS or a stop
    /// sequence): their outputs are shorter than the workload planned.
    pub ended_early: u64,
    /// Of those, requests that produced more output tokens than allowed
    /// (the server did not honour `max_tokens`). Without a server count this
    /// is claimed only when the stream had more content events than the
    /// limit (each carries at least one token), never from re-tokenised text.
    pub exceeded: u64,
    /// Of those, requests without a server count and a finish reason or an
    /// event count that tells: whether they reached the limit is unknown.
    #[serde(default)]
    pub unknown: u64,
    /// Successful requests by the server's finish reason (`none` when it gave none).
    pub finish_reasons: std::collections::BTreeMap<String, u64>,
}

impl OutputLimitCheck {
    /// The check over successful requests. Output is content plus
    /// reasoning (what `max_tokens` limits), by the server's count when it
    /// gave one. Without one, the client's re-tokenised count proves
    /// nothing (another vocabulary splits text differently): a request went
    /// over only if it had more events than the limit, ended early if its
    /// finish reason was not the limit's (or, one token per event, it had
    /// fewer events), and is `unknown` otherwise.
    pub fn of(ok: &[&RequestRecord]) -> OutputLimitCheck {
        let mut check = OutputLimitCheck::default();
        for record in ok {
            let reason = record.finish_reason.as_deref().unwrap_or("none");
            *check.finish_reasons.entry(reason.to_string()).or_insert(0) += 1;
            let Some(limit) = record.max_tokens else {
                continue;
            };
            check.requests_with_max_tokens += 1;
            if let Some(produced) = record.output_tokens_server {
                check.ended_early += u64::from(produced < limit);
                check.exceeded += u64::from(produced > limit);
                continue;
            }
            // Content events only: a server may leave reasoning out of the
            // limit, or send a chunk's reasoning and content as two events.
            let events = record.content_events_us.len() as u64;
            let finish = record.finish_reason.as_deref();
            if events > u64::from(limit) {
                check.exceeded += 1;
            } else if finish.is_some_and(|r| !crate::record::is_length_finish(r))
                || (finish.is_none() && record.counted_by_events() && events < u64::from(limit))
            {
                check.ended_early += 1;
            } else if finish.is_none() {
                check.unknown += 1;
            }
        }
        check
    }
}
