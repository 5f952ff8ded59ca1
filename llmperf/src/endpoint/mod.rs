//! Endpoint kinds: one wire protocol each.
//!
//! An endpoint kind knows bytes, not statistics: it turns a
//! [`RequestPlan`] into an HTTP request ([`EndpointKind::build_request`]) and
//! a byte stream into events ([`StreamDecoder`]). The shared stream reader
//! ([`reader`]) stamps every read with a monotonic clock as its bytes arrive
//! and hands the bytes and their arrival time to the decoder, so every
//! protocol is timed the same way.
//!
//! # The kinds
//!
//! `llmperf list-apis` lists every kind a build knows; `Endpoint::kind("NAME")`
//! in a spec and `llmperf run --api NAME` select one. Each kind's module
//! is its reference (URLs, variables, options, authentication, what is
//! decoded, quirks):
//!
//! | kind | module |
//! | --- | --- |
//! | `openai-chat` (the default), `openai-completions` | [`openai`] |
//! | `openai`, `anyscale`, `fireworks`, `perplexity`, `together`, `vllm`, `sglang`, `llamacpp`, `tgi-messages` | [`presets`] |
//! | `azure-openai` | [`azure`] |
//! | `vertex-gemini`, `vertex-gemini-json`, `vertex-raw`, `vertex-openai` | [`vertex`] |
//! | `sagemaker` | [`sagemaker`] |
//! | `tgi` | [`tgi`] |
//! | `together-inference` | [`together`] |
//! | `anthropic` | [`anthropic`] |
//!
//! Every kind is served by the built-in endpoint (same scripted timing and
//! faults), so `--builtin` works with each. The base URL and key come from
//! the spec, else `{PREFIX}_API_BASE` / `{PREFIX}_API_KEY` with the kind's
//! prefix ([`About::env_prefix`], or `--env-prefix`).
//! Kind-specific settings are `--option KEY=VALUE` /
//! `Endpoint::option(key, value)`, else `{PREFIX}_{KEY}` in the environment
//! ([`Target::setting`]); settings whose name holds `key`, `token`,
//! `secret`, `password`, `credential`, `signature`, `auth` or `cookie` are
//! written to results as `***` ([`is_secret_setting`]).
//!
//! Every kind's requests also carry the spec's extra headers and query
//! parameters (`--header 'Name: value'` / `Endpoint::header`, `--query
//! NAME=VALUE` / `Endpoint::query`), added once after the kind built the
//! request and replacing what it set of the same name ([`RequestExtras`]).
//!
//! What several kinds share is kept once: the framings ([`framing`]: SSE,
//! AWS's event stream, a streamed JSON array) and wire formats spoken by
//! more than one kind ([`wire`]: TGI's and LMI's token lines).
//!
//! # Your own protocol
//!
//! Implement [`EndpointKind`] (build the HTTP request for a `RequestPlan`;
//! return a [`StreamDecoder`] that turns bytes, stamped by the shared
//! reader as they arrive, into [`StreamEvent`]s) and register it with
//! `inventory::submit! { llmperf::endpoint::Registration::new(&MyKind) }`
//! in a `benches/` file or any crate linked into it; it is then selectable
//! by name like the built-in ones, which register the same way (through
//! [`inventory`]). Only [`about`](EndpointKind::about) (the name, a
//! listing line and the defaults an [`About`] holds), the request and the
//! decoder are required; every default suits an OpenAI-style server.
//!
//! ```
//! let names: Vec<&str> = llmperf::endpoint::kinds().map(|k| k.name()).collect();
//! assert!(names.contains(&"openai-chat"));
//! ```

pub mod anthropic;
pub mod azure;
mod extras;
pub mod framing;
pub mod openai;
pub mod presets;
pub mod reader;
pub mod refreshed;
pub mod resolve;
pub mod sagemaker;
pub mod tgi;
pub mod together;
pub mod vertex;
pub mod wire;

pub use crate::error::{excerpt, ErrorKind, RequestError};
pub use extras::RequestExtras;
pub(crate) use resolve::{configured_base_url, explicit_proxy, target};
pub use resolve::{
    configured_endpoint, discovered_metrics_url, env_prefix, find_kind, BUILTIN_MODEL,
};

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::spec::Secret;
use crate::workload::RequestPlan;

/// Where and as whom requests are sent, resolved before the run.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// API key, if any.
    pub api_key: Option<Secret>,
    /// Where the key comes from (an environment variable's name, or the
    /// spec), named in authentication errors.
    pub api_key_source: String,
    /// Fields merged into every request body, overriding llmperf's own.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Kind-specific settings from the spec (`Endpoint::option`, `--option
    /// key=value`), e.g. a Vertex AI project or a SageMaker region.
    pub options: BTreeMap<String, String>,
    /// The environment variable prefix in force (`OPENAI`, `TOGETHER`, …),
    /// for kinds that read more settings from the environment.
    pub env_prefix: String,
}

impl Target {
    /// A kind-specific setting: the spec's option `key`, else the
    /// environment variable `{PREFIX}_{KEY}` (upper-cased), else `None`.
    pub fn setting(&self, key: &str) -> Option<String> {
        setting(&self.options, &self.env_prefix, key)
    }
}

/// [`Target::setting`] before there is a target (for
/// [`EndpointKind::credentials`]).
pub(crate) fn setting(
    options: &BTreeMap<String, String>,
    env_prefix: &str,
    key: &str,
) -> Option<String> {
    options
        .get(key)
        .cloned()
        .or_else(|| env_var(&format!("{env_prefix}_{}", key.to_ascii_uppercase())))
}

/// The environment variable `name`, unless unset or blank.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What a kind is called and where it points by default: constant data,
/// given by [`EndpointKind::about`].
///
/// ```
/// use llmperf::endpoint::About;
/// const TGI_LIKE: About = About::new("my-tgi", "TGI behind a gateway")
///     .env_prefix("MY_TGI")
///     .served_from_root();
/// assert_eq!(TGI_LIKE.builtin_base_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
/// assert_eq!(TGI_LIKE.default_base_url, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct About {
    /// The name used in specs and `--api`, e.g. `openai-chat`.
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// The environment variable prefix for the base URL and key
    /// (`{PREFIX}_API_BASE`, `{PREFIX}_API_KEY`) when the spec sets none.
    /// Default: `OPENAI`.
    pub env_prefix: &'static str,
    /// The provider's public base URL, used when the spec and the
    /// environment give none but a key is configured. Default: none.
    pub default_base_url: Option<&'static str>,
    /// Where the built-in endpoint serves this kind under its root URL:
    /// `/v1` (the default: OpenAI-style base URLs include the version) or
    /// empty (kinds whose paths start at the server's root).
    pub builtin_path: &'static str,
}

impl About {
    /// A kind named `name`, with the defaults of an OpenAI-style kind.
    pub const fn new(name: &'static str, description: &'static str) -> About {
        About {
            name,
            description,
            env_prefix: "OPENAI",
            default_base_url: None,
            builtin_path: "/v1",
        }
    }

    /// With this environment variable prefix.
    pub const fn env_prefix(self, env_prefix: &'static str) -> About {
        About { env_prefix, ..self }
    }

    /// With this public base URL.
    pub const fn default_base_url(self, url: &'static str) -> About {
        About {
            default_base_url: Some(url),
            ..self
        }
    }

    /// Served by the built-in endpoint from its root (no `/v1`).
    pub const fn served_from_root(self) -> About {
        About {
            builtin_path: "",
            ..self
        }
    }

    /// Where the built-in endpoint serves this kind, given its root URL
    /// (`http://127.0.0.1:PORT`).
    pub fn builtin_base_url(&self, root: &str) -> String {
        format!("{root}{}", self.builtin_path)
    }
}

/// One wire protocol.
pub trait EndpointKind: Send + Sync + 'static {
    /// The kind's name, listing line and defaults (see [`About`]).
    fn about(&self) -> About;
    /// What holds this kind's credentials besides a key given in the spec,
    /// named in authentication errors, and whether any of it is set (which
    /// makes the [default base URL](About::default_base_url) count as
    /// configured). Default: `{PREFIX}_API_KEY`. Kinds with other
    /// credentials (access tokens, token commands, cloud key pairs)
    /// override it.
    fn credentials(&self, options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
        let _ = options;
        let name = format!("{env_prefix}_API_KEY");
        Credentials {
            configured: env_var(&name).is_some(),
            source: name,
        }
    }
    /// Whether a 200 answer with this (lower-cased) content type is a
    /// stream this kind decodes. Default: an event stream; a kind whose
    /// stream is something else (a streamed JSON array, a binary event
    /// stream) overrides it. An empty content type is always accepted.
    fn accepts_content_type(&self, content_type: &str) -> bool {
        content_type.contains("event-stream")
    }
    /// Whether [`build_request`](EndpointKind::build_request) signs the
    /// request's URL (as SigV4 does), so that query parameters added after
    /// it ([`Endpoint::query`](crate::Endpoint::query)) would break the
    /// signature: a run with any is then refused before it starts.
    /// Default: no.
    fn signs_url(&self) -> bool {
        false
    }
    /// The HTTP request for one planned prompt. Fails (as a recorded
    /// request error) when it cannot be built, e.g. missing credentials.
    /// A run also builds (and drops) one request before its clock starts,
    /// so that credentials fetched on first use (cloud credential chains,
    /// token commands) are ready for the first measured request.
    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError>;
    /// A fresh decoder for one response stream.
    fn decoder(&self) -> Box<dyn StreamDecoder>;
    /// The message inside an error response body, when it has a known
    /// shape (the reader falls back to an excerpt of the body). Default:
    /// OpenAI's shape (`{"error": {"message"}}`, `{"error": "…"}`, vLLM's
    /// `{"object": "error", "message"}`), which most servers and proxies
    /// answer with; a kind whose provider has its own shape overrides it.
    fn error_detail(&self, body: &str) -> Option<String> {
        openai::error_detail(body)
    }
}

impl dyn EndpointKind {
    /// The kind's name ([`About::name`]).
    pub fn name(&self) -> &'static str {
        self.about().name
    }
}

/// Where an endpoint kind's credentials come from (see
/// [`EndpointKind::credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// What to check when the server refuses them, e.g. `OPENAI_API_KEY`
    /// (names only, never values).
    pub source: String,
    /// Whether any of them is set.
    pub configured: bool,
}

/// Turns one response's bytes into events.
pub trait StreamDecoder: Send {
    /// Decodes `bytes`, which arrived at `at`; pushes completed events.
    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>);
    /// The body ended cleanly at `at`; pushes what remains (and an error
    /// when the protocol's end marker never came).
    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>);
    /// Bytes held for an event not complete yet. The reader ends a stream
    /// whose incomplete event outgrows the maximum event size
    /// (`event_too_large`), so a server that never ends a line cannot
    /// exhaust memory; a decoder that buffers must report what it holds.
    fn buffered_bytes(&self) -> usize {
        0
    }
}

/// An event and the instant its last bytes arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// Arrival time of the read that completed the event.
    pub at: Instant,
    /// What the event said.
    pub event: StreamEvent,
}

/// What a response stream can say.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Answer text (non-empty).
    Content(String),
    /// Reasoning text (`reasoning_content` / `reasoning`), which does not end TTFT.
    Reasoning(String),
    /// Token counts from the server.
    Usage(Usage),
    /// Why generation stopped (`stop`, `length`, …).
    Finish(String),
    /// An error reported inside the stream, or a stream that broke the protocol.
    Error(RequestError),
    /// The protocol's end marker (`[DONE]`).
    Done,
}

/// Token counts reported by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: Option<u32>,
    /// Completion tokens (including reasoning tokens).
    pub completion_tokens: Option<u32>,
    /// Reasoning tokens, when the server breaks them out.
    pub reasoning_tokens: Option<u32>,
}

/// A registered endpoint kind (see the module docs).
pub struct Registration {
    /// The kind.
    pub kind: &'static dyn EndpointKind,
}

impl Registration {
    /// Registers `kind`; use inside [`inventory::submit!`].
    pub const fn new(kind: &'static dyn EndpointKind) -> Self {
        Registration { kind }
    }
}

inventory::collect!(Registration);

/// Every registered endpoint kind, sorted by name.
pub fn kinds() -> impl Iterator<Item = &'static dyn EndpointKind> {
    let mut kinds: Vec<&'static dyn EndpointKind> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| r.kind)
        .collect();
    kinds.sort_by_key(|k| k.name());
    kinds.into_iter()
}

/// A JSON `POST` to `url` asking for an event stream, with the target's
/// API key (if it has one) as a bearer token: the request of the
/// OpenAI-style kinds, TGI and Together.
pub(crate) fn sse_post(
    client: &reqwest::Client,
    url: String,
    body: &serde_json::Value,
    target: &Target,
) -> reqwest::RequestBuilder {
    let request = client
        .post(url)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(body);
    match &target.api_key {
        Some(key) => request.bearer_auth(key.expose()),
        None => request,
    }
}

/// `request` with the target's API key, if it has one, in header `name`,
/// marked sensitive so that it is never printed. A key that cannot be a
/// header value is an error naming where the key came from, not the key.
pub(crate) fn with_key_header(
    request: reqwest::RequestBuilder,
    target: &Target,
    name: &'static str,
) -> Result<reqwest::RequestBuilder, RequestError> {
    let Some(key) = &target.api_key else {
        return Ok(request);
    };
    let mut value = reqwest::header::HeaderValue::from_str(key.expose()).map_err(|_| {
        RequestError::new(
            ErrorKind::Request,
            format!(
                "the key from {} is not a valid header value",
                target.api_key_source
            ),
        )
    })?;
    value.set_sensitive(true);
    Ok(request.header(name, value))
}

/// Characters of a server's text quoted in an error message.
pub(crate) const QUOTED_CHARS: usize = 200;

/// Whether a kind-specific setting or an extra header holds a credential
/// (`aws_secret_access_key`, `aws_session_token`, `…_api_key`, a password,
/// `Authorization`, `Proxy-Authorization`, `X-Api-Key`, `Cookie`): such a
/// setting's or header's value is never written to results. The one rule
/// for both: the name holds `key`, `token`, `secret`, `password`,
/// `credential`, `signature`, `auth` or `cookie` (any case), and does not
/// end in `_command` (a command line that fetches a token, kept).
///
/// ```
/// use llmperf::endpoint::is_secret_setting;
/// assert!(is_secret_setting("aws_secret_access_key"));
/// assert!(is_secret_setting("AWS_SESSION_TOKEN"));
/// assert!(is_secret_setting("Authorization"));
/// assert!(is_secret_setting("x-api-key"));
/// assert!(is_secret_setting("Cookie"));
/// assert!(!is_secret_setting("region"));
/// assert!(!is_secret_setting("X-Team"));
/// ```
pub fn is_secret_setting(key: &str) -> bool {
    const SECRET: [&str; 8] = [
        "token",
        "key",
        "secret",
        "password",
        "credential",
        "signature",
        "auth",
        "cookie",
    ];
    let key = key.to_ascii_lowercase();
    // `token_command` and the like are command lines, not secrets.
    !key.ends_with("_command") && SECRET.iter().any(|word| key.contains(word))
}

/// Feeds `pieces` to `decoder` as separate reads, then ends the stream;
/// the events in order (decoder unit tests).
#[cfg(test)]
pub(crate) fn decode_reads(decoder: &mut dyn StreamDecoder, pieces: &[&[u8]]) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    let now = Instant::now();
    for piece in pieces {
        decoder.feed(piece, now, &mut out);
    }
    decoder.finish(now, &mut out);
    out.into_iter().map(|e| e.event).collect()
}

/// The kinds of the error events in `events`, in order (decoder unit tests).
#[cfg(test)]
pub(crate) fn error_kinds(events: &[StreamEvent]) -> Vec<ErrorKind> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Error(error) => Some(error.kind),
            _ => None,
        })
        .collect()
}

/// The kind registered under `name`.
pub fn find(name: &str) -> Option<&'static dyn EndpointKind> {
    kinds().find(|k| k.name() == name)
}
