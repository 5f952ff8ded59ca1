//! The timing of one request, from its record's monotonic timestamps.
//!
//! Definitions (all from the monotonic timestamps of a [`RequestRecord`]):
//! - TTFT: first content event − send. Role-only and empty chunks, and
//!   reasoning, do not count as the first token.
//! - end-to-end (E2E): end of stream − send.
//! - inter-token latency (ITL): the gap between consecutive content events,
//!   spread over the tokens of the later event (an event carrying k tokens
//!   gives k samples of gap/k); per-event token counts come from the client
//!   tokenizer, scaled so they add up to the server's `usage` count when the
//!   server gave one. Without one, a stream of one token per event
//!   ([`RequestRecord::counted_by_events`]) counts one per event, however
//!   its text re-tokenises. TTFT is never an ITL sample.
//! - TPOT: (E2E − TTFT) / (content tokens − 1); reasoning tokens came
//!   before the first content token, so they are not in it.
//! - output tokens/s of a request: output tokens / E2E.

use serde::{Deserialize, Serialize};

use super::RequestRecord;

/// Tokens one content event is taken to carry, at most.
pub const MAX_TOKENS_PER_EVENT: u32 = 1 << 16;

/// Metrics of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestMetrics {
    /// Time to first content token.
    pub ttft_ms: Option<f64>,
    /// Time to first reasoning token.
    pub time_to_first_reasoning_ms: Option<f64>,
    /// Send to end of stream.
    pub e2e_ms: f64,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Output tokens / E2E.
    pub output_tokens_per_s: Option<f64>,
    /// Actual send − scheduled send (queueing for an in-flight slot included).
    #[serde(default)]
    pub send_lag_ms: f64,
    /// Time to first token counted from the scheduled send.
    #[serde(default)]
    pub ttft_from_scheduled_ms: Option<f64>,
    /// End to end counted from the scheduled send.
    #[serde(default)]
    pub e2e_from_scheduled_ms: f64,
}

fn ms(from_us: u64, to_us: u64) -> f64 {
    to_us.saturating_sub(from_us) as f64 / 1e3
}

impl RequestMetrics {
    /// The metrics of `record`.
    pub fn of(record: &RequestRecord) -> RequestMetrics {
        let e2e_ms = ms(record.sent_us, record.end_us);
        let ttft_ms = record.first_token_us.map(|t| ms(record.sent_us, t));
        let output_tokens = record.output_tokens();
        let content_tokens = record.content_tokens();
        let tpot_ms = match ttft_ms {
            Some(ttft) if content_tokens > 1 => {
                Some((e2e_ms - ttft) / f64::from(content_tokens - 1))
            }
            _ => None,
        };
        RequestMetrics {
            ttft_ms,
            time_to_first_reasoning_ms: record.first_reasoning_us.map(|t| ms(record.sent_us, t)),
            e2e_ms,
            tpot_ms,
            output_tokens_per_s: (e2e_ms > 0.0 && output_tokens > 0)
                .then(|| f64::from(output_tokens) / (e2e_ms / 1e3)),
            send_lag_ms: ms(record.scheduled_us, record.sent_us),
            ttft_from_scheduled_ms: record.first_token_us.map(|t| ms(record.scheduled_us, t)),
            e2e_from_scheduled_ms: ms(record.scheduled_us, record.end_us),
        }
    }
}

/// Gaps between consecutive content events, in milliseconds.
pub fn event_gaps_ms(record: &RequestRecord) -> Vec<f64> {
    record
        .content_events_us
        .windows(2)
        .map(|pair| ms(pair[0], pair[1]))
        .collect()
}

/// Per-token inter-token latencies, in milliseconds (see the module docs).
pub fn inter_token_latencies_ms(record: &RequestRecord) -> Vec<f64> {
    let counts = tokens_per_event(record);
    let mut samples = Vec::with_capacity(counts.iter().skip(1).map(|&c| c as usize).sum());
    for (gap, &count) in event_gaps_ms(record).into_iter().zip(counts.iter().skip(1)) {
        // An event that holds no whole token adds its gap to no sample.
        if count > 0 {
            samples.extend(std::iter::repeat_n(gap / f64::from(count), count as usize));
        }
    }
    samples
}

/// Tokens carried by each content event: the client tokenizer's counts,
/// rescaled to add up to the server's content count when it gave one
/// (largest-remainder rounding, so the sum is exact).
pub fn tokens_per_event(record: &RequestRecord) -> Vec<u32> {
    // No event carries this many tokens; a (hand-edited) record claiming
    // more must not turn into billions of samples.
    let weights: Vec<u32> = record
        .content_event_tokens
        .iter()
        .map(|&tokens| tokens.clamp(1, MAX_TOKENS_PER_EVENT))
        .collect();
    let client_total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let target = match record.output_tokens_server {
        Some(_) => u64::from(record.content_tokens())
            .min(weights.len() as u64 * u64::from(MAX_TOKENS_PER_EVENT)),
        // One token per event: how the text re-tokenises does not matter.
        None if record.counted_by_events() => return vec![1; weights.len()],
        None => return weights,
    };
    if client_total == 0 || target == client_total {
        return weights;
    }
    // Both fit in u32 now: at most MAX_TOKENS_PER_EVENT per event, and
    // content_tokens() is a u32.
    let (target, client_total) = (target as u32, client_total.min(u64::from(u32::MAX)) as u32);
    let scale = f64::from(target) / f64::from(client_total);
    let exact: Vec<f64> = weights.iter().map(|&w| f64::from(w) * scale).collect();
    let mut counts: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut remaining = target.saturating_sub(counts.iter().sum());
    let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        let fraction = |i: usize| exact[i] - exact[i].floor();
        fraction(b).total_cmp(&fraction(a))
    });
    for index in by_remainder {
        if remaining == 0 {
            break;
        }
        counts[index] += 1;
        remaining -= 1;
    }
    counts
}
