//! The one way a protocol plugs into the built-in endpoint ([`Protocol`]),
//! and the switchboard ([`route`]): the only place that tells protocols
//! apart.
//!
//! A protocol reads its request body, refuses what it refuses in its own
//! shape, and formats responses ([`StreamFormat`]); the timing is the
//! shared [`Schedule`] and the faults are laid out by
//! [`lay_out`](super::timeline::lay_out), so a protocol file only formats.

use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::request::GenerationRequest;
use super::schedule::Schedule;
use super::state::State;
use super::timeline::{lay_out, StreamFormat, Timeline};
use super::{anthropic, azure, openai, sagemaker, tgi, together, vertex};
use crate::spec::{Fault, Script};
use crate::validate::Task;

/// What a response's format may name: its request's number, model and
/// prompt size, and the script's line endings and seed.
pub(crate) struct ResponseInfo<'a> {
    /// The request's number (1-based), for ids.
    pub(crate) index: u64,
    pub(crate) model: &'a str,
    pub(crate) prompt_tokens: usize,
    /// End lines with `\r\n`.
    pub(crate) crlf: bool,
    /// The script's seed (for draws of a protocol's own, such as where
    /// SageMaker cuts its parts).
    pub(crate) seed: u64,
}

/// A protocol the built-in endpoint speaks.
pub(crate) trait Protocol: Sync {
    /// Parses a request body; the error is a message for a 400.
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String>;

    /// The answer that refuses a request before its body is read (a key
    /// missing from the protocol's own header); by default the script's key
    /// as `Authorization: Bearer`.
    fn check_head(&self, head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
        bearer_check(head, state)
    }

    /// The answer that refuses a request once its body is read (a
    /// signature over it); by default none.
    fn check_body(&self, _head: &Parts, _body: &[u8]) -> Option<Response<ResponseBody>> {
        None
    }

    /// An error answer in the protocol's shape; OpenAI's `kind` and `code`
    /// are mapped to the protocol's own error type where it has one.
    fn error(
        &self,
        status: StatusCode,
        message: &str,
        kind: &str,
        code: Value,
    ) -> Response<ResponseBody> {
        openai_error(status, message, kind, code)
    }

    /// The answer of an injected [`Fault::Status`].
    fn status_fault(&self, code: u16) -> Response<ResponseBody> {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = match status.as_u16() {
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        let mut response = self.error(
            status,
            &format!("injected fault: HTTP {}", status.as_u16()),
            kind,
            json!(status.as_u16()),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    /// Whether the protocol streams reasoning tokens (without a field for
    /// them, a response has none).
    fn reasoning(&self) -> bool {
        false
    }

    /// Whether the hostile faults (a line that never ends, a giant event, a
    /// flood of events) apply to a streamed request; the OpenAI formats'
    /// only.
    fn hostile_faults(&self) -> bool {
        false
    }

    /// The format of one response.
    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat>;

    /// The response planned: by default the format laid on the schedule.
    fn timeline(
        &self,
        schedule: &Schedule,
        _request: &GenerationRequest,
        info: &ResponseInfo,
        fault: Option<Fault>,
    ) -> Timeline {
        lay_out(self.format(info).as_mut(), schedule, fault)
    }
}

/// The protocol a generation route speaks (`path` without its `/v1`), if
/// it is one.
pub(crate) fn route(head: &Parts, path: &str) -> Option<&'static dyn Protocol> {
    let method = &head.method;
    if method != Method::POST {
        return None;
    }
    if let Some(protocol) = vertex::route(path, head.uri.query()) {
        return Some(protocol);
    }
    Some(match path {
        "/chat/completions" => &openai::CHAT,
        "/completions" => &openai::COMPLETIONS,
        "/generate_stream" => &tgi::TGI,
        "/inference" => &together::INFERENCE,
        "/messages" => &anthropic::MESSAGES,
        path if azure::is_chat_path(path) => &openai::AZURE_CHAT,
        path if sagemaker::is_invocation_path(path) => sagemaker::protocol(head),
        _ => return None,
    })
}

/// Whether `fault` changes this request of `protocol` at all; one that does
/// not is not injected (nor counted), so the next rule may match instead.
pub(crate) fn applies(
    protocol: &dyn Protocol,
    fault: Fault,
    request: &GenerationRequest,
    has_task: bool,
) -> bool {
    match fault {
        Fault::CrossOver => has_task,
        Fault::MissingDone => request.stream,
        Fault::EndlessLine | Fault::HugeEvent { .. } | Fault::EventFlood { .. } => {
            request.stream && protocol.hostile_faults()
        }
        _ => true,
    }
}

/// Plans the response to generation request number `index` (1-based) of
/// `protocol`: `task` is the task to answer (already swapped for a
/// cross-over), `fault` an applicable fault other than `Status`.
pub(crate) fn plan(
    script: &Script,
    protocol: &dyn Protocol,
    request: &GenerationRequest,
    task: Option<Task>,
    fault: Option<Fault>,
    index: u64,
) -> Timeline {
    let schedule = Schedule::new(script, request, task, protocol.reasoning(), index);
    let info = ResponseInfo {
        index,
        model: &request.model,
        prompt_tokens: schedule.usage.prompt_tokens,
        crlf: script.crlf,
        seed: script.seed,
    };
    protocol.timeline(&schedule, request, &info, fault)
}

/// Whether the request carries the script's key (or the script requires
/// none) in `header`, after `prefix` (`Bearer `).
pub(crate) fn has_key(head: &Parts, state: &State, header: &str, prefix: &str) -> bool {
    let Some(key) = state.script.api_key.as_deref() else {
        return true;
    };
    let given = head
        .headers
        .get(header)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix(prefix))
        .map(str::trim);
    given == Some(key)
}

/// The 401 answer when the script requires a key the request does not
/// send as `Authorization: Bearer`.
pub(crate) fn bearer_check(head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
    (!has_key(head, state, AUTHORIZATION.as_str(), "Bearer ")).then(|| {
        openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided (the built-in endpoint requires `Authorization: Bearer <key>` with the scripted key)",
            "invalid_request_error",
            json!("invalid_api_key"),
        )
    })
}

/// An OpenAI-style error answer.
pub(crate) fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Value,
) -> Response<ResponseBody> {
    json_response(status, openai::error_body(message, kind, code))
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::now(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::builtin::timeline::End;
    use crate::validate::Direction;
    use crate::workload::tokenizer::Tokenizer;

    fn request(stream: bool, max_tokens: Option<u32>) -> GenerationRequest {
        GenerationRequest {
            model: "m".to_string(),
            prompt: "hello world".to_string(),
            max_tokens,
            stream,
            include_usage: true,
            fill: false,
        }
    }

    fn text(frames: &[(Duration, Bytes)]) -> Vec<String> {
        frames
            .iter()
            .map(|(_, bytes)| String::from_utf8(bytes.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn only_posts_reach_a_protocol() {
        let head = |method: &str, uri: &str| {
            hyper::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let gemini = "/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent";
        assert!(route(&head("POST", gemini), gemini).is_some());
        assert!(route(&head("GET", gemini), gemini).is_none());
        for path in ["/chat/completions", "/messages", "/generate_stream"] {
            assert!(route(&head("POST", path), path).is_some(), "{path}");
            assert!(route(&head("GET", path), path).is_none(), "{path}");
        }
        assert!(route(&head("POST", "/nowhere"), "/nowhere").is_none());
    }

    #[test]
    fn deadlines_follow_the_script() {
        let script = Script::new()
            .ttft(Duration::from_millis(50))
            .inter_token(Duration::from_millis(5))
            .ttft_per_prompt_token(Duration::from_millis(1))
            .tokens_per_event(3)
            .keep_alive(true);
        let timeline = plan(
            &script,
            &openai::CHAT,
            &request(true, Some(10)),
            None,
            None,
            1,
        );
        let at: Vec<u64> = timeline
            .frames
            .iter()
            .map(|(at, _)| at.as_millis() as u64)
            .collect();
        // role, keep-alive, 4 events (3+3+3+1 tokens) from 50 + 2 prompt
        // tokens, finish, usage, [DONE] with the last token.
        assert_eq!(at, [0, 26, 52, 67, 82, 97, 97, 97, 97]);
        assert_eq!(timeline.end, End::Finish);
        assert_eq!(timeline.end_at, Duration::from_millis(97));
        let frames = text(&timeline.frames);
        assert_eq!(frames[1], ": keep-alive\n\n");
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        assert!(frames[7].contains(r#""completion_tokens":10"#));
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_seeded() {
        let script = Script::new()
            .ttft(Duration::from_millis(20))
            .inter_token(Duration::from_millis(10))
            .jitter(Duration::from_millis(3))
            .seed(9);
        let offsets = |index| {
            plan(
                &script,
                &openai::COMPLETIONS,
                &request(true, Some(50)),
                None,
                None,
                index,
            )
            .frames
            .into_iter()
            .map(|(at, _)| at)
            .collect::<Vec<_>>()
        };
        let one = offsets(1);
        assert_eq!(one, offsets(1), "same seed and request, same deadlines");
        assert_ne!(one, offsets(2), "another request draws other jitter");
        let mut moved = 0;
        for (i, at) in one.iter().take(50).enumerate() {
            let nominal = Duration::from_millis(20 + 10 * i as u64);
            let delta = at.abs_diff(nominal);
            assert!(delta <= Duration::from_millis(3), "event {i}: {at:?}");
            moved += usize::from(!delta.is_zero());
        }
        assert!(moved > 40);
    }

    #[test]
    fn reasoning_comes_first_and_is_counted() {
        let script = Script::new()
            .ttft(Duration::from_millis(10))
            .inter_token(Duration::from_millis(1))
            .reasoning_tokens(4);
        let timeline = plan(
            &script,
            &openai::CHAT,
            &request(true, Some(7)), // 4 reasoning and 3 content tokens
            None,
            None,
            1,
        );
        let frames = text(&timeline.frames);
        assert!(frames[1..5].iter().all(|f| f.contains("reasoning_content")));
        assert!(frames[5..8]
            .iter()
            .all(|f| f.contains(r#""delta":{"content""#)));
        assert_eq!(timeline.frames[5].0, Duration::from_millis(14));
        assert!(frames[9].contains(r#""completion_tokens":7"#));
        assert!(frames[9].contains(r#""reasoning_tokens":4"#));
    }

    #[test]
    fn faults_cut_the_stream_at_half() {
        let script = Script::new();
        let cut = |fault| {
            plan(
                &script,
                &openai::CHAT,
                &request(true, Some(10)),
                None,
                Some(fault),
                1,
            )
        };
        let disconnect = cut(Fault::Disconnect);
        assert_eq!(disconnect.frames.len(), 1 + 5);
        assert_eq!(disconnect.end, End::Abort);
        assert_eq!(disconnect.end_at, Duration::from_millis(150));
        let stall = cut(Fault::Stall);
        assert_eq!(stall.frames.len(), 1 + 5);
        assert_eq!(
            (stall.end, stall.end_at),
            (End::Stall, Duration::from_millis(150))
        );
        let error = text(&cut(Fault::StreamError).frames);
        assert!(error.last().unwrap().contains("injected stream error"));
        assert!(!error.iter().any(|f| f.contains("[DONE]")));
        let malformed = text(&cut(Fault::MalformedEvent).frames);
        assert_eq!(malformed[6], "data: {\"choices\": [\n\n");
        assert!(malformed.last().unwrap().contains("[DONE]"));
        let missing = text(&cut(Fault::MissingDone).frames);
        assert!(missing.last().unwrap().contains("usage"));
    }

    #[test]
    fn whole_responses_come_at_the_end() {
        let script = Script::new()
            .ttft(Duration::from_millis(30))
            .inter_token(Duration::from_millis(2));
        let task = Task {
            number: 12,
            direction: Direction::DigitsToWords,
            reply: crate::validate::Reply::Only,
        };
        let timeline = plan(
            &script,
            &openai::CHAT,
            &request(false, None),
            Some(task.clone()),
            None,
            1,
        );
        assert!(timeline.whole);
        let body: serde_json::Value = serde_json::from_slice(&timeline.frames[0].1).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], task.answer());
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let tokens = Tokenizer::bundled().count(&task.answer());
        assert_eq!(body["usage"]["completion_tokens"], tokens);
        let expected = Duration::from_millis(30 + 2 * (tokens as u64 - 1));
        assert_eq!(timeline.head_at, expected);
    }
}
