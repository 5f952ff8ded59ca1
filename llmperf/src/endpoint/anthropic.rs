//! Anthropic's Messages API (`anthropic`): `POST {base}/v1/messages` with
//! `stream: true`.
//!
//! ```sh
//! ANTHROPIC_API_KEY=… llmperf run --api anthropic -m claude-sonnet-4-5 -r 20 -c 4
//! ```
//!
//! Variables: `ANTHROPIC_API_KEY`, `ANTHROPIC_API_BASE` (default
//! `https://api.anthropic.com`; a base ending in `/v1` is accepted too).
//! Headers `x-api-key` and `anthropic-version: 2023-06-01` (another version
//! with the `anthropic_version` option, `--option anthropic_version=…`, or
//! `ANTHROPIC_ANTHROPIC_VERSION`); the body is `{"model", "max_tokens",
//! "system"?, "messages": [{"role": "user", "content": …}, …], "stream":
//! true}` (system messages joined into the top-level `system`) plus the
//! user's extra body (e.g. `thinking`). `max_tokens` is required by
//! Anthropic: the plan's, else [`DEFAULT_MAX_TOKENS`]. There is no
//! `ignore_eos`.
//!
//! The answer is SSE with named events:
//!
//! | event | what it gives |
//! | --- | --- |
//! | `message_start` | `message.usage.input_tokens` (plus cache tokens) |
//! | `content_block_start`, `content_block_stop` | nothing |
//! | `content_block_delta` | `text_delta` text as content, `thinking_delta` as reasoning (`signature_delta` and tool input ignored) |
//! | `message_delta` | `stop_reason`, cumulative `usage.output_tokens` |
//! | `ping` | nothing |
//! | `error` | a stream error (`overloaded_error`, …) |
//! | `message_stop` | the end |
//!
//! Any other event name is an [`ErrorKind::UnknownEvent`]. The input
//! tokens include cache reads and writes, the output tokens include
//! thinking; thinking text is reasoning, which does not end TTFT. A stream
//! without `message_stop` is [`ErrorKind::MissingDone`]. A wrong key is
//! [`ErrorKind::Unauthorized`] with Anthropic's message
//! (`authentication_error`), naming `ANTHROPIC_API_KEY`.

use std::time::Instant;

use reqwest::header::HeaderValue;
use serde::Deserialize;
use serde_json::{json, Value};

use super::framing::sse::SseDecoder;
use super::QUOTED_CHARS;
use super::{
    excerpt, About, EndpointKind, ErrorKind, Registration, RequestError, StreamDecoder,
    StreamEvent, Target, TimedEvent, Usage,
};
use crate::workload::{self, RequestPlan, Role};

/// `max_tokens` sent when the plan sets none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// The `anthropic-version` header sent unless the spec names another.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The top-level `system` text (every system message, joined by a blank
/// line) and the `messages` list (the user and assistant turns): the
/// Messages API has no system role inside `messages`.
fn messages_body(messages: &[workload::Message]) -> (Option<String>, Vec<Value>) {
    let system: Vec<&str> = messages
        .iter()
        .filter(|message| message.role == Role::System)
        .map(|message| message.content.as_str())
        .collect();
    let turns = messages
        .iter()
        .filter(|message| message.role != Role::System)
        .map(|message| json!({"role": message.role.as_str(), "content": message.content}))
        .collect();
    ((!system.is_empty()).then(|| system.join("\n\n")), turns)
}

/// `anthropic`: see the module docs.
pub struct Anthropic;

inventory::submit! { Registration::new(&Anthropic) }

impl EndpointKind for Anthropic {
    fn about(&self) -> About {
        About::new(
            "anthropic",
            "Anthropic Messages API (POST {base}/v1/messages, named SSE events)",
        )
        .env_prefix("ANTHROPIC")
        .default_base_url("https://api.anthropic.com")
        .served_from_root()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let (system, messages) = messages_body(&plan.messages);
        let mut body = json!({
            "model": target.model,
            "max_tokens": plan.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "messages": messages,
            "stream": true,
        });
        if let Some(fields) = body.as_object_mut() {
            if let Some(system) = system {
                fields.insert("system".into(), json!(system));
            }
            for (key, value) in &target.extra_body {
                fields.insert(key.clone(), value.clone());
            }
        }
        let version = target
            .setting("anthropic_version")
            .unwrap_or_else(|| DEFAULT_VERSION.to_string());
        let version = HeaderValue::from_str(&version).map_err(|_| {
            RequestError::new(
                ErrorKind::Request,
                format!("the anthropic_version {version:?} is not a valid header value"),
            )
        })?;
        // The SDKs' base URL has no `/v1`; one that has it is accepted too.
        let url = match target.base_url.strip_suffix("/v1") {
            Some(root) => format!("{root}/v1/messages"),
            None => format!("{}/v1/messages", target.base_url),
        };
        let request = client
            .post(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header("anthropic-version", version)
            .json(&body);
        super::with_key_header(request, target, "x-api-key")
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicDecoder::default())
    }

    fn error_detail(&self, body: &str) -> Option<String> {
        let value: Value = serde_json::from_str(body).ok()?;
        error_text(value.get("error")?)
    }
}

/// `message (type)` of an Anthropic error object.
fn error_text(error: &Value) -> Option<String> {
    let message = error.get("message").and_then(Value::as_str)?;
    Some(match error.get("type").and_then(Value::as_str) {
        Some(kind) => format!("{message} ({kind})"),
        None => message.to_string(),
    })
}

/// Decodes the Messages API's named SSE events.
#[derive(Default)]
pub struct AnthropicDecoder {
    sse: SseDecoder,
    state: State,
}

#[derive(Default)]
struct State {
    /// `message_stop` came.
    ended: bool,
    /// An error was reported; a missing `message_stop` is then no news.
    failed: bool,
    /// From `message_start`, kept for the usage of each `message_delta`.
    input_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<Message>,
    delta: Option<Delta>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    cache_creation_input_tokens: Option<u32>,
    cache_read_input_tokens: Option<u32>,
}

impl WireUsage {
    /// The whole prompt: uncached plus cache-written plus cache-read tokens.
    fn prompt_tokens(&self) -> Option<u32> {
        let input = self.input_tokens?;
        Some(
            input
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
                .saturating_add(self.cache_read_input_tokens.unwrap_or(0)),
        )
    }
}

impl StreamDecoder for AnthropicDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let state = &mut self.state;
        self.sse.feed(bytes, |event| {
            decode_event(event.event, event.data, at, state, out)
        });
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let state = &mut self.state;
        self.sse
            .finish(|event| decode_event(event.event, event.data, at, state, out));
        if !self.state.ended && !self.state.failed {
            out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::MissingDone,
                    "the stream ended without `message_stop`",
                )),
            });
        }
    }
}

fn decode_event(
    name: Option<&str>,
    data: &str,
    at: Instant,
    state: &mut State,
    out: &mut Vec<TimedEvent>,
) {
    let fail = |state: &mut State, out: &mut Vec<TimedEvent>, kind, message: String| {
        state.failed = true;
        out.push(TimedEvent {
            at,
            event: StreamEvent::Error(RequestError::new(kind, message)),
        });
    };
    let data = data.trim();
    if state.ended {
        return;
    }
    let parsed: Data = match serde_json::from_str(data) {
        Ok(parsed) => parsed,
        Err(error) => {
            let what = name.unwrap_or("unnamed");
            fail(
                state,
                out,
                ErrorKind::MalformedEvent,
                format!(
                    "malformed `{what}` event ({error}): {}",
                    excerpt(data, QUOTED_CHARS)
                ),
            );
            return;
        }
    };
    // The event name and the data's `type` agree; a proxy that drops the
    // `event:` lines still leaves the type.
    let Some(name) = name.or(parsed.kind.as_deref()) else {
        fail(
            state,
            out,
            ErrorKind::MalformedEvent,
            format!(
                "an event with no name and no type: {}",
                excerpt(data, QUOTED_CHARS)
            ),
        );
        return;
    };
    let mut push = |event| out.push(TimedEvent { at, event });
    match name {
        "message_start" => {
            if let Some(usage) = parsed.message.and_then(|message| message.usage) {
                state.input_tokens = usage.prompt_tokens();
                push(StreamEvent::Usage(Usage {
                    prompt_tokens: state.input_tokens,
                    completion_tokens: usage.output_tokens,
                    reasoning_tokens: None,
                }));
            }
        }
        "content_block_delta" => {
            let Some(delta) = parsed.delta else { return };
            match delta.kind.as_deref() {
                Some("text_delta") => {
                    if let Some(text) = delta.text.filter(|text| !text.is_empty()) {
                        push(StreamEvent::Content(text));
                    }
                }
                Some("thinking_delta") => {
                    if let Some(thinking) = delta.thinking.filter(|text| !text.is_empty()) {
                        push(StreamEvent::Reasoning(thinking));
                    }
                }
                // signature_delta, input_json_delta (tool use), citations_delta:
                // nothing a benchmark times.
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(reason) = parsed.delta.and_then(|delta| delta.stop_reason) {
                push(StreamEvent::Finish(reason));
            }
            if let Some(usage) = parsed.usage {
                // Newer versions repeat the input counts here; keep the
                // start's when they do not.
                if let Some(prompt) = usage.prompt_tokens() {
                    state.input_tokens = Some(prompt);
                }
                push(StreamEvent::Usage(Usage {
                    prompt_tokens: state.input_tokens,
                    completion_tokens: usage.output_tokens,
                    reasoning_tokens: None,
                }));
            }
        }
        "message_stop" => {
            state.ended = true;
            push(StreamEvent::Done);
        }
        "content_block_start" | "content_block_stop" | "ping" => {}
        "error" => {
            let detail = parsed
                .error
                .as_ref()
                .and_then(error_text)
                .unwrap_or_else(|| excerpt(data, QUOTED_CHARS));
            state.failed = true;
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                format!("error in stream: {detail}"),
            )));
        }
        other => {
            state.failed = true;
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::UnknownEvent,
                format!(
                    "unknown event `{}` in a Messages stream",
                    excerpt(other, QUOTED_CHARS)
                ),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = AnthropicDecoder::default();
        crate::endpoint::decode_reads(&mut decoder, pieces)
    }

    /// The basic streaming example of Anthropic's docs (spaces after the
    /// colons and all), with a thinking block in front as extended thinking
    /// streams it.
    const STREAM: &[u8] = b"event: message_start\n\
data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-3-7-sonnet-20250219\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}}}\n\n\
event: content_block_start\n\
data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"thinking\", \"thinking\": \"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"thinking_delta\", \"thinking\": \"Let me think.\"}}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"signature_delta\", \"signature\": \"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds\"}}\n\n\
event: content_block_stop\n\
data: {\"type\": \"content_block_stop\", \"index\": 0}\n\n\
event: content_block_start\n\
data: {\"type\": \"content_block_start\", \"index\": 1, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 1, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 1, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\n\
event: content_block_stop\n\
data: {\"type\": \"content_block_stop\", \"index\": 1}\n\n\
event: message_delta\n\
data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\n\
event: message_stop\n\
data: {\"type\": \"message_stop\"}\n\n";

    #[test]
    fn a_documented_stream_split_at_every_byte() {
        let expected = vec![
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(25),
                completion_tokens: Some(1),
                reasoning_tokens: None,
            }),
            StreamEvent::Reasoning("Let me think.".into()),
            StreamEvent::Content("Hello".into()),
            StreamEvent::Content("!".into()),
            StreamEvent::Finish("end_turn".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(25),
                completion_tokens: Some(15),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        assert_eq!(decode(&[STREAM]), expected);
        for split in 0..STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(decode(&[a, b]), expected, "split at {split}");
        }
    }

    #[test]
    fn an_error_event_is_a_stream_error() {
        let events = decode(&[
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        ]);
        assert_eq!(
            events.len(),
            2,
            "no missing-end error after an error: {events:?}"
        );
        assert_eq!(
            events[1],
            StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                "error in stream: Overloaded (overloaded_error)"
            ))
        );
    }

    #[test]
    fn unknown_events_malformed_data_and_a_missing_stop_are_named() {
        let kind = |events: &[StreamEvent]| match events.first() {
            Some(StreamEvent::Error(error)) => error.kind,
            other => panic!("{other:?}"),
        };
        let events = decode(&[b"event: message_explode\ndata: {\"type\":\"message_explode\"}\n\n"]);
        assert_eq!(kind(&events), ErrorKind::UnknownEvent);
        let events = decode(&[b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\": {\n\n"]);
        assert_eq!(kind(&events), ErrorKind::MalformedEvent);
        let events = decode(&[b"event: ping\ndata: {\"type\": \"ping\"}\n\n"]);
        assert_eq!(kind(&events), ErrorKind::MissingDone);
    }

    #[test]
    fn unnamed_events_use_their_type_and_cache_tokens_count_as_input() {
        let events = decode(&[
            b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n",
            b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            b"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":1}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
        ]);
        assert_eq!(events[1], StreamEvent::Content("hi".into()));
        assert_eq!(
            events[3],
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(105),
                completion_tokens: Some(1),
                reasoning_tokens: None,
            })
        );
        assert_eq!(events[4], StreamEvent::Done);
    }

    #[test]
    fn error_bodies_give_their_message_and_type() {
        assert_eq!(
            Anthropic.error_detail(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            Some("invalid x-api-key (authentication_error)".into())
        );
        assert_eq!(Anthropic.error_detail("upstream connect error"), None);
    }

    #[test]
    fn the_request_has_the_headers_and_a_max_tokens() {
        let target = Target {
            base_url: "https://api.anthropic.com".to_string(),
            model: "claude-sonnet-4-5".to_string(),
            api_key: Some(crate::spec::Secret::new("sk-ant-secret")),
            api_key_source: "ANTHROPIC_API_KEY".to_string(),
            extra_body: serde_json::Map::new(),
            options: Default::default(),
            env_prefix: "LLMPERF_TEST_ANTHROPIC_UNSET".to_string(),
        };
        let plan = RequestPlan {
            max_tokens: None,
            ignore_eos: true,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("hi")],
                crate::Tokenizer::bundled(),
            )
        };
        let request = Anthropic
            .build_request(&reqwest::Client::new(), &target, &plan)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(request.headers()["x-api-key"], "sk-ant-secret");
        assert!(request.headers()["x-api-key"].is_sensitive());
        assert_eq!(request.headers()["anthropic-version"], "2023-06-01");
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["stream"], true);
        assert_eq!(body["messages"][0]["content"], "hi");
        assert!(body.get("ignore_eos").is_none());
        assert!(body.get("system").is_none());
    }

    #[test]
    fn system_messages_go_to_the_top_level_system_field() {
        use crate::workload::Message;
        let (system, messages) = messages_body(&[
            Message::system("Prefix."),
            Message::system("Be brief."),
            Message::user("Q1"),
            Message::assistant("A1"),
            Message::user("Q2"),
        ]);
        assert_eq!(system.as_deref(), Some("Prefix.\n\nBe brief."));
        assert_eq!(
            Value::Array(messages),
            json!([
                {"role": "user", "content": "Q1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
            ])
        );
    }
}
