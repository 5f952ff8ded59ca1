//! Google Vertex AI: Gemini `streamGenerateContent` (SSE and the streamed
//! JSON array), Model Garden `:streamRawPredict`, and the OpenAI-compatible
//! chat endpoint.
//!
//! Four kinds, every path under `{base}/v1/projects/{project}/locations/{region}`
//! ([`url`]):
//!
//! | kind | path after that | stream |
//! | --- | --- | --- |
//! | `vertex-gemini` | `/publishers/google/models/{model}:streamGenerateContent?alt=sse`, Gemini body (`contents`, `generationConfig.maxOutputTokens`) | SSE of Gemini chunks, `\r\n\r\n` event ends ([`gemini`]) |
//! | `vertex-gemini-json` | `/publishers/google/models/{model}:streamGenerateContent` | one JSON array of Gemini chunks, decoded element by element as it arrives ([`gemini`]) |
//! | `vertex-raw` | `/endpoints/{endpoint_id}:streamRawPredict`, OpenAI chat body (Model Garden vLLM containers) | OpenAI SSE ([`openai`]) |
//! | `vertex-openai` | `/endpoints/openapi/chat/completions` (model `google/gemini-2.5-flash`) | OpenAI SSE ([`openai`]) |
//!
//! ```sh
//! export VERTEXAI_PROJECT=my-project VERTEXAI_REGION=us-central1
//! # Application Default Credentials: a key file in GOOGLE_APPLICATION_CREDENTIALS,
//! # `gcloud auth application-default login`, or the metadata server (GCE, GKE, Cloud Run);
//! # or a token: VERTEXAI_TOKEN_COMMAND="gcloud auth print-access-token" / VERTEXAI_ACCESS_TOKEN
//! llmperf run --api vertex-gemini -m gemini-2.5-flash -r 50 -c 8
//! llmperf run --api vertex-gemini-json -m gemini-2.5-flash -r 50 -c 8
//! llmperf run --api vertex-raw --option endpoint_id=1234567890 -m meta-llama/Llama-3.1-8B-Instruct -r 50 -c 8
//! llmperf run --api vertex-openai -m google/gemini-2.5-flash -r 50 -c 8
//! llmperf run --api vertex-gemini --builtin -r 20 -c 4 --validate   # the built-in endpoint serves the same paths
//! ```
//!
//! # Settings
//!
//! From [`Target::setting`] (an `Endpoint::option`, `--option key=value`,
//! else `VERTEXAI_{KEY}` in the environment):
//!
//! | key | meaning |
//! | --- | --- |
//! | `project` | the Google Cloud project (also `GOOGLE_CLOUD_PROJECT`) |
//! | `region` | the location (also `GOOGLE_CLOUD_LOCATION`; default `us-central1`; `global` uses `https://aiplatform.googleapis.com`) |
//! | `endpoint_id` | the endpoint (`vertex-raw` only) |
//! | `access_token`, `token_command` | the bearer token, or the command that prints it; without either, Application Default Credentials ([`credentials`], [`adc`]) |
//!
//! The base URL (`VERTEXAI_API_BASE`, `--base-url`) and how the path is
//! built from these are in [`url`]; the token's sources, order and cache
//! in [`credentials`] (a given token or token command first, then Google's
//! Application Default Credentials through `google-cloud-auth`, renewed
//! before they expire: [`adc`]); the Gemini body and chunks in [`gemini`].
//! Secret-looking options (`access_token`, …) are written as `***` in
//! results.
//!
//! An error body in Google's shape (`{"error": {"code", "message",
//! "status"}}`, also wrapped in an array by the JSON-array form) gives
//! `message (STATUS)` to the request's error; a 401/403 names the token
//! variables (or the command).

pub mod adc;
pub mod credentials;
pub mod gemini;
pub mod url;

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub use credentials::TokenCache;
pub use gemini::{gemini_body, GeminiJsonDecoder, GeminiSseDecoder};

use self::credentials::access_token;
use self::gemini::gemini_request;
use self::url::Location;
use super::openai::{self, OpenAiDecoder};
use super::{env_var, QUOTED_CHARS};
use super::{
    excerpt, About, Credentials, EndpointKind, Registration, RequestError, StreamDecoder, Target,
};
use crate::workload::RequestPlan;

/// A Vertex AI kind: one of the four APIs under its name (see the module docs).
pub struct Vertex {
    name: &'static str,
    description: &'static str,
    api: Api,
}

/// Which Vertex AI API a kind speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Gemini `streamGenerateContent?alt=sse`.
    GeminiSse,
    /// Gemini `streamGenerateContent` as a streamed JSON array.
    GeminiJson,
    /// An endpoint's `:streamRawPredict` with an OpenAI chat body.
    RawPredict,
    /// The OpenAI-compatible chat completions.
    OpenAiChat,
}

/// `vertex-gemini`: Gemini `streamGenerateContent?alt=sse`.
pub static GEMINI: Vertex = Vertex {
    name: "vertex-gemini",
    description:
        "Vertex AI Gemini streamGenerateContent?alt=sse (project, region settings; bearer token)",
    api: Api::GeminiSse,
};
/// `vertex-gemini-json`: Gemini `streamGenerateContent` as a streamed JSON array.
pub static GEMINI_JSON: Vertex = Vertex {
    name: "vertex-gemini-json",
    description: "Vertex AI Gemini streamGenerateContent as a streamed JSON array (no alt=sse)",
    api: Api::GeminiJson,
};
/// `vertex-raw`: a Model Garden / custom endpoint's `:streamRawPredict`
/// with an OpenAI chat body (vLLM containers).
pub static RAW: Vertex = Vertex {
    name: "vertex-raw",
    description: "Vertex AI endpoint :streamRawPredict with an OpenAI chat body (Model Garden vLLM; endpoint_id setting)",
    api: Api::RawPredict,
};
/// `vertex-openai`: Vertex AI's OpenAI-compatible chat completions.
pub static OPENAI: Vertex = Vertex {
    name: "vertex-openai",
    description:
        "Vertex AI OpenAI-compatible chat completions (endpoints/openapi; model google/gemini-…)",
    api: Api::OpenAiChat,
};

inventory::submit! { Registration::new(&GEMINI) }
inventory::submit! { Registration::new(&GEMINI_JSON) }
inventory::submit! { Registration::new(&RAW) }
inventory::submit! { Registration::new(&OPENAI) }

/// The environment prefix of every Vertex kind.
const PREFIX: &str = "VERTEXAI";
/// The provider's base URL; `{region}` is filled in per request.
pub const DEFAULT_BASE_URL: &str = "https://{region}-aiplatform.googleapis.com";
/// The region when none is set.
pub const DEFAULT_REGION: &str = "us-central1";
/// Stands in for a project or endpoint id a non-Google base URL does not need.
const PLACEHOLDER: &str = "llmperf";

impl EndpointKind for Vertex {
    fn about(&self) -> About {
        About::new(self.name, self.description)
            .env_prefix(PREFIX)
            .default_base_url(DEFAULT_BASE_URL)
            .served_from_root()
    }

    fn credentials(&self, options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
        credentials::credentials(options, env_prefix)
    }

    fn accepts_content_type(&self, content_type: &str) -> bool {
        match self.api {
            Api::GeminiJson => content_type.contains("json"),
            _ => content_type.contains("event-stream"),
        }
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        match self.api {
            Api::GeminiSse => gemini_request(client, target, plan, true),
            Api::GeminiJson => gemini_request(client, target, plan, false),
            Api::RawPredict => {
                let location = Location::of(target)?;
                let endpoint = location.required(target.setting("endpoint_id"), "endpoint_id")?;
                let path = format!("endpoints/{endpoint}:streamRawPredict");
                openai_request(client, target, plan, &location, &path)
            }
            Api::OpenAiChat => {
                let location = Location::of(target)?;
                openai_request(
                    client,
                    target,
                    plan,
                    &location,
                    "endpoints/openapi/chat/completions",
                )
            }
        }
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        match self.api {
            Api::GeminiSse => Box::new(GeminiSseDecoder::default()),
            Api::GeminiJson => Box::new(GeminiJsonDecoder::default()),
            Api::RawPredict | Api::OpenAiChat => Box::new(OpenAiDecoder::default()),
        }
    }

    fn error_detail(&self, body: &str) -> Option<String> {
        error_detail(body)
    }
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

#[cfg(test)]
/// A target with these options and a prefix nobody sets (tests of the submodules).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
