//! Together AI's legacy `POST /inference` with `stream_tokens: true`: the
//! request body and the stream's chunks.
//!
//! Each chunk is `{"choices":[{"text":…}],"result_type":"language-model-inference",
//! "id":…,"token":{…},"generated_text":null,"details":null,"stats":null,"usage":null}`;
//! the last one has no text, the `finish_reason`, the whole
//! `generated_text` and the usage; then `data: [DONE]`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::generate::FinishReason;
use super::protocol::{Protocol, ResponseInfo};
use super::request::GenerationRequest;
use super::schedule::TokenKind;
use super::timeline::{Ending, StreamFormat};

/// `POST /inference`.
pub(crate) static INFERENCE: Inference = Inference;

/// Together's legacy inference route.
pub(crate) struct Inference;

impl Protocol for Inference {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        parse(body)
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        Box::new(TogetherFormat::new(info.index, info.crlf))
    }
}

#[derive(Deserialize)]
struct Streaming {
    stream_tokens: Option<bool>,
}

/// Parses an `/inference` body (a completions body where `stream_tokens`
/// asks for the stream); the error is a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<GenerationRequest, String> {
    let mut parsed = super::openai::parse(false, body)?;
    let streaming: Streaming =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    if streaming.stream_tokens != Some(true) {
        return Err(
            "the built-in endpoint serves /inference only as a stream: set \"stream_tokens\": true"
                .to_string(),
        );
    }
    parsed.stream = true;
    // The last chunk always carries the usage.
    parsed.include_usage = true;
    Ok(parsed)
}

/// Formats one `/inference` stream.
pub(crate) struct TogetherFormat {
    id: String,
    newline: &'static str,
    /// Stand-in token ids, counting up.
    next_token_id: usize,
}

impl TogetherFormat {
    pub(crate) fn new(index: u64, crlf: bool) -> Self {
        TogetherFormat {
            id: format!("builtin-inference-{index}"),
            newline: if crlf { "\r\n" } else { "\n" },
            next_token_id: 1000,
        }
    }

    fn event(&self, payload: &str) -> Bytes {
        let nl = self.newline;
        Bytes::from(format!("data: {payload}{nl}{nl}"))
    }
}

impl StreamFormat for TogetherFormat {
    fn keep_alive(&mut self) -> Option<Bytes> {
        let nl = self.newline;
        Some(Bytes::from(format!(": keep-alive{nl}{nl}")))
    }

    fn tokens(&mut self, _kind: TokenKind, tokens: &[String]) -> Bytes {
        let text = tokens.concat();
        let token_id = self.next_token_id;
        self.next_token_id += tokens.len();
        self.event(
            &json!({
                "choices": [{ "text": text }],
                "result_type": "language-model-inference",
                "id": self.id,
                "token": { "id": token_id, "text": text, "logprob": -0.25, "special": false },
                "generated_text": null,
                "details": null,
                "stats": null,
                "usage": null,
            })
            .to_string(),
        )
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        let usage = ending.usage;
        let reason = match ending.output.finish_reason {
            FinishReason::Length => "length",
            FinishReason::Stop => "eos",
        };
        let last = self.event(
            &json!({
                "choices": [{ "text": "", "finish_reason": reason }],
                "result_type": "language-model-inference",
                "id": self.id,
                "token": { "id": 2, "text": "", "logprob": 0, "special": true },
                "generated_text": ending.output.content.concat(),
                "details": null,
                "stats": {},
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            })
            .to_string(),
        );
        let mut frames = vec![last];
        if ending.end_marker {
            frames.push(self.event("[DONE]"));
        }
        frames
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        vec![self.event(
            r#"{"error":{"message":"injected stream error","type":"server_error","code":500}}"#,
        )]
    }

    fn malformed(&mut self) -> Bytes {
        self.event(r#"{"choices":[{"text":"#)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streaming_bodies_are_served() {
        let request =
            parse(br#"{"model":"m","prompt":"hi","max_tokens":5,"stream_tokens":true}"#).unwrap();
        assert_eq!(
            (request.prompt.as_str(), request.max_tokens),
            ("hi", Some(5))
        );
        assert!(request.stream && request.include_usage);
        let refused = parse(br#"{"model":"m","prompt":"hi"}"#).unwrap_err();
        assert!(refused.contains("stream_tokens"), "{refused}");
        assert!(parse(br#"{"model":"m"}"#).unwrap_err().contains("`prompt`"));
    }
}
