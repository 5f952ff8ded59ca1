//! The Gemini API as Vertex AI serves it: the request body and the chunks
//! of both stream forms.
//!
//! # The request
//!
//! System messages go to `systemInstruction`, the others to `contents`
//! (the assistant is called `model`); the workload's `max_tokens` is
//! `generationConfig.maxOutputTokens`. The spec's extra body is merged in,
//! objects key by key: extra `generationConfig` fields join llmperf's
//! `maxOutputTokens` (e.g. `.extra_body("generationConfig",
//! json!({"thinkingConfig": {"includeThoughts": true}}))` asks for the
//! thoughts). Gemini has no ignore-EOS option: `--ignore-eos` is not sent.
//!
//! # The chunks
//!
//! Text is in `candidates[0].content.parts[*].text`; parts with `"thought":
//! true` are reasoning (which does not end TTFT). `finishReason` comes on
//! the last candidate chunk: `STOP` is reported as `stop`, `MAX_TOKENS` as
//! `length`, anything else lower-cased. Counts come from `usageMetadata`:
//! prompt = `promptTokenCount`, output = `candidatesTokenCount +
//! thoughtsTokenCount`, reasoning = `thoughtsTokenCount`. An `{"error": …}`
//! chunk is a `stream_error`, and so is a blocked prompt
//! (`promptFeedback.blockReason`).
//!
//! Neither form has a `[DONE]`. With `alt=sse` ([`GeminiSseDecoder`]) the
//! end marker is the chunk carrying `finishReason` (Vertex always sends one
//! last): a stream that ends without it is `missing_done`. The JSON array's
//! ([`GeminiJsonDecoder`], over the
//! [`JsonArraySplitter`])
//! end marker is its closing `]`.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use super::credentials::access_token;
use super::google_error_message;
use super::url::{path_segment, Location};
use crate::endpoint::framing::json_array::{ArrayItem, JsonArraySplitter};
use crate::endpoint::framing::sse::SseDecoder;
use crate::endpoint::{
    excerpt, ErrorKind, RequestError, StreamDecoder, StreamEvent, Target, TimedEvent, Usage,
    QUOTED_CHARS,
};
use crate::workload::{RequestPlan, Role};

/// `POST …/publishers/google/models/{model}:streamGenerateContent`.
pub(crate) fn gemini_request(
    client: &reqwest::Client,
    target: &Target,
    plan: &RequestPlan,
    sse: bool,
) -> Result<reqwest::RequestBuilder, RequestError> {
    let location = Location::of(target)?;
    let model = path_segment(&target.model, "model")?;
    let query = if sse { "?alt=sse" } else { "" };
    let url = format!(
        "{}/publishers/google/models/{model}:streamGenerateContent{query}",
        location.prefix
    );
    let mut request = client
        .post(url)
        .header(
            reqwest::header::ACCEPT,
            if sse {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .json(&gemini_body(target, plan));
    if let Some(token) = access_token(target, &location)? {
        request = request.bearer_auth(token.expose());
    }
    Ok(request)
}

/// The Gemini request body; the spec's extra body is merged in, objects
/// (such as `generationConfig`) key by key.
pub fn gemini_body(target: &Target, plan: &RequestPlan) -> Value {
    // System messages go to `systemInstruction`; Gemini calls the
    // assistant `model`.
    let system: Vec<Value> = plan
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .map(|message| json!({"text": message.content}))
        .collect();
    let contents: Vec<Value> = plan
        .messages
        .iter()
        .filter(|message| message.role != Role::System)
        .map(|message| {
            let role = match message.role {
                Role::Assistant => "model",
                _ => "user",
            };
            json!({"role": role, "parts": [{"text": message.content}]})
        })
        .collect();
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if let Some(max_tokens) = plan.max_tokens {
        body["generationConfig"] = json!({ "maxOutputTokens": max_tokens });
    }
    // Gemini has no ignore-EOS option: `plan.ignore_eos` cannot be honoured.
    if let Some(fields) = body.as_object_mut() {
        for (key, value) in &target.extra_body {
            match (fields.get_mut(key), value) {
                (Some(Value::Object(mine)), Value::Object(theirs)) => {
                    for (k, v) in theirs {
                        mine.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    fields.insert(key.clone(), value.clone());
                }
            }
        }
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    thought: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u32>,
    candidates_token_count: Option<u32>,
    thoughts_token_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
    block_reason_message: Option<String>,
}

/// Decodes Gemini chunks into events; shared by both stream forms.
#[derive(Debug, Default)]
struct ChunkDecoder {
    saw_finish: bool,
}

impl ChunkDecoder {
    fn decode(&mut self, json: &str, at: Instant, out: &mut Vec<TimedEvent>) {
        let mut push = |event| out.push(TimedEvent { at, event });
        let json = json.trim();
        if json.is_empty() {
            return;
        }
        let chunk: Chunk = match serde_json::from_str(json) {
            Ok(chunk) => chunk,
            Err(error) => {
                push(StreamEvent::Error(RequestError::new(
                    ErrorKind::MalformedEvent,
                    format!("malformed chunk ({error}): {}", excerpt(json, QUOTED_CHARS)),
                )));
                return;
            }
        };
        if let Some(error) = chunk.error {
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                format!("error in stream: {}", google_error_message(&error)),
            )));
            return;
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|f| {
            f.block_reason
                .map(|reason| (reason, f.block_reason_message.unwrap_or_default()))
        }) {
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                format!("the prompt was blocked: {} {}", reason.0, reason.1)
                    .trim_end()
                    .to_string(),
            )));
            return;
        }
        // Only the first candidate: llmperf never asks for more.
        if let Some(candidate) = chunk.candidates.and_then(|c| c.into_iter().next()) {
            let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
            for part in parts {
                match part.text {
                    Some(text) if !text.is_empty() => push(if part.thought == Some(true) {
                        StreamEvent::Reasoning(text)
                    } else {
                        StreamEvent::Content(text)
                    }),
                    _ => {}
                }
            }
            if let Some(reason) = candidate.finish_reason {
                self.saw_finish = true;
                push(StreamEvent::Finish(finish_reason(&reason)));
            }
        }
        if let Some(usage) = chunk.usage_metadata {
            // Intermediate Vertex chunks carry only `trafficType`; proto3
            // JSON leaves zero counts out, so a missing count beside a
            // present one is zero.
            let (candidates, thoughts) = (usage.candidates_token_count, usage.thoughts_token_count);
            let completion = match (candidates, thoughts) {
                (None, None) => None,
                _ => Some(
                    candidates
                        .unwrap_or(0)
                        .saturating_add(thoughts.unwrap_or(0)),
                ),
            };
            if usage.prompt_token_count.is_some() || completion.is_some() {
                push(StreamEvent::Usage(Usage {
                    prompt_tokens: usage.prompt_token_count,
                    completion_tokens: completion,
                    reasoning_tokens: completion.map(|_| thoughts.unwrap_or(0)),
                }));
            }
        }
    }
}

/// Google's finish reasons in the words the other kinds use.
fn finish_reason(reason: &str) -> String {
    match reason {
        "STOP" => "stop".to_string(),
        "MAX_TOKENS" => "length".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn missing(message: &str, at: Instant) -> TimedEvent {
    TimedEvent {
        at,
        event: StreamEvent::Error(RequestError::new(ErrorKind::MissingDone, message)),
    }
}

/// Decodes `streamGenerateContent?alt=sse`.
#[derive(Debug, Default)]
pub struct GeminiSseDecoder {
    sse: SseDecoder,
    chunks: ChunkDecoder,
}

impl StreamDecoder for GeminiSseDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.sse
            .feed(bytes, |event| chunks.decode(event.data, at, out));
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.sse.finish(|event| chunks.decode(event.data, at, out));
        if !self.chunks.saw_finish {
            out.push(missing(
                "the stream ended without a chunk carrying finishReason",
                at,
            ));
        }
    }
}

/// Decodes `streamGenerateContent` without `alt=sse`: one JSON array whose
/// elements are emitted as their bytes complete.
#[derive(Debug, Default)]
pub struct GeminiJsonDecoder {
    array: JsonArraySplitter,
    chunks: ChunkDecoder,
}

impl StreamDecoder for GeminiJsonDecoder {
    fn buffered_bytes(&self) -> usize {
        self.array.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let chunks = &mut self.chunks;
        self.array.feed(bytes, |item| match item {
            ArrayItem::Element(element) => {
                chunks.decode(&String::from_utf8_lossy(element), at, out);
            }
            ArrayItem::End => out.push(TimedEvent {
                at,
                event: StreamEvent::Done,
            }),
            ArrayItem::Unexpected(byte) => out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::MalformedEvent,
                    format!(
                        "the stream is not a JSON array of chunks: unexpected {:?}",
                        char::from(byte)
                    ),
                )),
            }),
        });
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        if !self.array.ended() {
            let pending = self.array.pending_bytes();
            let message = if pending > 0 {
                format!("the stream ended inside a chunk ({pending} bytes) before the JSON array's closing `]`")
            } else {
                "the stream ended before the JSON array's closing `]`".to_string()
            };
            out.push(missing(&message, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::endpoint::vertex::target;
    use crate::endpoint::{decode_reads, error_kinds as errors};

    fn sse(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        decode_reads(&mut GeminiSseDecoder::default(), pieces)
    }

    fn array(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        decode_reads(&mut GeminiJsonDecoder::default(), pieces)
    }

    /// Every split of `stream` into two and into single bytes decodes the same.
    fn assert_split_invariant(
        stream: &[u8],
        run: impl Fn(&[&[u8]]) -> Vec<StreamEvent>,
    ) -> Vec<StreamEvent> {
        let whole = run(&[stream]);
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(run(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "byte by byte");
        whole
    }

    /// The shape of a Vertex AI `alt=sse` stream from a thinking model:
    /// `\r\n\r\n` event ends, `usageMetadata` with only `trafficType` until
    /// the last chunk, which has the last text, `finishReason` and counts.
    const VERTEX_SSE: &[u8] = b"data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"**Counting** the stars\",\"thought\": true}]}}],\"usageMetadata\": {\"trafficType\": \"ON_DEMAND\"},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \"The sky\"}]}}],\"usageMetadata\": {\"trafficType\": \"ON_DEMAND\"},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"role\": \"model\",\"parts\": [{\"text\": \" is blue.\"}]},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 6,\"candidatesTokenCount\": 5,\"totalTokenCount\": 40,\"trafficType\": \"ON_DEMAND\",\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 6}],\"candidatesTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 5}],\"thoughtsTokenCount\": 29},\"modelVersion\": \"gemini-2.5-flash\",\"createTime\": \"2025-06-01T10:00:00.123456Z\",\"responseId\": \"abc\"}\r\n\r\n";

    #[test]
    fn a_vertex_sse_stream_split_anywhere() {
        let events = assert_split_invariant(VERTEX_SSE, sse);
        assert_eq!(
            events,
            vec![
                StreamEvent::Reasoning("**Counting** the stars".into()),
                StreamEvent::Content("The sky".into()),
                StreamEvent::Content(" is blue.".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(6),
                    completion_tokens: Some(34),
                    reasoning_tokens: Some(29),
                }),
            ]
        );
    }

    #[test]
    fn lf_line_ends_and_running_counts_as_the_gemini_api_sends_them() {
        // The Gemini API's chunk shape (running counts on every chunk), with
        // `\n\n` event ends as proxies that rewrite line ends send them.
        let stream = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1,\"totalTokenCount\":4}}\n\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n";
        let events = assert_split_invariant(stream, sse);
        assert_eq!(events[0], StreamEvent::Content("Hi".into()));
        assert_eq!(events[2], StreamEvent::Finish("length".into()));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Usage(Usage {
                prompt_tokens: Some(3),
                completion_tokens: Some(2),
                reasoning_tokens: Some(0),
            }))
        );
        assert!(errors(&events).is_empty());
    }

    #[test]
    fn a_stream_without_finish_reason_is_missing_its_end() {
        let events = sse(&[
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\r\n\r\n",
        ]);
        assert_eq!(errors(&events), vec![ErrorKind::MissingDone]);
    }

    #[test]
    fn errors_blocks_and_garbage_are_named() {
        let events = sse(&[
            b"data: {\"error\": {\"code\": 429, \"message\": \"Resource exhausted. Please try again later.\", \"status\": \"RESOURCE_EXHAUSTED\"}}\r\n\r\n",
        ]);
        let StreamEvent::Error(error) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(error.kind, ErrorKind::StreamError);
        assert_eq!(
            error.message,
            "error in stream: Resource exhausted. Please try again later. (RESOURCE_EXHAUSTED)"
        );
        let blocked = sse(&[b"data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 8}}\r\n\r\n"]);
        assert_eq!(errors(&blocked)[0], ErrorKind::StreamError);
        let garbage = sse(&[b"data: {\"candidates\": [\r\n\r\n"]);
        assert_eq!(
            errors(&garbage),
            vec![ErrorKind::MalformedEvent, ErrorKind::MissingDone]
        );
    }

    /// The shape of the same stream without `alt=sse`: a pretty-printed
    /// JSON array, elements separated by `\r\n,\r\n`, text holding `]`,
    /// `}` and escaped quotes.
    const VERTEX_ARRAY: &[u8] = b"[{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"role\": \"model\",\n        \"parts\": [\n          {\n            \"text\": \"Use `a[0]}` and \\\"quotes\\\" \\\\\"\n          }\n        ]\n      }\n    }\n  ],\n  \"usageMetadata\": {\n    \"trafficType\": \"ON_DEMAND\"\n  },\n  \"modelVersion\": \"gemini-2.0-flash-001\"\n}\r\n,\r\n{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"role\": \"model\",\n        \"parts\": [\n          {\n            \"text\": \"]}[{,\"\n          }\n        ]\n      },\n      \"finishReason\": \"STOP\"\n    }\n  ],\n  \"usageMetadata\": {\n    \"promptTokenCount\": 4,\n    \"candidatesTokenCount\": 12,\n    \"totalTokenCount\": 16,\n    \"trafficType\": \"ON_DEMAND\"\n  },\n  \"modelVersion\": \"gemini-2.0-flash-001\"\n}\r\n]";

    #[test]
    fn a_vertex_json_array_split_anywhere() {
        let events = assert_split_invariant(VERTEX_ARRAY, array);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("Use `a[0]}` and \"quotes\" \\".into()),
                StreamEvent::Content("]}[{,".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(4),
                    completion_tokens: Some(12),
                    reasoning_tokens: Some(0),
                }),
                StreamEvent::Done,
            ]
        );
    }

    #[test]
    fn each_element_is_stamped_with_the_read_that_completed_it() {
        let mut decoder = GeminiJsonDecoder::default();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let t2 = t0 + Duration::from_millis(9);
        decoder.feed(
            b"[{\"candidates\":[{\"content\":{\"parts\":[{\"te",
            t0,
            &mut out,
        );
        assert!(out.is_empty(), "nothing complete yet");
        decoder.feed(
            b"xt\":\"a\"}]}}]}\r\n,{\"candidates\":[{\"content\":",
            t1,
            &mut out,
        );
        decoder.feed(b"{\"parts\":[{\"text\":\"b\"}]}}]}\r\n]", t2, &mut out);
        let stamps: Vec<_> = out.iter().map(|e| (e.at, e.event.clone())).collect();
        assert_eq!(
            stamps,
            vec![
                (t1, StreamEvent::Content("a".into())),
                (t2, StreamEvent::Content("b".into())),
                (t2, StreamEvent::Done),
            ]
        );
    }

    #[test]
    fn array_problems_are_named() {
        // No closing bracket.
        let events = array(&[b"[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}]}"]);
        assert_eq!(errors(&events), vec![ErrorKind::MissingDone]);
        // Cut inside an element.
        let events = array(&[b"[{\"candidates\":[{\"content\":"]);
        let StreamEvent::Error(error) = events.last().unwrap() else {
            panic!()
        };
        assert!(
            error.message.contains("inside a chunk"),
            "{}",
            error.message
        );
        // An error element inside the array, as Vertex sends mid-stream.
        let events = array(&[b"[{\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}\r\n]"]);
        assert_eq!(errors(&events), vec![ErrorKind::StreamError]);
        // Not an array at all.
        let events = array(&[b"data: {}\n\n"]);
        assert_eq!(
            errors(&events),
            vec![ErrorKind::MalformedEvent, ErrorKind::MissingDone]
        );
        // A balanced but invalid element, then the stream goes on.
        let events = array(&[
            b"[{\"candidates\": [{\"content\": }]},{\"candidates\":[{\"finishReason\":\"STOP\"}]}]",
        ]);
        assert_eq!(errors(&events), vec![ErrorKind::MalformedEvent]);
        assert_eq!(events.last(), Some(&StreamEvent::Done));
        // Invalid UTF-8 and stray bytes never panic.
        let _ = array(&[b"[{\"a\":\"\xff\xfe\"}", b"]]]", b"\x00"]);
    }

    #[test]
    fn the_body_merges_extra_fields_into_generation_config() {
        let mut t = target("", &[]);
        t.extra_body.insert(
            "generationConfig".into(),
            json!({"temperature": 0, "thinkingConfig": {"includeThoughts": true}}),
        );
        t.extra_body
            .insert("safetySettings".into(), json!([{"category": "x"}]));
        let plan = RequestPlan {
            max_tokens: Some(20),
            ignore_eos: true,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("Hello")],
                crate::Tokenizer::bundled(),
            )
        };
        assert_eq!(
            gemini_body(&t, &plan),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
                "generationConfig": {"maxOutputTokens": 20, "temperature": 0, "thinkingConfig": {"includeThoughts": true}},
                "safetySettings": [{"category": "x"}],
            })
        );
    }

    #[test]
    fn gemini_contents_call_the_assistant_model_and_system_goes_to_the_instruction() {
        let plan = crate::workload::test_conversation();
        assert_eq!(
            gemini_body(&target("", &[]), &plan),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "U1"}]},
                    {"role": "model", "parts": [{"text": "A1"}]},
                    {"role": "user", "parts": [{"text": "U2"}]},
                ],
                "systemInstruction": {"parts": [{"text": "S"}]},
            })
        );
    }
}
