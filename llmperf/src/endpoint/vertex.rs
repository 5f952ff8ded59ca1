//! Google Vertex AI: Gemini `streamGenerateContent` (SSE and the streamed
//! JSON array), Model Garden `:streamRawPredict`, and the OpenAI-compatible
//! chat endpoint.
//!
//! # Where requests go
//!
//! Every path starts at `{base}/v1/projects/{project}/locations/{region}`:
//!
//! | kind | path after that | decoder |
//! | --- | --- | --- |
//! | `vertex-gemini` | `/publishers/google/models/{model}:streamGenerateContent?alt=sse` | SSE, Gemini chunks |
//! | `vertex-gemini-json` | `/publishers/google/models/{model}:streamGenerateContent` | one streamed JSON array of Gemini chunks |
//! | `vertex-raw` | `/endpoints/{endpoint_id}:streamRawPredict` (OpenAI chat body) | OpenAI SSE |
//! | `vertex-openai` | `/endpoints/openapi/chat/completions` (model `google/gemini-…`) | OpenAI SSE |
//!
//! The settings come from [`Target::setting`] (an `Endpoint::option` or
//! `--option key=value`, else `VERTEXAI_{KEY}` in the environment):
//! `project` (also `GOOGLE_CLOUD_PROJECT`), `region` (also
//! `GOOGLE_CLOUD_LOCATION`; default `us-central1`) and `endpoint_id`
//! (`vertex-raw` only).
//!
//! The default base URL is the template
//! `https://{region}-aiplatform.googleapis.com`: the provider's URL depends
//! on a setting, so [`EndpointKind::default_base_url`] returns the template
//! and every request fills in `{region}` (any base URL may use the
//! placeholder; region `global` gives `https://aiplatform.googleapis.com`).
//! A base URL that already ends in `/v1` or `/v1beta1` keeps its version;
//! otherwise `/v1` is added. A Google base URL needs a project (and
//! `vertex-raw` an endpoint id); any other (a proxy, the built-in endpoint)
//! gets the placeholder `llmperf` for a missing one.
//!
//! # Authentication
//!
//! A bearer access token, from the first of: the setting `token_command`
//! (e.g. `gcloud auth print-access-token`), run without a shell (split on
//! whitespace), its token cached process-wide, refreshed in the background
//! after 45 minutes and fetched afresh after 55 (Google's tokens live 60);
//! the setting `access_token` (`VERTEXAI_ACCESS_TOKEN`); the spec's API key
//! (`VERTEXAI_API_KEY`); `GCLOUD_ACCESS_TOKEN`. No token at all is an
//! `unauthorized` error for a Google base URL and no header otherwise.
//!
//! # Stream formats
//!
//! Gemini chunks carry text in `candidates[0].content.parts[*].text`
//! (parts with `"thought": true` are reasoning), `finishReason` on the last
//! candidate chunk (`STOP` is reported as `stop`, `MAX_TOKENS` as
//! `length`, anything else lower-cased) and `usageMetadata` with
//! `promptTokenCount`, `candidatesTokenCount` and `thoughtsTokenCount`
//! (completion tokens are candidates plus thoughts). An `{"error": …}`
//! chunk is a stream error, a `promptFeedback.blockReason` too.
//!
//! Neither form has a `[DONE]`. With `alt=sse` the end marker is the chunk
//! carrying `finishReason` (Vertex always sends one last): a stream that
//! ends without it is `missing_done`. The JSON array's end marker is its
//! closing `]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::framing::json_array::{ArrayItem, JsonArraySplitter};
use super::framing::sse::SseDecoder;
use super::openai::{self, OpenAiDecoder};
use super::QUOTED_CHARS;
use super::{
    excerpt, Credentials, EndpointKind, ErrorKind, Registration, RequestError, StreamDecoder,
    StreamEvent, Target, TimedEvent, Usage,
};
use crate::spec::Secret;
use crate::workload::{RequestPlan, Role};

/// `vertex-gemini`: Gemini `streamGenerateContent?alt=sse`.
pub struct VertexGemini;
/// `vertex-gemini-json`: Gemini `streamGenerateContent` as a streamed JSON array.
pub struct VertexGeminiJson;
/// `vertex-raw`: a Model Garden / custom endpoint's `:streamRawPredict`
/// with an OpenAI chat body (vLLM containers).
pub struct VertexRaw;
/// `vertex-openai`: Vertex AI's OpenAI-compatible chat completions.
pub struct VertexOpenAi;

inventory::submit! { Registration::new(&VertexGemini) }
inventory::submit! { Registration::new(&VertexGeminiJson) }
inventory::submit! { Registration::new(&VertexRaw) }
inventory::submit! { Registration::new(&VertexOpenAi) }

/// The environment prefix of every Vertex kind.
const PREFIX: &str = "VERTEXAI";
/// The provider's base URL; `{region}` is filled in per request.
pub const DEFAULT_BASE_URL: &str = "https://{region}-aiplatform.googleapis.com";
/// The region when none is set.
pub const DEFAULT_REGION: &str = "us-central1";
/// Stands in for a project or endpoint id a non-Google base URL does not need.
const PLACEHOLDER: &str = "llmperf";

/// The parts shared by the four kinds' trait implementations.
macro_rules! vertex_common {
    () => {
        fn default_env_prefix(&self) -> &'static str {
            PREFIX
        }

        fn default_base_url(&self) -> Option<&'static str> {
            Some(DEFAULT_BASE_URL)
        }

        fn builtin_base_url(&self, root: &str) -> String {
            // The built-in endpoint serves the same paths as Google, from its root.
            root.to_string()
        }

        fn credentials(&self, options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
            credentials(options, env_prefix)
        }

        fn error_detail(&self, body: &str) -> Option<String> {
            error_detail(body)
        }
    };
}

impl EndpointKind for VertexGemini {
    fn name(&self) -> &'static str {
        "vertex-gemini"
    }

    fn description(&self) -> &'static str {
        "Vertex AI Gemini streamGenerateContent?alt=sse (project, region settings; bearer token)"
    }

    vertex_common!();

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        gemini_request(client, target, plan, true)
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(GeminiSseDecoder::default())
    }
}

impl EndpointKind for VertexGeminiJson {
    fn name(&self) -> &'static str {
        "vertex-gemini-json"
    }

    fn description(&self) -> &'static str {
        "Vertex AI Gemini streamGenerateContent as a streamed JSON array (no alt=sse)"
    }

    vertex_common!();

    fn accepts_content_type(&self, content_type: &str) -> bool {
        content_type.contains("json")
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        gemini_request(client, target, plan, false)
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(GeminiJsonDecoder::default())
    }
}

impl EndpointKind for VertexRaw {
    fn name(&self) -> &'static str {
        "vertex-raw"
    }

    fn description(&self) -> &'static str {
        "Vertex AI endpoint :streamRawPredict with an OpenAI chat body (Model Garden vLLM; endpoint_id setting)"
    }

    vertex_common!();

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let location = Location::of(target)?;
        let endpoint = location.required(target.setting("endpoint_id"), "endpoint_id")?;
        let path = format!("endpoints/{endpoint}:streamRawPredict");
        openai_request(client, target, plan, &location, &path)
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

impl EndpointKind for VertexOpenAi {
    fn name(&self) -> &'static str {
        "vertex-openai"
    }

    fn description(&self) -> &'static str {
        "Vertex AI OpenAI-compatible chat completions (endpoints/openapi; model google/gemini-…)"
    }

    vertex_common!();

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let location = Location::of(target)?;
        openai_request(
            client,
            target,
            plan,
            &location,
            "endpoints/openapi/chat/completions",
        )
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

/// `POST …/publishers/google/models/{model}:streamGenerateContent`.
fn gemini_request(
    client: &reqwest::Client,
    target: &Target,
    plan: &RequestPlan,
    sse: bool,
) -> Result<reqwest::RequestBuilder, RequestError> {
    let location = Location::of(target)?;
    let model = path_segment(&target.model, "model")?;
    let query = if sse { "?alt=sse" } else { "" };
    let url = format!(
        "{}/publishers/google/models/{model}:streamGenerateContent{query}",
        location.prefix
    );
    let mut request = client
        .post(url)
        .header(
            reqwest::header::ACCEPT,
            if sse {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .json(&gemini_body(target, plan));
    if let Some(token) = access_token(target, &location)? {
        request = request.bearer_auth(token.expose());
    }
    Ok(request)
}

/// An OpenAI chat request to a Vertex path (`vertex-raw`, `vertex-openai`).
fn openai_request(
    client: &reqwest::Client,
    target: &Target,
    plan: &RequestPlan,
    location: &Location,
    path: &str,
) -> Result<reqwest::RequestBuilder, RequestError> {
    let token = access_token(target, location)?;
    // `openai::post` builds the URL and the Bearer header from a target;
    // this one points at the Vertex path and carries the access token.
    let vertex = Target {
        base_url: location.prefix.clone(),
        api_key: token,
        ..target.clone()
    };
    let body = json!({
        "model": target.model,
        "messages": plan.messages,
    });
    Ok(openai::post(client, &vertex, path, body, plan))
}

/// The Gemini request body; the spec's extra body is merged in, objects
/// (such as `generationConfig`) key by key.
pub fn gemini_body(target: &Target, plan: &RequestPlan) -> Value {
    // System messages go to `systemInstruction`; Gemini calls the
    // assistant `model`.
    let system: Vec<Value> = plan
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .map(|message| json!({"text": message.content}))
        .collect();
    let contents: Vec<Value> = plan
        .messages
        .iter()
        .filter(|message| message.role != Role::System)
        .map(|message| {
            let role = match message.role {
                Role::Assistant => "model",
                _ => "user",
            };
            json!({"role": role, "parts": [{"text": message.content}]})
        })
        .collect();
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if let Some(max_tokens) = plan.max_tokens {
        body["generationConfig"] = json!({ "maxOutputTokens": max_tokens });
    }
    // Gemini has no ignore-EOS option: `plan.ignore_eos` cannot be honoured.
    if let Some(fields) = body.as_object_mut() {
        for (key, value) in &target.extra_body {
            match (fields.get_mut(key), value) {
                (Some(Value::Object(mine)), Value::Object(theirs)) => {
                    for (k, v) in theirs {
                        mine.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    fields.insert(key.clone(), value.clone());
                }
            }
        }
    }
    body
}

/// `{base}/v1/projects/{project}/locations/{region}` and whether the base
/// is Google's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    prefix: String,
    google: bool,
    /// The environment prefix in force, named in errors.
    env_prefix: String,
}

impl Location {
    fn of(target: &Target) -> Result<Location, RequestError> {
        let region = target
            .setting("region")
            .or_else(|| env_var("GOOGLE_CLOUD_LOCATION"))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region = region.trim();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(RequestError::new(
                ErrorKind::Request,
                format!(
                    "`{region}` is not a Vertex AI region (e.g. us-central1, europe-west4, global)"
                ),
            ));
        }
        let base = match target.base_url.trim_end_matches('/') {
            "" => DEFAULT_BASE_URL,
            base => base,
        };
        let base = if region == "global" {
            base.replace("{region}-", "").replace("{region}", region)
        } else {
            base.replace("{region}", region)
        };
        let google = base.contains("googleapis.com");
        let versioned = if base.ends_with("/v1") || base.ends_with("/v1beta1") {
            base
        } else {
            format!("{base}/v1")
        };
        let mut location = Location {
            prefix: String::new(),
            google,
            env_prefix: target.env_prefix.clone(),
        };
        let project = target
            .setting("project")
            .or_else(|| env_var("GOOGLE_CLOUD_PROJECT"));
        let project = location.required(project, "project")?;
        location.prefix = format!("{versioned}/projects/{project}/locations/{region}");
        Ok(location)
    }

    /// A setting that goes into the path: required by Google, a placeholder elsewhere.
    fn required(&self, value: Option<String>, key: &str) -> Result<String, RequestError> {
        match value {
            Some(value) => path_segment(value.trim(), key),
            None if self.google => Err(RequestError::new(
                ErrorKind::Request,
                format!(
                    "no Vertex AI {key}: set it with .option(\"{key}\", …), --option {key}=…, or {}_{}",
                    self.env_prefix,
                    key.to_ascii_uppercase()
                ),
            )),
            None => Ok(PLACEHOLDER.to_string()),
        }
    }
}

/// `value` when it can go into a URL path as one segment.
fn path_segment(value: &str, what: &str) -> Result<String, RequestError> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control());
    if bad {
        return Err(RequestError::new(
            ErrorKind::Request,
            format!(
                "the Vertex AI {what} `{}` cannot go into a URL path",
                excerpt(value, QUOTED_CHARS)
            ),
        ));
    }
    Ok(value.to_string())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// [`Target::setting`] before there is a target.
fn setting(options: &BTreeMap<String, String>, env_prefix: &str, key: &str) -> Option<String> {
    options
        .get(key)
        .cloned()
        .or_else(|| env_var(&format!("{env_prefix}_{}", key.to_ascii_uppercase())))
}

fn credentials(options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
    if let Some(command) = setting(options, env_prefix, "token_command") {
        return Credentials {
            source: format!("the access token printed by token_command `{command}`"),
            configured: true,
        };
    }
    let token_env = format!("{env_prefix}_ACCESS_TOKEN");
    let key_env = format!("{env_prefix}_API_KEY");
    let configured = options.contains_key("access_token")
        || [token_env.as_str(), key_env.as_str(), "GCLOUD_ACCESS_TOKEN"]
            .iter()
            .any(|name| env_var(name).is_some());
    Credentials {
        source: format!(
            "the Vertex AI access token in {token_env}, {key_env} or GCLOUD_ACCESS_TOKEN, \
             or set token_command (e.g. `gcloud auth print-access-token`)"
        ),
        configured,
    }
}

/// The bearer token for one request (see the module docs for the order).
fn access_token(target: &Target, location: &Location) -> Result<Option<Secret>, RequestError> {
    if let Some(command) = target.setting("token_command") {
        return TokenCache::global().get(&command, Instant::now()).map(Some);
    }
    let token = target
        .setting("access_token")
        .map(|token| Secret::new(token.trim()))
        .or_else(|| target.api_key.clone())
        .or_else(|| env_var("GCLOUD_ACCESS_TOKEN").map(|token| Secret::new(token.trim())));
    if token.is_none() && location.google {
        return Err(RequestError::new(
            ErrorKind::Unauthorized,
            format!(
                "no Vertex AI access token: set {}_ACCESS_TOKEN or GCLOUD_ACCESS_TOKEN, \
                 or token_command (e.g. `gcloud auth print-access-token`)",
                location.env_prefix
            ),
        ));
    }
    Ok(token)
}

/// Access tokens printed by token commands, cached per command line.
///
/// A token younger than `refresh_after` is used as is; an older one is
/// still used while a background thread runs the command again, until it
/// is `expire_after` old; then (and the first time) the command runs in
/// the caller, holding the cache so concurrent requests wait for one run
/// rather than each starting their own.
#[derive(Clone)]
pub struct TokenCache(Arc<CacheInner>);

struct CacheInner {
    refresh_after: Duration,
    expire_after: Duration,
    entries: Mutex<HashMap<String, CachedToken>>,
}

struct CachedToken {
    token: Secret,
    fetched: Instant,
    refreshing: bool,
}

/// Google's access tokens live an hour: refresh well before, stop using
/// one shortly before.
const REFRESH_AFTER: Duration = Duration::from_secs(45 * 60);
const EXPIRE_AFTER: Duration = Duration::from_secs(55 * 60);

impl TokenCache {
    /// A cache with these ages (the process-wide one uses 45 and 55 minutes).
    pub fn new(refresh_after: Duration, expire_after: Duration) -> Self {
        TokenCache(Arc::new(CacheInner {
            refresh_after,
            expire_after: expire_after.max(refresh_after),
            entries: Mutex::new(HashMap::new()),
        }))
    }

    /// The process-wide cache the Vertex kinds use.
    pub fn global() -> &'static TokenCache {
        static GLOBAL: OnceLock<TokenCache> = OnceLock::new();
        GLOBAL.get_or_init(|| TokenCache::new(REFRESH_AFTER, EXPIRE_AFTER))
    }

    /// The token `command` prints, as of `now` (see the type's docs).
    pub fn get(&self, command: &str, now: Instant) -> Result<Secret, RequestError> {
        let mut entries = lock(&self.0.entries);
        if let Some(entry) = entries.get_mut(command) {
            let age = now.saturating_duration_since(entry.fetched);
            if age < self.0.refresh_after {
                return Ok(entry.token.clone());
            }
            if age < self.0.expire_after {
                if !entry.refreshing {
                    entry.refreshing = true;
                    let cache = self.clone();
                    let line = command.to_string();
                    let spawned = std::thread::Builder::new()
                        .name("llmperf-token".to_string())
                        .spawn(move || cache.refresh(&line, now));
                    // Without a thread, the next request tries again.
                    entry.refreshing = spawned.is_ok();
                }
                return Ok(entry.token.clone());
            }
        }
        let token = run_token_command(command)?;
        entries.insert(
            command.to_string(),
            CachedToken {
                token: token.clone(),
                fetched: now,
                refreshing: false,
            },
        );
        Ok(token)
    }

    fn refresh(&self, command: &str, started: Instant) {
        // A failure keeps the old token; once it expires, a request runs
        // the command itself and reports the failure.
        let result = run_token_command(command);
        let mut entries = lock(&self.0.entries);
        if let Some(entry) = entries.get_mut(command) {
            entry.refreshing = false;
            if let Ok(token) = result {
                entry.token = token;
                entry.fetched = started;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a token command (no shell) and reads one token from its output.
/// Errors name the command, never its output, which may hold a token.
fn run_token_command(command: &str) -> Result<Secret, RequestError> {
    let failed = |why: String| {
        RequestError::new(
            ErrorKind::Unauthorized,
            format!("the Vertex AI token_command `{command}` {why}"),
        )
    };
    let mut words = command.split_whitespace();
    let program = words.next().ok_or_else(|| failed("is empty".into()))?;
    let output = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|error| failed(format!("could not be run: {error}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "failed ({}); run it yourself to see why",
            output.status
        )));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| failed("printed something that is not text".into()))?;
    let mut tokens = text.split_whitespace();
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => Ok(Secret::new(token)),
        (None, _) => Err(failed("printed no token".into())),
        (Some(_), Some(_)) => Err(failed(
            "printed more than one word; it must print only the access token".into(),
        )),
    }
}

/// The message of a Google error body: `{"error":{"code","message","status"}}`,
/// also wrapped in an array (the JSON-array form), or an OpenAI-style body.
fn error_detail(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let value = match value {
        Value::Array(items) => items.into_iter().next()?,
        value => value,
    };
    match value.get("error") {
        Some(error) => Some(google_error_message(error)),
        None => value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// `message (STATUS)` of a Google error object (or the object itself).
fn google_error_message(error: &Value) -> String {
    let message = error.get("message").and_then(Value::as_str);
    let status = error.get("status").and_then(Value::as_str);
    match (message, status) {
        (Some(message), Some(status)) => format!("{message} ({status})"),
        (Some(message), None) => message.to_string(),
        _ => excerpt(&error.to_string(), QUOTED_CHARS),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u32>,
    candidates_token_count: Option<u32>,
    thoughts_token_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
    block_reason_message: Option<String>,
}

/// Decodes Gemini chunks into events; shared by both stream forms.
#[derive(Debug, Default)]
struct ChunkDecoder {
    saw_finish: bool,
}

impl ChunkDecoder {
    fn decode(&mut self, json: &str, at: Instant, out: &mut Vec<TimedEvent>) {
        let mut push = |event| out.push(TimedEvent { at, event });
        let json = json.trim();
        if json.is_empty() {
            return;
        }
        let chunk: Chunk = match serde_json::from_str(json) {
            Ok(chunk) => chunk,
            Err(error) => {
                push(StreamEvent::Error(RequestError::new(
                    ErrorKind::MalformedEvent,
                    format!("malformed chunk ({error}): {}", excerpt(json, QUOTED_CHARS)),
                )));
                return;
            }
        };
        if let Some(error) = chunk.error {
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                format!("error in stream: {}", google_error_message(&error)),
            )));
            return;
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| {
            f.block_reason
                .map(|reason| (reason, f.block_reason_message.unwrap_or_default()))
        }) {
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                format!("the prompt was blocked: {} {}", reason.0, reason.1)
                    .trim_end()
                    .to_string(),
            )));
            return;
        }
        // Only the first candidate: llmperf never asks for more.
        if let Some(candidate) = chunk.candidates.and_then(|c| c.into_iter().next()) {
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            for part in parts {
                match part.text {
                    Some(text) if !text.is_empty() => push(if part.thought == Some(true) {
                        StreamEvent::Reasoning(text)
                    } else {
                        StreamEvent::Content(text)
                    }),
                    _ => {}
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.saw_finish = true;
                push(StreamEvent::Finish(finish_reason(&reason)));
            }
        }
        if let Some(usage) = chunk.usage_metadata {
            // Intermediate Vertex chunks carry only `trafficType`; proto3
            // JSON leaves zero counts out, so a missing count beside a
            // present one is zero.
            let (candidates, thoughts) = (usage.candidates_token_count, usage.thoughts_token_count);
            let completion = match (candidates, thoughts) {
                (None, None) => None,
                _ => Some(
                    candidates
                        .unwrap_or(0)
                        .saturating_add(thoughts.unwrap_or(0)),
                ),
            };
            if usage.prompt_token_count.is_some() || completion.is_some() {
                push(StreamEvent::Usage(Usage {
                    prompt_tokens: usage.prompt_token_count,
                    completion_tokens: completion,
                    reasoning_tokens: completion.map(|_| thoughts.unwrap_or(0)),
                }));
            }
        }
    }
}

/// Google's finish reasons in the words the other kinds use.
fn finish_reason(reason: &str) -> String {
    match reason {
        "STOP" => "stop".to_string(),
        "MAX_TOKENS" => "length".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn missing(message: &str, at: Instant) -> TimedEvent {
    TimedEvent {
        at,
        event: StreamEvent::Error(RequestError::new(ErrorKind::MissingDone, message)),
    }
}

/// Decodes `streamGenerateContent?alt=sse`.
#[derive(Debug, Default)]
pub struct GeminiSseDecoder {
    sse: SseDecoder,
    chunks: ChunkDecoder,
}

impl StreamDecoder for GeminiSseDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.sse
            .feed(bytes, |event| chunks.decode(event.data, at, out));
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.sse.finish(|event| chunks.decode(event.data, at, out));
        if !self.chunks.saw_finish {
            out.push(missing(
                "the stream ended without a chunk carrying finishReason",
                at,
            ));
        }
    }
}

/// Decodes `streamGenerateContent` without `alt=sse`: one JSON array whose
/// elements are emitted as their bytes complete.
#[derive(Debug, Default)]
pub struct GeminiJsonDecoder {
    array: JsonArraySplitter,
    chunks: ChunkDecoder,
}

impl StreamDecoder for GeminiJsonDecoder {
    fn buffered_bytes(&self) -> usize {
        self.array.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.array.feed(bytes, |item| match item {
            ArrayItem::Element(element) => {
                chunks.decode(&String::from_utf8_lossy(element), at, out);
            }
            ArrayItem::End => out.push(TimedEvent {
                at,
                event: StreamEvent::Done,
            }),
            ArrayItem::Unexpected(byte) => out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::MalformedEvent,
                    format!(
                        "the stream is not a JSON array of chunks: unexpected {:?}",
                        char::from(byte)
                    ),
                )),
            }),
        });
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        if !self.array.ended() {
            let pending = self.array.pending_bytes();
            let message = if pending > 0 {
                format!("the stream ended inside a chunk ({pending} bytes) before the JSON array's closing `]`")
            } else {
                "the stream ended before the JSON array's closing `]`".to_string()
            };
            out.push(missing(&message, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut dyn StreamDecoder, pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in pieces {
            decoder.feed(piece, now, &mut out);
        }
        decoder.finish(now, &mut out);
        out.into_iter().map(|e| e.event).collect()
    }

    fn sse(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        decode(&mut GeminiSseDecoder::default(), pieces)
    }

    fn array(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        decode(&mut GeminiJsonDecoder::default(), pieces)
    }

    /// Every split of `stream` into two and into single bytes decodes the same.
    fn assert_split_invariant(
        stream: &[u8],
        run: impl Fn(&[&[u8]]) -> Vec<StreamEvent>,
    ) -> Vec<StreamEvent> {
        let whole = run(&[stream]);
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(run(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "byte by byte");
        whole
    }

    fn errors(events: &[StreamEvent]) -> Vec<ErrorKind> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Error(error) => Some(error.kind),
                _ => None,
            })
            .collect()
    }

    /// The shape of a Vertex AI `alt=sse` stream from a thinking model:
    /// `\r\n\r\n` event ends, `usageMetadata` with only `trafficType` until
    /// the last chunk, which has the last text, `finishReason` and counts.
    const VERTEX_SSE: &[u8] = b"data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"**Counting** the stars\",\"thought\": true}]}}],\"usageMetadata\": {\"trafficType\": \"ON_DEMAND\"},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"The sky\"}]}}],\"usageMetadata\": {\"trafficType\": \"ON_DEMAND\"},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \" is blue.\"}]},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 6,\"candidatesTokenCount\": 5,\"totalTokenCount\": 40,\"trafficType\": \"ON_DEMAND\",\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 6}],\"candidatesTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 5}],\"thoughtsTokenCount\": 29},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n";

    #[test]
    fn a_vertex_sse_stream_split_anywhere() {
        let events = assert_split_invariant(VERTEX_SSE, sse);
        assert_eq!(
            events,
            vec![
                StreamEvent::Reasoning("**Counting** the stars".into()),
                StreamEvent::Content("The sky".into()),
                StreamEvent::Content(" is blue.".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(6),
                    completion_tokens: Some(34),
                    reasoning_tokens: Some(29),
                }),
            ]
        );
    }

    #[test]
    fn lf_line_ends_and_running_counts_as_the_gemini_api_sends_them() {
        // The Gemini API's chunk shape (running counts on every chunk), with
        // `\n\n` event ends as proxies that rewrite line ends send them.
        let stream = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1,\"totalTokenCount\":4}}\n\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n";
        let events = assert_split_invariant(stream, sse);
        assert_eq!(events[0], StreamEvent::Content("Hi".into()));
        assert_eq!(events[2], StreamEvent::Finish("length".into()));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Usage(Usage {
                prompt_tokens: Some(3),
                completion_tokens: Some(2),
                reasoning_tokens: Some(0),
            }))
        );
        assert!(errors(&events).is_empty());
    }

    #[test]
    fn a_stream_without_finish_reason_is_missing_its_end() {
        let events = sse(&[
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\r\n\r\n",
        ]);
        assert_eq!(errors(&events), vec![ErrorKind::MissingDone]);
    }

    #[test]
    fn errors_blocks_and_garbage_are_named() {
        let events = sse(&[
            b"data: {\"error\": {\"code\": 429, \"message\": \"Resource exhausted. Please try again later.\", \"status\": \"RESOURCE_EXHAUSTED\"}}\r\n\r\n",
        ]);
        let StreamEvent::Error(error) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(error.kind, ErrorKind::StreamError);
        assert_eq!(
            error.message,
            "error in stream: Resource exhausted. Please try again later. (RESOURCE_EXHAUSTED)"
        );
        let blocked = sse(&[b"data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 8}}\r\n\r\n"]);
        assert_eq!(errors(&blocked)[0], ErrorKind::StreamError);
        let garbage = sse(&[b"data: {\"candidates\": [\r\n\r\n"]);
        assert_eq!(
            errors(&garbage),
            vec![ErrorKind::MalformedEvent, ErrorKind::MissingDone]
        );
    }

    /// The shape of the same stream without `alt=sse`: a pretty-printed
    /// JSON array, elements separated by `\r\n,\r\n`, text holding `]`,
    /// `}` and escaped quotes.
    const VERTEX_ARRAY: &[u8] = b"[{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"role\": \"model\",\n        \"parts\": [\n          {\n            \"text\": \"Use `a[0]}` and \\\"quotes\\\" \\\\\"\n          }\n        ]\n      }\n    }\n  ],\n  \"usageMetadata\": {\n    \"trafficType\": \"ON_DEMAND\"\n  },\n  \"modelVersion\": \"gemini-2.0-flash-001\"\n}\r\n,\r\n{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"role\": \"model\",\n        \"parts\": [\n          {\n            \"text\": \"]}[{,\"\n          }\n        ]\n      },\n      \"finishReason\": \"STOP\"\n    }\n  ],\n  \"usageMetadata\": {\n    \"promptTokenCount\": 4,\n    \"candidatesTokenCount\": 12,\n    \"totalTokenCount\": 16,\n    \"trafficType\": \"ON_DEMAND\"\n  },\n  \"modelVersion\": \"gemini-2.0-flash-001\"\n}\r\n]";

    #[test]
    fn a_vertex_json_array_split_anywhere() {
        let events = assert_split_invariant(VERTEX_ARRAY, array);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("Use `a[0]}` and \"quotes\" \\".into()),
                StreamEvent::Content("]}[{,".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(4),
                    completion_tokens: Some(12),
                    reasoning_tokens: Some(0),
                }),
                StreamEvent::Done,
            ]
        );
    }

    #[test]
    fn each_element_is_stamped_with_the_read_that_completed_it() {
        let mut decoder = GeminiJsonDecoder::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let t2 = t0 + Duration::from_millis(9);
        decoder.feed(
            b"[{\"candidates\":[{\"content\":{\"parts\":[{\"te",
            t0,
            &mut out,
        );
        assert!(out.is_empty(), "nothing complete yet");
        decoder.feed(
            b"xt\":\"a\"}]}}]}\r\n,{\"candidates\":[{\"content\":",
            t1,
            &mut out,
        );
        decoder.feed(b"{\"parts\":[{\"text\":\"b\"}]}}]}\r\n]", t2, &mut out);
        let stamps: Vec<_> = out.iter().map(|e| (e.at, e.event.clone())).collect();
        assert_eq!(
            stamps,
            vec![
                (t1, StreamEvent::Content("a".into())),
                (t2, StreamEvent::Content("b".into())),
                (t2, StreamEvent::Done),
            ]
        );
    }

    #[test]
    fn array_problems_are_named() {
        // No closing bracket.
        let events = array(&[b"[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}]}"]);
        assert_eq!(errors(&events), vec![ErrorKind::MissingDone]);
        // Cut inside an element.
        let events = array(&[b"[{\"candidates\":[{\"content\":"]);
        let StreamEvent::Error(error) = events.last().unwrap() else {
            panic!()
        };
        assert!(
            error.message.contains("inside a chunk"),
            "{}",
            error.message
        );
        // An error element inside the array, as Vertex sends mid-stream.
        let events = array(&[b"[{\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}\r\n]"]);
        assert_eq!(errors(&events), vec![ErrorKind::StreamError]);
        // Not an array at all.
        let events = array(&[b"data: {}\n\n"]);
        assert_eq!(
            errors(&events),
            vec![ErrorKind::MalformedEvent, ErrorKind::MissingDone]
        );
        // A balanced but invalid element, then the stream goes on.
        let events = array(&[
            b"[{\"candidates\": [{\"content\": }]},{\"candidates\":[{\"finishReason\":\"STOP\"}]}]",
        ]);
        assert_eq!(errors(&events), vec![ErrorKind::MalformedEvent]);
        assert_eq!(events.last(), Some(&StreamEvent::Done));
        // Invalid UTF-8 and stray bytes never panic.
        let _ = array(&[b"[{\"a\":\"\xff\xfe\"}", b"]]]", b"\x00"]);
    }

    #[test]
    fn error_bodies_give_their_message() {
        let google = r#"{"error": {"code": 403, "message": "Permission 'aiplatform.endpoints.predict' denied", "status": "PERMISSION_DENIED"}}"#;
        assert_eq!(
            error_detail(google).as_deref(),
            Some("Permission 'aiplatform.endpoints.predict' denied (PERMISSION_DENIED)")
        );
        let wrapped = r#"[{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}]"#;
        assert_eq!(
            error_detail(wrapped).as_deref(),
            Some("Request had invalid authentication credentials. (UNAUTHENTICATED)")
        );
        assert_eq!(error_detail("<html>502</html>"), None);
    }

    fn target(base: &str, options: &[(&str, &str)]) -> Target {
        Target {
            base_url: base.to_string(),
            model: "gemini-2.5-flash".to_string(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: serde_json::Map::new(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            // A prefix nobody sets, so the environment does not leak in.
            env_prefix: "LLMPERF_VERTEX_TEST_UNSET".to_string(),
        }
    }

    #[test]
    fn locations_fill_in_region_project_and_version() {
        let google = Location::of(&target(DEFAULT_BASE_URL, &[("project", "p1")])).unwrap();
        assert_eq!(
            google.prefix,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1"
        );
        let global = Location::of(&target(
            DEFAULT_BASE_URL,
            &[("project", "p1"), ("region", "global")],
        ))
        .unwrap();
        assert_eq!(
            global.prefix,
            "https://aiplatform.googleapis.com/v1/projects/p1/locations/global"
        );
        let beta = Location::of(&target(
            "https://europe-west4-aiplatform.googleapis.com/v1beta1/",
            &[("project", "p"), ("region", "europe-west4")],
        ))
        .unwrap();
        assert_eq!(
            beta.prefix,
            "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/p/locations/europe-west4"
        );
        let local = Location::of(&target("http://127.0.0.1:9", &[])).unwrap();
        assert_eq!(
            local.prefix,
            "http://127.0.0.1:9/v1/projects/llmperf/locations/us-central1"
        );
        let missing = Location::of(&target(DEFAULT_BASE_URL, &[])).unwrap_err();
        assert!(missing.message.contains("project"), "{}", missing.message);
        for (key, value) in [("region", "us central1"), ("project", "a/b")] {
            let error = Location::of(&target(DEFAULT_BASE_URL, &[("project", "p"), (key, value)]))
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::Request);
        }
    }

    #[test]
    fn a_google_base_without_a_token_is_unauthorized_before_sending() {
        let t = target(DEFAULT_BASE_URL, &[("project", "p")]);
        let location = Location::of(&t).unwrap();
        if env_var("GCLOUD_ACCESS_TOKEN").is_none() {
            let error = access_token(&t, &location).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Unauthorized);
            assert!(error.message.contains("GCLOUD_ACCESS_TOKEN"));
        }
        let given = target(
            DEFAULT_BASE_URL,
            &[("project", "p"), ("access_token", " ya29.x \n")],
        );
        let token = access_token(&given, &location).unwrap().unwrap();
        assert_eq!(token.expose(), "ya29.x");
    }

    #[test]
    fn the_body_merges_extra_fields_into_generation_config() {
        let mut t = target("", &[]);
        t.extra_body.insert(
            "generationConfig".into(),
            json!({"temperature": 0, "thinkingConfig": {"includeThoughts": true}}),
        );
        t.extra_body
            .insert("safetySettings".into(), json!([{"category": "x"}]));
        let plan = RequestPlan {
            max_tokens: Some(20),
            ignore_eos: true,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("Hello")],
                crate::Tokenizer::bundled(),
            )
        };
        assert_eq!(
            gemini_body(&t, &plan),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
                "generationConfig": {"maxOutputTokens": 20, "temperature": 0, "thinkingConfig": {"includeThoughts": true}},
                "safetySettings": [{"category": "x"}],
            })
        );
    }

    #[test]
    fn gemini_contents_call_the_assistant_model_and_system_goes_to_the_instruction() {
        let plan = crate::workload::test_conversation();
        assert_eq!(
            gemini_body(&target("", &[]), &plan),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "U1"}]},
                    {"role": "model", "parts": [{"text": "A1"}]},
                    {"role": "user", "parts": [{"text": "U2"}]},
                ],
                "systemInstruction": {"parts": [{"text": "S"}]},
            })
        );
    }

    /// A token script that prints `token-N` on its N-th run.
    fn counting_script(dir: &std::path::Path) -> String {
        let script = dir.join("token.sh");
        std::fs::write(
            &script,
            "n=$(cat \"$(dirname \"$0\")/count\" 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > \"$(dirname \"$0\")/count\"\necho token-$n\n",
        )
        .unwrap();
        format!("sh {}", script.display())
    }

    #[test]
    fn token_commands_are_cached_refreshed_in_the_background_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let command = counting_script(dir.path());
        let minute = Duration::from_secs(60);
        let cache = TokenCache::new(45 * minute, 55 * minute);
        let t0 = Instant::now();
        assert_eq!(cache.get(&command, t0).unwrap().expose(), "token-1");
        assert_eq!(
            cache.get(&command, t0 + 44 * minute).unwrap().expose(),
            "token-1"
        );
        // Past the refresh age: the old token while the command runs again.
        assert_eq!(
            cache.get(&command, t0 + 46 * minute).unwrap().expose(),
            "token-1"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let refreshed = loop {
            let token = cache.get(&command, t0 + 47 * minute).unwrap();
            if token.expose() != "token-1" || Instant::now() > deadline {
                break token;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(refreshed.expose(), "token-2");
        // The refreshed token counts from when its refresh started (46 min).
        assert_eq!(
            cache.get(&command, t0 + 90 * minute).unwrap().expose(),
            "token-2"
        );
        // Past the expiry age the command runs in the caller.
        assert_eq!(
            cache.get(&command, t0 + 200 * minute).unwrap().expose(),
            "token-3"
        );
    }

    #[test]
    fn failing_token_commands_name_the_command_not_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bad.sh");
        std::fs::write(&script, "echo ya29.secret-token\nexit 3\n").unwrap();
        let command = format!("sh {}", script.display());
        let cache = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60));
        let error = cache.get(&command, Instant::now()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        assert!(error.message.contains(&command), "{}", error.message);
        assert!(!error.message.contains("secret-token"), "{}", error.message);
        let two = dir.path().join("two.sh");
        std::fs::write(&two, "echo ya29.secret-token extra\n").unwrap();
        let error = cache
            .get(&format!("sh {}", two.display()), Instant::now())
            .unwrap_err();
        assert!(!error.message.contains("secret-token"), "{}", error.message);
        let missing = cache
            .get("/nonexistent/llmperf-token-helper", Instant::now())
            .unwrap_err();
        assert!(
            missing.message.contains("could not be run"),
            "{}",
            missing.message
        );
        assert!(cache.get("   ", Instant::now()).is_err());
    }

    #[test]
    fn credentials_name_the_token_variables() {
        let none = credentials(&BTreeMap::new(), "LLMPERF_VERTEX_TEST_UNSET");
        assert!(
            none.source.contains("GCLOUD_ACCESS_TOKEN"),
            "{}",
            none.source
        );
        let options = BTreeMap::from([(
            "token_command".to_string(),
            "gcloud auth print-access-token".to_string(),
        )]);
        let command = credentials(&options, "LLMPERF_VERTEX_TEST_UNSET");
        assert!(command.configured);
        assert!(command.source.contains("`gcloud auth print-access-token`"));
    }
}
