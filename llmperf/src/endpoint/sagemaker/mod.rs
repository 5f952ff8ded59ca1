//! Amazon SageMaker real-time endpoints with response streaming
//! (`sagemaker`).
//!
//! ```sh
//! # A TGI (or LMI) container on a SageMaker real-time endpoint, with the
//! # credentials the AWS CLI uses (environment, ~/.aws profiles, SSO, roles)
//! llmperf run --api sagemaker --option region=us-east-1 \
//!     --option endpoint_name=my-llama-endpoint -m my-llama-endpoint -r 100 -c 8
//! # A named profile (its region too), e.g. after `aws sso login --profile bench`
//! llmperf run --api sagemaker --option profile=bench -m my-llama-endpoint -r 100 -c 8
//! llmperf run --api sagemaker --builtin -r 20 -c 4 --validate        # against the built-in endpoint
//! ```
//!
//! # The request
//!
//! `POST {base}/endpoints/{endpoint_name}/invocations-response-stream`,
//! signed with AWS Signature Version 4 (service `sagemaker`, via the
//! `aws-sigv4` crate; see [`sigv4`]). The base URL comes from `--base-url`
//! or `SAGEMAKER_API_BASE` (default
//! `https://runtime.sagemaker.{region}.amazonaws.com`, used when credentials
//! or a region are configured: see [`credentials`]) and may contain
//! `{region}`, replaced by the region. The
//! body is the container's own request, which both Hugging Face TGI and the
//! LMI (DJL Serving) containers take (the inputs being the workload's
//! messages flattened into one prompt): `{"inputs", "parameters":
//! {"max_new_tokens", "details": true}, "stream": true}`, plus
//! `ignore_eos_token` (LMI's vLLM backend) when the workload ignores the
//! end of sequence; the spec's extra body is merged as
//! [`wire::tgi`](super::wire::tgi) describes (a `parameters` object key by
//! key, other fields into `parameters`).
//!
//! # Settings
//!
//! Each from the spec's options (`Endpoint::option`, `--option key=value`),
//! else `SAGEMAKER_{KEY}` in the environment ([`Target::setting`]), else:
//!
//! | key | default |
//! | --- | --- |
//! | `endpoint_name` | the model name (`-m`) |
//! | `profile` | `AWS_PROFILE`, else `default`: the profile of the shared config and credentials files the credential chain reads |
//! | `region` | `AWS_REGION`, `AWS_DEFAULT_REGION`, the region in a `runtime.sagemaker.{region}.amazonaws.com` base URL, the profile's `region`, `us-east-1` for a loopback base URL |
//! | `format` | `tgi`; `lmi` asks the container for JSON lines (`X-Amzn-SageMaker-Accept: application/jsonlines`) |
//! | `custom_attributes` | none; sent as `X-Amzn-SageMaker-Custom-Attributes` (e.g. `accept_eula=true`) |
//! | `target_variant`, `inference_component` | none; sent as `X-Amzn-SageMaker-Target-Variant` / `-Inference-Component` |
//! | `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` | none: keys given this way sign as given, before the credential chain |
//!
//! # Credentials
//!
//! Keys given as options sign as given. Otherwise the AWS SDK's own
//! default credential chain (`aws-config`, [`chain`]) finds them, as the
//! AWS CLI does: the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN` variables; the shared config and credentials files
//! with profiles (`profile` setting or `AWS_PROFILE`; assume role, SSO,
//! `credential_process`); web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and
//! `AWS_ROLE_ARN`, as Kubernetes service accounts get); container
//! credentials (ECS, EKS Pod Identity); EC2 instance metadata. The chain
//! runs on a thread of its own and renews temporary credentials before
//! they expire, so long runs keep signing with valid ones; requests never
//! wait on it except the first of a process, for the first resolution.
//! Against a loopback base URL (the built-in endpoint) with no AWS source
//! pointed at, requests are signed with the built-in endpoint's published
//! test key pair ([`TEST_ACCESS_KEY_ID`] / [`TEST_SECRET_ACCESS_KEY`],
//! `AKIDLLMPERFTEST` / `llmperf-test-secret`). The order, and when the
//! default base URL counts as configured, are in [`credentials`].
//!
//! No credentials is a per-request [`ErrorKind::Unauthorized`] with the
//! chain's reason (which names sources and files, never values); so are
//! expired credentials the chain could not renew. A refused signature
//! (HTTP 403) is the same kind of error, with AWS's message (cut before any
//! canonical request it quotes) and the sources to check. Credential
//! settings are written to results as `***`; credentials, tokens and
//! signatures never appear in results, logs or errors.
//!
//! # The stream
//!
//! The answer ([`stream`]) is an `application/vnd.amazon.eventstream` of binary frames,
//! decoded and checked (CRC) with `aws-smithy-eventstream`
//! ([`super::framing::eventstream`]). Each `PayloadPart` event carries a raw
//! piece of the container's own stream, cut wherever SageMaker happened to
//! read: a line can span parts and a part can hold several lines, so the
//! pieces are joined and split into events again, then decoded as TGI's SSE
//! or LMI's JSON lines (recognized from their first bytes, whatever the
//! `format` setting asked for) by the shared
//! [`TgiDecoder`](super::wire::tgi::TgiDecoder): special tokens skipped,
//! the event with `generated_text` as the end marker, server token counts
//! from its `details` (`generated_tokens`, and TGI's `input_length`), TGI
//! and LMI error events as [`ErrorKind::StreamError`].
//!
//! Besides the container's own errors: `exception` messages
//! (`ModelStreamError`, `InternalStreamFailure`) are
//! [`ErrorKind::StreamError`]; an event type SageMaker does not define is
//! an [`ErrorKind::UnknownEvent`]; a checksum failure or a frame cut off by
//! the end of the body is an [`ErrorKind::Framing`] error; a stream without
//! the final `generated_text` event is [`ErrorKind::MissingDone`].
//!
//! The built-in endpoint serves the same path: it verifies the signature
//! against the test key pair (any region, any session token) and streams
//! TGI SSE (or LMI JSON lines) in `PayloadPart` frames cut at seeded
//! offsets, some lines spanning parts sent at different times. Its faults:
//! `stream_error` is a `ModelStreamError` exception, `malformed_event` a
//! frame with a corrupted CRC (reported as `framing`), `missing_done` a
//! last event without `generated_text`.

pub mod chain;
pub mod credentials;
pub mod sigv4;
pub mod stream;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

pub use sigv4::{
    sign, AwsCredentials, SIGNING_SERVICE, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
pub use stream::SageMakerDecoder;

use super::wire::tgi::{self as wire, Route};
use super::{env_var, QUOTED_CHARS};
use super::{
    excerpt, About, Credentials, EndpointKind, ErrorKind, Registration, RequestError,
    StreamDecoder, Target,
};
use crate::workload::RequestPlan;

/// `sagemaker`: SageMaker `invocations-response-stream`, SigV4-signed.
pub struct SageMaker;

inventory::submit! { Registration::new(&SageMaker) }

/// Which container protocol the payload parts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face TGI: SSE `data:` events.
    Tgi,
    /// LMI / DJL Serving: JSON lines.
    Lmi,
}

impl Format {
    /// Reads the `format` setting (`tgi` when unset).
    pub fn from_setting(value: Option<&str>) -> Result<Format, RequestError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("tgi") => Ok(Format::Tgi),
            Some("lmi" | "djl") => Ok(Format::Lmi),
            Some(other) => Err(RequestError::new(
                ErrorKind::Request,
                format!("unknown SageMaker format `{other}`: use `tgi` or `lmi`"),
            )),
        }
    }

    /// The `X-Amzn-SageMaker-Accept` asked of the container.
    pub fn accept(self) -> &'static str {
        match self {
            Format::Tgi => "text/event-stream",
            Format::Lmi => "application/jsonlines",
        }
    }
}

impl EndpointKind for SageMaker {
    fn about(&self) -> About {
        About::new("sagemaker", "Amazon SageMaker response streaming (POST {base}/endpoints/{name}/invocations-response-stream, SigV4, event stream of TGI or LMI output)").env_prefix("SAGEMAKER").default_base_url("https://runtime.sagemaker.{region}.amazonaws.com").served_from_root()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let format = Format::from_setting(target.setting("format").as_deref())?;
        let endpoint = target
            .setting("endpoint_name")
            .unwrap_or_else(|| target.model.clone());
        check_endpoint_name(&endpoint)?;
        let explicit_region = explicit_region(target)?;
        // The host decides between the test pair and the chain; it does
        // not depend on the region.
        let host = reqwest::Url::parse(&target.base_url.replace("{region}", "x"))
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default();
        let signing = credentials::for_request(target, &host, explicit_region.as_deref())?;
        let region = explicit_region
            .or(signing.profile_region)
            .or_else(|| is_loopback_host(&host).then(|| "us-east-1".to_string()))
            .ok_or_else(|| {
                RequestError::new(
                    ErrorKind::Request,
                    "no AWS region for SageMaker: set AWS_REGION, SAGEMAKER_REGION, the region \
                     option or a region in the AWS profile",
                )
            })?;
        let base = target.base_url.replace("{region}", &region);
        let url = format!("{base}/endpoints/{endpoint}/invocations-response-stream");
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| u.host_str().is_some() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                RequestError::new(
                    ErrorKind::Request,
                    format!(
                        "the SageMaker base URL {} is not an http(s) URL with a host",
                        crate::spec::display_url(&base)
                    ),
                )
            })?;
        let credentials = signing.credentials;
        let body = serde_json::to_vec(&wire::request_body(target, plan, Route::Invocations))
            .map_err(|error| {
                RequestError::new(
                    ErrorKind::Request,
                    format!("cannot encode the body: {error}"),
                )
            })?;

        let mut headers: Vec<(&'static str, String)> = vec![
            ("content-type", "application/json".to_string()),
            ("x-amzn-sagemaker-accept", format.accept().to_string()),
        ];
        for (key, header) in [
            ("custom_attributes", "x-amzn-sagemaker-custom-attributes"),
            ("target_variant", "x-amzn-sagemaker-target-variant"),
            (
                "inference_component",
                "x-amzn-sagemaker-inference-component",
            ),
        ] {
            if let Some(value) = target.setting(key) {
                if reqwest::header::HeaderValue::from_str(&value).is_err() {
                    return Err(RequestError::new(
                        ErrorKind::Request,
                        format!("the SageMaker option {key} is not a valid header value"),
                    ));
                }
                headers.push((header, value));
            }
        }
        let signed = sign(
            "POST",
            parsed.as_str(),
            &headers,
            &body,
            &credentials,
            &region,
            SystemTime::now(),
        )
        .map_err(|error| RequestError::new(ErrorKind::Request, error))?;

        let mut request = client.post(parsed).header(
            reqwest::header::ACCEPT,
            "application/vnd.amazon.eventstream",
        );
        for (name, value) in headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .chain(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        {
            request = request.header(name, value);
        }
        Ok(request.body(body))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(SageMakerDecoder::new())
    }

    fn error_detail(&self, body: &str) -> Option<String> {
        error_detail(body)
    }

    fn accepts_content_type(&self, content_type: &str) -> bool {
        content_type.contains("vnd.amazon.eventstream")
    }

    fn signs_url(&self) -> bool {
        true
    }

    fn credentials(&self, options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
        credentials::describe(options, env_prefix)
    }
}

/// SageMaker's endpoint-name rule: 1 to 63 letters, digits and inner hyphens.
fn check_endpoint_name(name: &str) -> Result<(), RequestError> {
    let valid = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::Request,
            format!(
                "`{}` is not a SageMaker endpoint name (1-63 letters, digits and hyphens): set the endpoint_name option or SAGEMAKER_ENDPOINT_NAME",
                excerpt(name, 80)
            ),
        ))
    }
}

/// The signing region named before any profile's: the `region` setting,
/// `AWS_REGION`, `AWS_DEFAULT_REGION`, the region in a
/// `runtime.sagemaker.{region}.amazonaws.com` base URL (see the module
/// docs for the whole order).
fn explicit_region(target: &Target) -> Result<Option<String>, RequestError> {
    let configured = target
        .setting("region")
        .or_else(|| env_var("AWS_REGION"))
        .or_else(|| env_var("AWS_DEFAULT_REGION"));
    if let Some(region) = configured {
        let region = region.trim().to_string();
        let valid = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        return if valid {
            Ok(Some(region))
        } else {
            Err(RequestError::new(
                ErrorKind::Request,
                format!("`{}` is not an AWS region", excerpt(&region, 40)),
            ))
        };
    }
    let host = reqwest::Url::parse(&target.base_url.replace("{region}", "x"))
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_default();
    Ok(host
        .strip_prefix("runtime.sagemaker.")
        .and_then(|rest| rest.split('.').next())
        .filter(|region| !region.is_empty() && *region != "x")
        .map(str::to_string))
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The message of an AWS error body (`{"message"}`, `{"Message"}`, a
/// model error's `OriginalMessage`), cut before the canonical request and
/// string-to-sign a signature mismatch may quote (which can hold a session
/// token).
fn error_detail(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let message = text("message").or_else(|| text("Message")).or_else(|| {
        value
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
    })?;
    let message = message
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .split("The Canonical String")
        .next()
        .unwrap_or_default()
        .trim();
    let mut detail = excerpt(message, QUOTED_CHARS);
    if let Some(original) = text("OriginalMessage") {
        detail.push_str(&format!(
            " (from the model: {})",
            excerpt(original, QUOTED_CHARS)
        ));
    }
    Some(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_the_region_is_found() {
        assert!(check_endpoint_name("my-endpoint-1").is_ok());
        for bad in ["", "-a", "a-", "a/b", "a b", &"x".repeat(64)] {
            assert!(check_endpoint_name(bad).is_err(), "{bad}");
        }
        assert_eq!(Format::from_setting(None).unwrap(), Format::Tgi);
        assert_eq!(Format::from_setting(Some(" LMI ")).unwrap(), Format::Lmi);
        assert!(Format::from_setting(Some("xml")).is_err());
        let target = |base: &str| Target {
            base_url: base.into(),
            model: "m".into(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: Default::default(),
            options: [("region".to_string(), "ap-south-1".to_string())].into(),
            env_prefix: "LLMPERF_SAGEMAKER_TEST".into(),
        };
        assert_eq!(
            explicit_region(&target("http://x")).unwrap().as_deref(),
            Some("ap-south-1")
        );
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            let mut t = target("https://runtime.sagemaker.eu-central-1.amazonaws.com");
            t.options.clear();
            assert_eq!(
                explicit_region(&t).unwrap().as_deref(),
                Some("eu-central-1")
            );
            t.base_url = "https://proxy.example".into();
            assert_eq!(explicit_region(&t).unwrap(), None);
        }
    }

    #[test]
    fn aws_error_bodies_give_their_message_without_the_canonical_request() {
        assert_eq!(
            error_detail(
                r#"{"message":"The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'POST\nx-amz-security-token:SECRET'"}"#
            ),
            Some(
                "The request signature we calculated does not match the signature you provided."
                    .into()
            )
        );
        assert_eq!(
            error_detail(
                r#"{"ErrorCode":"CLIENT_ERROR_FROM_MODEL","Message":"Received client error (400) from primary","OriginalMessage":"bad input","OriginalStatusCode":400}"#
            ),
            Some("Received client error (400) from primary (from the model: bad input)".into())
        );
        assert_eq!(error_detail("<html/>"), None);
    }
}
