//! The built-in endpoint's Amazon SageMaker side:
//! `POST /endpoints/{name}/invocations-response-stream`.
//!
//! Requests must be SigV4-signed (service `sagemaker`, any region) with the
//! published test key pair
//! ([`TEST_ACCESS_KEY_ID`](crate::endpoint::sagemaker::TEST_ACCESS_KEY_ID) /
//! [`TEST_SECRET_ACCESS_KEY`](crate::endpoint::sagemaker::TEST_SECRET_ACCESS_KEY),
//! any session token); the signature is recomputed from the request as
//! received, body included, and a mismatch is a 403 with AWS's error shape.
//!
//! The body is TGI's / LMI's `{"inputs", "parameters": {"max_new_tokens",
//! "ignore_eos_token"}}`. The answer is the container's own stream, TGI SSE
//! (or LMI JSON lines when `X-Amzn-SageMaker-Accept` asks for
//! `application/jsonlines`), wrapped in `PayloadPart` event-stream frames.
//! As SageMaker does, the frames cut the stream anywhere: at each deadline
//! the due bytes go out as one to three parts cut at seeded offsets, and
//! about half the events have their first bytes sent early, with the
//! previous event, so a line spans parts that arrive at different times
//! (it is complete, and due, only when its last part comes).
//!
//! Faults: `StreamError` is a `ModelStreamError` exception frame after half
//! the tokens, `MalformedEvent` a frame with a corrupted CRC in the middle,
//! `MissingDone` a last event without `generated_text`; `Disconnect`,
//! `Stall`, `Status` and `CrossOver` behave as for the OpenAI routes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use super::body::ResponseBody;
use super::generate::{self, FinishReason, Spec, MAX_OUTPUT_TOKENS};
use super::plan::{clamp, jittered, token_events, End, Timeline};
use super::request::{Api, GenerationRequest, DEFAULT_MODEL};
use crate::endpoint::sagemaker::{
    sign, AwsCredentials, SIGNING_SERVICE, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
use crate::spec::Secret;
use crate::spec::{Fault, Script};
use crate::validate::Task;
use crate::workload::tokenizer::Tokenizer;

/// The response's content type.
pub(crate) const CONTENT_TYPE_EVENTSTREAM: &str = "application/vnd.amazon.eventstream";
/// Most bytes in one `PayloadPart` (SageMaker's parts are small).
const MAX_PART_BYTES: usize = 16 * 1024;
/// Mixed into the seed for the part cuts, so the words and jitter of a
/// request are the ones the OpenAI routes would draw for it.
const CUT_STREAM: u64 = 0x5a6e_4d61_6b65_7221;

/// Whether `path` is a SageMaker invocation route.
pub(crate) fn is_invocation_path(path: &str) -> bool {
    path.strip_prefix("/endpoints/")
        .and_then(|rest| rest.strip_suffix("/invocations-response-stream"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The [`Api`] of a SageMaker request: LMI JSON lines when the container is
/// asked for them, TGI SSE otherwise.
pub(crate) fn api<B>(request: &Request<B>) -> Api {
    let lmi = request
        .headers()
        .get("x-amzn-sagemaker-accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("jsonlines"));
    Api::SageMaker { lmi }
}

/// What a SigV4 signature covers, kept before the body is read.
pub(crate) struct SignedParts {
    path: String,
    headers: HeaderMap,
}

impl SignedParts {
    /// Takes the path and headers of `request`.
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        SignedParts {
            path: request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().path().to_string(), |p| p.to_string()),
            headers: request.headers().clone(),
        }
    }

    /// Checks the signature against the request as received, `body`
    /// included; `Err` is the 403 to answer.
    pub(crate) fn verify(&self, body: &[u8]) -> Result<(), Box<Response<ResponseBody>>> {
        let header = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok());
        let Some(authorization) = header("authorization") else {
            return Err(forbidden(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let Some(fields) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
            return Err(forbidden(
                "IncompleteSignatureException",
                "Authorization header requires the AWS4-HMAC-SHA256 algorithm",
            ));
        };
        let field = |key: &str| {
            fields
                .split(',')
                .filter_map(|f| f.trim().split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
        };
        let (Some(credential), Some(signed_headers), Some(_)) = (
            field("Credential"),
            field("SignedHeaders"),
            field("Signature"),
        ) else {
            return Err(forbidden(
                "IncompleteSignatureException",
                "Authorization header requires Credential, SignedHeaders and Signature",
            ));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, _date, region, service, "aws4_request"] = scope[..] else {
            return Err(forbidden(
                "IncompleteSignatureException",
                "the Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
            ));
        };
        if access_key != TEST_ACCESS_KEY_ID {
            return Err(forbidden(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        let time = header("x-amz-date").and_then(parse_amz_date);
        let host = header("host");
        let (Some(time), Some(host), SIGNING_SERVICE) = (time, host, service) else {
            return Err(mismatch());
        };
        let mut headers = Vec::new();
        for name in signed_headers.split(';') {
            if matches!(name, "host" | "x-amz-date" | "x-amz-security-token") {
                continue; // the signer adds these itself
            }
            match header(name) {
                Some(value) => headers.push((name, value.to_string())),
                None => return Err(mismatch()),
            }
        }
        let credentials = AwsCredentials {
            access_key_id: Secret::new(TEST_ACCESS_KEY_ID),
            secret_access_key: Secret::new(TEST_SECRET_ACCESS_KEY),
            session_token: header("x-amz-security-token").map(Secret::new),
        };
        let url = format!("http://{host}{}", self.path);
        let expected = sign("POST", &url, &headers, body, &credentials, region, time)
            .map_err(|_| mismatch())?;
        let expected = expected
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str());
        if expected == Some(authorization) {
            Ok(())
        } else {
            Err(mismatch())
        }
    }
}

fn mismatch() -> Box<Response<ResponseBody>> {
    forbidden(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )
}

fn forbidden(error_type: &str, message: &str) -> Box<Response<ResponseBody>> {
    Box::new(aws_error(StatusCode::FORBIDDEN, error_type, message))
}

/// An AWS JSON error: `{"message"}` and the `x-amzn-ErrorType` header.
fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response<ResponseBody> {
    let body = json!({ "message": message }).to_string();
    let mut response = Response::new(ResponseBody::now(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(error_type) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

/// The answer of an injected [`Fault::Status`], in AWS's error shape.
pub(crate) fn status_fault(code: u16) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error_type = match status.as_u16() {
        429 => "ThrottlingException",
        503 => "ServiceUnavailable",
        500.. => "InternalFailure",
        _ => "ValidationError",
    };
    aws_error(
        status,
        error_type,
        &format!("injected fault: HTTP {}", status.as_u16()),
    )
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    if text.len() != 16 || text.get(8..9) != Some("T") || text.get(15..16) != Some("Z") {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

#[derive(Deserialize)]
struct Raw {
    inputs: Option<Inputs>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    Text(String),
    Texts(Vec<String>),
}

#[derive(Deserialize)]
struct Parameters {
    max_new_tokens: Option<u64>,
    ignore_eos_token: Option<bool>,
    min_new_tokens: Option<u64>,
}

/// Parses a TGI / LMI request body; the error is a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<GenerationRequest, String> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let prompt = match raw
        .inputs
        .ok_or("invalid request body: missing field `inputs`")?
    {
        Inputs::Text(text) => text,
        Inputs::Texts(texts) => texts.join("\n"),
    };
    let parameters = raw.parameters;
    let max_tokens = parameters
        .as_ref()
        .and_then(|p| p.max_new_tokens)
        .map(|n| n.min(u64::from(MAX_OUTPUT_TOKENS)) as u32);
    let fill = parameters
        .as_ref()
        .is_some_and(|p| p.ignore_eos_token == Some(true) || p.min_new_tokens.is_some());
    Ok(GenerationRequest {
        model: DEFAULT_MODEL.to_string(),
        prompt,
        max_tokens,
        // The route streams whatever the body says.
        stream: true,
        include_usage: true,
        fill,
    })
}

/// Formats the container's stream: TGI SSE events or LMI JSON lines.
struct Container {
    lmi: bool,
    newline: &'static str,
}

impl Container {
    /// One token's event; the last one carries the whole text and details.
    fn token(&self, index: usize, text: &str, last: Option<(&str, &str, usize, usize)>) -> String {
        let id = 1000 + index;
        let mut event = if self.lmi {
            json!({ "token": { "id": id, "text": text, "log_prob": -0.25 } })
        } else {
            json!({
                "index": index,
                "token": { "id": id, "text": text, "logprob": -0.25, "special": false },
                "generated_text": null,
                "details": null,
            })
        };
        if let Some((generated, reason, generated_tokens, input_length)) = last {
            event["generated_text"] = json!(generated);
            event["details"] = if self.lmi {
                json!({ "finish_reason": reason, "generated_tokens": generated_tokens })
            } else {
                json!({
                    "finish_reason": reason,
                    "generated_tokens": generated_tokens,
                    "seed": null,
                    "input_length": input_length,
                })
            };
        }
        self.frame(&event.to_string())
    }

    /// A final event with no text: an end-of-sequence special token.
    fn empty_end(&self, reason: &str, input_length: usize) -> String {
        let event = if self.lmi {
            json!({
                "token": { "id": 2, "text": "", "log_prob": 0.0, "special_token": true },
                "generated_text": "",
                "details": { "finish_reason": reason, "generated_tokens": 0 },
            })
        } else {
            json!({
                "index": 0,
                "token": { "id": 2, "text": "", "logprob": 0.0, "special": true },
                "generated_text": "",
                "details": { "finish_reason": reason, "generated_tokens": 0, "seed": null, "input_length": input_length },
            })
        };
        self.frame(&event.to_string())
    }

    fn frame(&self, json: &str) -> String {
        let nl = self.newline;
        if self.lmi {
            format!("{json}\n")
        } else {
            // TGI writes `data:` without a space.
            format!("data:{json}{nl}{nl}")
        }
    }
}

/// Plans the response to SageMaker request number `index`; `task` and
/// `fault` as for [`plan::plan`](super::plan::plan).
pub(crate) fn plan(
    script: &Script,
    lmi: bool,
    request: &GenerationRequest,
    task: Option<Task>,
    fault: Option<Fault>,
    index: u64,
) -> Timeline {
    let mut rng = ChaCha8Rng::seed_from_u64(script.seed);
    rng.set_stream(index);
    let mut cuts = ChaCha8Rng::seed_from_u64(script.seed ^ CUT_STREAM);
    cuts.set_stream(index);

    let prompt_tokens = Tokenizer::bundled().count(&request.prompt);
    let spec = Spec {
        max_tokens: request
            .max_tokens
            .unwrap_or(script.output_tokens)
            .min(MAX_OUTPUT_TOKENS),
        // Neither TGI nor LMI streams reasoning apart from the text.
        reasoning_tokens: 0,
        task,
        fill: request.fill,
        long_words: script.long_words,
    };
    let output = generate::generate(&spec, &mut rng);
    let first = clamp(
        script.ttft.saturating_add(
            script
                .ttft_per_prompt_token
                .saturating_mul(u32::try_from(prompt_tokens).unwrap_or(u32::MAX)),
        ),
    );
    let events = token_events(&output, script.tokens_per_event.max(1) as usize);
    let offsets: Vec<Duration> = events
        .iter()
        .map(|event| {
            let at = first.saturating_add(
                script
                    .inter_token
                    .saturating_mul(u32::try_from(event.tokens_before).unwrap_or(u32::MAX)),
            );
            clamp(jittered(at, script.jitter, &mut rng))
        })
        .collect();
    let last_at = offsets.iter().copied().max().unwrap_or(first);
    let container = Container {
        lmi,
        newline: if script.crlf { "\r\n" } else { "\n" },
    };
    let total = output.content.len();
    let reason = match output.finish_reason {
        FinishReason::Length => "length",
        FinishReason::Stop => "eos_token",
    };
    let generated = output.content.concat();
    let final_details = (fault != Some(Fault::MissingDone)).then_some((
        generated.as_str(),
        reason,
        total,
        prompt_tokens,
    ));

    // Each event's bytes: its tokens, one container event per token.
    let mut texts: Vec<(Duration, String)> = Vec::with_capacity(events.len() + 1);
    let mut token_index = 0;
    for (event, at) in events.iter().zip(&offsets) {
        let mut text = String::new();
        for token in output
            .content
            .iter()
            .skip(event.tokens_before)
            .take(event.tokens)
        {
            token_index += 1;
            let last = (token_index == total).then_some(()).and(final_details);
            text.push_str(&container.token(token_index, token, last));
        }
        texts.push((*at, text));
    }
    if total == 0 && fault != Some(Fault::MissingDone) {
        texts.push((first, container.empty_end(reason, prompt_tokens)));
    }

    let half = total / 2;
    let kept = events
        .iter()
        .take_while(|event| event.tokens_before + event.tokens <= half)
        .count();
    let cut_at = offsets.get(kept).copied().unwrap_or(last_at);
    let (texts, end_at, end, tail) = match fault {
        Some(Fault::Disconnect) => (&texts[..kept.min(texts.len())], cut_at, End::Abort, None),
        Some(Fault::Stall) => (&texts[..kept.min(texts.len())], cut_at, End::Stall, None),
        Some(Fault::StreamError) => (
            &texts[..kept.min(texts.len())],
            cut_at,
            End::Finish,
            Some(exception_frame(
                "ModelStreamError",
                &json!({"Message": "injected stream error", "ErrorCode": "StreamBroken"})
                    .to_string(),
            )),
        ),
        _ => (&texts[..], last_at, End::Finish, None),
    };
    let corrupt_at = (fault == Some(Fault::MalformedEvent)).then_some(texts.len() / 2);

    // Move the first bytes of about half the events to the previous
    // deadline, never the byte that completes their first line.
    let mut due: Vec<(Duration, Vec<u8>)> = texts
        .iter()
        .map(|(at, text)| (*at, text.as_bytes().to_vec()))
        .collect();
    for i in 1..due.len() {
        let first_line = due[i].1.iter().position(|&b| b == b'\n').unwrap_or(0);
        if first_line > 1 && cuts.gen_bool(0.5) {
            let head_len = cuts.gen_range(1..first_line);
            let head: Vec<u8> = due[i].1.drain(..head_len).collect();
            due[i - 1].1.extend_from_slice(&head);
        }
    }

    let mut frames: Vec<(Duration, Bytes)> = Vec::with_capacity(due.len() + 1);
    for (i, (at, bytes)) in due.iter().enumerate() {
        let mut wire = Vec::with_capacity(bytes.len() + 64);
        for part in split_parts(bytes, &mut cuts) {
            wire.extend(payload_part(part));
        }
        if corrupt_at == Some(i) {
            let mut bad = payload_part(b"data:{\"token\":");
            if let Some(crc) = bad.last_mut() {
                *crc ^= 0xff;
            }
            wire.extend(bad);
        }
        frames.push((*at, Bytes::from(wire)));
    }
    if let Some(tail) = tail {
        frames.push((end_at, Bytes::from(tail)));
    }
    Timeline {
        status: StatusCode::OK,
        content_type: CONTENT_TYPE_EVENTSTREAM,
        head_at: Duration::ZERO,
        frames,
        end_at,
        end,
        whole: false,
        tail: None,
        first_event: offsets.first().copied(),
    }
}

/// Cuts `bytes` into one to three pieces at seeded offsets (and at most
/// [`MAX_PART_BYTES`] each).
fn split_parts<'a>(bytes: &'a [u8], rng: &mut impl Rng) -> Vec<&'a [u8]> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut cuts = vec![0, bytes.len()];
    for _ in 0..rng.gen_range(0..=2) {
        cuts.push(rng.gen_range(0..=bytes.len()));
    }
    let mut at = MAX_PART_BYTES;
    while at < bytes.len() {
        cuts.push(at);
        at += MAX_PART_BYTES;
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| bytes.get(w[0]..w[1]))
        .collect()
}

/// A `PayloadPart` event frame.
pub(crate) fn payload_part(bytes: &[u8]) -> Vec<u8> {
    encode(
        Message::new(bytes.to_vec())
            .add_header(string_header(":event-type", "PayloadPart"))
            .add_header(string_header(":content-type", "application/octet-stream"))
            .add_header(string_header(":message-type", "event")),
    )
}

/// An exception frame (`ModelStreamError`, `InternalStreamFailure`).
pub(crate) fn exception_frame(kind: &str, json: &str) -> Vec<u8> {
    encode(
        Message::new(json.as_bytes().to_vec())
            .add_header(string_header(":exception-type", kind))
            .add_header(string_header(":content-type", "application/json"))
            .add_header(string_header(":message-type", "exception")),
    )
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}

fn encode(message: Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Only payloads over 16 MiB or headers over 32 KiB fail to encode;
    // parts are at most MAX_PART_BYTES and headers are fixed and short.
    if aws_smithy_eventstream::frame::write_message_to(&message, &mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::eventstream::{header_str, FrameDecoder};

    fn request(max_tokens: u32) -> GenerationRequest {
        GenerationRequest {
            model: "m".to_string(),
            prompt: "hello world".to_string(),
            max_tokens: Some(max_tokens),
            stream: true,
            include_usage: true,
            fill: false,
        }
    }

    /// The container bytes of every `PayloadPart`, in order, with deadlines.
    fn payloads(timeline: &Timeline) -> Vec<(Duration, Vec<u8>)> {
        let mut out = Vec::new();
        for (at, bytes) in &timeline.frames {
            let mut decoder = FrameDecoder::new();
            decoder.push(bytes);
            while let Ok(Some(message)) = decoder.next_message() {
                if header_str(&message, ":event-type") == Some("PayloadPart") {
                    out.push((*at, message.payload().to_vec()));
                }
            }
        }
        out
    }

    #[test]
    fn the_stream_is_tgi_sse_cut_into_parts_and_lines_complete_on_time() {
        let script = Script::new()
            .ttft(Duration::from_millis(50))
            .inter_token(Duration::from_millis(5));
        let timeline = plan(&script, false, &request(20), None, None, 3);
        let parts = payloads(&timeline);
        assert!(parts.len() > 20, "{} parts for 20 events", parts.len());
        let stream: Vec<u8> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
        let text = String::from_utf8(stream).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 20);
        assert!(events.iter().all(|e| e.starts_with("data:{")));
        assert!(
            events[19].contains(r#""generated_tokens":20"#),
            "{}",
            events[19]
        );
        assert!(events[18].contains(r#""generated_text":null"#));
        // Event i's blank line arrives exactly at its deadline.
        let mut ends = Vec::new();
        let mut seen = Vec::new();
        for (at, part) in &parts {
            for &byte in part {
                seen.push(byte);
                if seen.ends_with(b"\n\n") {
                    ends.push(at.as_millis() as u64);
                }
            }
        }
        let expected: Vec<u64> = (0..20).map(|i| 50 + 5 * i).collect();
        assert_eq!(ends, expected);
        // Some lines did start in a part sent at an earlier deadline.
        let early = parts
            .windows(2)
            .filter(|w| w[0].0 != w[1].0 && !w[0].1.ends_with(b"\n\n"))
            .count();
        assert!(early > 0, "no line spans two deadlines");
    }

    #[test]
    fn lmi_lines_and_faults() {
        let script = Script::new();
        let lmi = plan(&script, true, &request(4), None, None, 1);
        let text: Vec<u8> = payloads(&lmi).into_iter().flat_map(|(_, p)| p).collect();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(r#"{"token":{"#), "{}", lines[0]);
        assert!(lines[3].contains(r#""generated_tokens":4"#));

        let missing = plan(
            &script,
            false,
            &request(4),
            None,
            Some(Fault::MissingDone),
            1,
        );
        let text: Vec<u8> = payloads(&missing)
            .into_iter()
            .flat_map(|(_, p)| p)
            .collect();
        assert!(!String::from_utf8(text)
            .unwrap()
            .contains("generated_tokens"));

        let error = plan(
            &script,
            false,
            &request(10),
            None,
            Some(Fault::StreamError),
            1,
        );
        let (_, last) = error.frames.last().unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(last);
        let message = decoder.next_message().unwrap().unwrap();
        assert_eq!(
            header_str(&message, ":exception-type"),
            Some("ModelStreamError")
        );
        assert!(payloads(&error).len() >= 5);

        let malformed = plan(
            &script,
            false,
            &request(10),
            None,
            Some(Fault::MalformedEvent),
            1,
        );
        let mut decoder = FrameDecoder::new();
        let mut failed = false;
        for (_, bytes) in &malformed.frames {
            decoder.push(bytes);
            loop {
                match decoder.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
        }
        assert!(failed, "the corrupted frame fails its CRC");
    }

    #[test]
    fn parts_are_cut_anywhere_but_lose_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let bytes: Vec<u8> = (0..=255).collect();
        for _ in 0..100 {
            let parts = split_parts(&bytes, &mut rng);
            assert!((1..=3).contains(&parts.len()));
            assert_eq!(parts.concat(), bytes);
        }
        assert!(split_parts(&[], &mut rng).is_empty());
    }

    #[test]
    fn requests_parse_and_dates_read() {
        let request = parse(
            br#"{"inputs":"hi","parameters":{"max_new_tokens":7,"details":true,"ignore_eos_token":true},"stream":true}"#,
        )
        .unwrap();
        assert_eq!(request.prompt, "hi");
        assert_eq!(request.max_tokens, Some(7));
        assert!(request.fill && request.stream);
        assert!(parse(br#"{"parameters":{}}"#)
            .unwrap_err()
            .contains("`inputs`"));
        assert!(parse(b"[]").is_err());
        assert_eq!(
            parse_amz_date("20240229T235959Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_251_199))
        );
        assert_eq!(parse_amz_date("2024-02-29T23:59Z"), None);
        assert_eq!(parse_amz_date("20241329T235959Z"), None);
        assert!(is_invocation_path(
            "/endpoints/my-ep/invocations-response-stream"
        ));
        assert!(!is_invocation_path(
            "/endpoints//invocations-response-stream"
        ));
        assert!(!is_invocation_path(
            "/endpoints/a/b/invocations-response-stream"
        ));
    }
}
