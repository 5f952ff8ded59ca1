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

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::generate::{self, FinishReason, Spec, MAX_OUTPUT_TOKENS};
use super::openai::{TokenKind, MALFORMED_JSON};
use super::plan::{clamp, jittered, token_events, End, Timeline};
use super::request::{Api, GenerationRequest, DEFAULT_MODEL};
use crate::spec::{Fault, Script};
use crate::validate::Task;
use crate::workload::tokenizer::Tokenizer;

/// The two forms of Gemini `streamGenerateContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VertexApi {
    /// `?alt=sse`
    GeminiSse,
    /// No `alt=sse`: one streamed JSON array.
    GeminiJson,
}

/// The API of a Vertex path (already without its `/v1`), if it is one.
pub(crate) fn route(path: &str, query: Option<&str>, method: &Method) -> Option<Api> {
    if method != Method::POST {
        return None;
    }
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
        return Some(Api::Vertex(if sse {
            VertexApi::GeminiSse
        } else {
            VertexApi::GeminiJson
        }));
    }
    let endpoint = rest.strip_prefix("endpoints/")?;
    if endpoint == "openapi/chat/completions" {
        return Some(Api::Chat);
    }
    match endpoint.split_once(':') {
        Some((id, "streamRawPredict" | "rawPredict")) if !id.is_empty() && !id.contains('/') => {
            Some(Api::Chat)
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

/// Plans a Gemini response (see the module docs); the same schedule as
/// the OpenAI plan in `plan.rs`.
pub(crate) fn plan(
    script: &Script,
    api: VertexApi,
    request: &GenerationRequest,
    task: Option<Task>,
    fault: Option<Fault>,
    index: u64,
) -> Timeline {
    let mut rng = ChaCha8Rng::seed_from_u64(script.seed);
    rng.set_stream(index);
    let prompt_tokens = Tokenizer::bundled().count(&request.prompt);
    let spec = Spec {
        max_tokens: request
            .max_tokens
            .unwrap_or(script.output_tokens)
            .min(MAX_OUTPUT_TOKENS),
        reasoning_tokens: script.reasoning_tokens.min(MAX_OUTPUT_TOKENS),
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
    let last = offsets.iter().copied().max().unwrap_or(first);
    let usage = GeminiUsage {
        prompt: prompt_tokens,
        candidates: output.content.len(),
        thoughts: output.reasoning.len(),
    };
    let response_id = format!("builtin-{index}");
    let mut out = Framer::new(api, &response_id);
    let mut frames: Vec<(Duration, Bytes)> = Vec::with_capacity(events.len() + 4);
    if script.keep_alive && api == VertexApi::GeminiSse {
        let first_event = offsets.first().copied().unwrap_or(first);
        frames.push((first_event / 2, Bytes::from_static(b": keep-alive\r\n\r\n")));
    }
    let stream = |frames, end_at, end| Timeline {
        status: StatusCode::OK,
        content_type: match api {
            VertexApi::GeminiSse => "text/event-stream",
            VertexApi::GeminiJson => "application/json; charset=UTF-8",
        },
        head_at: Duration::ZERO,
        frames,
        end_at,
        end,
        whole: false,
        tail: None,
        first_event: offsets.first().copied(),
    };
    let total = usage.candidates + usage.thoughts;
    // Faults that cut the stream keep the events wholly in the first half,
    // and strike when the next event would have been sent.
    let kept = events
        .iter()
        .take_while(|event| event.tokens_before + event.tokens <= total / 2)
        .count();
    let cut_at = offsets.get(kept).copied().unwrap_or(last);
    if let Some(fault @ (Fault::Disconnect | Fault::Stall | Fault::StreamError)) = fault {
        for (event, at) in events.iter().zip(&offsets).take(kept) {
            frames.push((*at, out.token(event.kind, &event.text)));
        }
        let end = match fault {
            Fault::Disconnect => End::Abort,
            Fault::Stall => End::Stall,
            _ => {
                frames.push((cut_at, out.error()));
                if let Some(close) = out.close() {
                    frames.push((cut_at, close));
                }
                End::Finish
            }
        };
        return stream(frames, cut_at, end);
    }
    let malformed_after = (fault == Some(Fault::MalformedEvent)).then_some(events.len() / 2);
    if malformed_after == Some(0) {
        frames.push((Duration::ZERO, out.malformed()));
    }
    for (i, (event, at)) in events.iter().zip(&offsets).enumerate() {
        frames.push((*at, out.token(event.kind, &event.text)));
        if malformed_after == Some(i + 1) {
            frames.push((*at, out.malformed()));
        }
    }
    match (fault, api) {
        // SSE's end marker is the finishReason chunk, the array's its `]`.
        (Some(Fault::MissingDone), VertexApi::GeminiSse) => {}
        (Some(Fault::MissingDone), VertexApi::GeminiJson) => {
            frames.push((last, out.finish(output.finish_reason, usage)));
        }
        _ => {
            frames.push((last, out.finish(output.finish_reason, usage)));
            if let Some(close) = out.close() {
                frames.push((last, close));
            }
        }
    }
    stream(frames, last, End::Finish)
}

/// Token counts as `usageMetadata` reports them.
#[derive(Debug, Clone, Copy)]
struct GeminiUsage {
    prompt: usize,
    /// Answer tokens, without the thoughts.
    candidates: usize,
    thoughts: usize,
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
struct Framer<'a> {
    api: VertexApi,
    response_id: &'a str,
    /// Elements written so far (the array form puts `[` before the first).
    elements: usize,
}

impl<'a> Framer<'a> {
    fn new(api: VertexApi, response_id: &'a str) -> Self {
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
            response_id: self.response_id,
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

    fn token(&mut self, kind: TokenKind, text: &str) -> Bytes {
        let part = PartOut {
            text,
            thought: (kind == TokenKind::Reasoning).then_some(true),
        };
        let json = self.chunk(part, None, NO_COUNTS);
        self.frame(&json)
    }

    fn finish(&mut self, reason: FinishReason, usage: GeminiUsage) -> Bytes {
        let reason = match reason {
            FinishReason::Stop => "STOP",
            FinishReason::Length => "MAX_TOKENS",
        };
        let nonzero = |n: usize| (n > 0).then_some(n);
        let counts = UsageOut {
            prompt_token_count: nonzero(usage.prompt),
            candidates_token_count: nonzero(usage.candidates),
            total_token_count: nonzero(usage.prompt + usage.candidates + usage.thoughts),
            traffic_type: "ON_DEMAND",
            thoughts_token_count: nonzero(usage.thoughts),
        };
        let part = PartOut {
            text: "",
            thought: None,
        };
        let json = self.chunk(part, Some(reason), counts);
        self.frame(&json)
    }

    fn error(&mut self) -> Bytes {
        self.frame(
            r#"{"error": {"code": 500, "message": "injected stream error", "status": "INTERNAL"}}"#,
        )
    }

    fn malformed(&mut self) -> Bytes {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::vertex::{GeminiJsonDecoder, GeminiSseDecoder};
    use crate::endpoint::{StreamDecoder, StreamEvent, Usage};

    fn request(max_tokens: u32) -> GenerationRequest {
        parse(
            format!(
                r#"{{"contents":[{{"role":"user","parts":[{{"text":"hello"}},{{"text":"world"}}]}}],"generationConfig":{{"maxOutputTokens":{max_tokens}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
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
        let post = Method::POST;
        let gemini = "/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent";
        assert_eq!(
            route(gemini, Some("alt=sse"), &post),
            Some(Api::Vertex(VertexApi::GeminiSse))
        );
        assert_eq!(
            route(gemini, None, &post),
            Some(Api::Vertex(VertexApi::GeminiJson))
        );
        assert_eq!(route(gemini, None, &Method::GET), None);
        assert_eq!(
            route(
                "/projects/p/locations/r/endpoints/123:streamRawPredict",
                None,
                &post
            ),
            Some(Api::Chat)
        );
        assert_eq!(
            route(
                "/projects/p/locations/r/endpoints/openapi/chat/completions",
                None,
                &post
            ),
            Some(Api::Chat)
        );
        for path in [
            "/projects/p/locations/r/endpoints/:streamRawPredict",
            "/projects/p/zones/r/endpoints/1:streamRawPredict",
            "/projects/p/locations/r/publishers/google/models/m:generateContent",
            "/chat/completions",
        ] {
            assert_eq!(route(path, None, &post), None, "{path}");
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
            let timeline = plan(&script, api, &request(5), None, None, 1);
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
            let errors = |timeline: &Timeline| -> Vec<crate::endpoint::ErrorKind> {
                decoded(api, timeline)
                    .into_iter()
                    .filter_map(|e| match e {
                        StreamEvent::Error(error) => Some(error.kind),
                        _ => None,
                    })
                    .collect()
            };
            use crate::endpoint::ErrorKind as K;
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
