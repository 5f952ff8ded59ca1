//! The Vertex AI paths of the built-in endpoint.
//!
//! Under `/v1/projects/{project}/locations/{region}` (any project and
//! region):
//!
//! - `POST …/publishers/google/models/{model}:streamGenerateContent?alt=sse`:
//!   Gemini chunks as SSE events ended by `\r\n\r\n`, as Google sends them;
//!   reasoning tokens as parts with `"thought": true`; the last chunk has an
//!   empty text part, `finishReason` and `usageMetadata` with exact counts.
//! - the same without `alt=sse`: one JSON array, each chunk pretty-printed
//!   as Google does and sent as its own element (`[{…}`, `\r\n,\r\n{…}`, …,
//!   `\r\n]`) at the chunk's deadline.
//! - `POST …/endpoints/{id}:streamRawPredict` and
//!   `POST …/endpoints/openapi/chat/completions`: OpenAI chat, served by the
//!   OpenAI formatter.
//!
//! The Gemini request body: `contents[*].parts[*].text` (and
//! `systemInstruction`) make the prompt, `generationConfig.maxOutputTokens`
//! the length. Timing and faults are the script's, as for OpenAI: a
//! stream error is an `{"error": {"code", "message", "status"}}` chunk (an
//! element of the array in the JSON form), a missing end is a stream
//! without the `finishReason` chunk (SSE) or without the closing `]`
//! (array), a malformed event is invalid JSON in the middle.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::generate::{FinishReason, MAX_OUTPUT_TOKENS};
use super::openai::{self, MALFORMED_JSON};
use super::protocol::{Protocol, ResponseInfo};
use super::request::{GenerationRequest, DEFAULT_MODEL};
use super::schedule::TokenKind;
use super::timeline::{Ending, StreamFormat};

/// The two forms of Gemini `streamGenerateContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VertexApi {
    /// `?alt=sse`
    GeminiSse,
    /// No `alt=sse`: one streamed JSON array.
    GeminiJson,
}

/// Gemini `streamGenerateContent` in one of its forms.
pub(crate) struct Gemini(VertexApi);

/// `streamGenerateContent?alt=sse`.
pub(crate) static GEMINI_SSE: Gemini = Gemini(VertexApi::GeminiSse);
/// `streamGenerateContent` without `alt=sse`: one streamed JSON array.
pub(crate) static GEMINI_JSON: Gemini = Gemini(VertexApi::GeminiJson);

impl Protocol for Gemini {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        parse(body)
    }

    fn reasoning(&self) -> bool {
        // Parts with `"thought": true`.
        true
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        Box::new(Framer::new(self.0, format!("builtin-{}", info.index)))
    }
}

/// The protocol of a Vertex path (already without its `/v1`; a `POST`),
/// if it is one.
pub(crate) fn route(path: &str, query: Option<&str>) -> Option<&'static dyn Protocol> {
    let rest = path.strip_prefix("/projects/")?;
    let mut segments = rest.splitn(4, '/');
    let (_project, locations, _region, rest) = (
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
    );
    if locations != "locations" {
        return None;
    }
    if let Some(model) = rest.strip_prefix("publishers/google/models/") {
        let (model, method) = model.split_once(':')?;
        if model.is_empty() || model.contains('/') || method != "streamGenerateContent" {
            return None;
        }
        let sse = query.unwrap_or("").split('&').any(|pair| pair == "alt=sse");
        return Some(if sse { &GEMINI_SSE } else { &GEMINI_JSON });
    }
    let endpoint = rest.strip_prefix("endpoints/")?;
    if endpoint == "openapi/chat/completions" {
        return Some(&openai::CHAT);
    }
    match endpoint.split_once(':') {
        Some((id, "streamRawPredict" | "rawPredict")) if !id.is_empty() && !id.contains('/') => {
            Some(&openai::CHAT)
        }
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    contents: Vec<RawContent>,
    system_instruction: Option<RawContent>,
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize)]
struct RawContent {
    parts: Option<Vec<RawPart>>,
}

#[derive(Deserialize)]
struct RawPart {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: Option<u64>,
}

/// Parses a Gemini request body; the error is a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<GenerationRequest, String> {
    let raw: RawRequest =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let prompt = raw
        .system_instruction
        .into_iter()
        .chain(raw.contents)
        .flat_map(|content| content.parts.unwrap_or_default())
        .filter_map(|part| part.text)
        .collect::<Vec<_>>()
        .join("\n");
    Ok(GenerationRequest {
        // The model is in the URL; nothing here needs it.
        model: DEFAULT_MODEL.to_string(),
        prompt,
        max_tokens: raw
            .generation_config
            .and_then(|config| config.max_output_tokens)
            .map(|n| n.min(u64::from(MAX_OUTPUT_TOKENS)) as u32),
        stream: true,
        include_usage: true,
        // Gemini has no way to ask for ignoring end-of-sequence.
        fill: false,
    })
}

/// One `GenerateContentResponse`, fields in Google's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChunkOut<'a> {
    candidates: [CandidateOut<'a>; 1],
    usage_metadata: UsageOut,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    content: ContentOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    role: &'static str,
    parts: [PartOut<'a>; 1],
}

#[derive(Serialize)]
struct PartOut<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought: Option<bool>,
}

/// Proto3 JSON: zero counts are left out, as Google leaves them out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_token_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_token_count: Option<usize>,
    traffic_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<usize>,
}

/// Only the traffic type, as on every chunk but the last.
const NO_COUNTS: UsageOut = UsageOut {
    prompt_token_count: None,
    candidates_token_count: None,
    total_token_count: None,
    traffic_type: "ON_DEMAND",
    thoughts_token_count: None,
};

/// The invalid element of a malformed-event fault in the array form:
/// balanced brackets (so the element ends) around invalid JSON.
const MALFORMED_ELEMENT: &str = r#"{"candidates": [{"content": }]}"#;

/// The built-in endpoint's Gemini model version.
const MODEL_VERSION: &str = "llmperf-builtin-gemini";

/// Wraps chunks as SSE events or as array elements.
struct Framer {
    api: VertexApi,
    response_id: String,
    /// Elements written so far (the array form puts `[` before the first).
    elements: usize,
}

impl Framer {
    fn new(api: VertexApi, response_id: String) -> Self {
        Framer {
            api,
            response_id,
            elements: 0,
        }
    }

    fn chunk(&self, part: PartOut<'_>, finish: Option<&'static str>, usage: UsageOut) -> String {
        let chunk = ChunkOut {
            candidates: [CandidateOut {
                content: ContentOut {
                    role: "model",
                    parts: [part],
                },
                finish_reason: finish,
            }],
            usage_metadata: usage,
            model_version: MODEL_VERSION,
            response_id: &self.response_id,
        };
        // Serializing these plain structs cannot fail; the fallback only
        // keeps this panic-free.
        let json = match self.api {
            VertexApi::GeminiSse => serde_json::to_string(&chunk),
            VertexApi::GeminiJson => serde_json::to_string_pretty(&chunk),
        };
        json.unwrap_or_default()
    }

    fn frame(&mut self, json: &str) -> Bytes {
        match self.api {
            VertexApi::GeminiSse => Bytes::from(format!("data: {json}\r\n\r\n")),
            VertexApi::GeminiJson => {
                let lead = if self.elements == 0 { "[" } else { "\r\n,\r\n" };
                self.elements += 1;
                Bytes::from(format!("{lead}{json}"))
            }
        }
    }

    fn chunk_of(&mut self, kind: TokenKind, text: &str) -> Bytes {
        let part = PartOut {
            text,
            thought: (kind == TokenKind::Reasoning).then_some(true),
        };
        let json = self.chunk(part, None, NO_COUNTS);
        self.frame(&json)
    }

    /// The last chunk: an empty part, the finish reason, the counts.
    fn finish(&mut self, ending: &Ending) -> Bytes {
        let (output, usage) = (ending.output, ending.usage);
        let reason = match output.finish_reason {
            FinishReason::Stop => "STOP",
            FinishReason::Length => "MAX_TOKENS",
        };
        let nonzero = |n: usize| (n > 0).then_some(n);
        let counts = UsageOut {
            prompt_token_count: nonzero(usage.prompt_tokens),
            // Answer tokens, without the thoughts.
            candidates_token_count: nonzero(output.content.len()),
            total_token_count: nonzero(usage.prompt_tokens + usage.completion_tokens),
            traffic_type: "ON_DEMAND",
            thoughts_token_count: nonzero(output.reasoning.len()),
        };
        let part = PartOut {
            text: "",
            thought: None,
        };
        let json = self.chunk(part, Some(reason), counts);
        self.frame(&json)
    }

    fn error_chunk(&mut self) -> Bytes {
        self.frame(
            r#"{"error": {"code": 500, "message": "injected stream error", "status": "INTERNAL"}}"#,
        )
    }

    fn malformed_chunk(&mut self) -> Bytes {
        match self.api {
            VertexApi::GeminiSse => self.frame(MALFORMED_JSON),
            VertexApi::GeminiJson => self.frame(MALFORMED_ELEMENT),
        }
    }

    /// The array's closing bracket (nothing for SSE).
    fn close(&self) -> Option<Bytes> {
        match self.api {
            VertexApi::GeminiSse => None,
            VertexApi::GeminiJson => Some(Bytes::from_static(b"\r\n]")),
        }
    }
}

impl StreamFormat for Framer {
    fn content_type(&self) -> &'static str {
        match self.api {
            VertexApi::GeminiSse => "text/event-stream",
            VertexApi::GeminiJson => "application/json; charset=UTF-8",
        }
    }

    fn keep_alive(&mut self) -> Option<Bytes> {
        match self.api {
            VertexApi::GeminiSse => Some(Bytes::from_static(b": keep-alive\r\n\r\n")),
            VertexApi::GeminiJson => None,
        }
    }

    fn tokens(&mut self, kind: TokenKind, tokens: &[String]) -> Bytes {
        self.chunk_of(kind, &tokens.concat())
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        // SSE's end marker is the finishReason chunk, the array's its `]`.
        if !ending.end_marker && self.api == VertexApi::GeminiSse {
            return Vec::new();
        }
        let mut frames = vec![self.finish(ending)];
        if ending.end_marker {
            frames.extend(self.close());
        }
        frames
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        let mut frames = vec![self.error_chunk()];
        frames.extend(self.close());
        frames
    }

    fn malformed(&mut self) -> Bytes {
        self.malformed_chunk()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::builtin::timeline::{End, Timeline};
    use crate::endpoint::vertex::{GeminiJsonDecoder, GeminiSseDecoder};
    use crate::endpoint::{StreamDecoder, StreamEvent, Usage};
    use crate::spec::{Fault, Script};
    use crate::workload::tokenizer::Tokenizer;

    fn request(max_tokens: u32) -> GenerationRequest {
        parse(
            format!(
                r#"{{"contents":[{{"role":"user","parts":[{{"text":"hello"}},{{"text":"world"}}]}}],"generationConfig":{{"maxOutputTokens":{max_tokens}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn plan(
        script: &Script,
        api: VertexApi,
        request: &GenerationRequest,
        task: Option<crate::validate::Task>,
        fault: Option<Fault>,
        index: u64,
    ) -> Timeline {
        let protocol = match api {
            VertexApi::GeminiSse => &GEMINI_SSE,
            VertexApi::GeminiJson => &GEMINI_JSON,
        };
        crate::builtin::protocol::plan(script, protocol, request, task, fault, index)
    }

    /// Whether `route` chose `protocol`.
    fn is(route: Option<&'static dyn Protocol>, protocol: &'static dyn Protocol) -> bool {
        route.is_some_and(|chosen| std::ptr::addr_eq(chosen, protocol))
    }

    fn decoded(api: VertexApi, timeline: &Timeline) -> Vec<StreamEvent> {
        let mut decoder: Box<dyn StreamDecoder> = match api {
            VertexApi::GeminiSse => Box::new(GeminiSseDecoder::default()),
            VertexApi::GeminiJson => Box::new(GeminiJsonDecoder::default()),
        };
        let now = std::time::Instant::now();
        let mut out = Vec::new();
        for (_, bytes) in &timeline.frames {
            decoder.feed(bytes, now, &mut out);
        }
        decoder.finish(now, &mut out);
        out.into_iter().map(|e| e.event).collect()
    }

    #[test]
    fn routes_match_the_vertex_paths() {
        let gemini = "/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent";
        assert!(is(route(gemini, Some("alt=sse")), &GEMINI_SSE));
        assert!(is(route(gemini, None), &GEMINI_JSON));
        assert!(is(
            route(
                "/projects/p/locations/r/endpoints/123:streamRawPredict",
                None
            ),
            &openai::CHAT
        ));
        assert!(is(
            route(
                "/projects/p/locations/r/endpoints/openapi/chat/completions",
                None
            ),
            &openai::CHAT
        ));
        for path in [
            "/projects/p/locations/r/endpoints/:streamRawPredict",
            "/projects/p/zones/r/endpoints/1:streamRawPredict",
            "/projects/p/locations/r/publishers/google/models/m:generateContent",
            "/chat/completions",
        ] {
            assert!(route(path, None).is_none(), "{path}");
        }
    }

    #[test]
    fn requests_are_read_from_contents() {
        let body = br#"{"systemInstruction":{"parts":[{"text":"sys"}]},"contents":[{"role":"user","parts":[{"text":"a"},{"inlineData":{}}]}]}"#;
        let request = parse(body).unwrap();
        assert_eq!(request.prompt, "sys\na");
        let conversation = br#"{"contents":[{"role":"user","parts":[{"text":"q1"}]},{"role":"model","parts":[{"text":"a1"}]},{"role":"user","parts":[{"text":"q2"}]}]}"#;
        assert_eq!(parse(conversation).unwrap().prompt, "q1\na1\nq2");
        assert_eq!(request.max_tokens, None);
        assert!(parse(br#"{"messages":[]}"#)
            .unwrap_err()
            .contains("contents"));
        assert!(parse(b"\xff").is_err());
    }

    #[test]
    fn both_forms_decode_to_the_scripted_tokens_and_counts() {
        let script = Script::new().reasoning_tokens(3).tokens_per_event(2);
        for api in [VertexApi::GeminiSse, VertexApi::GeminiJson] {
            // maxOutputTokens counts the thoughts too: 3 of them, 5 content.
            let timeline = plan(&script, api, &request(8), None, None, 1);
            let events = decoded(api, &timeline);
            let reasoning = events
                .iter()
                .filter(|e| matches!(e, StreamEvent::Reasoning(_)))
                .count();
            let content: String = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Content(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(reasoning, 2, "3 thought tokens in events of 2");
            assert_eq!(Tokenizer::bundled().count(&content), 5);
            assert!(events.contains(&StreamEvent::Finish("length".into())));
            assert!(events.contains(&StreamEvent::Usage(Usage {
                prompt_tokens: Some(Tokenizer::bundled().count("hello\nworld") as u32),
                completion_tokens: Some(8),
                reasoning_tokens: Some(3),
            })));
            assert!(!events.iter().any(|e| matches!(e, StreamEvent::Error(_))));
        }
        let sse = plan(&script, VertexApi::GeminiSse, &request(1), None, None, 1);
        assert!(sse.frames.iter().all(|(_, f)| f.ends_with(b"}\r\n\r\n")));
        let json = plan(&script, VertexApi::GeminiJson, &request(1), None, None, 1);
        assert!(json.frames[0].1.starts_with(b"[{\n  \"candidates\""));
        assert!(json.frames[1].1.starts_with(b"\r\n,\r\n{"));
        assert_eq!(&json.frames.last().unwrap().1[..], b"\r\n]");
    }

    #[test]
    fn faults_break_each_form_the_way_they_say() {
        let script = Script::new();
        for api in [VertexApi::GeminiSse, VertexApi::GeminiJson] {
            let fault = |fault| plan(&script, api, &request(10), None, Some(fault), 1);
            let errors = |timeline: &Timeline| -> Vec<crate::error::ErrorKind> {
                decoded(api, timeline)
                    .into_iter()
                    .filter_map(|e| match e {
                        StreamEvent::Error(error) => Some(error.kind),
                        _ => None,
                    })
                    .collect()
            };
            use crate::error::ErrorKind as K;
            assert_eq!(errors(&fault(Fault::StreamError))[0], K::StreamError);
            assert_eq!(
                errors(&fault(Fault::MalformedEvent)),
                vec![K::MalformedEvent]
            );
            assert_eq!(errors(&fault(Fault::MissingDone)), vec![K::MissingDone]);
            let disconnect = fault(Fault::Disconnect);
            assert_eq!(disconnect.end, End::Abort);
            assert_eq!(disconnect.frames.len(), 5);
            assert_eq!(disconnect.end_at, Duration::from_millis(150));
            assert_eq!(fault(Fault::Stall).end, End::Stall);
        }
    }
}
