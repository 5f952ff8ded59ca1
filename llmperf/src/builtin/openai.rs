//! The OpenAI wire formats: streamed chunks as SSE events, whole responses,
//! error bodies. Chunks are built as text around pre-escaped fields because
//! a response's every event is formatted up front and there can be many.

use bytes::Bytes;
use serde_json::{json, Value};

use super::generate::{FinishReason, Output};
use super::request::Api;

/// Token counts reported in `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: usize,
    /// Content plus reasoning tokens.
    pub(crate) completion_tokens: usize,
    pub(crate) reasoning_tokens: usize,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "completion_tokens_details": { "reasoning_tokens": self.reasoning_tokens },
        })
    }
}

/// Whether a token is streamed as reasoning or as content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Reasoning,
    Content,
}

/// Formats the events and bodies of one response.
pub(crate) struct Formatter {
    api: Api,
    /// `"id":...,"object":...,"created":...,"model":...` — the same in every chunk.
    head: String,
    newline: &'static str,
}

impl Formatter {
    pub(crate) fn new(api: Api, id: &str, model: &str, created: u64, crlf: bool) -> Self {
        let object = match api {
            Api::Chat => "chat.completion.chunk",
            _ => "text_completion",
        };
        Formatter {
            api,
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
        let choice = match (self.api, kind) {
            (Api::Chat, TokenKind::Content) => format!(r#""delta":{{"content":{text}}}"#),
            (Api::Chat, TokenKind::Reasoning) => {
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
        let empty = match self.api {
            Api::Chat => r#""delta":{}"#,
            _ => r#""text":"""#,
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
            usage.to_json()
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

    /// The [`Fault::MalformedEvent`](super::Fault::MalformedEvent) event.
    pub(crate) fn malformed(&self) -> Bytes {
        self.event(MALFORMED_JSON)
    }

    /// The [`Fault::StreamError`](super::Fault::StreamError) event.
    pub(crate) fn stream_error(&self) -> Bytes {
        self.event(&stream_error_json().to_string())
    }

    /// A whole non-streaming response.
    pub(crate) fn full_response(&self, output: &Output, usage: Usage) -> Bytes {
        let content = output.content.concat();
        let reason = output.finish_reason.as_str();
        let (object, choice) = match self.api {
            Api::Chat => {
                let mut message = json!({ "role": "assistant", "content": content });
                if !output.reasoning.is_empty() {
                    message["reasoning_content"] = Value::String(output.reasoning.concat());
                }
                (
                    "chat.completion",
                    json!({ "index": 0, "message": message, "finish_reason": reason }),
                )
            }
            _ => (
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
            usage.to_json()
        ))
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
        let f = Formatter::new(Api::Chat, "chatcmpl-1", "m\"x", 7, false);
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
        let f = Formatter::new(Api::Completions, "cmpl-1", "m", 7, true);
        let event = f.token_chunk(TokenKind::Content, " x");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.ends_with("}\r\n\r\n"), "{text:?}");
        let json: Value = serde_json::from_str(text.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(json["object"], "text_completion");
        assert_eq!(json["choices"][0]["text"], " x");
        assert_eq!(&f.keep_alive()[..], b": keep-alive\r\n\r\n");
    }
}
