//! Which endpoint a benchmark talks to, as the spec says it (resolving it
//! into a target is [`crate::endpoint`]'s job), and the secret string type
//! that keeps keys out of disk, logs and errors.

use std::fmt;

use super::SpecError;

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
    /// Extra headers: lower-cased name → value template.
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    /// Extra query parameters: name → value template.
    pub(crate) query: std::collections::BTreeMap<String, String>,
    /// An explicit proxy URL (template).
    pub(crate) proxy: Option<String>,
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
            headers: std::collections::BTreeMap::new(),
            query: std::collections::BTreeMap::new(),
            proxy: None,
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

    /// Sends header `name: value` with every request (repeatable; a name
    /// given again, in any case, replaces the earlier value). It is added
    /// after the endpoint kind built the request and replaces a header the
    /// kind sets of the same name: `header("Authorization", "Bearer …")`
    /// replaces the kind's own key.
    ///
    /// `${NAME}` in `value` is the environment variable `NAME` (a `.env`
    /// file works), read when the run resolves its endpoint; a missing one
    /// is an error naming it, and `$${` is a literal `${`. Results record
    /// the value as given, the template and not its expansion, except that
    /// a header whose name suggests a secret (`Authorization`, a name
    /// holding `key`, `token`, `secret`, `auth`, `cookie`, …; see
    /// [`crate::endpoint::is_secret_setting`]) is recorded as `***`.
    ///
    /// Names must be RFC 9110 tokens and values one line, checked by
    /// [`Benchmark::check`](crate::Benchmark::check) before a run
    /// ([`check_header`](super::check_header)).
    ///
    /// ```
    /// use llmperf::{Benchmark, Endpoint};
    /// let endpoint = Endpoint::openai_chat()
    ///     .header("X-Team", "${TEAM}")
    ///     .header("Authorization", "Bearer ${GATEWAY_TOKEN}");
    /// assert!(Benchmark::new().endpoint(endpoint).check().is_ok());
    /// let bad = Endpoint::openai_chat().header("X Team", "blue");
    /// assert!(Benchmark::new().endpoint(bad).check().is_err());
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Adds query parameter `name=value` to every request URL (repeatable;
    /// a name given again replaces the earlier value), e.g. a gateway's
    /// `api-version` or routing key. It replaces a parameter of the same
    /// name the kind or the base URL puts in the URL. `${NAME}` in `value`
    /// reads the environment as in [`Endpoint::header`]. Results record the
    /// names only, each value as `***`, as they mask the base URL's query.
    ///
    /// ```
    /// use llmperf::Endpoint;
    /// let endpoint = Endpoint::openai_chat().query("api-version", "2024-10-21");
    /// # let _ = endpoint;
    /// ```
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.insert(name.into(), value.into());
        self
    }

    /// Sends every request through this `http://` proxy
    /// (`http://[user:password@]host:port`), whatever `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` say: plain requests in
    /// absolute form, HTTPS ones through a `CONNECT` tunnel, with
    /// `Proxy-Authorization: Basic` from the URL's user and password.
    /// `${NAME}` reads the environment as in [`Endpoint::header`]. The
    /// built-in endpoint is never reached through a proxy. Results record
    /// the URL without its user and password.
    ///
    /// ```
    /// use llmperf::Endpoint;
    /// let endpoint = Endpoint::openai_chat().proxy("http://proxy.corp:3128");
    /// # let _ = endpoint;
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Checks the extra headers, query parameters and proxy for values
    /// that can never work (called by [`Benchmark::check`](crate::Benchmark::check)).
    pub fn check(&self) -> Result<(), SpecError> {
        for (name, value) in &self.headers {
            super::check_header(name, value)?;
        }
        for (name, value) in &self.query {
            super::check_query(name, value)?;
        }
        if let Some(proxy) = &self.proxy {
            super::template::check("the proxy (--proxy)", proxy)?;
        }
        Ok(())
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
