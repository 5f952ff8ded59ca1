//! OpenAI-compatible chat and completions streaming.
//!
//! `POST {base}/chat/completions` and `POST {base}/completions` with
//! `stream: true` and `stream_options.include_usage`, Bearer auth. One
//! decoder serves both: chunks carry `choices[].delta.content` (chat) or
//! `choices[].text` (completions), reasoning in `delta.reasoning_content` or
//! `delta.reasoning`, a final usage chunk (often with empty `choices`), then
//! `data: [DONE]`. An `{"error": …}` object (or vLLM's `{"object":
//! "error", "message"}`) inside a 200 stream is an error; a stream without
//! `[DONE]` is [`ErrorKind::MissingDone`].
//!
//! `openai-chat` is the default kind (`--api`). Its variables are
//! `OPENAI_API_BASE` (e.g. `http://host:8000/v1`; no default: use the
//! [`openai`](super::presets::OPENAI) preset for `api.openai.com`) and
//! `OPENAI_API_KEY`. The chat body sends the workload's messages; the
//! completions body sends them flattened into one `prompt` (a lone user
//! message as its own text, else `System: …`, `User: …`, `Assistant: …`
//! turns ending with `Assistant:`). Both add `max_tokens`, and when the
//! workload ignores the end of sequence, `ignore_eos: true` and `min_tokens`
//! equal to `max_tokens` (vLLM's and SGLang's knobs); the spec's extra body
//! is merged last and wins. The presets ([`super::presets`]) are this kind
//! with other defaults.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use super::framing::sse::SseDecoder;
use super::QUOTED_CHARS;
use super::{
    excerpt, About, EndpointKind, ErrorKind, Registration, RequestError, StreamDecoder,
    StreamEvent, Target, TimedEvent, Usage,
};
use crate::workload::RequestPlan;

/// `openai-chat`: `POST {base}/chat/completions`.
pub struct OpenAiChat;

/// `openai-completions`: `POST {base}/completions`.
pub struct OpenAiCompletions;

inventory::submit! { Registration::new(&OpenAiChat) }
inventory::submit! { Registration::new(&OpenAiCompletions) }

impl EndpointKind for OpenAiChat {
    fn about(&self) -> About {
        About::new(
            "openai-chat",
            "OpenAI-compatible chat completions (POST {base}/chat/completions, SSE)",
        )
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let body = json!({
            "model": target.model,
            "messages": plan.messages,
        });
        Ok(post(client, target, "chat/completions", body, plan))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

impl EndpointKind for OpenAiCompletions {
    fn about(&self) -> About {
        About::new(
            "openai-completions",
            "OpenAI-compatible text completions (POST {base}/completions, SSE)",
        )
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let body = json!({ "model": target.model, "prompt": plan.prompt });
        Ok(post(client, target, "completions", body, plan))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

/// Adds the streaming and length fields and the user's extra body, then
/// builds the POST with Bearer auth (for OpenAI-compatible kinds).
pub fn post(
    client: &reqwest::Client,
    target: &Target,
    path: &str,
    body: Value,
    plan: &RequestPlan,
) -> reqwest::RequestBuilder {
    let body = stream_body(body, target, plan);
    super::sse_post(client, format!("{}/{path}", target.base_url), &body, target)
}

/// `body` with the streaming and length fields (`stream`,
/// `stream_options.include_usage`, `max_tokens`, `ignore_eos`/`min_tokens`
/// when the plan asks to ignore the end of sequence) and the user's extra
/// body merged in, for kinds that post OpenAI bodies their own way.
pub fn stream_body(mut body: Value, target: &Target, plan: &RequestPlan) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields.insert("stream".into(), json!(true));
        fields.insert("stream_options".into(), json!({"include_usage": true}));
        if let Some(max_tokens) = plan.max_tokens {
            fields.insert("max_tokens".into(), json!(max_tokens));
            if plan.ignore_eos {
                fields.insert("min_tokens".into(), json!(max_tokens));
            }
        }
        if plan.ignore_eos {
            fields.insert("ignore_eos".into(), json!(true));
        }
        for (key, value) in &target.extra_body {
            fields.insert(key.clone(), value.clone());
        }
    }
    body
}

/// Decodes OpenAI-style SSE chunks (chat and completions).
#[derive(Default)]
pub struct OpenAiDecoder {
    sse: SseDecoder,
    saw_done: bool,
}

#[derive(Deserialize)]
struct Chunk {
    /// Absent or `null` in usage-only and error chunks.
    choices: Option<Vec<Choice>>,
    usage: Option<WireUsage>,
    error: Option<Value>,
    /// vLLM-style errors: `{"object": "error", "message": …}`.
    object: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u32>,
}

impl StreamDecoder for OpenAiDecoder {
    fn buffered_bytes(&self) -> usize {
        self.sse.pending_bytes()
    }

    fn feed(&mut self, bytes: &[u8], at: Instant, out: &mut Vec<TimedEvent>) {
        let saw_done = &mut self.saw_done;
        self.sse
            .feed(bytes, |event| decode_data(event.data, at, saw_done, out));
    }

    fn finish(&mut self, at: Instant, out: &mut Vec<TimedEvent>) {
        let saw_done = &mut self.saw_done;
        self.sse
            .finish(|event| decode_data(event.data, at, saw_done, out));
        if !self.saw_done {
            out.push(TimedEvent {
                at,
                event: StreamEvent::Error(RequestError::new(
                    ErrorKind::MissingDone,
                    "the stream ended without `data: [DONE]`",
                )),
            });
        }
    }
}

fn decode_data(data: &str, at: Instant, saw_done: &mut bool, out: &mut Vec<TimedEvent>) {
    let mut push = |event| out.push(TimedEvent { at, event });
    let data = data.trim();
    if data.is_empty() {
        // A bare `data:` line carries nothing (some proxies send it as a keep-alive).
        return;
    }
    if data == "[DONE]" {
        *saw_done = true;
        push(StreamEvent::Done);
        return;
    }
    let chunk: Chunk = match serde_json::from_str(data) {
        Ok(chunk) => chunk,
        Err(error) => {
            push(StreamEvent::Error(RequestError::new(
                ErrorKind::MalformedEvent,
                format!("malformed event ({error}): {}", excerpt(data, QUOTED_CHARS)),
            )));
            return;
        }
    };
    if let Some(error) = chunk.error {
        push(StreamEvent::Error(RequestError::new(
            ErrorKind::StreamError,
            format!("error in stream: {}", error_message(&error)),
        )));
        return;
    }
    if chunk.object.as_deref() == Some("error") {
        push(StreamEvent::Error(RequestError::new(
            ErrorKind::StreamError,
            format!("error in stream: {}", chunk.message.unwrap_or_default()),
        )));
        return;
    }
    for choice in chunk.choices.unwrap_or_default() {
        if let Some(delta) = choice.delta {
            if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning) {
                if !reasoning.is_empty() {
                    push(StreamEvent::Reasoning(reasoning));
                }
            }
            if let Some(content) = delta.content {
                if !content.is_empty() {
                    push(StreamEvent::Content(content));
                }
            }
        } else if let Some(text) = choice.text {
            // `text` is the completions API's field. Together's chat chunks
            // carry it too, repeating `delta.content`: counted once, from
            // the delta, whenever a delta is present.
            if !text.is_empty() {
                push(StreamEvent::Content(text));
            }
        }
        if let Some(reason) = choice.finish_reason {
            push(StreamEvent::Finish(reason));
        }
    }
    if let Some(usage) = chunk.usage {
        push(StreamEvent::Usage(Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: usage
                .completion_tokens_details
                .and_then(|details| details.reasoning_tokens),
        }));
    }
}

/// The message of an OpenAI-style error object (or the whole object).
fn error_message(error: &Value) -> String {
    match error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
    {
        Some(message) => message.to_string(),
        None => excerpt(&error.to_string(), QUOTED_CHARS),
    }
}

/// The message of an OpenAI-style error response body
/// (`{"error": {"message": …}}`, or vLLM's `{"object": "error", "message": …}`).
pub(crate) fn error_detail(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("error") {
        Some(error) => Some(error_message(error)),
        None => value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON body of `kind`'s request for `plan`.
    fn body_of(kind: &dyn EndpointKind, plan: &RequestPlan) -> Value {
        let target = Target {
            base_url: "http://127.0.0.1:1/v1".to_string(),
            model: "m".to_string(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: serde_json::Map::new(),
            options: Default::default(),
            env_prefix: "LLMPERF_OPENAI_TEST_UNSET".to_string(),
        };
        let request = kind
            .build_request(&reqwest::Client::new(), &target, plan)
            .unwrap()
            .build()
            .unwrap();
        serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap()
    }

    #[test]
    fn chat_sends_every_message_and_completions_the_flattened_prompt() {
        let plan = crate::workload::test_conversation();
        assert_eq!(
            body_of(&OpenAiChat, &plan)["messages"],
            json!([
                {"role": "system", "content": "S"},
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "U2"},
            ])
        );
        assert_eq!(
            body_of(&OpenAiCompletions, &plan)["prompt"],
            "System: S\n\nUser: U1\n\nAssistant: A1\n\nUser: U2\n\nAssistant:"
        );
    }

    fn decode(pieces: &[&str]) -> Vec<StreamEvent> {
        let mut decoder = OpenAiDecoder::default();
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in pieces {
            decoder.feed(piece.as_bytes(), now, &mut out);
        }
        decoder.finish(now, &mut out);
        out.into_iter().map(|e| e.event).collect()
    }

    #[test]
    fn a_chat_stream_as_openai_sends_it() {
        // Captured shape of api.openai.com's chat stream with include_usage.
        let events = decode(&[
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\ndata: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("Hello".into()),
                StreamEvent::Content(" there".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: Some(9),
                    completion_tokens: Some(2),
                    reasoning_tokens: Some(0)
                }),
                StreamEvent::Done,
            ]
        );
    }

    /// Together's chat stream as its docs show it: extra fields (`token`,
    /// `generated_text`, `stats`), the text both in `delta.content` and in
    /// `text`, and the usage on the last chunk that also has a choice with
    /// `finish_reason: "eos"`.
    const TOGETHER_CHAT: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"text\":\" A\",\"logprobs\":null,\"finish_reason\":null,\"seed\":null,\"delta\":{\"token_id\":330,\"role\":\"assistant\",\"content\":\" A\",\"tool_calls\":null}}],\"id\":\"85ffbb8a6d2c4340-EWR\",\"token\":{\"id\":330,\"text\":\" A\",\"logprob\":1,\"special\":false},\"finish_reason\":null,\"generated_text\":null,\"stats\":null,\"usage\":null,\"created\":1709700707,\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[{\"index\":0,\"text\":\":\",\"logprobs\":null,\"finish_reason\":null,\"seed\":null,\"delta\":{\"token_id\":28747,\"role\":\"assistant\",\"content\":\":\",\"tool_calls\":null}}],\"id\":\"85ffbb8a6d2c4340-EWR\",\"token\":{\"id\":28747,\"text\":\":\",\"logprob\":0,\"special\":false},\"finish_reason\":null,\"generated_text\":null,\"stats\":null,\"usage\":null,\"created\":1709700707,\"object\":\"chat.completion.chunk\"}\n\n",
        "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"eos\",\"seed\":5369531837349743000,\"delta\":{\"token_id\":2,\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":null}}],\"id\":\"85ffbb8a6d2c4340-EWR\",\"token\":{\"id\":2,\"text\":\"\",\"logprob\":0,\"special\":true},\"finish_reason\":\"eos\",\"generated_text\":\" A:\",\"stats\":{},\"usage\":{\"prompt_tokens\":15,\"completion_tokens\":3,\"total_tokens\":18},\"created\":1709700707,\"object\":\"chat.completion.chunk\"}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn a_together_chat_stream_counts_each_text_once_at_every_split() {
        let expected = vec![
            StreamEvent::Content(" A".into()),
            StreamEvent::Content(":".into()),
            StreamEvent::Finish("eos".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(15),
                completion_tokens: Some(3),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        assert_eq!(decode(&[TOGETHER_CHAT]), expected);
        for split in 0..TOGETHER_CHAT.len() {
            let (a, b) = TOGETHER_CHAT.as_bytes().split_at(split);
            let mut decoder = OpenAiDecoder::default();
            let mut out = Vec::new();
            let now = Instant::now();
            decoder.feed(a, now, &mut out);
            decoder.feed(b, now, &mut out);
            decoder.finish(now, &mut out);
            let events: Vec<_> = out.into_iter().map(|e| e.event).collect();
            assert_eq!(events, expected, "split at {split}");
        }
    }

    #[test]
    fn a_plain_string_error_gives_its_text() {
        let events = decode(&["data: {\"error\":\"model overloaded\"}\n\n"]);
        assert_eq!(
            events[0],
            StreamEvent::Error(RequestError::new(
                ErrorKind::StreamError,
                "error in stream: model overloaded"
            ))
        );
    }

    #[test]
    fn reasoning_deltas_are_not_content() {
        let events = decode(&[
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me think\"}}]}\n\n",
            "data:{\"choices\":[{\"delta\":{\"reasoning\":\" more\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"42\"}}]}\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(events[0], StreamEvent::Reasoning("Let me think".into()));
        assert_eq!(events[1], StreamEvent::Reasoning(" more".into()));
        assert_eq!(events[2], StreamEvent::Content("42".into()));
    }

    #[test]
    fn completions_text_chunks_are_content() {
        let events = decode(&[
            "data: {\"object\":\"text_completion\",\"choices\":[{\"text\":\" lo\",\"index\":0,\"finish_reason\":null}]}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert_eq!(
            events,
            vec![StreamEvent::Content(" lo".into()), StreamEvent::Done]
        );
    }

    #[test]
    fn an_error_object_inside_a_200_stream_is_a_stream_error() {
        let events = decode(&[
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
            "data: {\"object\":\"error\",\"message\":\"vllm says no\",\"code\":400}\n\n",
            "data: [DONE]\n\n",
        ]);
        let kinds: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Error(error) => Some((error.kind, error.message.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds[0],
            (ErrorKind::StreamError, "error in stream: overloaded".into())
        );
        assert_eq!(kinds[1].1, "error in stream: vllm says no");
    }

    #[test]
    fn null_choices_and_empty_data_are_harmless() {
        let events = decode(&[
            "data:\n\n",
            "data: {\"choices\":null,\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[0], StreamEvent::Usage(_)));
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_detail(
                r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#
            ),
            Some("Incorrect API key".to_string())
        );
        assert_eq!(
            error_detail(r#"{"object":"error","message":"model not found","code":404}"#),
            Some("model not found".to_string())
        );
        assert_eq!(error_detail("<html>bad gateway</html>"), None);
    }

    #[test]
    fn malformed_json_and_a_missing_done_are_named_errors() {
        let events = decode(&["data: {\"choices\": [\n\n", "data: {\"choices\":[]}\n\n"]);
        assert_eq!(
            crate::endpoint::error_kinds(&events),
            vec![ErrorKind::MalformedEvent, ErrorKind::MissingDone]
        );
    }
}
