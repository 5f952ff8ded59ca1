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
use hyper::header::CONTENT_TYPE;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::generate::FinishReason;
use super::protocol::{Protocol, ResponseInfo};
use super::request::GenerationRequest;
use super::schedule::{Schedule, TokenKind};
use super::state::State;
use super::tgi::{self, TgiFormat};
use super::timeline::{lay_out, End, Ending, StreamFormat, Timeline};
use crate::endpoint::sagemaker::{
    sign, AwsCredentials, SIGNING_SERVICE, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
use crate::spec::{Fault, Secret};

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

/// A SageMaker endpoint whose container streams TGI SSE or LMI JSON lines.
pub(crate) struct SageMaker {
    lmi: bool,
}

/// A TGI container.
pub(crate) static SAGEMAKER_TGI: SageMaker = SageMaker { lmi: false };
/// An LMI container (asked for `application/jsonlines`).
pub(crate) static SAGEMAKER_LMI: SageMaker = SageMaker { lmi: true };

/// The protocol of a SageMaker request: LMI JSON lines when the container
/// is asked for them, TGI SSE otherwise.
pub(crate) fn protocol(head: &Parts) -> &'static dyn Protocol {
    let lmi = head
        .headers
        .get("x-amzn-sagemaker-accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("jsonlines"));
    if lmi {
        &SAGEMAKER_LMI
    } else {
        &SAGEMAKER_TGI
    }
}

impl Protocol for SageMaker {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        tgi::parse(body)
    }

    fn check_head(&self, _head: &Parts, _state: &State) -> Option<Response<ResponseBody>> {
        // Authenticated by a SigV4 signature over the body, checked once it is read.
        None
    }

    fn check_body(&self, head: &Parts, body: &[u8]) -> Option<Response<ResponseBody>> {
        verify(head, body).err().map(|response| *response)
    }

    fn status_fault(&self, code: u16) -> Response<ResponseBody> {
        status_fault(code)
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        if self.lmi {
            Box::new(LmiFormat { sent: 0 })
        } else {
            Box::new(TgiFormat::new(info.prompt_tokens, info.crlf))
        }
    }

    fn timeline(
        &self,
        schedule: &Schedule,
        _request: &GenerationRequest,
        info: &ResponseInfo,
        fault: Option<Fault>,
    ) -> Timeline {
        // The container's stream, with the faults SageMaker raises itself
        // (an exception frame, a frame that fails its CRC) left to the
        // envelope.
        let container_fault = match fault {
            Some(Fault::StreamError) => Some(Fault::Disconnect),
            Some(Fault::MalformedEvent) => None,
            fault => fault,
        };
        let container = lay_out(self.format(info).as_mut(), schedule, container_fault);
        envelope(container, fault, info)
    }
}

/// Checks the SigV4 signature of a request as received, body included;
/// `Err` is the 403 to answer.
fn verify(head: &Parts, body: &[u8]) -> Result<(), Box<Response<ResponseBody>>> {
    let path = head
        .uri
        .path_and_query()
        .map_or_else(|| head.uri.path().to_string(), |p| p.to_string());
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
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
    let url = format!("http://{host}{path}");
    let expected =
        sign("POST", &url, &headers, body, &credentials, region, time).map_err(|_| mismatch())?;
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
fn status_fault(code: u16) -> Response<ResponseBody> {
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

/// LMI's JSON lines: one line per token; the last carries the whole
/// `generated_text` and `details` (finish reason and token count), and a
/// response without tokens ends with a special token of no text.
struct LmiFormat {
    /// Tokens sent so far.
    sent: usize,
}

impl LmiFormat {
    fn line(event: &Value) -> String {
        format!("{event}\n")
    }

    fn token(&mut self, text: &str) -> String {
        self.sent += 1;
        Self::line(&json!({ "token": { "id": 1000 + self.sent, "text": text, "log_prob": -0.25 } }))
    }

    /// One line per token.
    fn lines(&mut self, tokens: &[String]) -> String {
        tokens.iter().map(|text| self.token(text)).collect()
    }

    fn reason(ending: &Ending) -> &'static str {
        match ending.output.finish_reason {
            FinishReason::Length => "length",
            FinishReason::Stop => "eos_token",
        }
    }
}

impl StreamFormat for LmiFormat {
    fn keep_alive(&mut self) -> Option<Bytes> {
        None
    }

    fn tokens(&mut self, _kind: TokenKind, tokens: &[String]) -> Bytes {
        Bytes::from(self.lines(tokens))
    }

    fn last_tokens(&mut self, kind: TokenKind, tokens: &[String], ending: &Ending) -> Vec<Bytes> {
        let Some((last, before)) = tokens.split_last().filter(|_| ending.end_marker) else {
            return vec![self.tokens(kind, tokens)];
        };
        let mut lines = self.lines(before);
        self.sent += 1;
        lines.push_str(&Self::line(&json!({
            "token": { "id": 1000 + self.sent, "text": last, "log_prob": -0.25 },
            "generated_text": ending.output.content.concat(),
            "details": { "finish_reason": Self::reason(ending), "generated_tokens": ending.usage.completion_tokens },
        })));
        vec![Bytes::from(lines)]
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        if !ending.end_marker {
            return Vec::new();
        }
        // A final event with no text: an end-of-sequence special token.
        vec![Bytes::from(Self::line(&json!({
            "token": { "id": 2, "text": "", "log_prob": 0.0, "special_token": true },
            "generated_text": "",
            "details": { "finish_reason": Self::reason(ending), "generated_tokens": 0 },
        })))]
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        // LMI's own error line (SageMaker's ModelStreamError is the envelope's).
        vec![Bytes::from(Self::line(&json!({
            "token": { "id": -1, "text": "", "log_prob": -1, "special_token": true },
            "generated_text": "",
            "details": { "finish_reason": "error", "generated_tokens": null, "inputs": null },
        })))]
    }

    fn malformed(&mut self) -> Bytes {
        Bytes::from_static(b"{\"token\":\n")
    }
}

/// The container's stream in SageMaker's event-stream frames. As SageMaker
/// does, the frames cut the stream anywhere: at each deadline the due bytes
/// go out as one to three parts cut at seeded offsets, and about half the
/// events have their first bytes sent early, with the previous event, so a
/// line spans parts that arrive at different times (it is complete, and
/// due, only when its last part comes). `fault`'s `StreamError` is a
/// `ModelStreamError` exception frame where the cut stream stops,
/// `MalformedEvent` a frame with a corrupted CRC in the middle.
fn envelope(mut container: Timeline, fault: Option<Fault>, info: &ResponseInfo) -> Timeline {
    let mut cuts = ChaCha8Rng::seed_from_u64(info.seed ^ CUT_STREAM);
    cuts.set_stream(info.index);
    // Move the first bytes of about half the events to the previous
    // deadline, never the byte that completes their first line.
    let mut due: Vec<(Duration, Vec<u8>)> = container
        .frames
        .iter()
        .map(|(at, bytes)| (*at, bytes.to_vec()))
        .collect();
    for i in 1..due.len() {
        let first_line = due[i].1.iter().position(|&b| b == b'\n').unwrap_or(0);
        if first_line > 1 && cuts.gen_bool(0.5) {
            let head_len = cuts.gen_range(1..first_line);
            let head: Vec<u8> = due[i].1.drain(..head_len).collect();
            due[i - 1].1.extend_from_slice(&head);
        }
    }
    let corrupt_at = (fault == Some(Fault::MalformedEvent)).then_some(due.len() / 2);
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
    if fault == Some(Fault::StreamError) {
        let exception = exception_frame(
            "ModelStreamError",
            &json!({"Message": "injected stream error", "ErrorCode": "StreamBroken"}).to_string(),
        );
        frames.push((container.end_at, Bytes::from(exception)));
        container.end = End::Finish;
    }
    container.frames = frames;
    container.content_type = CONTENT_TYPE_EVENTSTREAM;
    container
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
    use crate::endpoint::framing::eventstream::{header_str, FrameDecoder};
    use crate::spec::Script;
    use tgi::parse;

    fn plan(
        script: &Script,
        lmi: bool,
        request: &GenerationRequest,
        task: Option<crate::validate::Task>,
        fault: Option<Fault>,
        index: u64,
    ) -> Timeline {
        let protocol = if lmi { &SAGEMAKER_LMI } else { &SAGEMAKER_TGI };
        crate::builtin::protocol::plan(script, protocol, request, task, fault, index)
    }

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
