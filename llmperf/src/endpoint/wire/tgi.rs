//! TGI's `generate_stream` and LMI's streamed JSON lines: the request body
//! ([`request_body`]) and the stream decoder ([`TgiDecoder`]), shared by
//! the [`tgi`](crate::endpoint::tgi) kind (TGI's own route) and the
//! [`sagemaker`](crate::endpoint::sagemaker) kind (a TGI or LMI container
//! inside SageMaker's event stream).
//!
//! # The request
//!
//! `{"inputs": prompt, "parameters": {"max_new_tokens", "details": true,
//! …}}`. The spec's extra body is merged the same way for every route: a
//! `parameters` object key by key into llmperf's parameters, `inputs` and
//! `stream` at the top, and every other field into `parameters` (where
//! TGI's `GenerateParameters` and LMI's `GenerationParameters` keep the
//! sampling settings: `temperature`, `seed`, `top_p`, `stop`, …; neither
//! container reads other top-level fields).
//!
//! # The stream
//!
//! TGI writes SSE with `data:` and no space, one token per event:
//!
//! ```text
//! data:{"index":1,"token":{"id":89554,"text":" Deep","logprob":-0.12,"special":false},"generated_text":null,"details":null}
//!
//! data:{"index":2,"token":{"id":2,"text":"</s>","logprob":-0.5,"special":true},"generated_text":" Deep","details":{"finish_reason":"eos_token","generated_tokens":2,"seed":null,"input_length":5}}
//! ```
//!
//! LMI (DJL Serving) writes one JSON object per line with the same field
//! names, `{"token": {"id", "text", "log_prob"}}`, the last line adding
//! `generated_text` and `details`; an optional `data:` prefix
//! (`output_formatter=sse`) is accepted. Which of the two a stream is comes
//! from its first bytes: a JSON line starts with `{`, SSE with `data:`,
//! `event:` or a `:` comment.
//!
//! - Special tokens (`</s>`, `<|eot_id|>`; LMI's `special_token`) are not
//!   content.
//! - There is no `[DONE]`: the event with a non-null `generated_text` is
//!   the last. Its `details` give `finish_reason` and the server's token
//!   counts: `generated_tokens` as output tokens; as input tokens TGI's
//!   `input_length` (TGI ≥ 2), else `prompt_tokens` (some versions and
//!   forks), else the length of the `prefill` token list (sent only when
//!   the request asks for decoder input details). A stream that ends
//!   without the final event is [`ErrorKind::MissingDone`].
//! - `{"error": "…", "error_type": "…"}` (TGI; the error may also be an
//!   object with a `message`) and LMI's `finish_reason: "error"` are
//!   [`ErrorKind::StreamError`]; after a reported error, a missing final
//!   event is no news.
//! - Dynamic-batch LMI's `{"outputs": ["…"]}` lines carry text and have no
//!   end marker, so a stream of only those is not expected to end with one.
//! - An event that is not JSON, or has none of `token`, `error`,
//!   `outputs`, `details` and `generated_text`, is
//!   [`ErrorKind::MalformedEvent`].

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::endpoint::framing::sse::SseDecoder;
use crate::endpoint::{
    excerpt, ErrorKind, RequestError, StreamDecoder, StreamEvent, Target, TimedEvent, Usage,
    QUOTED_CHARS,
};
use crate::workload::RequestPlan;

/// Which server route the body goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// TGI's own `POST /generate_stream`: the route streams, and the body
    /// spells out `decoder_input_details: false` and an empty `stop`. TGI
    /// has no `ignore_eos`: a plan that asks for it gets no equivalent.
    GenerateStream,
    /// A container's invocation behind SageMaker (TGI or LMI): `"stream":
    /// true`, and LMI's `ignore_eos_token` when the plan ignores the end of
    /// sequence (TGI ignores it).
    Invocations,
}

/// The request body for `plan` on `route` (see the module docs).
pub fn request_body(target: &Target, plan: &RequestPlan, route: Route) -> Value {
    let mut parameters = serde_json::Map::new();
    if let Some(max_tokens) = plan.max_tokens {
        parameters.insert("max_new_tokens".into(), json!(max_tokens));
    }
    parameters.insert("details".into(), json!(true));
    let mut body = serde_json::Map::new();
    body.insert("inputs".into(), json!(plan.prompt));
    match route {
        Route::GenerateStream => {
            parameters.insert("decoder_input_details".into(), json!(false));
            parameters.insert("stop".into(), json!([]));
        }
        Route::Invocations => {
            if plan.ignore_eos {
                parameters.insert("ignore_eos_token".into(), json!(true));
            }
            body.insert("stream".into(), json!(true));
        }
    }
    for (key, value) in &target.extra_body {
        match (key.as_str(), value) {
            ("parameters", Value::Object(extra)) => {
                for (k, v) in extra {
                    parameters.insert(k.clone(), v.clone());
                }
            }
            // The body's own fields; a `parameters` that is not an object
            // replaces llmperf's.
            ("inputs" | "stream" | "parameters", _) => {
                body.insert(key.clone(), value.clone());
            }
            _ => {
                parameters.insert(key.clone(), value.clone());
            }
        }
    }
    body.entry("parameters")
        .or_insert_with(|| Value::Object(parameters));
    Value::Object(body)
}

/// The text of an `error` field: a string, or an object's `message`.
fn error_message(error: &Value) -> Option<&str> {
    match error {
        Value::String(message) => Some(message),
        error => error.get("message").and_then(Value::as_str),
    }
}

/// Decodes a TGI or LMI stream (see the module docs), in whatever pieces
/// it arrives: TGI's own body, or the payload parts SageMaker cut anywhere.
#[derive(Debug, Default)]
pub struct TgiDecoder {
    /// Decided by the first byte that is not whitespace.
    framing: Option<Framing>,
    sse: SseDecoder,
    /// The JSON line in progress.
    line: Vec<u8>,
    events: Events,
}

/// How the stream is cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// SSE: TGI, or LMI with `output_formatter=sse`.
    Sse,
    /// One JSON object per line: LMI's default `jsonlines`.
    JsonLines,
}

impl TgiDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        TgiDecoder::default()
    }

    /// An error about this stream was reported from outside it (the
    /// transport's framing, an exception): its missing final event is then
    /// no news.
    pub fn error_reported(&mut self) {
        self.events.failed = true;
    }

    fn json_line(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let line = std::mem::take(&mut self.line);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        // LMI's `output_formatter=sse` without blank lines between events.
        let text = text.strip_prefix("data:").unwrap_or(text);
        self.events.decode(text, at, out);
    }
}

impl StreamDecoder for TgiDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes() + self.line.len()
    }

    fn feed(&mut self, mut bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let framing = match self.framing {
            Some(framing) => framing,
            None => {
                let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
                    return;
                };
                bytes = bytes.get(start..).unwrap_or_default();
                let framing = if bytes.first() == Some(&b'{') {
                    Framing::JsonLines
                } else {
                    Framing::Sse
                };
                self.framing = Some(framing);
                framing
            }
        };
        match framing {
            Framing::Sse => {
                let events = &mut self.events;
                self.sse
                    .feed(bytes, |event| events.decode(event.data, at, out));
            }
            Framing::JsonLines => {
                while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
                    let (head, tail) = bytes.split_at(end);
                    self.line.extend_from_slice(head);
                    self.json_line(at, out);
                    bytes = tail.get(1..).unwrap_or_default();
                }
                self.line.extend_from_slice(bytes);
            }
        }
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        match self.framing {
            Some(Framing::Sse) => {
                let events = &mut self.events;
                self.sse.finish(|event| events.decode(event.data, at, out));
            }
            Some(Framing::JsonLines) if !self.line.is_empty() => self.json_line(at, out),
            _ => {}
        }
        if self.events.expects_end() {
            out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::MissingDone,
                    "the stream ended without its final event (the one with `generated_text`)",
                )),
            });
        }
    }
}

/// What the events so far said about the end of the stream.
#[derive(Debug, Default)]
struct Events {
    /// The final event (with `generated_text`) came.
    ended: bool,
    /// An error was reported; a missing final event is then no news.
    failed: bool,
    /// Token events came (TGI, rolling-batch LMI: protocols that always
    /// end with `generated_text`).
    saw_tokens: bool,
    /// Dynamic-batch LMI `outputs` lines came (a protocol with no end marker).
    saw_outputs: bool,
}

#[derive(Deserialize)]
struct Line {
    token: Option<Token>,
    generated_text: Option<String>,
    details: Option<Details>,
    error: Option<Value>,
    error_type: Option<String>,
    /// Dynamic-batch LMI: `{"outputs": ["text"]}`.
    outputs: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Token {
    text: Option<String>,
    #[serde(alias = "special_token")]
    special: Option<bool>,
}

#[derive(Deserialize)]
struct Details {
    finish_reason: Option<String>,
    generated_tokens: Option<u32>,
    /// TGI ≥ 2.
    input_length: Option<u32>,
    /// Some versions and forks name it so.
    prompt_tokens: Option<u32>,
    /// The prompt's tokens, when the request asked for them.
    prefill: Option<Vec<Value>>,
}

impl Details {
    /// The prompt's token count, however this server reports it.
    fn prompt_tokens(&self) -> Option<u32> {
        self.input_length.or(self.prompt_tokens).or_else(|| {
            self.prefill
                .as_ref()
                .filter(|prefill| !prefill.is_empty())
                .and_then(|prefill| u32::try_from(prefill.len()).ok())
        })
    }
}

impl Events {
    /// Whether the stream still owes its final event.
    fn expects_end(&self) -> bool {
        // Only dynamic-batch `outputs` lines: a protocol with no end marker.
        let outputs_only = self.saw_outputs && !self.saw_tokens;
        !(self.ended || self.failed || outputs_only)
    }

    /// Decodes one event's (or line's) JSON; `Done` after the final one.
    fn decode(&mut self, json: &str, at: Instant, out: &mut Vec<TimedEvent>) {
        let json = json.trim();
        if json.is_empty() || self.ended {
            return;
        }
        let mut push = |event| out.push(TimedEvent { at, event });
        let mut fail = |kind, message: String| {
            self.failed = true;
            push(StreamEvent::Error(RequestError::new(kind, message)));
        };
        let line: Line = match serde_json::from_str(json) {
            Ok(line) => line,
            Err(error) => {
                return fail(
                    ErrorKind::MalformedEvent,
                    format!("malformed event ({error}): {}", excerpt(json, QUOTED_CHARS)),
                )
            }
        };
        if let Some(error) = &line.error {
            let message = error_message(error).map_or_else(|| error.to_string(), str::to_string);
            let kind = line
                .error_type
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            return fail(
                ErrorKind::StreamError,
                format!("error in stream{kind}: {}", excerpt(&message, QUOTED_CHARS)),
            );
        }
        let shapeless = line.outputs.is_none()
            && line.token.is_none()
            && line.details.is_none()
            && line.generated_text.is_none();
        if shapeless {
            return fail(
                ErrorKind::MalformedEvent,
                format!(
                    "an event with neither a token nor an error: {}",
                    excerpt(json, QUOTED_CHARS)
                ),
            );
        }
        if let Some(outputs) = line.outputs {
            self.saw_outputs = true;
            for text in outputs.into_iter().filter(|t| !t.is_empty()) {
                push(StreamEvent::Content(text));
            }
            return;
        }
        self.saw_tokens = true;
        if let Some(token) = line.token {
            if !token.special.unwrap_or(false) {
                if let Some(text) = token.text.filter(|t| !t.is_empty()) {
                    push(StreamEvent::Content(text));
                }
            }
        }
        if let Some(details) = line.details {
            if details.finish_reason.as_deref() == Some("error") {
                self.failed = true;
                push(StreamEvent::Error(RequestError::new(
                    ErrorKind::StreamError,
                    "error in stream: the container ended generation with finish_reason \"error\"",
                )));
            } else {
                let prompt_tokens = details.prompt_tokens();
                if let Some(reason) = details.finish_reason {
                    push(StreamEvent::Finish(reason));
                }
                if details.generated_tokens.is_some() || prompt_tokens.is_some() {
                    push(StreamEvent::Usage(Usage {
                        prompt_tokens,
                        completion_tokens: details.generated_tokens,
                        reasoning_tokens: None,
                    }));
                }
            }
        }
        if line.generated_text.is_some() {
            self.ended = true;
            push(StreamEvent::Done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = TgiDecoder::default();
        crate::endpoint::decode_reads(&mut decoder, pieces)
    }

    /// A `generate_stream` answer as TGI writes it (axum's SSE: `data:`
    /// without a space), ending on the EOS token.
    const EOS_STREAM: &[u8] = b"data:{\"index\":1,\"token\":{\"id\":89554,\"text\":\" Deep\",\"logprob\":-0.12,\"special\":false},\"generated_text\":null,\"details\":null}\n\n\
data:{\"index\":2,\"token\":{\"id\":6975,\"text\":\" learning\",\"logprob\":-0.0154,\"special\":false},\"generated_text\":null,\"details\":null}\n\n\
data:{\"index\":3,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":-0.52,\"special\":true},\"generated_text\":\" Deep learning\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3,\"seed\":null,\"input_length\":7}}\n\n";

    #[test]
    fn a_stream_ending_on_eos_split_at_every_byte() {
        let expected = vec![
            StreamEvent::Content(" Deep".into()),
            StreamEvent::Content(" learning".into()),
            StreamEvent::Finish("eos_token".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(7),
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        assert_eq!(decode(&[EOS_STREAM]), expected);
        for split in 0..EOS_STREAM.len() {
            let (a, b) = EOS_STREAM.split_at(split);
            assert_eq!(decode(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = EOS_STREAM.chunks(1).collect();
        assert_eq!(decode(&bytes), expected);
    }

    #[test]
    fn the_length_limit_ends_on_a_content_token_and_older_details_still_count() {
        // Older TGI: no `index`, no `input_length`; the prefill when asked for.
        let events = decode(&[
            b"data:{\"token\":{\"id\":1,\"text\":\" a\",\"logprob\":-1.0,\"special\":false},\"generated_text\":null,\"details\":null}\r\n\r\n",
            b"data:{\"token\":{\"id\":2,\"text\":\" b\",\"logprob\":-1.0,\"special\":false},\"generated_text\":\" a b\",\"details\":{\"finish_reason\":\"length\",\"generated_tokens\":2,\"seed\":42,\"prefill\":[{\"id\":1,\"text\":\"<s>\",\"logprob\":null},{\"id\":9,\"text\":\"Hi\",\"logprob\":-3.1}]}}\r\n\r\n",
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content(" a".into()),
                StreamEvent::Content(" b".into()),
                StreamEvent::Finish("length".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(2),
                    completion_tokens: Some(2),
                    reasoning_tokens: None,
                }),
                StreamEvent::Done,
            ]
        );
    }

    #[test]
    fn an_error_event_inside_the_stream_is_a_stream_error() {
        let events = decode(&[
            b"data:{\"index\":1,\"token\":{\"id\":1,\"text\":\" a\",\"logprob\":-1.0,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
            b"data:{\"error\":\"Request failed during generation: Server error: CUDA out of memory\",\"error_type\":\"generation\"}\n\n",
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
                "error in stream (generation): Request failed during generation: Server error: CUDA out of memory"
            ))
        );
    }

    #[test]
    fn a_stream_without_its_final_event_is_missing_done() {
        let events = decode(&[
            b"data:{\"index\":1,\"token\":{\"id\":1,\"text\":\" a\",\"logprob\":-1.0,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
        ]);
        assert!(matches!(
            &events[1],
            StreamEvent::Error(error) if error.kind == ErrorKind::MissingDone
        ));
    }

    #[test]
    fn malformed_and_shapeless_events_are_named() {
        let events = decode(&[b"data:{\"index\":\n\n"]);
        assert!(matches!(
            &events[0],
            StreamEvent::Error(error) if error.kind == ErrorKind::MalformedEvent
        ));
        assert_eq!(events.len(), 1);
        let events = decode(&[b"data:{\"hello\":1}\n\n"]);
        assert!(matches!(
            &events[0],
            StreamEvent::Error(error) if error.kind == ErrorKind::MalformedEvent
        ));
    }

    #[test]
    fn details_can_be_null_on_the_final_event() {
        let events = decode(&[
            b"data:{\"index\":1,\"token\":{\"id\":1,\"text\":\" a\",\"logprob\":-1.0,\"special\":false},\"generated_text\":\" a\",\"details\":null}\n\n",
        ]);
        assert_eq!(
            events,
            vec![StreamEvent::Content(" a".into()), StreamEvent::Done]
        );
    }

    fn body(extra: &str, ignore_eos: bool, route: Route) -> Value {
        let target = Target {
            base_url: "http://127.0.0.1:1".into(),
            model: "m".into(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: serde_json::from_str(extra).unwrap(),
            options: Default::default(),
            env_prefix: "LLMPERF_TGI_WIRE_TEST".into(),
        };
        let plan = RequestPlan {
            max_tokens: Some(9),
            ignore_eos,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("hi")],
                crate::Tokenizer::bundled(),
            )
        };
        request_body(&target, &plan, route)
    }

    #[test]
    fn request_bodies_have_the_container_shape() {
        assert_eq!(
            body(
                r#"{"parameters":{"temperature":0.5},"seed":1}"#,
                false,
                Route::Invocations
            ),
            json!({
                "inputs": "hi",
                "parameters": {"max_new_tokens": 9, "details": true, "temperature": 0.5, "seed": 1},
                "stream": true,
            })
        );
        assert_eq!(
            body("{}", true, Route::Invocations)["parameters"]["ignore_eos_token"],
            json!(true)
        );
    }

    /// One merge rule for both routes: TGI's route used to nest a
    /// `parameters` object inside `parameters`, SageMaker's put other
    /// fields at the top, where neither container reads them.
    #[test]
    fn extra_fields_are_generation_parameters_on_every_route() {
        let extra = r#"{"parameters":{"temperature":0.5},"seed":1,"stream":true}"#;
        assert_eq!(
            body(extra, true, Route::GenerateStream),
            json!({
                "inputs": "hi",
                "parameters": {
                    "max_new_tokens": 9, "details": true, "decoder_input_details": false,
                    "stop": [], "temperature": 0.5, "seed": 1,
                },
                "stream": true,
            })
        );
        let replaced = body(r#"{"parameters":"raw"}"#, false, Route::GenerateStream);
        assert_eq!(replaced["parameters"], json!("raw"));
    }
}
