//! The server's own metrics, scraped while a run measures it: the
//! Prometheus text format read ([`exposition`]), the metrics llmperf knows
//! by name ([`known`]), scrapes followed into the known roles' values
//! ([`tracker`]), and a level's digest ([`ServerDigest`]) with the
//! client's figures beside the server's.
//!
//! Every sample of every scrape is kept in `server_metrics.jsonl` (see
//! [`crate::results`]); the digest covers the known metrics only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod exposition;
pub mod known;
pub mod tracker;

pub use exposition::{Exposition, MetricType, Sample};
pub use known::{Role, Shape};
pub use tracker::{Buckets, Point, Tracker};

use super::Summary;

/// One series of a source: its sample name, labels and family type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesDef {
    /// The sample's name (`vllm:generation_tokens_total`).
    pub name: String,
    /// Its labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its family's declared type.
    #[serde(rename = "type")]
    pub kind: MetricType,
}

/// One scrape of one metrics source: a line of `server_metrics.jsonl`.
///
/// Series are numbered per source in order of first appearance: a line
/// defines the series new in its scrape (`new`, numbered on from the
/// source's last), and `values` holds one value per series number so far
/// (`null`: absent from this scrape, or `NaN`). Reading the lines in
/// order rebuilds every sample of every scrape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeLine {
    /// The scrape round (every source is scraped once per round).
    pub round: u64,
    /// Which source (an index into the run's sources).
    pub source: u32,
    /// When the response arrived, µs on the run's clock (as records'
    /// `sent_us`).
    pub t_us: u64,
    /// The level being measured, if any (between levels: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// The source's URL (on its first line only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// From sending the scrape to its last byte, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Series first seen in this scrape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new: Vec<SeriesDef>,
    /// One value per series number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Option<f64>>,
    /// Why the scrape failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the server's metrics said over one level: gauges' mean and
/// maximum, counters' increase and rate, histograms' quantile estimates,
/// and the client's figures beside the server's.
///
/// The level's window on the server's side runs from a scrape taken just
/// before its first request to one taken just after its last ended, so
/// counters count the whole level: warmup and cooldown requests included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDigest {
    /// The metrics endpoints scraped.
    pub sources: Vec<String>,
    /// The servers recognised by their metric names (`vllm`, `tgi`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Scrape rounds in the window (every source scraped once per round).
    pub scrapes: u64,
    /// Scrapes of a source that failed in the window.
    #[serde(default)]
    pub failed_scrapes: u64,
    /// From the first scrape to the last, seconds.
    pub window_s: f64,
    /// Gauges by role (`running_requests`, `waiting_requests`,
    /// `kv_cache_usage` as a share 0–1): over the window's scrapes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<String, GaugeDigest>,
    /// Counters by role (`generation_tokens`, `preemptions`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterDigest>,
    /// Histograms by role (`ttft`, `itl`, `e2e`, `queue_time`), ms.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, HistogramDigest>,
    /// The client's figures beside the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versus_client: Option<VersusClient>,
}

/// A gauge over a level's scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaugeDigest {
    /// The family read.
    pub metric: String,
    /// Mean of the scrapes.
    pub mean: f64,
    /// Largest scrape.
    pub max: f64,
}

/// A counter over a level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterDigest {
    /// The family read.
    pub metric: String,
    /// Its increase (resets followed).
    pub increase: f64,
    /// The increase per second of the window.
    pub rate_per_s: f64,
}

/// A histogram's increase over a level, in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramDigest {
    /// The family read.
    pub metric: String,
    /// Observations in the window.
    pub count: f64,
    /// Their mean (sum / count), ms.
    pub mean_ms: Option<f64>,
    /// Median estimate.
    pub p50: Option<Estimate>,
    /// 90th percentile estimate.
    pub p90: Option<Estimate>,
    /// 99th percentile estimate.
    pub p99: Option<Estimate>,
}

/// A quantile estimated from histogram buckets: no closer than the bucket
/// it falls in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimate (linear within the bucket), ms.
    pub ms: f64,
    /// The bucket's lower bound, ms.
    pub low_ms: f64,
    /// The bucket's upper bound, ms (`None`: the `+Inf` bucket, and the
    /// estimate is only a lower bound).
    pub high_ms: Option<f64>,
}

impl Estimate {
    fn of(buckets: &Buckets, q: f64) -> Option<Estimate> {
        buckets.quantile(q).map(|(ms, low_ms, high)| Estimate {
            ms,
            low_ms,
            high_ms: high.is_finite().then_some(high),
        })
    }
}

/// The client's figures beside the server's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VersusClient {
    /// Client percentiles beside the server's estimates, by role
    /// (`ttft`, `itl`, `e2e`) and quantile.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyPair>,
    /// Tokens the client received against the server's generated-token
    /// counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<TokenPair>,
    /// Whether the client's `ttft` figures here are its time to the first
    /// reasoning token (every request reasoned first; the server's TTFT
    /// counts reasoning tokens as output).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_ttft_is_first_reasoning: bool,
}

/// One latency percentile seen from both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyPair {
    /// `ttft`, `itl` or `e2e`.
    pub role: String,
    /// `mean` (exact: the histogram's sum over its count), `p50`, `p90`
    /// or `p99` (estimates, no closer than their bucket).
    pub quantile: String,
    /// The client's percentile (its measured requests), ms.
    pub client_ms: f64,
    /// The server's estimate, ms.
    pub server: Estimate,
    /// Client minus the server's estimate, ms: what the network, gateways
    /// and the client's side add, give or take the bucket's width.
    pub difference_ms: f64,
    /// Whether the client's figure falls inside the server's bucket: then
    /// the histogram cannot tell the two apart, and the difference is
    /// only the interpolation's.
    pub within_bucket: bool,
}

/// Tokens counted by both sides over a level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Output tokens the client received (every request of the level,
    /// failed ones' partial answers included).
    pub client: u64,
    /// The server's generated-token counter's increase.
    pub server: f64,
    /// Server minus client.
    pub difference: f64,
}

/// A level's scrapes, summed up as they arrive.
#[derive(Debug, Clone, Default)]
pub struct Window {
    start: Option<Point>,
    last: Option<Point>,
    /// Per gauge role: sum, scrapes, max.
    gauges: BTreeMap<Role, (f64, u64, f64)>,
    scrapes: u64,
    failed: u64,
}

impl Window {
    /// Takes the point after a scrape round in which `failed` sources failed.
    pub fn add(&mut self, point: Point, failed: u64) {
        for (&role, &value) in &point.gauges {
            let (sum, n, max) = self.gauges.entry(role).or_insert((0.0, 0, f64::MIN));
            *sum += value;
            *n += 1;
            *max = max.max(value);
        }
        self.scrapes += 1;
        self.failed += failed;
        if self.start.is_none() {
            self.start = Some(point.clone());
        }
        self.last = Some(point);
    }

    /// Takes a scrape round in which no source answered.
    pub fn add_failed(&mut self, failed: u64) {
        self.scrapes += 1;
        self.failed += failed;
    }

    /// The digest of the window (`None` before any scrape answered).
    pub fn digest(&self, sources: &[String]) -> Option<ServerDigest> {
        let (start, end) = (self.start.as_ref()?, self.last.as_ref()?);
        if end.families.is_empty() && self.gauges.is_empty() {
            return Some(ServerDigest {
                sources: sources.to_vec(),
                servers: Vec::new(),
                scrapes: self.scrapes,
                failed_scrapes: self.failed,
                window_s: 0.0,
                gauges: BTreeMap::new(),
                counters: BTreeMap::new(),
                histograms: BTreeMap::new(),
                versus_client: None,
            });
        }
        let window_s = end.t_us.saturating_sub(start.t_us) as f64 / 1e6;
        let family = |role: &Role| end.families.get(role).copied().unwrap_or("").to_string();
        let gauges = self
            .gauges
            .iter()
            .map(|(role, &(sum, n, max))| {
                (
                    role.key().to_string(),
                    GaugeDigest {
                        metric: family(role),
                        mean: sum / n.max(1) as f64,
                        max,
                    },
                )
            })
            .collect();
        let counters = end
            .counters
            .iter()
            .map(|(role, total)| {
                let increase = total - start.counters.get(role).copied().unwrap_or(0.0);
                (
                    role.key().to_string(),
                    CounterDigest {
                        metric: family(role),
                        increase,
                        rate_per_s: if window_s > 0.0 {
                            increase / window_s
                        } else {
                            0.0
                        },
                    },
                )
            })
            .collect();
        let histograms = end
            .histograms
            .iter()
            .map(|(role, buckets)| {
                let level = buckets.since(start.histograms.get(role));
                let count = level.observations();
                (
                    role.key().to_string(),
                    HistogramDigest {
                        metric: family(role),
                        count,
                        mean_ms: (count > 0.0).then(|| level.sum / count),
                        p50: Estimate::of(&level, 0.5),
                        p90: Estimate::of(&level, 0.9),
                        p99: Estimate::of(&level, 0.99),
                    },
                )
            })
            .collect();
        let mut servers: Vec<String> = end
            .families
            .values()
            .filter_map(|f| known::KNOWN.iter().find(|k| k.family == *f))
            .map(|k| k.server.to_string())
            .collect();
        servers.sort();
        servers.dedup();
        Some(ServerDigest {
            sources: sources.to_vec(),
            servers,
            scrapes: self.scrapes,
            failed_scrapes: self.failed,
            window_s,
            gauges,
            counters,
            histograms,
            versus_client: None,
        })
    }
}

impl ServerDigest {
    /// Sets [`ServerDigest::versus_client`] from the level's client
    /// summary and the output tokens it received over all its requests.
    pub fn compare_with(&mut self, summary: &Summary, tokens_received: u64) {
        let mut versus = VersusClient::default();
        // A server's first token is the first it generated, reasoning
        // included (vLLM, SGLang); the client's TTFT is its first answer
        // token. When every request reasoned first, the client's figure to
        // hold against the server's is its time to the first reasoning token.
        let reasoned = summary
            .time_to_first_reasoning_ms
            .as_ref()
            .filter(|r| summary.ttft_ms.is_some_and(|t| t.count == r.count));
        versus.client_ttft_is_first_reasoning = reasoned.is_some();
        for (role, stats) in [
            (Role::Ttft, reasoned.or(summary.ttft_ms.as_ref())),
            (Role::Itl, summary.inter_token_latency_ms.as_ref()),
            (Role::E2e, summary.e2e_ms.as_ref()),
        ] {
            let (Some(stats), Some(server)) = (stats, self.histograms.get(role.key())) else {
                continue;
            };
            // The mean is exact on both sides: the histogram's sum over its count.
            if let Some(mean) = server.mean_ms {
                versus.latency.push(LatencyPair {
                    role: role.key().to_string(),
                    quantile: "mean".to_string(),
                    client_ms: stats.mean,
                    server: Estimate {
                        ms: mean,
                        low_ms: mean,
                        high_ms: Some(mean),
                    },
                    difference_ms: stats.mean - mean,
                    within_bucket: false,
                });
            }
            for (quantile, client_ms, estimate) in [
                ("p50", stats.p50, server.p50),
                ("p90", stats.p90, server.p90),
                ("p99", stats.p99, server.p99),
            ] {
                if let Some(estimate) = estimate {
                    versus.latency.push(LatencyPair {
                        role: role.key().to_string(),
                        quantile: quantile.to_string(),
                        client_ms,
                        server: estimate,
                        difference_ms: client_ms - estimate.ms,
                        within_bucket: client_ms >= estimate.low_ms
                            && estimate.high_ms.is_none_or(|high| client_ms <= high),
                    });
                }
            }
        }
        if let Some(server) = self.counters.get(Role::GenerationTokens.key()) {
            versus.generation_tokens = Some(TokenPair {
                client: tokens_received,
                server: server.increase,
                difference: server.increase - tokens_received as f64,
            });
        }
        if versus.latency.is_empty() && versus.generation_tokens.is_none() {
            self.versus_client = None;
        } else {
            self.versus_client = Some(versus);
        }
    }

    /// A gauge's digest by role.
    pub fn gauge(&self, role: Role) -> Option<&GaugeDigest> {
        self.gauges.get(role.key())
    }

    /// A counter's digest by role.
    pub fn counter(&self, role: Role) -> Option<&CounterDigest> {
        self.counters.get(role.key())
    }

    /// A histogram's digest by role.
    pub fn histogram(&self, role: Role) -> Option<&HistogramDigest> {
        self.histograms.get(role.key())
    }
}
