//! Azure OpenAI chat completions.
//!
//! `POST {base}/openai/deployments/{deployment}/chat/completions?api-version={version}`
//! with the key in an `api-key` header (not Bearer), or, with no key, a
//! Microsoft Entra ID token as `Authorization: Bearer` ([`entra`]: a
//! service principal, workload identity, a managed identity or the Azure
//! CLI, through `azure_identity`; against a loopback base URL only when a
//! source is pointed at). The base URL is the
//! resource endpoint, e.g. `https://NAME.openai.azure.com`; the deployment
//! defaults to the model name and the API version to
//! [`DEFAULT_API_VERSION`]. The body and the stream are OpenAI's.
//!
//! The body keeps `stream_options.include_usage`, so token counts come from
//! the server.
//!
//! ```sh
//! AZURE_OPENAI_API_BASE=https://my-resource.openai.azure.com AZURE_OPENAI_API_KEY=… \
//!   llmperf run --api azure-openai -m gpt-4o --option deployment=my-gpt-4o -r 20 -c 4
//! ```
//!
//! | setting | spec / `--option` | environment | default |
//! | --- | --- | --- | --- |
//! | resource endpoint | `.base_url(…)` / `--base-url` | `AZURE_OPENAI_API_BASE` | none (built-in endpoint) |
//! | key | `.api_key(…)` | `AZURE_OPENAI_API_KEY` | none: a Microsoft Entra ID token ([`entra`]) |
//! | Entra source | `entra` (`managed`, `cli`) | `AZURE_OPENAI_ENTRA` | the first the environment points at, else the Azure CLI |
//! | deployment | `deployment` | `AZURE_OPENAI_DEPLOYMENT` | the model name |
//! | API version | `api_version` | `AZURE_OPENAI_API_VERSION` | `2024-10-21` |
//!
//! `ignore_eos` and `min_tokens` are not sent: Azure refuses arguments it
//! does not know (a user who wants them can set them with `extra_body` if
//! the deployment accepts them). The `api-version` query is masked in
//! stored URLs like any query string.
//!
//! ```
//! let azure = llmperf::endpoint::find("azure-openai").unwrap();
//! assert_eq!(azure.about().env_prefix, "AZURE_OPENAI");
//! ```

pub mod entra;

use serde_json::json;

use super::openai::{self, OpenAiDecoder};
use super::{About, EndpointKind, ErrorKind, Registration, RequestError, StreamDecoder, Target};
use crate::workload::RequestPlan;

/// The `api-version` used when none is set: the generally available
/// version that streams usage with `stream_options.include_usage`.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// `azure-openai`: see the module docs.
pub struct AzureOpenAi;

inventory::submit! { Registration::new(&AzureOpenAi) }

impl EndpointKind for AzureOpenAi {
    fn about(&self) -> About {
        About::new("azure-openai", "Azure OpenAI chat completions (POST {base}/openai/deployments/{deployment}/chat/completions, api-key header)").env_prefix("AZURE_OPENAI").served_from_root()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let deployment = target
            .setting("deployment")
            .unwrap_or_else(|| target.model.clone());
        let api_version = target
            .setting("api_version")
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        let mut body = openai::stream_body(
            json!({
                "model": target.model,
                "messages": plan.messages,
            }),
            target,
            plan,
        );
        if let Some(fields) = body.as_object_mut() {
            for field in ["ignore_eos", "min_tokens"] {
                if !target.extra_body.contains_key(field) {
                    fields.remove(field);
                }
            }
        }
        // The deployment becomes one path segment whatever it contains.
        let mut url = reqwest::Url::parse(&format!("{}/", target.base_url)).map_err(|error| {
            RequestError::new(
                ErrorKind::Request,
                format!(
                    "the Azure OpenAI base URL {} is not a URL: {error}",
                    crate::spec::display_url(&target.base_url)
                ),
            )
        })?;
        url.path_segments_mut()
            .map_err(|()| {
                RequestError::new(
                    ErrorKind::Request,
                    "the Azure OpenAI base URL cannot have a path",
                )
            })?
            .pop_if_empty()
            .extend(["openai", "deployments", &deployment, "chat", "completions"]);
        url.query_pairs_mut()
            .append_pair("api-version", &api_version);
        let loopback = url
            .host_str()
            .is_some_and(|host| host == "localhost" || host.starts_with("127.") || host == "[::1]");
        let request = client
            .post(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        if target.api_key.is_some() {
            return super::with_key_header(request, target, "api-key");
        }
        match entra::token(target, loopback)? {
            Some(token) => {
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                        .map_err(|_| {
                        RequestError::new(
                            ErrorKind::Unauthorized,
                            "the Microsoft Entra ID token is not a valid header value",
                        )
                    })?;
                value.set_sensitive(true);
                Ok(request.header(reqwest::header::AUTHORIZATION, value))
            }
            None => Ok(request),
        }
    }

    fn credentials(
        &self,
        options: &std::collections::BTreeMap<String, String>,
        env_prefix: &str,
    ) -> super::Credentials {
        let key = format!("{env_prefix}_API_KEY");
        super::Credentials {
            configured: super::env_var(&key).is_some()
                || entra::Source::pointed_at(
                    super::setting(options, env_prefix, "entra").as_deref(),
                )
                .is_some(),
            source: format!(
                "{key}, or a Microsoft Entra ID token (AZURE_TENANT_ID / AZURE_CLIENT_ID / \
                 AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE, a managed identity, `az login`)"
            ),
        }
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::Secret;

    fn target(base: &str, options: &[(&str, &str)]) -> Target {
        Target {
            base_url: base.to_string(),
            model: "gpt-4o".to_string(),
            api_key: Some(Secret::new("azure-key-123")),
            api_key_source: "AZURE_OPENAI_API_KEY".to_string(),
            extra_body: serde_json::Map::new(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            // A prefix nobody sets, so the environment cannot interfere.
            env_prefix: "LLMPERF_TEST_AZURE_UNSET".to_string(),
        }
    }

    fn plan() -> RequestPlan {
        RequestPlan {
            max_tokens: Some(5),
            ignore_eos: true,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("hello")],
                crate::Tokenizer::bundled(),
            )
        }
    }

    #[test]
    fn the_deployment_path_api_version_and_api_key_header() {
        let client = reqwest::Client::new();
        let request = AzureOpenAi
            .build_request(
                &client,
                &target("https://res.openai.azure.com", &[]),
                &plan(),
            )
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(request.headers()["api-key"], "azure-key-123");
        assert!(request.headers()["api-key"].is_sensitive());
        assert!(request.headers().get("authorization").is_none());
        let body: serde_json::Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body.get("ignore_eos").is_none() && body.get("min_tokens").is_none());

        let request = AzureOpenAi
            .build_request(
                &client,
                &target(
                    "https://res.openai.azure.com/",
                    &[
                        ("deployment", "my dep/1"),
                        ("api_version", "2025-01-01-preview"),
                    ],
                ),
                &plan(),
            )
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://res.openai.azure.com/openai/deployments/my%20dep%2F1/chat/completions?api-version=2025-01-01-preview"
        );
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_a_request_error_without_the_key() {
        let mut target = target("https://res.openai.azure.com", &[]);
        target.api_key = Some(Secret::new("bad\nkey-secret"));
        let error = AzureOpenAi
            .build_request(&reqwest::Client::new(), &target, &plan())
            .err()
            .unwrap();
        assert_eq!(error.kind, ErrorKind::Request);
        assert!(!error.message.contains("key-secret"), "{}", error.message);
    }
}
