//! Which endpoint a benchmark talks to, as the spec says it (resolving it
//! into a target is [`crate::endpoint`]'s job), and the secret string type
//! that keeps keys out of disk, logs and errors.

use std::fmt;

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
    /// Trust, client certificate, verification (see `spec/tls.rs`).
    pub(crate) tls: super::Tls,
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
            tls: super::Tls::default(),
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
