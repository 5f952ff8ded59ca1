//! What a benchmark sends: generated prompts of given token lengths, or a
//! dataset's, and how many turns a conversation has.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::SpecError;

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

impl Dataset {
    /// Filters that can keep nothing.
    pub(super) fn check(&self) -> Result<(), SpecError> {
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
