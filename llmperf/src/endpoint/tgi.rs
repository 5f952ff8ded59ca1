//! Hugging Face Text Generation Inference (TGI): `POST {base}/generate_stream`.
//!
//! The body is `{"inputs": …, "parameters": {"max_new_tokens", "details":
//! true, "decoder_input_details": false, "stop": []}}` with the user's
//! extra body merged into `parameters` (where TGI's sampling settings
//! live). TGI has no `ignore_eos`: a plan that asks for it gets no
//! equivalent, and a model that stops early produces fewer tokens.
//!
//! The answer is SSE with `data:` and no space, one token per event:
//!
//! ```text
//! data:{"index":1,"token":{"id":89554,"text":" Deep","logprob":-0.12,"special":false},"generated_text":null,"details":null}
//!
//! data:{"index":2,"token":{"id":2,"text":"</s>","logprob":-0.5,"special":true},"generated_text":" Deep","details":{"finish_reason":"eos_token","generated_tokens":2,"seed":null,"input_length":5}}
//! ```
//!
//! Special tokens (`</s>`, `<|eot_id|>`) are not content. There is no
//! `[DONE]`: the event with a non-null `generated_text` is the last, and its
//! `details` give the server's token counts (`generated_tokens`, and the
//! prompt's `input_length` where TGI reports it). An error during
//! generation is an event `{"error": "…", "error_type": "…"}` inside the
//! 200 stream.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use super::framing::sse::SseDecoder;
use super::QUOTED_CHARS;
use super::{
    excerpt, EndpointKind, ErrorKind, Registration, RequestError, StreamDecoder, StreamEvent,
    Target, TimedEvent, Usage,
};
use crate::workload::RequestPlan;

/// `tgi`: see the module docs.
pub struct Tgi;

inventory::submit! { Registration::new(&Tgi) }

impl EndpointKind for Tgi {
    fn name(&self) -> &'static str {
        "tgi"
    }

    fn description(&self) -> &'static str {
        "Hugging Face TGI (POST {base}/generate_stream, one token per SSE event)"
    }

    fn default_env_prefix(&self) -> &'static str {
        "TGI"
    }

    fn builtin_base_url(&self, root: &str) -> String {
        root.to_string()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let mut parameters = serde_json::Map::new();
        if let Some(max_tokens) = plan.max_tokens {
            parameters.insert("max_new_tokens".into(), json!(max_tokens));
        }
        parameters.insert("details".into(), json!(true));
        parameters.insert("decoder_input_details".into(), json!(false));
        parameters.insert("stop".into(), json!([]));
        for (key, value) in &target.extra_body {
            parameters.insert(key.clone(), value.clone());
        }
        let body = json!({ "inputs": plan.prompt, "parameters": parameters });
        let mut request = client
            .post(format!("{}/generate_stream", target.base_url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        if let Some(key) = &target.api_key {
            request = request.bearer_auth(key.expose());
        }
        Ok(request)
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(TgiDecoder::default())
    }

    fn error_detail(&self, body: &str) -> Option<String> {
        let value: Value = serde_json::from_str(body).ok()?;
        match value.get("error")? {
            Value::String(message) => Some(message.clone()),
            // Proxies in front of TGI (and the built-in endpoint's shared
            // errors) answer in OpenAI's shape.
            error => error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// Decodes TGI's `generate_stream` events.
#[derive(Default)]
pub struct TgiDecoder {
    sse: SseDecoder,
    state: State,
}

#[derive(Default)]
struct State {
    /// The final event (with `generated_text`) came.
    ended: bool,
    /// An error was reported; a missing final event is then no news.
    failed: bool,
}

#[derive(Deserialize)]
struct StreamResponse {
    token: Option<Token>,
    generated_text: Option<String>,
    details: Option<Details>,
    error: Option<String>,
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct Token {
    text: String,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct Details {
    finish_reason: Option<String>,
    generated_tokens: Option<u32>,
    /// Newer TGI versions.
    input_length: Option<u32>,
    /// Some versions and forks name it so.
    prompt_tokens: Option<u32>,
    /// The prompt's tokens, when the request asked for them.
    prefill: Option<Vec<Value>>,
}

impl StreamDecoder for TgiDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let state = &mut self.state;
        self.sse
            .feed(bytes, |event| decode_data(event.data, at, state, out));
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let state = &mut self.state;
        self.sse
            .finish(|event| decode_data(event.data, at, state, out));
        if !self.state.ended && !self.state.failed {
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

fn decode_data(data: &str, at: Instant, state: &mut State, out: &mut Vec<TimedEvent>) {
    let mut push = |event| out.push(TimedEvent { at, event });
    let data = data.trim();
    if data.is_empty() || state.ended {
        return;
    }
    let response: StreamResponse = match serde_json::from_str(data) {
        Ok(response) => response,
        Err(error) => {
            state.failed = true;
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::MalformedEvent,
                format!("malformed event ({error}): {}", excerpt(data, QUOTED_CHARS)),
            )));
            return;
        }
    };
    if let Some(message) = response.error {
        state.failed = true;
        let kind = response.error_type.unwrap_or_else(|| "unknown".to_string());
        push(StreamEvent::Error(RequestError::new(
            ErrorKind::StreamError,
            format!("error in stream ({kind}): {message}"),
        )));
        return;
    }
    let Some(token) = response.token else {
        state.failed = true;
        push(StreamEvent::Error(RequestError::new(
            ErrorKind::MalformedEvent,
            format!(
                "an event with neither a token nor an error: {}",
                excerpt(data, QUOTED_CHARS)
            ),
        )));
        return;
    };
    if !token.special && !token.text.is_empty() {
        push(StreamEvent::Content(token.text));
    }
    if response.generated_text.is_none() {
        return;
    }
    state.ended = true;
    if let Some(details) = response.details {
        if let Some(reason) = details.finish_reason {
            push(StreamEvent::Finish(reason));
        }
        let prompt_tokens = details.input_length.or(details.prompt_tokens).or(details
            .prefill
            .filter(|prefill| !prefill.is_empty())
            .and_then(|prefill| u32::try_from(prefill.len()).ok()));
        push(StreamEvent::Usage(Usage {
            prompt_tokens,
            completion_tokens: details.generated_tokens,
            reasoning_tokens: None,
        }));
    }
    push(StreamEvent::Done);
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

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            Tgi.error_detail(r#"{"error":"Input validation error: `inputs` must have less than 4096 tokens","error_type":"validation"}"#),
            Some("Input validation error: `inputs` must have less than 4096 tokens".into())
        );
        assert_eq!(
            Tgi.error_detail(r#"{"error":{"message":"no","type":"x"}}"#),
            Some("no".into())
        );
        assert_eq!(Tgi.error_detail("Bad Gateway"), None);
    }
}
