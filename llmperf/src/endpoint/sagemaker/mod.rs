//! Amazon SageMaker real-time endpoints with response streaming
//! (`sagemaker`).
//!
//! ```sh
//! # A TGI (or LMI) container on a SageMaker real-time endpoint; AWS_* from the environment or .env
//! llmperf run --api sagemaker --base-url https://runtime.sagemaker.us-east-1.amazonaws.com \
//!     --option endpoint_name=my-llama-endpoint -m my-llama-endpoint -r 100 -c 8
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
//! are configured) and may contain `{region}`, replaced by the region. The
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
//! | `region` | `AWS_REGION`, `AWS_DEFAULT_REGION`, the region in a `runtime.sagemaker.{region}.amazonaws.com` base URL, `us-east-1` for a loopback base URL |
//! | `format` | `tgi`; `lmi` asks the container for JSON lines (`X-Amzn-SageMaker-Accept: application/jsonlines`) |
//! | `custom_attributes` | none; sent as `X-Amzn-SageMaker-Custom-Attributes` (e.g. `accept_eula=true`) |
//! | `target_variant`, `inference_component` | none; sent as `X-Amzn-SageMaker-Target-Variant` / `-Inference-Component` |
//! | `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` |
//!
//! Credentials are read when each request is built (so refreshed temporary
//! credentials in a `.env` are not picked up mid-run; environment and
//! options only: no `~/.aws` profiles or instance roles). None configured
//! is a per-request [`ErrorKind::Unauthorized`] naming the variables, except
//! against a loopback base URL (the built-in endpoint), which is signed with
//! the built-in endpoint's published test key pair ([`TEST_ACCESS_KEY_ID`] /
//! [`TEST_SECRET_ACCESS_KEY`], `AKIDLLMPERFTEST` / `llmperf-test-secret`).
//! A refused signature (HTTP 403) is the same kind of error, with AWS's
//! message (cut before any canonical request it quotes) and the variables
//! to check. Credential settings are written to results as `***`.
//!
//! # The stream
//!
//! The answer is an `application/vnd.amazon.eventstream` of binary frames,
//! decoded and checked (CRC) with `aws-smithy-eventstream`
//! ([`super::framing::eventstream`]). Each `PayloadPart` event carries a raw
//! piece of the container's own stream, cut wherever SageMaker happened to
//! read: a line can span parts and a part can hold several lines, so the
//! pieces are joined and split into events again, then decoded as TGI's SSE
//! or LMI's JSON lines (recognized from their first bytes, whatever the
//! `format` setting asked for) by the shared
//! [`TgiDecoder`]: special tokens skipped,
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

pub mod sigv4;

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde_json::Value;

pub use sigv4::{
    sign, AwsCredentials, SIGNING_SERVICE, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};

use super::framing::eventstream::{header_str, FrameDecoder};
use super::wire::tgi::{self as wire, Route, TgiDecoder};
use super::{env_var, QUOTED_CHARS};
use super::{
    excerpt, About, Credentials, EndpointKind, ErrorKind, Registration, RequestError,
    StreamDecoder, StreamEvent, Target, TimedEvent,
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
        let region = region(target)?;
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
        let credentials = sigv4::credentials(target, &parsed)?;
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

    fn credentials(&self, options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
        let set = |option: &str, variable: &str| {
            options.contains_key(option)
                || [format!("{env_prefix}_{variable}"), variable.to_string()]
                    .iter()
                    .any(|name| env_var(name).is_some())
        };
        Credentials {
            source: sigv4::CREDENTIAL_SOURCE.to_string(),
            configured: set("aws_access_key_id", "AWS_ACCESS_KEY_ID")
                && set("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        }
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

/// The signing region (see the module docs for the order).
fn region(target: &Target) -> Result<String, RequestError> {
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
            Ok(region)
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
    if let Some(region) = host
        .strip_prefix("runtime.sagemaker.")
        .and_then(|rest| rest.split('.').next())
        .filter(|region| !region.is_empty() && *region != "x")
    {
        return Ok(region.to_string());
    }
    if is_loopback_host(&host) {
        return Ok("us-east-1".to_string());
    }
    Err(RequestError::new(
        ErrorKind::Request,
        "no AWS region for SageMaker: set AWS_REGION, SAGEMAKER_REGION or the region option",
    ))
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

/// Decodes SageMaker's event stream and the container output inside it.
///
/// The container's format is recognized from its first bytes (a JSON line
/// starts with `{`, SSE with `data:`, `event:` or a `:` comment), so one
/// decoder serves both whatever the `format` setting asked for.
#[derive(Default)]
pub struct SageMakerDecoder {
    frames: FrameDecoder,
    /// The container's own stream, reassembled from the payload parts.
    payload: TgiDecoder,
    /// The framing broke: nothing after it can be trusted or resynchronized.
    broken: bool,
}

impl SageMakerDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        SageMakerDecoder::default()
    }

    fn message(
        &mut self,
        message: &aws_smithy_types::event_stream::Message,
        at: Instant,
        out: &mut Vec<TimedEvent>,
    ) {
        let (kind, text) = match header_str(message, ":message-type") {
            Some("event") => match header_str(message, ":event-type") {
                Some("PayloadPart") => return self.payload.feed(message.payload(), at, out),
                other => (
                    ErrorKind::UnknownEvent,
                    format!(
                        "unknown SageMaker event type `{}`",
                        excerpt(other.unwrap_or("(none)"), 60)
                    ),
                ),
            },
            Some("exception") => {
                let kind = header_str(message, ":exception-type").unwrap_or("(no type)");
                (
                    ErrorKind::StreamError,
                    format!(
                        "{}: {}",
                        excerpt(kind, 60),
                        exception_message(message.payload())
                    ),
                )
            }
            Some("error") => (
                ErrorKind::StreamError,
                format!(
                    "{}: {}",
                    excerpt(header_str(message, ":error-code").unwrap_or("error"), 60),
                    excerpt(
                        header_str(message, ":error-message").unwrap_or(""),
                        QUOTED_CHARS
                    )
                ),
            ),
            other => (
                ErrorKind::UnknownEvent,
                format!(
                    "unknown event-stream message type `{}`",
                    excerpt(other.unwrap_or("(none)"), 60)
                ),
            ),
        };
        // The container's missing final event is then no news.
        self.payload.error_reported();
        out.push(TimedEvent {
            at,
            event: StreamEvent::Error(RequestError::new(kind, text)),
        });
    }
}

/// The `Message` (or `message`) of an exception payload, else its text.
fn exception_message(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let message = parsed.as_ref().and_then(|value| {
        let get = |key: &str| value.get(key).and_then(Value::as_str);
        let message = get("Message").or_else(|| get("message"))?;
        Some(match get("ErrorCode").or_else(|| get("errorCode")) {
            Some(code) => format!("{message} ({code})"),
            None => message.to_string(),
        })
    });
    excerpt(
        message.as_deref().unwrap_or_else(|| text.trim()),
        QUOTED_CHARS,
    )
}

impl StreamDecoder for SageMakerDecoder {
    fn buffered_bytes(&self) -> usize {
        self.frames.pending_bytes() + self.payload.buffered_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        if self.broken {
            return;
        }
        self.frames.push(bytes);
        loop {
            match self.frames.next_message() {
                Ok(Some(message)) => self.message(&message, at, out),
                Ok(None) => return,
                Err(problem) => {
                    self.broken = true;
                    out.push(TimedEvent {
                        at,
                        event: StreamEvent::Error(RequestError::new(ErrorKind::Framing, problem)),
                    });
                    return;
                }
            }
        }
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        if self.broken {
            return;
        }
        let pending = self.frames.pending_bytes();
        if pending > 0 {
            out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::Framing,
                    format!(
                        "the stream ended inside an event-stream frame ({pending} bytes of it arrived)"
                    ),
                )),
            });
            return;
        }
        self.payload.finish(at, out);
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::endpoint::{error_kinds as kinds, Usage};

    fn frame(headers: &[(&'static str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut message = Message::new(payload.to_vec());
        for (name, value) in headers {
            message = message.add_header(Header::new(
                *name,
                HeaderValue::String(value.to_string().into()),
            ));
        }
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).unwrap();
        bytes
    }

    fn part(payload: &[u8]) -> Vec<u8> {
        frame(
            &[
                (":event-type", "PayloadPart"),
                (":content-type", "application/octet-stream"),
                (":message-type", "event"),
            ],
            payload,
        )
    }

    fn decode(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = SageMakerDecoder::new();
        crate::endpoint::decode_reads(&mut decoder, pieces)
    }

    /// TGI's SSE as a SageMaker TGI container streams it (`data:` without a
    /// space, one token per event, the last with `generated_text` and
    /// `details`), cut into parts the way SageMaker cuts it: mid-line, and a
    /// part holding the end of one event and the start of the next.
    const TGI: &[&str] = &[
        r#"data:{"index":1,"token":{"id":1014,"text":" Deep","logprob":-0.05,"special":false},"generated_text":null,"details":null}"#,
        "\n\n",
        r#"data:{"index":2,"token":{"id":6975,"text":" learning","logprob":-1.2,"special":false},"generated_text":null,"details":null}"#,
        "\n\n",
        r#"data:{"index":3,"token":{"id":2,"text":"</s>","logprob":-0.01,"special":true},"generated_text":" Deep learning","details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null,"input_length":7}}"#,
        "\n\n",
    ];

    fn tgi_stream() -> Vec<u8> {
        TGI.concat().into_bytes()
    }

    fn expected_tgi() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Content(" Deep".into()),
            StreamEvent::Content(" learning".into()),
            StreamEvent::Finish("eos_token".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(7),
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ]
    }

    #[test]
    fn payload_parts_cut_mid_line_are_reassembled() {
        let stream = tgi_stream();
        // Captured shape: SageMaker cut the first event after `"text":" De`
        // and put the end of the second event with the start of the third.
        let cut1 = stream.windows(3).position(|w| w == b" De").unwrap() + 3;
        let cut2 = stream.windows(9).position(|w| w == b"\"index\":3").unwrap() + 4;
        let mut wire = part(&stream[..cut1]);
        wire.extend(part(&stream[cut1..cut2]));
        wire.extend(part(&stream[cut2..]));
        assert_eq!(decode(&[&wire]), expected_tgi());
    }

    #[test]
    fn every_split_of_parts_and_of_the_wire_decodes_the_same() {
        let stream = tgi_stream();
        for cut in 0..=stream.len() {
            let mut wire = part(&stream[..cut]);
            wire.extend(part(&stream[cut..]));
            assert_eq!(decode(&[&wire]), expected_tgi(), "payload cut at {cut}");
        }
        let mut wire = part(&stream[..40]);
        wire.extend(part(&stream[40..]));
        for cut in 0..=wire.len() {
            assert_eq!(
                decode(&[&wire[..cut], &wire[cut..]]),
                expected_tgi(),
                "wire cut at {cut}"
            );
        }
    }

    #[test]
    fn an_event_is_stamped_with_the_read_that_completed_its_line() {
        let stream = tgi_stream();
        let first_end = stream.windows(2).position(|w| w == b"\n\n").unwrap();
        let mut decoder = SageMakerDecoder::new();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(7);
        // The first event's bytes but its blank line: nothing yet.
        decoder.feed(&part(&stream[..first_end + 1]), t0, &mut out);
        assert!(out.is_empty(), "{out:?}");
        decoder.feed(&part(&stream[first_end + 1..]), t1, &mut out);
        assert_eq!(out[0].event, StreamEvent::Content(" Deep".into()));
        assert_eq!(out[0].at, t1);
    }

    #[test]
    fn lmi_json_lines_and_their_sse_form() {
        let lines = concat!(
            r#"{"token": {"id": 304, "text": "Deep ", "log_prob": -0.05}}"#,
            "\n",
            r#"{"token": {"id": 11157, "text": " Learning", "log_prob": -1.28}}"#,
            "\n",
            r#"{"token": {"id": 5972, "text": " field.", "log_prob": -0.69}, "generated_text": "Deep Learning field.", "details": {"finish_reason": "length", "generated_tokens": 3, "inputs": "What is Deep Learning?"}}"#,
            "\n",
        );
        let expected = vec![
            StreamEvent::Content("Deep ".into()),
            StreamEvent::Content(" Learning".into()),
            StreamEvent::Content(" field.".into()),
            StreamEvent::Finish("length".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: None,
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        let bytes = lines.as_bytes();
        for cut in 0..=bytes.len() {
            let mut wire = part(&bytes[..cut]);
            wire.extend(part(&bytes[cut..]));
            assert_eq!(decode(&[&wire]), expected, "cut at {cut}");
        }
        // `output_formatter=sse`: the same lines behind `data:`.
        let sse: String = lines
            .lines()
            .map(|line| format!("data:{line}\n\n"))
            .collect();
        assert_eq!(decode(&[&part(sse.as_bytes())]), expected);
        // An error mid-stream, as LMI sends it.
        let error = r#"{"token": {"id": -1, "text": "", "log_prob": -1, "special_token": true}, "generated_text": "", "details": {"finish_reason": "error", "generated_tokens": null, "inputs": null}}"#;
        let events = decode(&[&part(format!("{error}\n").as_bytes())]);
        assert_eq!(kinds(&events), vec![ErrorKind::StreamError]);
        // Dynamic batch: `outputs`, and no end marker to miss.
        let events = decode(&[&part(
            b"{\"outputs\": [\"This\"]}\n{\"outputs\": [\" is\"]}\n",
        )]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("This".into()),
                StreamEvent::Content(" is".into())
            ]
        );
    }

    #[test]
    fn exceptions_errors_and_unknown_events_are_named() {
        let mut wire = part(TGI[0].as_bytes());
        wire.extend(frame(
            &[
                (":exception-type", "ModelStreamError"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"Message":"Your model stream broke","ErrorCode":"StreamBroken"}"#,
        ));
        let events = decode(&[&wire]);
        let error = events
            .iter()
            .find_map(|e| match e {
                StreamEvent::Error(error) => Some(error.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(error.kind, ErrorKind::StreamError);
        assert_eq!(
            error.message,
            "ModelStreamError: Your model stream broke (StreamBroken)"
        );

        let failure = frame(
            &[
                (":exception-type", "InternalStreamFailure"),
                (":message-type", "exception"),
            ],
            br#"{"message":"internal"}"#,
        );
        let events = decode(&[&failure]);
        assert!(
            matches!(&events[0], StreamEvent::Error(e) if e.message == "InternalStreamFailure: internal")
        );

        let unknown = frame(
            &[(":event-type", "Heartbeat"), (":message-type", "event")],
            b"",
        );
        assert_eq!(kinds(&decode(&[&unknown])), vec![ErrorKind::UnknownEvent]);
        let untyped = frame(&[], b"x");
        assert_eq!(kinds(&decode(&[&untyped])), vec![ErrorKind::UnknownEvent]);

        // TGI's own error event inside the payload.
        let events = decode(&[&part(
            b"data:{\"error\":\"Request failed during generation: Server error: CUDA out of memory\",\"error_type\":\"generation\"}\n\n",
        )]);
        assert!(matches!(&events[0], StreamEvent::Error(e)
            if e.kind == ErrorKind::StreamError && e.message.contains("(generation)") && e.message.contains("CUDA")));
    }

    #[test]
    fn framing_faults_truncation_and_a_missing_end() {
        let good = part(&tgi_stream());
        let mut corrupted = good.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 0x55;
        assert_eq!(kinds(&decode(&[&corrupted])), vec![ErrorKind::Framing]);

        // Cut anywhere inside the frame: the end of the body is a framing error.
        for cut in 1..good.len() {
            let events = decode(&[&good[..cut]]);
            assert_eq!(kinds(&events), vec![ErrorKind::Framing], "cut at {cut}");
        }

        // Whole frames but no final `generated_text` event.
        let stream = tgi_stream();
        let two = stream.windows(9).position(|w| w == b"\"index\":3").unwrap() - 6;
        let events = decode(&[&part(&stream[..two])]);
        assert_eq!(kinds(&events), vec![ErrorKind::MissingDone]);
        // Malformed JSON inside a valid frame.
        let events = decode(&[&part(b"data:{\"token\": [\n\n")]);
        assert_eq!(kinds(&events), vec![ErrorKind::MalformedEvent]);
    }

    /// The container's stream is decoded by the TGI wire decoder, so its
    /// prompt counts and its shapeless and empty streams read as on TGI's
    /// own route (they did not before the two copies were merged).
    #[test]
    fn payloads_decode_as_tgi_does_prompt_counts_shapeless_events_and_an_empty_stream() {
        let last = |details: &str| {
            format!(
                "data:{{\"index\":1,\"token\":{{\"id\":1,\"text\":\" a\",\"special\":false}},\"generated_text\":\" a\",\"details\":{details}}}\n\n"
            )
        };
        for (details, prompt) in [
            (
                r#"{"finish_reason":"length","generated_tokens":1,"prompt_tokens":5}"#,
                5,
            ),
            (
                r#"{"finish_reason":"length","generated_tokens":1,"prefill":[{"id":1},{"id":2}]}"#,
                2,
            ),
        ] {
            let events = decode(&[&part(last(details).as_bytes())]);
            assert_eq!(
                events,
                vec![
                    StreamEvent::Content(" a".into()),
                    StreamEvent::Finish("length".into()),
                    StreamEvent::Usage(Usage {
                        prompt_tokens: Some(prompt),
                        completion_tokens: Some(1),
                        reasoning_tokens: None,
                    }),
                    StreamEvent::Done,
                ],
                "{details}"
            );
        }
        let shapeless = decode(&[&part(b"data:{\"hello\":1}\n\n")]);
        assert_eq!(kinds(&shapeless), vec![ErrorKind::MalformedEvent]);
        assert_eq!(kinds(&decode(&[])), vec![ErrorKind::MissingDone]);
    }

    #[test]
    fn thousands_of_random_mutations_never_panic() {
        let stream = tgi_stream();
        let mut wire = Vec::new();
        for piece in stream.chunks(37) {
            wire.extend(part(piece));
        }
        wire.extend(frame(
            &[
                (":exception-type", "ModelStreamError"),
                (":message-type", "exception"),
            ],
            br#"{"Message":"m"}"#,
        ));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
        for round in 0..4000 {
            let mut bytes = wire.clone();
            let mut only_flips = true;
            for _ in 0..rng.gen_range(1..=8) {
                match rng.gen_range(0..4) {
                    0 => {
                        let at = rng.gen_range(0..bytes.len());
                        bytes[at] ^= 1 << rng.gen_range(0..8);
                    }
                    1 => {
                        let at = rng.gen_range(0..bytes.len());
                        bytes[at] = rng.gen();
                    }
                    2 if bytes.len() > 1 => {
                        let at = rng.gen_range(1..bytes.len());
                        bytes.truncate(at);
                        only_flips = false;
                    }
                    2 => {}
                    _ => {
                        let at = rng.gen_range(0..=bytes.len());
                        let junk: Vec<u8> = (0..rng.gen_range(1..32)).map(|_| rng.gen()).collect();
                        bytes.splice(at..at, junk);
                        only_flips = false;
                    }
                }
            }
            // Fed in random pieces, as the network would.
            let mut decoder = SageMakerDecoder::new();
            let mut out = Vec::new();
            let now = Instant::now();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let take = rng.gen_range(1..=rest.len().min(64));
                let (head, tail) = rest.split_at(take);
                decoder.feed(head, now, &mut out);
                rest = tail;
            }
            decoder.finish(now, &mut out);
            if only_flips && bytes != wire {
                // Changed bytes inside frames are always caught: by a CRC,
                // an impossible length, or a frame left incomplete.
                let events: Vec<StreamEvent> = out.into_iter().map(|e| e.event).collect();
                assert!(
                    kinds(&events).contains(&ErrorKind::Framing),
                    "round {round}: {events:?}"
                );
            }
        }
    }

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
        assert_eq!(region(&target("http://x")).unwrap(), "ap-south-1");
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            let mut t = target("https://runtime.sagemaker.eu-central-1.amazonaws.com");
            t.options.clear();
            assert_eq!(region(&t).unwrap(), "eu-central-1");
            t.base_url = "http://[::1]:9".into();
            assert_eq!(region(&t).unwrap(), "us-east-1");
            t.base_url = "https://proxy.example".into();
            assert_eq!(region(&t).unwrap_err().kind, ErrorKind::Request);
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
