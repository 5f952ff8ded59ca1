//! The server beside the client: `server_metrics.jsonl` read back into one
//! point per scrape round (through the run's own [`Tracker`], so the page
//! sees what the run saw), and what a level's section shows of it — the
//! server's series on the client's time axis, and its digest's tables.
//!
//! The file is streamed: only the charted roles of each round are kept
//! (a few numbers a round), never the scrapes themselves.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::metrics::server::{Estimate, Point, Role, ServerDigest, Tracker};
use crate::report::terminal::format_ms;
use crate::results::{self, ResultsError};
use crate::spec::trim_float;

/// The server over a run, one point per scrape round, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerTimeline {
    /// Every round of the file.
    pub rounds: Vec<ServerRound>,
}

/// The charted roles after one scrape round (every source scraped once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerRound {
    /// The level being measured during the round, if any.
    pub level: Option<u32>,
    /// When, µs on the run's clock (as records' `sent_us`): midway between
    /// the round's first and last answer.
    pub t_us: u64,
    /// Sources that answered.
    pub up: usize,
    /// Requests running, summed over the sources that answered.
    pub running: Option<f64>,
    /// Requests waiting, summed over the sources that answered.
    pub waiting: Option<f64>,
    /// KV-cache usage, a share 0–1 (averaged over sources).
    pub kv_cache_usage: Option<f64>,
    /// Tokens generated since each source's first scrape, summed.
    pub generation_tokens: Option<f64>,
}

impl ServerRound {
    fn of(point: &Point, level: Option<u32>) -> ServerRound {
        ServerRound {
            level,
            t_us: point.t_us,
            up: point.up,
            running: point.gauges.get(&Role::RunningRequests).copied(),
            waiting: point.gauges.get(&Role::WaitingRequests).copied(),
            kv_cache_usage: point.gauges.get(&Role::KvCacheUsage).copied(),
            generation_tokens: point.counters.get(&Role::GenerationTokens).copied(),
        }
    }
}

/// The round being read: its number, level and answers' times.
struct OpenRound {
    round: u64,
    level: Option<u32>,
    first_us: u64,
    last_us: u64,
}

impl ServerTimeline {
    /// Reads a `server_metrics.jsonl` line by line into its rounds (bad
    /// lines as [`results::for_each_scrape`]).
    pub fn read(path: &Path) -> Result<ServerTimeline, ResultsError> {
        let mut tracker = Tracker::default();
        let mut rounds = Vec::new();
        let mut open: Option<OpenRound> = None;
        let close = |tracker: &Tracker, round: OpenRound| {
            let t_us = round.first_us + (round.last_us - round.first_us) / 2;
            ServerRound::of(&tracker.point(t_us), round.level)
        };
        results::for_each_scrape(path, |line| {
            // A round's lines are written together, one per source.
            if let Some(round) = open.take_if(|round| round.round != line.round) {
                rounds.push(close(&tracker, round));
            }
            let round = open.get_or_insert(OpenRound {
                round: line.round,
                level: line.level,
                first_us: line.t_us,
                last_us: line.t_us,
            });
            round.first_us = round.first_us.min(line.t_us);
            round.last_us = round.last_us.max(line.t_us);
            tracker.take(&line);
        })?;
        if let Some(round) = open {
            rounds.push(close(&tracker, round));
        }
        Ok(ServerTimeline { rounds })
    }

    /// The rounds taken while level `index` was measured.
    pub fn level(&self, index: u32) -> Vec<ServerRound> {
        self.rounds
            .iter()
            .filter(|r| r.level == Some(index))
            .copied()
            .collect()
    }
}

/// A level's server series in seconds since its first send, as the
/// timeline charts take them.
#[derive(Debug, Default)]
pub(super) struct ServerSeries {
    pub(super) running: Vec<(f64, f64)>,
    pub(super) waiting: Vec<(f64, f64)>,
    /// KV-cache usage, percent.
    pub(super) kv_percent: Vec<(f64, f64)>,
    /// Generated tokens per second between consecutive rounds, stamped at
    /// the earlier one (a last point closes the last step).
    pub(super) tokens_per_s: Vec<(f64, f64)>,
}

impl ServerSeries {
    /// The series of `rounds` on the time axis starting at `origin_us`.
    pub(super) fn of(rounds: &[ServerRound], origin_us: u64) -> ServerSeries {
        let at = |r: &ServerRound| super::page::seconds(r.t_us, origin_us);
        let pick = |value: fn(&ServerRound) -> Option<f64>, scale: f64| -> Vec<(f64, f64)> {
            rounds
                .iter()
                .filter_map(|r| value(r).map(|v| (at(r), v * scale)))
                .collect()
        };
        // A source that missed a round holds its total still: a rate
        // across that round would dip, then spike. Only rounds where every
        // source answering at all answered count.
        let full = rounds.iter().map(|r| r.up).max().unwrap_or(0).max(1);
        let counted: Vec<(u64, f64)> = rounds
            .iter()
            .filter(|r| r.up == full)
            .filter_map(|r| r.generation_tokens.map(|total| (r.t_us, total)))
            .collect();
        let mut tokens_per_s: Vec<(f64, f64)> = counted
            .windows(2)
            .filter(|w| w[1].0 > w[0].0)
            .map(|w| {
                let span_s = (w[1].0 - w[0].0) as f64 / 1e6;
                (
                    super::page::seconds(w[0].0, origin_us),
                    (w[1].1 - w[0].1) / span_s,
                )
            })
            .collect();
        if let (Some(&(_, rate)), Some(&(t_us, _))) = (tokens_per_s.last(), counted.last()) {
            tokens_per_s.push((super::page::seconds(t_us, origin_us), rate));
        }
        ServerSeries {
            running: pick(|r| r.running, 1.0),
            waiting: pick(|r| r.waiting, 1.0),
            kv_percent: pick(|r| r.kv_cache_usage, 100.0),
            tokens_per_s,
        }
    }
}

/// A role as people read it.
fn role_name(key: &str) -> String {
    let name = match Role::ALL.into_iter().find(|r| r.key() == key) {
        Some(Role::RunningRequests) => "running requests",
        Some(Role::WaitingRequests) => "waiting requests",
        Some(Role::KvCacheUsage) => "KV-cache usage",
        Some(Role::Preemptions) => "preemptions",
        Some(Role::PromptTokens) => "prompt tokens",
        Some(Role::GenerationTokens) => "generated tokens",
        Some(Role::FinishedRequests) => "finished requests",
        Some(Role::Ttft) => "TTFT",
        Some(Role::Itl) => "ITL",
        Some(Role::E2e) => "E2E",
        Some(Role::QueueTime) => "queue time",
        None => key,
    };
    name.to_string()
}

/// A digest's map in the order summaries list roles (not the keys').
fn in_role_order<T>(map: &BTreeMap<String, T>) -> Vec<(&String, &T)> {
    let rank = |key: &str| Role::ALL.iter().position(|r| r.key() == key);
    let mut entries: Vec<(&String, &T)> = map.iter().collect();
    // Unknown keys (a newer file's) last.
    entries.sort_by_key(|(key, _)| rank(key).unwrap_or(usize::MAX));
    entries
}

/// A bucket estimate at the precision it has: whole ms from 10 ms up.
fn estimate_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format_ms(ms)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The bucket an estimate falls in: `80–100 ms`, or `over 1000 ms`.
fn bucket(estimate: &Estimate) -> String {
    match estimate.high_ms {
        Some(high) => format!("{}–{} ms", trim_float(estimate.low_ms), trim_float(high)),
        None => format!("over {} ms", trim_float(estimate.low_ms)),
    }
}

/// `≈ 92 ms (80–100 ms)`: an estimate with its bucket.
pub(super) fn estimate_text(estimate: Option<&Estimate>) -> String {
    match estimate {
        None => "-".to_string(),
        Some(e) if e.high_ms.is_none() => format!("≥ {} ({})", estimate_ms(e.ms), bucket(e)),
        Some(e) => format!("≈ {} ({})", estimate_ms(e.ms), bucket(e)),
    }
}

/// The level's "Server metrics" and "Client vs server" tables.
pub(super) fn digest_context(digest: &ServerDigest) -> Value {
    let gauges: Vec<Value> = in_role_order(&digest.gauges)
        .into_iter()
        .map(|(key, g)| {
            let (mean, max) = if key == Role::KvCacheUsage.key() {
                (
                    format!("{:.1}%", g.mean * 100.0),
                    format!("{:.1}%", g.max * 100.0),
                )
            } else {
                (format!("{:.1}", g.mean), trim_float(g.max))
            };
            json!({"what": role_name(key), "metric": g.metric, "mean": mean, "max": max})
        })
        .collect();
    let counters: Vec<Value> = in_role_order(&digest.counters)
        .into_iter()
        .map(|(key, c)| {
            json!({
                "what": role_name(key),
                "metric": c.metric,
                "increase": trim_float(c.increase),
                "rate": format!("{:.1}/s", c.rate_per_s),
            })
        })
        .collect();
    let histograms: Vec<Value> = in_role_order(&digest.histograms)
        .into_iter()
        .map(|(key, h)| {
            json!({
                "what": role_name(key),
                "metric": h.metric,
                "count": trim_float(h.count),
                "p50": estimate_text(h.p50.as_ref()),
                "p90": estimate_text(h.p90.as_ref()),
                "p99": estimate_text(h.p99.as_ref()),
            })
        })
        .collect();
    let versus = digest.versus_client.as_ref().map(|v| {
        let latency: Vec<Value> = v
            .latency
            .iter()
            .map(|p| {
                // A mean is exact on both sides; a quantile is no closer
                // than its bucket, and a client figure inside it cannot be
                // told apart from the server's.
                let exact = p.quantile == "mean";
                json!({
                    "what": format!("{} {}", role_name(&p.role), p.quantile),
                    "client": format_ms(p.client_ms),
                    "server": if exact {
                        format_ms(p.server.ms)
                    } else {
                        format!("≈ {}", estimate_ms(p.server.ms))
                    },
                    "bucket": if exact { "exact (sum / count)".to_string() } else { bucket(&p.server) },
                    "difference": if p.within_bucket {
                        "inside the bucket".to_string()
                    } else {
                        format!("{:+.1} ms", p.difference_ms)
                    },
                    // Exact figures, for readers and tests that check them.
                    "difference_ms": p.difference_ms,
                })
            })
            .collect();
        let tokens = v.generation_tokens.as_ref().map(|t| {
            json!({
                "client": t.client,
                "server": trim_float(t.server),
                "difference": format!(
                    "{}{}",
                    if t.difference > 0.0 { "+" } else { "" },
                    trim_float(t.difference)
                ),
            })
        });
        json!({
            "latency": latency,
            "tokens": tokens,
            "ttft_is_first_reasoning": v.client_ttft_is_first_reasoning,
        })
    });
    let mut head = vec![
        if digest.servers.is_empty() {
            "no known metrics".to_string()
        } else {
            digest.servers.join(", ")
        },
        format!(
            "{} source{} scraped",
            digest.sources.len(),
            if digest.sources.len() == 1 { "" } else { "s" }
        ),
        format!("{} scrapes over {:.1} s", digest.scrapes, digest.window_s),
    ];
    if digest.failed_scrapes > 0 {
        head.push(format!(
            "{} failed scrape{}",
            digest.failed_scrapes,
            if digest.failed_scrapes == 1 { "" } else { "s" }
        ));
    }
    json!({
        "head": head.join(" · "),
        "sources": digest.sources,
        "scrapes": digest.scrapes,
        "failed_scrapes": digest.failed_scrapes,
        "gauges": gauges,
        "counters": counters,
        "histograms": histograms,
        "versus": versus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(t_s: f64, up: usize, running: f64, tokens: f64) -> ServerRound {
        ServerRound {
            level: Some(0),
            t_us: (t_s * 1e6) as u64,
            up,
            running: Some(running),
            waiting: None,
            kv_cache_usage: Some(0.25),
            generation_tokens: Some(tokens),
        }
    }

    #[test]
    fn the_server_rate_is_the_counters_increase_over_each_interval_from_its_start() {
        // Two sources; the second missed the round at 1.0 s, so its total
        // stood still there: that round is not used for the rate.
        let rounds = [
            round(0.5, 2, 1.0, 0.0),
            round(0.75, 2, 3.0, 150.0),
            round(1.0, 1, 2.0, 250.0),
            round(1.25, 2, 4.0, 450.0),
            round(1.5, 2, 0.0, 750.0),
        ];
        let series = ServerSeries::of(&rounds, 500_000);
        assert_eq!(
            series.tokens_per_s,
            [(0.0, 600.0), (0.25, 600.0), (0.75, 1200.0), (1.0, 1200.0)]
        );
        assert_eq!(
            series.running[2],
            (0.5, 2.0),
            "a partial round's gauges show"
        );
        assert_eq!(series.kv_percent[0], (0.0, 25.0), "KV usage in percent");
        assert!(series.waiting.is_empty(), "no such gauge, no series");
    }

    #[test]
    fn estimates_read_with_their_bucket() {
        let inside = Estimate {
            ms: 92.4,
            low_ms: 80.0,
            high_ms: Some(100.0),
        };
        assert_eq!(estimate_text(Some(&inside)), "≈ 92 ms (80–100 ms)");
        let over = Estimate {
            ms: 1000.0,
            low_ms: 1000.0,
            high_ms: None,
        };
        assert_eq!(estimate_text(Some(&over)), "≥ 1000 ms (over 1000 ms)");
        assert_eq!(estimate_text(None), "-");
    }
}
