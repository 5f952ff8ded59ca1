//! The OpenAI protocols: `POST /v1/chat/completions` and
//! `POST /v1/completions` (also Azure OpenAI's deployment path and Vertex
//! AI's OpenAI-compatible routes): request bodies, streamed chunks as SSE
//! events, whole responses, error bodies, and the hostile faults (which
//! only these formats inject). Chunks are built as text around pre-escaped
//! fields because a response's every event is formatted up front and there
//! can be many.

use std::time::Duration;

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::generate::{FinishReason, Output, MAX_OUTPUT_TOKENS};
use super::protocol::{bearer_check, Protocol, ResponseInfo};
use super::request::{GenerationRequest, DEFAULT_MODEL};
use super::schedule::{Schedule, TokenKind, Usage};
use super::state::State;
use super::timeline::{lay_out, Accounting, End, Ending, StreamFormat, Tail, Timeline};
use crate::spec::Fault;
use crate::workload::tokenizer::Tokenizer;

/// Chat or completions, with the way a route sends its key.
pub(crate) struct OpenAi {
    /// The chat API (`messages`), not completions (`prompt`).
    chat: bool,
    /// What the route checks before reading the body.
    check: fn(&Parts, &State) -> Option<Response<ResponseBody>>,
}

/// `POST /v1/chat/completions`.
pub(crate) static CHAT: OpenAi = OpenAi {
    chat: true,
    check: bearer_check,
};
/// `POST /v1/completions`.
pub(crate) static COMPLETIONS: OpenAi = OpenAi {
    chat: false,
    check: bearer_check,
};
/// Azure OpenAI's deployment path: chat, with its own key check (`api-key`
/// or Bearer).
pub(crate) static AZURE_CHAT: OpenAi = OpenAi {
    chat: true,
    check: super::azure::check,
};

impl Protocol for OpenAi {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        parse(self.chat, body)
    }

    fn check_head(&self, head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
        (self.check)(head, state)
    }

    fn reasoning(&self) -> bool {
        // The completions API has no field for reasoning.
        self.chat
    }

    fn hostile_faults(&self) -> bool {
        true
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        Box::new(Formatter::of(self.chat, info))
    }

    fn timeline(
        &self,
        schedule: &Schedule,
        request: &GenerationRequest,
        info: &ResponseInfo,
        fault: Option<Fault>,
    ) -> Timeline {
        let mut formatter = Formatter::of(self.chat, info);
        if !request.stream {
            return whole_response(&formatter, schedule, fault);
        }
        if let Some(timeline) = hostile(&mut formatter, fault, schedule) {
            return timeline;
        }
        lay_out(&mut formatter, schedule, fault)
    }
}

#[derive(Deserialize)]
struct Raw {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    prompt: Option<Prompt>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    ignore_eos: Option<bool>,
    min_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message {
    // Assistant messages with tool calls carry `content: null`.
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Parses an OpenAI chat (`messages`) or completions (`prompt`) body.
pub(crate) fn parse(chat: bool, body: &[u8]) -> Result<GenerationRequest, String> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let prompt = match chat {
        true => {
            let messages = raw
                .messages
                .ok_or("invalid request body: missing field `messages`")?;
            messages
                .into_iter()
                .filter_map(|message| message.content)
                .map(|content| match content {
                    Content::Text(text) => text,
                    Content::Parts(parts) => parts
                        .into_iter()
                        .filter(|part| part.kind.as_deref().is_none_or(|kind| kind == "text"))
                        .filter_map(|part| part.text)
                        .collect::<Vec<_>>()
                        .join("\n"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        false => match raw
            .prompt
            .ok_or("invalid request body: missing field `prompt`")?
        {
            Prompt::Text(text) => text,
            Prompt::Texts(texts) => texts.join("\n"),
            Prompt::Tokens(ids) => Tokenizer::bundled().decode(&ids),
        },
    };
    let max_tokens = raw
        .max_tokens
        .or(raw.max_completion_tokens)
        .map(|n| n.min(u64::from(MAX_OUTPUT_TOKENS)) as u32);
    Ok(GenerationRequest {
        model: raw.model.unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        prompt,
        max_tokens,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        fill: raw.ignore_eos.unwrap_or(false) || raw.min_tokens.is_some(),
    })
}

/// Formats the events and bodies of one response.
pub(crate) struct Formatter {
    chat: bool,
    /// `"id":...,"object":...,"created":...,"model":...` — the same in every chunk.
    head: String,
    newline: &'static str,
}

impl Formatter {
    /// The formatter of the response `info` describes.
    fn of(chat: bool, info: &ResponseInfo) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let id = match chat {
            true => format!("chatcmpl-builtin-{}", info.index),
            false => format!("cmpl-builtin-{}", info.index),
        };
        Formatter::new(chat, &id, info.model, created, info.crlf)
    }

    pub(crate) fn new(chat: bool, id: &str, model: &str, created: u64, crlf: bool) -> Self {
        let object = match chat {
            true => "chat.completion.chunk",
            false => "text_completion",
        };
        Formatter {
            chat,
            head: format!(
                r#""id":{},"object":"{object}","created":{created},"model":{}"#,
                quote(id),
                quote(model)
            ),
            newline: if crlf { "\r\n" } else { "\n" },
        }
    }

    /// `data: <payload>` and the blank line that ends an SSE event.
    fn event(&self, payload: &str) -> Bytes {
        let nl = self.newline;
        Bytes::from(format!("data: {payload}{nl}{nl}"))
    }

    /// The chat stream's first chunk: the assistant role, no text yet.
    pub(crate) fn role_chunk(&self) -> Bytes {
        self.event(&format!(
            r#"{{{},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]}}"#,
            self.head
        ))
    }

    /// One event carrying `text` (one or more tokens).
    pub(crate) fn token_chunk(&self, kind: TokenKind, text: &str) -> Bytes {
        let text = quote(text);
        let choice = match (self.chat, kind) {
            (true, TokenKind::Content) => format!(r#""delta":{{"content":{text}}}"#),
            (true, TokenKind::Reasoning) => {
                format!(r#""delta":{{"reasoning_content":{text}}}"#)
            }
            _ => format!(r#""text":{text}"#),
        };
        self.event(&format!(
            r#"{{{},"choices":[{{"index":0,{choice},"finish_reason":null}}]}}"#,
            self.head
        ))
    }

    /// The chunk that ends the choice: no text, a `finish_reason`.
    pub(crate) fn finish_chunk(&self, reason: FinishReason) -> Bytes {
        let empty = match self.chat {
            true => r#""delta":{}"#,
            false => r#""text":"""#,
        };
        self.event(&format!(
            r#"{{{},"choices":[{{"index":0,{empty},"finish_reason":"{}"}}]}}"#,
            self.head,
            reason.as_str()
        ))
    }

    /// The `stream_options.include_usage` chunk: no choices, the usage.
    pub(crate) fn usage_chunk(&self, usage: Usage) -> Bytes {
        self.event(&format!(
            r#"{{{},"choices":[],"usage":{}}}"#,
            self.head,
            usage_json(usage)
        ))
    }

    pub(crate) fn done(&self) -> Bytes {
        self.event("[DONE]")
    }

    /// An SSE comment, which clients must ignore.
    pub(crate) fn keep_alive(&self) -> Bytes {
        let nl = self.newline;
        Bytes::from(format!(": keep-alive{nl}{nl}"))
    }

    /// The [`Fault::MalformedEvent`](crate::spec::Fault::MalformedEvent) event.
    pub(crate) fn malformed(&self) -> Bytes {
        self.event(MALFORMED_JSON)
    }

    /// The [`Fault::StreamError`](crate::spec::Fault::StreamError) event.
    pub(crate) fn stream_error(&self) -> Bytes {
        self.event(&stream_error_json().to_string())
    }

    /// A whole non-streaming response.
    pub(crate) fn full_response(&self, output: &Output, usage: Usage) -> Bytes {
        let content = output.content.concat();
        let reason = output.finish_reason.as_str();
        let (object, choice) = match self.chat {
            true => {
                let mut message = json!({ "role": "assistant", "content": content });
                if !output.reasoning.is_empty() {
                    message["reasoning_content"] = Value::String(output.reasoning.concat());
                }
                (
                    "chat.completion",
                    json!({ "index": 0, "message": message, "finish_reason": reason }),
                )
            }
            false => (
                "text_completion",
                json!({ "index": 0, "text": content, "finish_reason": reason }),
            ),
        };
        // The head says "…chunk" for chat; a whole response has its own object.
        let head = self
            .head
            .replacen("\"chat.completion.chunk\"", &format!("\"{object}\""), 1);
        Bytes::from(format!(
            r#"{{{head},"choices":[{choice}],"usage":{}}}"#,
            usage_json(usage)
        ))
    }
}

impl StreamFormat for Formatter {
    fn opening(&mut self) -> Vec<Bytes> {
        // Real servers send the role as soon as they start on a request.
        match self.chat {
            true => vec![self.role_chunk()],
            false => Vec::new(),
        }
    }

    fn keep_alive(&mut self) -> Option<Bytes> {
        Some(Formatter::keep_alive(self))
    }

    fn tokens(&mut self, kind: TokenKind, tokens: &[String]) -> Bytes {
        self.token_chunk(kind, &tokens.concat())
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        let mut frames = vec![self.finish_chunk(ending.output.finish_reason)];
        if ending.include_usage {
            frames.push(self.usage_chunk(ending.usage));
        }
        if ending.end_marker {
            frames.push(self.done());
        }
        frames
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        vec![Formatter::stream_error(self)]
    }

    fn malformed(&mut self) -> Bytes {
        Formatter::malformed(self)
    }
}

/// `usage` as OpenAI reports it.
fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "completion_tokens_details": { "reasoning_tokens": usage.reasoning_tokens },
    })
}

/// Bytes of one chunk of a hostile run.
const HOSTILE_CHUNK_BYTES: usize = 64 * 1024;

/// The hostile faults: a line that never ends, one giant content event, a
/// flood of one-token events; `None` for any other fault.
fn hostile(
    formatter: &mut Formatter,
    fault: Option<Fault>,
    schedule: &Schedule,
) -> Option<Timeline> {
    let (first, usage) = (schedule.first, schedule.usage);
    // A content event cut where its text goes.
    let marked = formatter.token_chunk(TokenKind::Content, "\u{1}");
    let marker = b"\\u0001";
    let at = marked.windows(marker.len()).position(|w| w == marker)?;
    let (open, close) = (marked.slice(..at), marked.slice(at + marker.len()..));
    let filler = Bytes::from(vec![b'a'; HOSTILE_CHUNK_BYTES]);
    let fault = fault?;
    if !matches!(
        fault,
        Fault::EndlessLine | Fault::HugeEvent { .. } | Fault::EventFlood { .. }
    ) {
        return None;
    }
    let mut frames: Vec<(Duration, Bytes)> = formatter
        .opening()
        .into_iter()
        .map(|frame| (Duration::ZERO, frame))
        .collect();
    let tail = match fault {
        Fault::EndlessLine => {
            frames.push((first, open));
            Tail {
                chunk: filler,
                repeat: None,
                then: Vec::new(),
            }
        }
        Fault::HugeEvent { bytes } => {
            frames.push((first, open));
            Tail {
                chunk: filler,
                repeat: Some(bytes.div_ceil(HOSTILE_CHUNK_BYTES as u64)),
                then: vec![
                    close,
                    formatter.finish_chunk(FinishReason::Length),
                    formatter.done(),
                ],
            }
        }
        Fault::EventFlood { events } => {
            let event = formatter.token_chunk(TokenKind::Content, " the");
            let per_chunk = (HOSTILE_CHUNK_BYTES / event.len().max(1)).max(1) as u64;
            let chunk: Vec<u8> = event.repeat(per_chunk as usize);
            // The whole chunks, then the events left over one by one.
            let mut then: Vec<Bytes> = (0..events % per_chunk).map(|_| event.clone()).collect();
            then.push(formatter.finish_chunk(FinishReason::Length));
            then.push(formatter.usage_chunk(Usage {
                completion_tokens: usize::try_from(events).unwrap_or(usize::MAX),
                reasoning_tokens: 0,
                ..usage
            }));
            then.push(formatter.done());
            Tail {
                chunk: Bytes::from(chunk),
                repeat: Some(events / per_chunk),
                then,
            }
        }
        _ => return None,
    };
    Some(Timeline {
        status: StatusCode::OK,
        content_type: "text/event-stream",
        head_at: Duration::ZERO,
        frames,
        end_at: first,
        end: End::Finish,
        whole: false,
        tail: Some(tail),
        first_event: None,
        // Hostile responses are faults: their tokens are not counted.
        accounting: Accounting {
            prompt_tokens: usage.prompt_tokens,
            ..Accounting::default()
        },
    })
}

/// A non-streaming response: the whole body at the time the last token
/// would have been generated (or a fault at half time).
fn whole_response(formatter: &Formatter, schedule: &Schedule, fault: Option<Fault>) -> Timeline {
    let (output, usage, last) = (&schedule.output, schedule.usage, schedule.last);
    let half_at = schedule
        .offsets
        .get(schedule.events.len() / 2)
        .copied()
        .unwrap_or(last);
    let json = |status, head_at, body: Bytes| Timeline {
        status,
        content_type: "application/json",
        head_at,
        end_at: head_at,
        frames: vec![(head_at, body)],
        end: End::Finish,
        whole: true,
        tail: None,
        first_event: None,
        accounting: Accounting {
            prompt_tokens: usage.prompt_tokens,
            ..Accounting::default()
        },
    };
    let broken = |end| Timeline {
        status: StatusCode::OK,
        content_type: "application/json",
        head_at: half_at,
        frames: Vec::new(),
        end_at: half_at,
        end,
        whole: false,
        tail: None,
        first_event: None,
        accounting: Accounting {
            prompt_tokens: usage.prompt_tokens,
            ..Accounting::default()
        },
    };
    match fault {
        // The connection drops at half time; hyper closes it before the
        // buffered head is flushed, so the client sees no response at all.
        Some(Fault::Disconnect) => broken(End::Abort),
        Some(Fault::Stall) => broken(End::Stall),
        Some(Fault::StreamError) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            half_at,
            stream_error_body(),
        ),
        Some(Fault::MalformedEvent) => json(
            StatusCode::OK,
            last,
            Bytes::from_static(MALFORMED_JSON.as_bytes()),
        ),
        _ => {
            // The whole body carries every generated token.
            let mut whole = json(StatusCode::OK, last, formatter.full_response(output, usage));
            whole.accounting.generated = vec![(0, usage.completion_tokens)];
            whole.accounting.finish = Some(output.finish_reason);
            whole
        }
    }
}

/// Invalid JSON, cut off the way a broken proxy would cut it.
pub(crate) const MALFORMED_JSON: &str = r#"{"choices": ["#;

fn stream_error_json() -> Value {
    json!({"error": {"message": "injected stream error", "type": "server_error", "code": 500}})
}

/// An OpenAI-style error body: `{"error":{"message","type","code"}}`.
pub(crate) fn error_body(message: &str, kind: &str, code: Value) -> Bytes {
    Bytes::from(
        json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
            .to_string(),
    )
}

/// The error body of [`Fault::StreamError`](super::Fault::StreamError) on a
/// non-streaming request.
pub(crate) fn stream_error_body() -> Bytes {
    Bytes::from(stream_error_json().to_string())
}

/// `GET /v1/models`: one model.
pub(crate) fn models_body(model: &str, created: u64) -> Bytes {
    Bytes::from(
        json!({
            "object": "list",
            "data": [{ "id": model, "object": "model", "created": created, "owned_by": "llmperf" }],
        })
        .to_string(),
    )
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    // Serializing a str cannot fail; the fallback only keeps this panic-free.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: &Bytes) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn chat_chunks_have_the_openai_shape() {
        let f = Formatter::new(true, "chatcmpl-1", "m\"x", 7, false);
        let role = payload(&f.role_chunk());
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["model"], "m\"x");
        assert_eq!(role["created"], 7);
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(role["choices"][0]["finish_reason"], Value::Null);
        let token = payload(&f.token_chunk(TokenKind::Content, " a\n\"b"));
        assert_eq!(token["choices"][0]["delta"]["content"], " a\n\"b");
        let thought = payload(&f.token_chunk(TokenKind::Reasoning, " hm"));
        assert_eq!(thought["choices"][0]["delta"]["reasoning_content"], " hm");
        let finish = payload(&f.finish_chunk(FinishReason::Stop));
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = payload(&f.usage_chunk(Usage {
            prompt_tokens: 3,
            completion_tokens: 5,
            reasoning_tokens: 2,
        }));
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 8);
        assert_eq!(
            usage["usage"]["completion_tokens_details"]["reasoning_tokens"],
            2
        );
        assert_eq!(&f.done()[..], b"data: [DONE]\n\n");
    }

    #[test]
    fn completion_chunks_and_crlf() {
        let f = Formatter::new(false, "cmpl-1", "m", 7, true);
        let event = f.token_chunk(TokenKind::Content, " x");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.ends_with("}\r\n\r\n"), "{text:?}");
        let json: Value = serde_json::from_str(text.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(json["object"], "text_completion");
        assert_eq!(json["choices"][0]["text"], " x");
        assert_eq!(&f.keep_alive()[..], b": keep-alive\r\n\r\n");
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn chat_joins_string_and_part_contents() {
        let body = br#"{"model":"m","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null}
        ],"max_completion_tokens":7,"stream":true,"stream_options":{"include_usage":true},"min_tokens":3}"#;
        let request = parse(true, body).unwrap();
        assert_eq!(request.prompt, "be brief\na\nb");
        assert_eq!(request.model, "m");
        assert_eq!(request.max_tokens, Some(7));
        assert!(request.stream && request.include_usage && request.fill);
    }

    #[test]
    fn completions_accept_string_list_and_token_prompts() {
        let one = parse(false, br#"{"prompt":"hi"}"#).unwrap();
        assert_eq!(one.prompt, "hi");
        assert_eq!(one.model, DEFAULT_MODEL);
        assert!(!one.stream && !one.fill);
        let many = parse(false, br#"{"prompt":["a","b"],"max_tokens":1e12}"#);
        assert!(many.is_err(), "a float max_tokens is rejected");
        let many = parse(false, br#"{"prompt":["a","b"],"max_tokens":99999999999}"#).unwrap();
        assert_eq!(many.prompt, "a\nb");
        assert_eq!(many.max_tokens, Some(MAX_OUTPUT_TOKENS));
        let ids = Tokenizer::bundled().encode("hello world");
        let body = serde_json::to_vec(&serde_json::json!({ "prompt": ids })).unwrap();
        assert_eq!(parse(false, &body).unwrap().prompt, "hello world");
    }

    #[test]
    fn problems_are_named() {
        let missing = parse(true, br#"{"model":"m"}"#).unwrap_err();
        assert!(missing.contains("`messages`"), "{missing}");
        let syntax = parse(true, b"{not json").unwrap_err();
        assert!(syntax.contains("line 1 column 2"), "{syntax}");
        let negative = parse(true, br#"{"messages":[],"max_tokens":-1}"#).unwrap_err();
        assert!(negative.contains("-1"), "{negative}");
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"\xff\xfe",
            br#"{"messages":"x"}"#,
        ] {
            assert!(parse(true, body).is_err());
            assert!(parse(false, body).is_err());
        }
    }
}
