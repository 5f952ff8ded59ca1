//! Synthetic results with a known shape, for checking what comparisons
//! conclude: the tests measure detection and false-positive rates with
//! them, and `cargo bench -p llmperf --bench verdicts` reports those rates.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use super::Baseline;
use crate::load::{Phase, Stop};
use crate::metrics::{LevelResult, RequestMetrics, SloReport, Summary};
use crate::record::RequestRecord;
use crate::results::{Environment, RunMode, SummaryFile, ToolInfo};
use crate::spec::{BenchmarkConfig, Level, Load, Workload};

/// A synthetic endpoint serving requests one after another: TTFT
/// log-normal around `ttft_ms` with log-σ `ttft_sigma` (0.2 by default, a
/// CV near 20%), then `tokens` output tokens log-normal around 10 ms apart.
///
/// ```
/// use llmperf::baseline::{compare, synthetic::Synthetic, CompareSettings, Verdict};
/// let base = Synthetic::new(200, 500.0, 1).baseline("base");
/// let slower = Synthetic::new(200, 650.0, 2).baseline("new");
/// let comparison = compare(&base, &slower, &CompareSettings { nresamples: 1_000, ..Default::default() });
/// assert_eq!(comparison.levels[0].metrics[0].metric, "ttft_p50");
/// assert_eq!(comparison.levels[0].metrics[0].verdict, Verdict::Regressed);
/// ```
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Measured requests.
    pub requests: usize,
    /// Median TTFT, ms.
    pub ttft_ms: f64,
    /// σ of the TTFT's logarithm.
    pub ttft_sigma: f64,
    /// Output tokens per request.
    pub tokens: usize,
    /// The first this many requests fail (HTTP 500, no tokens).
    pub failures: usize,
    /// Seed of the draws.
    pub seed: u64,
}

impl Synthetic {
    /// `requests` requests with median TTFT `ttft_ms`, 6 tokens each.
    pub fn new(requests: usize, ttft_ms: f64, seed: u64) -> Self {
        Synthetic {
            requests,
            ttft_ms,
            ttft_sigma: 0.2,
            tokens: 6,
            failures: 0,
            seed,
        }
    }

    /// The requests, as a run records them.
    pub fn records(&self) -> Vec<RequestRecord> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let ttft = LogNormal::new(self.ttft_ms.ln(), self.ttft_sigma).expect("valid log-normal");
        let gap = LogNormal::new(10f64.ln(), 0.3).expect("valid log-normal");
        let mut clock_us = 0u64;
        (0..self.requests)
            .map(|id| {
                let sent_us = clock_us;
                let failed = id < self.failures;
                let mut t = sent_us as f64 + ttft.sample(&mut rng) * 1e3;
                let mut events = Vec::new();
                if !failed {
                    for _ in 0..self.tokens {
                        events.push(t as u64);
                        t += gap.sample(&mut rng) * 1e3;
                    }
                }
                let end_us = events.last().copied().unwrap_or(t as u64);
                clock_us = end_us + rng.gen_range(0..100);
                let mut record = RequestRecord {
                    id: id as u64,
                    level: 0,
                    phase: Phase::Measured,
                    turn: None,
                    ok: !failed,
                    error: None,
                    http_status: Some(if failed { 500 } else { 200 }),
                    connection: None,
                    scheduled_us: sent_us,
                    queued_us: 0,
                    sent_us,
                    headers_us: Some(sent_us),
                    first_token_us: events.first().copied(),
                    first_reasoning_us: None,
                    end_us,
                    content_events_us: events.clone(),
                    content_event_tokens: vec![1; events.len()],
                    single_token_events: false,
                    reasoning_events: 0,
                    max_tokens: None,
                    finish_reason: None,
                    input_tokens_server: Some(100),
                    input_tokens_client: 100,
                    output_tokens_server: Some(events.len() as u32),
                    output_tokens_client: events.len() as u32,
                    reasoning_tokens_server: None,
                    reasoning_tokens_client: 0,
                    token_count_mismatch: false,
                    text_excerpt: String::new(),
                    validation: None,
                    metrics: RequestMetrics::default(),
                };
                record.metrics = RequestMetrics::of(&record);
                record
            })
            .collect()
    }

    /// A one-level result of the requests, as a baseline named `name`.
    pub fn baseline(&self, name: &str) -> Baseline {
        let records = self.records();
        let summary = Summary::of(&records);
        let refs: Vec<&RequestRecord> = records.iter().collect();
        let level = LevelResult {
            notes: Vec::new(),
            index: 0,
            level: Level::Concurrency { concurrency: 1 },
            stop: Stop::Completed,
            slo: SloReport::of(&refs, &[], summary.throughput.window_s),
            summary: summary.clone(),
            server: None,
        };
        let result = SummaryFile {
            schema_version: crate::results::SCHEMA_VERSION,
            tool: ToolInfo::default(),
            benchmark: "synthetic/ttft".to_string(),
            started_at: "2026-11-28T00:00:00Z".to_string(),
            started_at_unix_us: None,
            interrupted: false,
            config: config(),
            environment: Environment::current(RunMode::Bench),
            summary,
            headline_level: 0,
            levels: vec![level],
            sweep: None,
            shard: None,
            merged: None,
        };
        Baseline::of_run(name, &result, &records)
    }
}

/// The config a synthetic result claims (the built-in endpoint's defaults).
pub fn config() -> BenchmarkConfig {
    BenchmarkConfig {
        endpoint_kind: "openai-chat".to_string(),
        base_url: "http://127.0.0.1:1/v1".to_string(),
        builtin_endpoint: true,
        model: "llmperf-builtin".to_string(),
        api_key_set: false,
        workload: Workload::default(),
        load: Load::default(),
        validate: false,
        seed: 42,
        extra_body: serde_json::Map::new(),
        builtin_script: None,
        tokenizer: "cl100k_base".to_string(),
        options: Default::default(),
        slos: Vec::new(),
        regression: Default::default(),
        server_metrics: None,
        tls: Default::default(),
        headers: Default::default(),
        query: Default::default(),
        proxy: None,
    }
}
