//! The benchmark spec: what a run is asked to do.
//!
//! A [`Benchmark`] is built with a small builder API in a `benches/*.rs`
//! function marked `#[llmperf::bench]`, or from `llmperf run` flags. Its
//! serializable [`BenchmarkConfig`] is written into every `summary.json`
//! (with secrets removed), so a result always says how it was produced.

use serde::{Deserialize, Serialize};

mod endpoint;
mod extras;
mod load;
mod regression;
pub(crate) mod script;
mod server_metrics;
mod slo;
pub(crate) mod template;
mod tls;
mod workload;

pub use endpoint::{Endpoint, Secret};
pub(crate) use extras::check_header_value;
pub use extras::{check_header, check_query};
pub(crate) use load::trim_float;
pub use load::{
    Arrival, Level, Load, Rate, Sweep, Warmup, DEFAULT_MAX_EVENT_BYTES, DURATION_REQUEST_CAP,
    MIN_REQUESTS_FOR_ERROR_RATE,
};
pub use regression::RegressionPolicy;
pub use script::{Connections, Fault, FaultSchedule, MetricsStyle, Script};
pub use server_metrics::{ServerMetrics, DEFAULT_SCRAPE_INTERVAL, MIN_SCRAPE_INTERVAL};
pub use slo::{Slo, SloMetric};
pub use tls::{ClientCert, Tls};
pub use workload::{Dataset, DatasetFormat, PromptScheme, Sampling, Workload};

/// The fixed default seed: the same seed gives the same prompts and lengths.
pub const DEFAULT_SEED: u64 = 42;

/// One endpoint benchmark: endpoint, workload, load and validation.
///
/// ```
/// use llmperf::{Benchmark, Endpoint, Load, Workload};
/// let bench = Benchmark::new()
///     .endpoint(Endpoint::openai_chat().model("gpt-4o-mini"))
///     .workload(Workload::token_lengths(550, 150, 150, 80))
///     .load(Load::closed(4).requests(20))
///     .validate(true);
/// assert_eq!(bench.load_spec().concurrency, 4);
/// ```
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub(crate) endpoint: Endpoint,
    pub(crate) workload: Workload,
    pub(crate) load: Load,
    /// `None`: the default for the workload ([`Benchmark::validates`]).
    pub(crate) validate: Option<bool>,
    pub(crate) fail_on_cross_over: bool,
    pub(crate) seed: u64,
    pub(crate) extra_body: serde_json::Map<String, serde_json::Value>,
    pub(crate) builtin_script: Script,
    pub(crate) slos: Vec<Slo>,
    pub(crate) regression: RegressionPolicy,
    pub(crate) server_metrics: ServerMetrics,
}

impl Default for Benchmark {
    fn default() -> Self {
        Benchmark::new()
    }
}

impl Benchmark {
    /// A benchmark of the OpenAI chat endpoint with the default workload
    /// (550±150 tokens in, 150±80 out), 1 request in flight, 10 requests.
    pub fn new() -> Self {
        Benchmark {
            endpoint: Endpoint::openai_chat(),
            workload: Workload::default(),
            load: Load::default(),
            validate: None,
            fail_on_cross_over: true,
            seed: DEFAULT_SEED,
            extra_body: serde_json::Map::new(),
            builtin_script: Script::default(),
            slos: Vec::new(),
            regression: RegressionPolicy::default(),
            server_metrics: ServerMetrics::default(),
        }
    }

    /// Sets the endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Sets the model (shortcut for the endpoint's model).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.endpoint.model = Some(model.into());
        self
    }

    /// Sets the workload.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workload = workload;
        self
    }

    /// Sets the load.
    pub fn load(mut self, load: Load) -> Self {
        self.load = load;
        self
    }

    /// Sets the number of requests (shortcut for the load's).
    pub fn requests(mut self, requests: u64) -> Self {
        self.load.requests = requests;
        self
    }

    /// Sets the concurrency (shortcut for the load's).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.load.concurrency = concurrency;
        self
    }

    /// Checks every response for the right answer and for cross-overs
    /// (request A receiving B's answer). On by default for generated prompts
    /// (each gets one line asking the reply to open with a number, see
    /// [`crate::validate`]); off by default for datasets, whose prompts are
    /// the user's. `validate(false)` turns it off, `validate(true)` on.
    ///
    /// ```
    /// use llmperf::{Benchmark, Dataset, Workload};
    /// assert!(Benchmark::new().validates());
    /// assert!(!Benchmark::new().validate(false).validates());
    /// let dataset = Benchmark::new().workload(Workload::dataset(Dataset::jsonl("prompts.jsonl")));
    /// assert!(!dataset.validates());
    /// assert!(dataset.validate(true).validates());
    /// ```
    pub fn validate(mut self, on: bool) -> Self {
        self.validate = Some(on);
        self
    }

    /// Whether responses are validated: as set with [`Benchmark::validate`],
    /// else on for generated prompts and off for a dataset (a correctness
    /// run, [`Workload::validation_only`], always is).
    pub fn validates(&self) -> bool {
        match (&self.workload.prompts, self.validate) {
            (PromptScheme::ValidationOnly, _) => true,
            (_, Some(on)) => on,
            (PromptScheme::Dataset(_), None) => false,
            (_, None) => true,
        }
    }

    /// Whether a cross-over (a response that answered another request)
    /// makes the run fail, as it does by default (`llmperf run` and
    /// `cargo bench` exit non-zero); `false` only reports it, as
    /// `--allow-cross-overs` does.
    pub fn fail_on_cross_over(mut self, fail: bool) -> Self {
        self.fail_on_cross_over = fail;
        self
    }

    /// Whether a cross-over fails the run ([`Benchmark::fail_on_cross_over`]).
    pub fn fails_on_cross_over(&self) -> bool {
        self.fail_on_cross_over
    }

    /// The seed for prompts, lengths and validation numbers.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a field to every request body (e.g. `temperature`, `top_p`);
    /// it overrides what llmperf would send.
    pub fn extra_body(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra_body.insert(key.into(), value);
        self
    }

    /// The script of the built-in endpoint, used when the benchmark runs
    /// against it (no endpoint configured, or [`Endpoint::builtin`]).
    pub fn builtin_script(mut self, script: Script) -> Self {
        self.builtin_script = script;
        self
    }

    /// Adds a service-level objective. A level meets its objectives when
    /// every one holds; the knee of a sweep is the highest level that does,
    /// and goodput counts the requests that met all of them. With none, the
    /// overload rule applies: [`Slo::default_overload`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use llmperf::{spec::{Slo, SloMetric}, Benchmark};
    /// let bench = Benchmark::new()
    ///     .slo(Slo::new(SloMetric::Ttft, 99.0, Duration::from_secs(2)))
    ///     .slo(Slo::new(SloMetric::Tpot, 50.0, Duration::from_millis(50)));
    /// assert_eq!(bench.slos().len(), 2);
    /// ```
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slos.push(slo);
        self
    }

    /// Changes within ± this share of a baseline are noise (default 0.05).
    pub fn noise_threshold(mut self, share: f64) -> Self {
        self.regression.noise_threshold = Some(share);
        self
    }

    /// Changes are significant below this adjusted p-value (default 0.05).
    pub fn significance_level(mut self, level: f64) -> Self {
        self.regression.significance_level = Some(level);
        self
    }

    /// Exit non-zero when a metric regressed against the baseline compared
    /// with (as `--fail-on-regression`).
    pub fn fail_on_regression(mut self, fail: bool) -> Self {
        self.regression.fail_on_regression = fail;
        self
    }

    /// Sets where and how often the server's Prometheus metrics are
    /// scraped during the run (on by default, at `/metrics` of the
    /// endpoint's origin; [`ServerMetrics::off`] turns it off).
    ///
    /// ```
    /// use llmperf::{spec::ServerMetrics, Benchmark};
    /// let bench = Benchmark::new()
    ///     .server_metrics(ServerMetrics::default().url("http://127.0.0.1:9400/metrics"));
    /// assert_eq!(bench.server_metrics_spec().urls.len(), 1);
    /// ```
    pub fn server_metrics(mut self, metrics: ServerMetrics) -> Self {
        self.server_metrics = metrics;
        self
    }

    /// Where and how often the server's metrics are scraped.
    pub fn server_metrics_spec(&self) -> &ServerMetrics {
        &self.server_metrics
    }

    /// Gates on this metric (repeatable): a name such as `ttft_p50` or
    /// `server.kv_cache_usage_max`, or a pattern with `*` (`ttft_*`). Once
    /// one is named, only the named metrics fail the gate; by default every
    /// client metric does and the server's figures are informational.
    pub fn gate_on(mut self, metric: impl Into<String>) -> Self {
        self.regression.gate.push(metric.into());
        self
    }

    /// The comparison settings given.
    pub fn regression_policy(&self) -> &RegressionPolicy {
        &self.regression
    }

    /// The objectives in force: those given, or the overload rule.
    pub fn slos(&self) -> Vec<Slo> {
        if self.slos.is_empty() {
            vec![Slo::default_overload()]
        } else {
            self.slos.clone()
        }
    }

    /// The load as configured.
    pub fn load_spec(&self) -> &Load {
        &self.load
    }

    /// The workload as configured.
    pub fn workload_spec(&self) -> &Workload {
        &self.workload
    }

    /// The endpoint as configured.
    pub fn endpoint_spec(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Checks values that can never work, with a message naming the fix.
    pub fn check(&self) -> Result<(), SpecError> {
        self.endpoint.check()?;
        self.load.check()?;
        if self.load.planned_requests() > MAX_REQUESTS {
            return Err(SpecError::new(format!(
                "{} requests is more than one run can plan ({MAX_REQUESTS}): split it into several runs",
                self.load.planned_requests()
            )));
        }
        if self.validates() && self.load.planned_requests() > MAX_VALIDATED_REQUESTS {
            return Err(SpecError::new(format!(
                "validation gives each request its own number, so at most {MAX_VALIDATED_REQUESTS} requests can be validated: lower --requests or drop --validate"
            )));
        }
        match &self.workload.prompts {
            PromptScheme::Lines {
                min_lines,
                max_lines,
                ..
            } => {
                if min_lines > max_lines {
                    return Err(SpecError::new(format!(
                        "min lines ({min_lines}) is greater than max lines ({max_lines}): make --min-lines <= --max-lines"
                    )));
                }
                if *max_lines == 0 {
                    return Err(SpecError::new(
                        "max lines is 0: prompts need at least one line (--max-lines 1 or more)",
                    ));
                }
            }
            PromptScheme::TokenLengths {
                mean_input_tokens,
                mean_output_tokens,
                ..
            } => {
                if *mean_input_tokens == 0 || *mean_output_tokens == 0 {
                    return Err(SpecError::new(
                        "mean input and output tokens must be positive (--mean-input-tokens, --mean-output-tokens)",
                    ));
                }
            }
            PromptScheme::ValidationOnly => {}
            PromptScheme::Dataset(dataset) => dataset.check()?,
        }
        self.check_conversations()?;
        if self.server_metrics.enabled && self.server_metrics.interval < MIN_SCRAPE_INTERVAL {
            return Err(SpecError::new(format!(
                "a server-metrics interval of {} is shorter than {} (scraping that often measures the scraper): raise --server-metrics-interval",
                humantime::format_duration(self.server_metrics.interval),
                humantime::format_duration(MIN_SCRAPE_INTERVAL)
            )));
        }
        for url in &self.server_metrics.urls {
            let scheme = reqwest::Url::parse(url).map(|u| u.scheme().to_string());
            if !matches!(scheme.as_deref(), Ok("http" | "https")) {
                return Err(SpecError::new(format!(
                    "{} is not an http(s) URL: name a server-metrics endpoint like http://host:8000/metrics",
                    display_url(url)
                )));
            }
        }
        if self.workload.max_tokens == Some(0) {
            return Err(SpecError::new(
                "max tokens is 0: allow at least 1 output token (--max-tokens)",
            ));
        }
        // The largest `max_tokens` a request may send (normal draws beyond
        // six standard deviations do not happen in practice).
        let largest_output = match &self.workload.prompts {
            PromptScheme::TokenLengths {
                mean_output_tokens,
                stddev_output_tokens,
                ..
            } => {
                let planned =
                    mean_output_tokens.saturating_add(stddev_output_tokens.saturating_mul(6));
                self.workload
                    .max_tokens
                    .map_or(planned, |cap| cap.min(planned))
            }
            _ => self.workload.max_tokens.unwrap_or(0),
        };
        if largest_output > MAX_OUTPUT_TOKENS {
            return Err(SpecError::new(format!(
                "output lengths above {MAX_OUTPUT_TOKENS} tokens are not supported: lower --mean-output-tokens / --max-tokens"
            )));
        }
        Ok(())
    }
}

impl Benchmark {
    /// The shared prefix and turn settings.
    fn check_conversations(&self) -> Result<(), SpecError> {
        match self.workload.shared_prefix_tokens {
            Some(0) => {
                return Err(SpecError::new(
                    "a shared prefix of 0 tokens: give 1 or more (--shared-prefix-tokens N), or leave it out for none",
                ))
            }
            Some(tokens) if tokens > MAX_SHARED_PREFIX_TOKENS => {
                return Err(SpecError::new(format!(
                    "a shared prefix of {tokens} tokens is longer than any context window: use at most {MAX_SHARED_PREFIX_TOKENS} (--shared-prefix-tokens)"
                )))
            }
            _ => {}
        }
        if self.workload.turns == 0 {
            return Err(SpecError::new(
                "0 turns per conversation: give 1 or more (--turns N; 1 sends independent requests)",
            ));
        }
        if self.workload.turns > 1 {
            if let PromptScheme::Dataset(Dataset {
                format: DatasetFormat::Jsonl,
                ..
            }) = &self.workload.prompts
            {
                return Err(SpecError::new(
                    "--turns applies to generated prompts and ShareGPT conversations: a JSONL entry is one request (send a history as its `messages`), so drop --turns or use --dataset-format sharegpt",
                ));
            }
        }
        Ok(())
    }
}

/// The longest shared prefix, in tokens (beyond every context window).
pub const MAX_SHARED_PREFIX_TOKENS: u32 = 1_000_000;
/// The most requests one level plans. Requests are planned as they are
/// sent ([`crate::workload::Planner`]), so this bounds a run's length, not
/// what planning holds in memory.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// The most validated requests in one run: each needs its own number
/// (runs of more than 500,000 draw them from a wider range).
pub const MAX_VALIDATED_REQUESTS: u64 = MAX_REQUESTS;
/// The most output tokens one request may ask for.
pub const MAX_OUTPUT_TOKENS: u32 = 1_000_000;

/// `url` as safe to show and store: no user or password, query values
/// masked (some providers take keys in the query string).
///
/// ```
/// assert_eq!(
///     llmperf::spec::display_url("https://user:secret@example.com/v1?key=abc&v=1"),
///     "https://example.com/v1?key=***&v=***"
/// );
/// ```
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
            if keys.is_empty() {
                parsed.set_query(None);
            } else {
                let masked: Vec<String> = keys.iter().map(|k| format!("{k}=***")).collect();
                parsed.set_query(Some(&masked.join("&")));
            }
            parsed.to_string()
        }
        // Not a URL: show nothing of it that could be a secret.
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// A spec value that can never work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(String);

impl SpecError {
    /// A spec error with a message that names the fix.
    pub fn new(message: impl Into<String>) -> Self {
        SpecError(message.into())
    }
}

/// What a run was asked to do, as written to `summary.json` (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkConfig {
    /// Endpoint kind, e.g. `openai-chat`.
    pub endpoint_kind: String,
    /// Base URL used (`builtin` runs show the loopback address).
    pub base_url: String,
    /// Whether the built-in endpoint served the run.
    pub builtin_endpoint: bool,
    /// Model name sent.
    pub model: String,
    /// Whether an API key was sent (never the key).
    pub api_key_set: bool,
    /// The workload.
    pub workload: Workload,
    /// The load.
    pub load: Load,
    /// Whether responses were validated.
    pub validate: bool,
    /// The seed.
    pub seed: u64,
    /// Extra body fields sent with every request.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// The built-in endpoint's script, when it served the run (`mock` in
    /// results files, its name before the built-in endpoint had one name).
    #[serde(rename = "mock")]
    pub builtin_script: Option<Script>,
    /// The tokenizer used for client-side counts.
    pub tokenizer: String,
    /// Kind-specific settings given in the spec.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// The service-level objectives levels were judged by.
    #[serde(default)]
    pub slos: Vec<Slo>,
    /// How comparisons with a baseline are judged (not a difference
    /// between two runs' configs).
    #[serde(default)]
    pub regression: RegressionPolicy,
    /// Whether and where the server's metrics were scraped (`None` in
    /// results written before llmperf scraped them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<ServerMetrics>,
    /// The TLS settings (file paths, and `insecure` when the server's
    /// certificate was not verified); left out when all are the defaults.
    #[serde(default, skip_serializing_if = "Tls::is_default")]
    pub tls: Tls,
    /// Extra headers sent with every request ([`Endpoint::header`]), by
    /// lower-cased name: the value as given (a `${NAME}` template, not its
    /// expansion), or `***` for a name that suggests a secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Extra query parameters added to every request URL
    /// ([`Endpoint::query`]), by name; every value is `***`, as in
    /// [`display_url`].
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub query: std::collections::BTreeMap<String, String>,
    /// The explicit proxy requests went through ([`Endpoint::proxy`]), as
    /// [`display_url`] shows it (no user or password); `None` with none,
    /// and for the built-in endpoint, which is never proxied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

/// Serde for a [`Duration`] as fractional milliseconds.
pub(crate) mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_ms(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    /// A duration from milliseconds, refusing negative and non-finite values.
    pub fn from_ms(ms: f64) -> Result<Duration, String> {
        Duration::try_from_secs_f64(ms / 1e3).map_err(|_| {
            format!("{ms} ms is not a duration (expected a finite, non-negative number of milliseconds)")
        })
    }
}

/// Serde for an optional [`Duration`] as fractional milliseconds.
pub(crate) mod option_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            Some(ms) => super::duration_ms::from_ms(ms)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_values_are_rejected_with_the_fix() {
        let zero = Benchmark::new().concurrency(0).check().unwrap_err();
        assert!(zero.to_string().contains("--concurrency"));
        let lines = Benchmark::new()
            .workload(Workload::lines(9, 3, 1))
            .check()
            .unwrap_err();
        assert!(lines.to_string().contains("--min-lines <= --max-lines"));
        assert!(Benchmark::new().check().is_ok());
    }

    #[test]
    fn impossible_dataset_and_conversation_settings_name_the_fix() {
        let rejected = |workload: Workload, fix: &str| {
            let error = Benchmark::new().workload(workload).check().unwrap_err();
            assert!(error.to_string().contains(fix), "{error}");
        };
        let data = || Dataset::jsonl("prompts.jsonl");
        rejected(
            Workload::dataset(data().input_tokens_between(500, 100)),
            "--min-input-tokens <= --max-input-tokens",
        );
        rejected(
            Workload::dataset(data().max_input_tokens(0)),
            "--max-input-tokens",
        );
        rejected(
            Workload::dataset(data().max_output_tokens(0)),
            "give 1 or more",
        );
        rejected(Workload::dataset(Dataset::jsonl("")), "--dataset FILE");
        rejected(
            Workload::dataset(data()).multi_turn(2),
            "--dataset-format sharegpt",
        );
        rejected(Workload::default().multi_turn(0), "--turns");
        rejected(
            Workload::default().shared_prefix(0),
            "--shared-prefix-tokens",
        );
        rejected(
            Workload::default().shared_prefix(MAX_SHARED_PREFIX_TOKENS + 1),
            "--shared-prefix-tokens",
        );
        let fine = [
            Workload::dataset(Dataset::sharegpt("s.json").input_tokens_between(4, 4)).multi_turn(4),
            Workload::lines(1, 2, 1).shared_prefix(100).multi_turn(3),
        ];
        for workload in fine {
            assert!(Benchmark::new().workload(workload).check().is_ok());
        }
    }

    #[test]
    fn dataset_workloads_round_trip_through_json_by_path() {
        let workload = Workload::dataset(
            Dataset::sharegpt("data/sharegpt.json")
                .sample(Sampling::WithReplacement)
                .input_tokens_between(4, 1024)
                .max_output_tokens(512),
        )
        .shared_prefix(256)
        .multi_turn(3);
        let json = serde_json::to_value(&workload).unwrap();
        assert_eq!(json["prompts"]["scheme"], "dataset");
        assert_eq!(json["prompts"]["path"], "data/sharegpt.json");
        assert_eq!(json["prompts"]["format"], "sharegpt");
        assert_eq!(json["prompts"]["sampling"], "with_replacement");
        assert_eq!(json["shared_prefix_tokens"], 256);
        assert_eq!(json["turns"], 3);
        let back: Workload = serde_json::from_value(json).unwrap();
        assert_eq!(back, workload);
        // Results written before these settings existed still load.
        let old = serde_json::json!({
            "prompts": {"scheme": "validation_only"},
            "max_tokens": 64, "ignore_eos": false, "tokenizer": null,
        });
        let old: Workload = serde_json::from_value(old).unwrap();
        assert_eq!((old.turns, old.shared_prefix_tokens), (1, None));
        assert!(serde_json::to_value(&old).unwrap().get("turns").is_none());
        assert_eq!("sharegpt".parse(), Ok(DatasetFormat::ShareGpt));
        assert_eq!("with-replacement".parse(), Ok(Sampling::WithReplacement));
        assert!("csv"
            .parse::<DatasetFormat>()
            .unwrap_err()
            .contains("jsonl or sharegpt"));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let endpoint = Endpoint::openai_chat().api_key("sk-very-secret");
        assert!(!format!("{endpoint:?}").contains("sk-very-secret"));
    }
}
