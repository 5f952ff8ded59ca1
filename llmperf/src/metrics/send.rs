//! How well requests went out on schedule: offered and achieved rates,
//! send lag, queueing, and latencies counted from the scheduled send.

use serde::{Deserialize, Serialize};

use super::column::{Column, EXACT_SAMPLES};
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

/// A level's [`SendStats`], built one measured record at a time, in any
/// order (see [`super::SummaryBuilder`]).
#[derive(Debug, Default)]
pub(crate) struct SendBuilder {
    send_lag_ms: Column,
    client_lag_ms: Column,
    queue_wait_ms: Column,
    ttft_from_scheduled_ms: Column,
    e2e_from_scheduled_ms: Column,
    drift: Drift,
    /// Scheduled sends: how many, and the first and the last.
    scheduled: u64,
    scheduled_span_us: Option<(u64, u64)>,
}

impl SendBuilder {
    pub(crate) fn add(&mut self, record: &RequestRecord) {
        let m = &record.metrics;
        self.send_lag_ms.push(m.send_lag_ms);
        self.client_lag_ms
            .push((m.send_lag_ms - record.queued_us as f64 / 1e3).max(0.0));
        if record.queued_us > 0 {
            self.queue_wait_ms.push(record.queued_us as f64 / 1e3);
        }
        if record.ok {
            if let Some(ttft) = m.ttft_from_scheduled_ms {
                self.ttft_from_scheduled_ms.push(ttft);
            }
            self.e2e_from_scheduled_ms.push(m.e2e_from_scheduled_ms);
        }
        self.drift
            .add(record.scheduled_us as f64, record.sent_us as f64);
        let at = record.scheduled_us;
        self.scheduled += 1;
        self.scheduled_span_us = Some(
            self.scheduled_span_us
                .map_or((at, at), |(first, last)| (first.min(at), last.max(at))),
        );
    }

    pub(crate) fn finish(&self) -> SendStats {
        let span_s = self
            .scheduled_span_us
            .map_or(0.0, |(first, last)| last.saturating_sub(first) as f64 / 1e6);
        let offered =
            (self.scheduled > 1 && span_s > 0.0).then(|| (self.scheduled - 1) as f64 / span_s);
        let client_lag_ms = self.client_lag_ms.stats();
        SendStats {
            offered_rate_per_s: offered,
            achieved_rate_per_s: offered
                .zip(self.drift.slope())
                .filter(|(_, slope)| *slope > 0.0)
                .map(|(offered, slope)| offered / slope),
            send_lag_ms: self.send_lag_ms.stats(),
            client_fell_behind: client_lag_ms.is_some_and(|s| s.p90 > CLIENT_LAG_LIMIT_MS),
            client_lag_ms,
            queued_requests: self.queue_wait_ms.count(),
            queue_wait_ms: self.queue_wait_ms.stats(),
            ttft_from_scheduled_ms: self.ttft_from_scheduled_ms.stats(),
            e2e_from_scheduled_ms: self.e2e_from_scheduled_ms.stats(),
        }
    }
}

impl SendStats {
    /// The send statistics of `records` (one level's measured requests).
    pub fn of(records: &[&RequestRecord]) -> SendStats {
        let mut builder = SendBuilder::default();
        for record in records {
            builder.add(record);
        }
        builder.finish()
    }
}

/// The least-squares slope of actual (y) against scheduled (x) send times.
/// While the points are few they are kept, and the sums run in schedule
/// order, so the slope does not depend on the order records arrive in (a
/// summary recomputed from `requests.jsonl` is equal to the last bit).
/// Past [`EXACT_SAMPLES`] points only running sums are kept (centred on
/// the first point, so they stay precise).
#[derive(Debug, Default)]
struct Drift {
    points: Vec<(f64, f64)>,
    sums: Option<DriftSums>,
}

#[derive(Debug, Default)]
struct DriftSums {
    origin: (f64, f64),
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl DriftSums {
    fn add(&mut self, x: f64, y: f64) {
        let (x, y) = (x - self.origin.0, y - self.origin.1);
        self.n += 1.0;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
    }
}

impl Drift {
    fn add(&mut self, x: f64, y: f64) {
        match &mut self.sums {
            Some(sums) => sums.add(x, y),
            None if self.points.len() < EXACT_SAMPLES => self.points.push((x, y)),
            None => {
                let points = std::mem::take(&mut self.points);
                let mut sums = DriftSums {
                    origin: points.first().copied().unwrap_or((x, y)),
                    ..DriftSums::default()
                };
                for (px, py) in points.into_iter().chain([(x, y)]) {
                    sums.add(px, py);
                }
                self.sums = Some(sums);
            }
        }
    }

    fn slope(&self) -> Option<f64> {
        if let Some(s) = &self.sums {
            let variance = s.n * s.xx - s.x * s.x;
            return (s.n >= 2.0 && variance > 0.0).then(|| (s.n * s.xy - s.x * s.y) / variance);
        }
        if self.points.len() < 2 {
            return None;
        }
        let mut points = self.points.clone();
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
            check.add(record);
        }
        check
    }

    /// Adds one successful request.
    pub(crate) fn add(&mut self, record: &RequestRecord) {
        let reason = record.finish_reason.as_deref().unwrap_or("none");
        *self.finish_reasons.entry(reason.to_string()).or_insert(0) += 1;
        let Some(limit) = record.max_tokens else {
            return;
        };
        self.requests_with_max_tokens += 1;
        if let Some(produced) = record.output_tokens_server {
            self.ended_early += u64::from(produced < limit);
            self.exceeded += u64::from(produced > limit);
            return;
        }
        // Content events only: a server may leave reasoning out of the
        // limit, or send a chunk's reasoning and content as two events.
        let events = record.content_events_us.len() as u64;
        let finish = record.finish_reason.as_deref();
        if events > u64::from(limit) {
            self.exceeded += 1;
        } else if finish.is_some_and(|r| !crate::record::is_length_finish(r))
            || (finish.is_none() && record.counted_by_events() && events < u64::from(limit))
        {
            self.ended_early += 1;
        } else if finish.is_none() {
            self.unknown += 1;
        }
    }
}
