//! Anthropic's `POST /v1/messages`: the key and version headers, the
//! request body, the named SSE events and the error shape.
//!
//! A response goes `message_start` (input tokens), `ping`, then per block
//! `content_block_start`, `content_block_delta`s (`thinking_delta` for the
//! script's reasoning tokens, then `text_delta`), `content_block_stop` (a
//! thinking block gets its `signature_delta` first), and finally
//! `message_delta` (stop reason, cumulative output tokens) and
//! `message_stop`.

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::generate::FinishReason;
use super::protocol::{has_key, json_response, Protocol, ResponseInfo};
use super::request::GenerationRequest;
use super::schedule::TokenKind;
use super::state::State;
use super::timeline::{Ending, StreamFormat};

/// `POST /v1/messages`.
pub(crate) static MESSAGES: Messages = Messages;

/// Anthropic's Messages API.
pub(crate) struct Messages;

impl Protocol for Messages {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        parse(body)
    }

    fn check_head(&self, head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
        check(head, state)
    }

    fn error(
        &self,
        status: StatusCode,
        message: &str,
        _kind: &str,
        _code: Value,
    ) -> Response<ResponseBody> {
        error(status, message)
    }

    fn reasoning(&self) -> bool {
        // Streamed as thinking blocks.
        true
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        Box::new(AnthropicFormat::new(
            info.index,
            info.model,
            info.prompt_tokens,
            info.crlf,
        ))
    }
}

/// What Anthropic checks before generating: `anthropic-version`, and the
/// `x-api-key` header when the script requires a key.
fn check(head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
    if head.headers.get("anthropic-version").is_none() {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required",
        ));
    }
    (!has_key(head, state, "x-api-key", "")).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid x-api-key (the built-in endpoint requires the scripted key in the `x-api-key` header)",
        )
    })
}

/// An error answer in Anthropic's shape, its type named after the status.
fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, error_body(status, message))
}

/// `{"type":"error","error":{"type":…,"message":…}}`.
fn error_body(status: StatusCode, message: &str) -> Bytes {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    Bytes::from(
        json!({ "type": "error", "error": { "type": kind, "message": message } }).to_string(),
    )
}

#[derive(Deserialize)]
struct Required {
    max_tokens: Option<u64>,
    stream: Option<bool>,
    system: Option<System>,
}

/// The top-level `system`: a string, or a list of text blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum System {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

#[derive(Deserialize)]
struct SystemBlock {
    text: Option<String>,
}

/// Parses a Messages body (its `messages` read as chat messages, after
/// the top-level `system` text, so prompt tokens count both); the error is
/// a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<GenerationRequest, String> {
    let mut parsed = super::openai::parse(true, body)?;
    let required: Required =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let system = match required.system {
        Some(System::Text(text)) => text,
        Some(System::Blocks(blocks)) => blocks
            .into_iter()
            .filter_map(|block| block.text)
            .collect::<Vec<_>>()
            .join("\n"),
        None => String::new(),
    };
    if !system.is_empty() {
        parsed.prompt = format!("{system}\n{}", parsed.prompt);
    }
    if required.max_tokens.is_none() {
        return Err("max_tokens: Field required".to_string());
    }
    if required.stream != Some(true) {
        return Err(
            "the built-in endpoint serves /v1/messages only as a stream: set \"stream\": true"
                .to_string(),
        );
    }
    // Usage always comes, in message_start and message_delta.
    parsed.include_usage = true;
    Ok(parsed)
}

/// Formats one Messages stream.
pub(crate) struct AnthropicFormat {
    id: String,
    model: String,
    prompt_tokens: usize,
    newline: &'static str,
    /// The open content block: its index and what it holds.
    open: Option<(usize, TokenKind)>,
    next_block: usize,
}

impl AnthropicFormat {
    pub(crate) fn new(index: u64, model: &str, prompt_tokens: usize, crlf: bool) -> Self {
        AnthropicFormat {
            id: format!("msg_builtin{index:017}"),
            model: model.to_string(),
            prompt_tokens,
            newline: if crlf { "\r\n" } else { "\n" },
            open: None,
            next_block: 0,
        }
    }

    fn event(&self, name: &str, data: &Value) -> String {
        let nl = self.newline;
        format!("event: {name}{nl}data: {data}{nl}{nl}")
    }

    /// A `ping` event.
    fn ping(&self) -> Bytes {
        Bytes::from(self.event("ping", &json!({"type": "ping"})))
    }

    /// Closes the open block, if any, into `frame`.
    fn close_block(&mut self, frame: &mut String) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        if kind == TokenKind::Reasoning {
            frame.push_str(&self.event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": "bW9jay1zaWduYXR1cmU="}}),
            ));
        }
        frame.push_str(&self.event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
}

impl StreamFormat for AnthropicFormat {
    fn opening(&mut self) -> Vec<Bytes> {
        let start = self.event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "content": [],
                "model": self.model, "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 1},
            }}),
        );
        vec![Bytes::from(start), self.ping()]
    }

    fn keep_alive(&mut self) -> Option<Bytes> {
        Some(self.ping())
    }

    fn tokens(&mut self, kind: TokenKind, tokens: &[String]) -> Bytes {
        let mut frame = String::new();
        if self.open.map(|(_, open)| open) != Some(kind) {
            self.close_block(&mut frame);
            let index = self.next_block;
            self.next_block += 1;
            self.open = Some((index, kind));
            let block = match kind {
                TokenKind::Reasoning => json!({"type": "thinking", "thinking": ""}),
                TokenKind::Content => json!({"type": "text", "text": ""}),
            };
            frame.push_str(&self.event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": block}),
            ));
        }
        let index = self.open.map_or(0, |(index, _)| index);
        let text = tokens.concat();
        let delta = match kind {
            TokenKind::Reasoning => json!({"type": "thinking_delta", "thinking": text}),
            TokenKind::Content => json!({"type": "text_delta", "text": text}),
        };
        frame.push_str(&self.event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
        Bytes::from(frame)
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        let mut frame = String::new();
        self.close_block(&mut frame);
        let stop_reason = match ending.output.finish_reason {
            FinishReason::Length => "max_tokens",
            FinishReason::Stop => "end_turn",
        };
        frame.push_str(&self.event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                    "usage": {"output_tokens": ending.usage.completion_tokens}}),
        ));
        if ending.end_marker {
            frame.push_str(&self.event("message_stop", &json!({"type": "message_stop"})));
        }
        vec![Bytes::from(frame)]
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        vec![Bytes::from(self.event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error",
                                               "message": "Overloaded (injected stream error)"}}),
        ))]
    }

    fn malformed(&mut self) -> Bytes {
        let nl = self.newline;
        Bytes::from(format!(
            "event: content_block_delta{nl}data: {{\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {{{nl}{nl}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_need_max_tokens_and_stream() {
        let ok = parse(
            br#"{"model":"claude","max_tokens":9,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
        )
        .unwrap();
        assert_eq!((ok.prompt.as_str(), ok.max_tokens), ("hi", Some(9)));
        assert!(ok.include_usage);
        let missing = parse(br#"{"model":"c","stream":true,"messages":[]}"#).unwrap_err();
        assert!(missing.contains("max_tokens"), "{missing}");
        let whole = parse(br#"{"model":"c","max_tokens":1,"messages":[]}"#).unwrap_err();
        assert!(whole.contains("stream"), "{whole}");
    }

    #[test]
    fn the_system_text_and_every_message_count_as_prompt() {
        let body = br#"{"model":"c","max_tokens":5,"stream":true,"system":"Be brief.",
            "messages":[{"role":"user","content":"one"},{"role":"assistant","content":"two"},{"role":"user","content":"three"}]}"#;
        assert_eq!(parse(body).unwrap().prompt, "Be brief.\none\ntwo\nthree");
        let blocks = br#"{"max_tokens":5,"stream":true,"system":[{"type":"text","text":"a"},{"type":"text","text":"b"}],
            "messages":[{"role":"user","content":"c"}]}"#;
        assert_eq!(parse(blocks).unwrap().prompt, "a\nb\nc");
        let bad = br#"{"max_tokens":5,"stream":true,"system":7,"messages":[]}"#;
        assert!(parse(bad).is_err());
    }

    #[test]
    fn blocks_switch_from_thinking_to_text_with_a_signature() {
        let mut format = AnthropicFormat::new(1, "claude", 3, false);
        let thinking = format.tokens(TokenKind::Reasoning, &[" hm".to_string()]);
        let text = format.tokens(TokenKind::Content, &[" a".to_string()]);
        let thinking = std::str::from_utf8(&thinking).unwrap();
        let text = std::str::from_utf8(&text).unwrap();
        assert!(thinking.starts_with("event: content_block_start\n"));
        assert!(thinking.contains(r#""thinking_delta""#));
        assert!(text.find("signature_delta") < text.find("content_block_stop"));
        assert!(text.contains(r#""index":1"#));
        assert!(text.contains(r#""text_delta""#));
    }
}
