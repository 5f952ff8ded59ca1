//! The benchmark spec: what a run is asked to do.
//!
//! A [`Benchmark`] is built with a small builder API in a `benches/*.rs`
//! function marked `#[llmperf::bench]`, or from `llmperf run` flags. Its
//! serializable [`BenchmarkConfig`] is written into every `summary.json`
//! (with secrets removed), so a result always says how it was produced.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod load;
mod regression;
pub(crate) mod script;
mod slo;

pub(crate) use load::trim_float;
pub use load::{
    Arrival, Level, Load, Rate, Sweep, Warmup, DEFAULT_MAX_EVENT_BYTES, DURATION_REQUEST_CAP,
    MIN_REQUESTS_FOR_ERROR_RATE,
};
pub use regression::RegressionPolicy;
pub use script::{Connections, Fault, FaultSchedule, Script};
pub use slo::{Slo, SloMetric};

/// The fixed default seed: the same seed gives the same prompts and lengths.
pub const DEFAULT_SEED: u64 = 42;

/// A string that must never reach disk, logs or error text (API keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for building the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which endpoint to benchmark and how to reach it.
///
/// Unset parts come from the environment (and a `.env` file) at run time:
/// `{PREFIX}_API_BASE` and `{PREFIX}_API_KEY` with prefix `OPENAI` by
/// default. With no base URL configured anywhere, the benchmark targets the
/// built-in endpoint ([`crate::builtin`]), so examples run out of the box.
///
/// ```
/// use llmperf::Endpoint;
/// let endpoint = Endpoint::openai_chat()
///     .base_url("http://127.0.0.1:8000/v1")
///     .model("meta-llama/Llama-3.1-8B-Instruct");
/// assert_eq!(endpoint.kind_name(), "openai-chat");
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub(crate) kind: String,
    pub(crate) base_url: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) api_key: Option<Secret>,
    pub(crate) env_prefix: Option<String>,
    pub(crate) builtin: bool,
    pub(crate) options: std::collections::BTreeMap<String, String>,
}

impl Endpoint {
    /// An endpoint of the named kind (see [`crate::endpoint::kinds`]).
    pub fn kind(name: impl Into<String>) -> Self {
        Endpoint {
            kind: name.into(),
            base_url: None,
            model: None,
            api_key: None,
            env_prefix: None,
            builtin: false,
            options: std::collections::BTreeMap::new(),
        }
    }

    /// OpenAI-compatible `POST {base}/chat/completions`.
    pub fn openai_chat() -> Self {
        Endpoint::kind("openai-chat")
    }

    /// OpenAI-compatible `POST {base}/completions`.
    pub fn openai_completions() -> Self {
        Endpoint::kind("openai-completions")
    }

    /// The base URL, e.g. `https://api.openai.com/v1` (overrides the environment).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The model name sent in each request.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The API key (overrides `{PREFIX}_API_KEY`). Never written anywhere.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// The environment variable prefix: `TOGETHER` reads `TOGETHER_API_BASE`
    /// and `TOGETHER_API_KEY`. Default: the kind's own (`OPENAI` for the
    /// OpenAI kinds).
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// A kind-specific setting (a Vertex AI project, a SageMaker region…);
    /// unset settings come from `{PREFIX}_{KEY}` in the environment.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Always target the built-in endpoint, ignoring the environment.
    pub fn builtin(mut self) -> Self {
        self.builtin = true;
        self
    }

    /// The endpoint kind's name.
    pub fn kind_name(&self) -> &str {
        &self.kind
    }
}

/// How prompts are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum PromptScheme {
    /// The classic scheme: a random number of corpus lines (Shakespeare's
    /// sonnets), asking for `req_lines` lines back.
    Lines {
        /// Fewest corpus lines in a prompt.
        min_lines: u32,
        /// Most corpus lines in a prompt.
        max_lines: u32,
        /// Lines the model is asked to write back.
        req_lines: u32,
    },
    /// Input and output token counts drawn from normal distributions.
    TokenLengths {
        /// Mean prompt length in tokens.
        mean_input_tokens: u32,
        /// Standard deviation of the prompt length.
        stddev_input_tokens: u32,
        /// Mean output length in tokens (sent as `max_tokens`).
        mean_output_tokens: u32,
        /// Standard deviation of the output length.
        stddev_output_tokens: u32,
    },
    /// Only the validation task, with short answers (a correctness run).
    ValidationOnly,
    /// Prompts (and output lengths) from a dataset file, see [`Dataset`].
    Dataset(Dataset),
}

/// The layout of a dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetFormat {
    /// One JSON object a line: `{"prompt": "…"}` or `{"messages": [{"role":
    /// "user", "content": "…"}, …]}`, each with an optional `max_tokens`.
    #[serde(rename = "jsonl")]
    Jsonl,
    /// ShareGPT conversations (`{"conversations": [{"from": "human",
    /// "value": "…"}, {"from": "gpt", …}]}`), as a JSON array or one a line,
    /// like the `ShareGPT_V3` files of vLLM's benchmark.
    #[serde(rename = "sharegpt")]
    ShareGpt,
}

impl DatasetFormat {
    /// The name used in specs and on the command line: `jsonl`, `sharegpt`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Jsonl => "jsonl",
            DatasetFormat::ShareGpt => "sharegpt",
        }
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DatasetFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "jsonl" => Ok(DatasetFormat::Jsonl),
            "sharegpt" => Ok(DatasetFormat::ShareGpt),
            _ => Err(format!(
                "`{name}` is not a dataset format: use jsonl or sharegpt"
            )),
        }
    }
}

/// How dataset entries are picked for a run's requests (from the seed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Each entry at most once, in an order shuffled from the seed; a
    /// dataset too small for the requests is an error (a repeated prompt
    /// would hit a warm prefix cache and flatter the results).
    #[default]
    WithoutReplacement,
    /// Every request draws any entry, so entries may repeat.
    WithReplacement,
}

impl Sampling {
    /// The command-line name: `without-replacement`, `with-replacement`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sampling::WithoutReplacement => "without-replacement",
            Sampling::WithReplacement => "with-replacement",
        }
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "without-replacement" => Ok(Sampling::WithoutReplacement),
            "with-replacement" => Ok(Sampling::WithReplacement),
            _ => Err(format!(
                "`{name}` is not a sampling: use with-replacement or without-replacement"
            )),
        }
    }
}

/// A dataset of prompts: the file (its path is recorded, not its
/// contents), its format, how entries are sampled and which are kept.
///
/// The filters look at each entry's first request (its system and first
/// user messages, before any shared prefix or validation task) and at the
/// output length of each of its turns; an entry outside them is dropped.
///
/// ```
/// use llmperf::{Dataset, Sampling, Workload};
/// let workload = Workload::dataset(
///     Dataset::sharegpt("ShareGPT_V3_unfiltered_cleaned_split.json")
///         .sample(Sampling::WithReplacement)
///         .input_tokens_between(4, 1024)
///         .max_output_tokens(1024),
/// );
/// # let _ = workload;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The dataset file.
    pub path: PathBuf,
    /// Its layout.
    pub format: DatasetFormat,
    /// How entries are picked.
    #[serde(default)]
    pub sampling: Sampling,
    /// Drop entries whose first request has fewer tokens.
    #[serde(default)]
    pub min_input_tokens: Option<u32>,
    /// Drop entries whose first request has more tokens.
    #[serde(default)]
    pub max_input_tokens: Option<u32>,
    /// Drop entries with a turn whose output length (its `max_tokens`, or
    /// the recorded reply's tokens) is longer.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

impl Dataset {
    /// The dataset in `path`, in `format`, sampled without replacement, unfiltered.
    pub fn new(path: impl Into<PathBuf>, format: DatasetFormat) -> Self {
        Dataset {
            path: path.into(),
            format,
            sampling: Sampling::default(),
            min_input_tokens: None,
            max_input_tokens: None,
            max_output_tokens: None,
        }
    }

    /// A JSONL file of prompts or message lists.
    pub fn jsonl(path: impl Into<PathBuf>) -> Self {
        Dataset::new(path, DatasetFormat::Jsonl)
    }

    /// A ShareGPT file.
    pub fn sharegpt(path: impl Into<PathBuf>) -> Self {
        Dataset::new(path, DatasetFormat::ShareGpt)
    }

    /// How entries are picked (default: without replacement).
    pub fn sample(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Keeps entries whose first request has `min..=max` input tokens.
    pub fn input_tokens_between(mut self, min: u32, max: u32) -> Self {
        self.min_input_tokens = Some(min);
        self.max_input_tokens = Some(max);
        self
    }

    /// Keeps entries whose first request has at least `min` input tokens.
    pub fn min_input_tokens(mut self, min: u32) -> Self {
        self.min_input_tokens = Some(min);
        self
    }

    /// Keeps entries whose first request has at most `max` input tokens.
    pub fn max_input_tokens(mut self, max: u32) -> Self {
        self.max_input_tokens = Some(max);
        self
    }

    /// Keeps entries whose every turn asks for at most `max` output tokens.
    pub fn max_output_tokens(mut self, max: u32) -> Self {
        self.max_output_tokens = Some(max);
        self
    }
}

/// What is sent: the prompt scheme, output limits and extra parameters.
///
/// ```
/// use llmperf::Workload;
/// let workload = Workload::token_lengths(550, 150, 150, 80).ignore_eos(true);
/// let classic = Workload::lines(2, 8, 4).max_tokens(128);
/// # let _ = (workload, classic);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// How prompts are made.
    pub prompts: PromptScheme,
    /// A cap on output tokens for every request (the token-length scheme
    /// sets each request's own `max_tokens` from its drawn length).
    pub max_tokens: Option<u32>,
    /// Ask the server to ignore end-of-sequence (`ignore_eos` and
    /// `min_tokens`), as vLLM, SGLang and TGI support, so outputs have the
    /// planned length. Off by default: OpenAI's own API rejects the fields.
    pub ignore_eos: bool,
    /// A Hugging Face `tokenizer.json` for client-side counts; the bundled
    /// `cl100k_base` when unset.
    pub tokenizer: Option<PathBuf>,
    /// A system prompt of exactly this many tokens (by the run's
    /// tokenizer), the same for every request of the run, sent before each
    /// conversation: measures prefix caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix_tokens: Option<u32>,
    /// Turns per conversation (1: every request stands alone). Generated
    /// prompts make conversations of exactly this many turns; a ShareGPT
    /// dataset keeps up to this many of each conversation's turns. Each
    /// later turn carries the previous turn's actual answer, see
    /// [`RequestPlan::turn`](crate::workload::RequestPlan::turn).
    #[serde(default = "one_turn", skip_serializing_if = "is_one_turn")]
    pub turns: u32,
}

fn one_turn() -> u32 {
    1
}

fn is_one_turn(turns: &u32) -> bool {
    *turns == 1
}

impl Default for Workload {
    fn default() -> Self {
        Workload::token_lengths(550, 150, 150, 80)
    }
}

impl Workload {
    /// The token-length scheme: input ~ N(mean_in, sd_in), output ~ N(mean_out, sd_out).
    pub fn token_lengths(mean_in: u32, sd_in: u32, mean_out: u32, sd_out: u32) -> Self {
        Workload {
            prompts: PromptScheme::TokenLengths {
                mean_input_tokens: mean_in,
                stddev_input_tokens: sd_in,
                mean_output_tokens: mean_out,
                stddev_output_tokens: sd_out,
            },
            max_tokens: None,
            ignore_eos: false,
            tokenizer: None,
            shared_prefix_tokens: None,
            turns: 1,
        }
    }

    /// The classic scheme: `min..=max` sonnet lines, asking for `req_lines` back.
    pub fn lines(min_lines: u32, max_lines: u32, req_lines: u32) -> Self {
        Workload {
            prompts: PromptScheme::Lines {
                min_lines,
                max_lines,
                req_lines,
            },
            max_tokens: Some(128),
            ignore_eos: false,
            tokenizer: None,
            shared_prefix_tokens: None,
            turns: 1,
        }
    }

    /// Only validation prompts (number ↔ words), with short answers.
    pub fn validation_only() -> Self {
        Workload {
            prompts: PromptScheme::ValidationOnly,
            max_tokens: Some(64),
            ignore_eos: false,
            tokenizer: None,
            shared_prefix_tokens: None,
            turns: 1,
        }
    }

    /// Prompts and output lengths from a dataset file.
    ///
    /// ```
    /// use llmperf::{Dataset, Sampling, Workload};
    /// let workload = Workload::dataset(
    ///     Dataset::jsonl("prompts.jsonl").sample(Sampling::WithoutReplacement),
    /// )
    /// .shared_prefix(1000);
    /// # let _ = workload;
    /// ```
    pub fn dataset(dataset: Dataset) -> Self {
        Workload {
            prompts: PromptScheme::Dataset(dataset),
            max_tokens: None,
            ignore_eos: false,
            tokenizer: None,
            shared_prefix_tokens: None,
            turns: 1,
        }
    }

    /// Sends a system prompt of exactly `tokens` tokens, the same for every
    /// request of the run, before each conversation (for prefix caching).
    pub fn shared_prefix(mut self, tokens: u32) -> Self {
        self.shared_prefix_tokens = Some(tokens);
        self
    }

    /// Conversations of `turns` turns (generated prompts), or up to `turns`
    /// turns of each ShareGPT conversation; each later turn carries the
    /// previous turn's actual answer.
    pub fn multi_turn(mut self, turns: u32) -> Self {
        self.turns = turns;
        self
    }

    /// Caps every request's output tokens.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Asks the server to ignore EOS so outputs have the planned length.
    pub fn ignore_eos(mut self, on: bool) -> Self {
        self.ignore_eos = on;
        self
    }

    /// Counts tokens with this `tokenizer.json` instead of the bundled one.
    pub fn tokenizer(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokenizer = Some(path.into());
        self
    }
}

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

impl Dataset {
    /// Filters that can keep nothing.
    fn check(&self) -> Result<(), SpecError> {
        if self.path.as_os_str().is_empty() {
            return Err(SpecError::new(
                "the dataset path is empty: name a file (--dataset FILE)",
            ));
        }
        if let (Some(min), Some(max)) = (self.min_input_tokens, self.max_input_tokens) {
            if min > max {
                return Err(SpecError::new(format!(
                    "min input tokens ({min}) is greater than max input tokens ({max}): make --min-input-tokens <= --max-input-tokens"
                )));
            }
        }
        if self.max_input_tokens == Some(0) {
            return Err(SpecError::new(
                "max input tokens is 0, which drops every entry: give 1 or more (--max-input-tokens)",
            ));
        }
        if self.max_output_tokens == Some(0) {
            return Err(SpecError::new(
                "the max output tokens filter is 0, which drops every entry: give 1 or more, or leave it out",
            ));
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
