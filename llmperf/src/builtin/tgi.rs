//! Hugging Face TGI's `POST /generate_stream`: the request body and the
//! stream's events (also what a TGI container streams inside SageMaker's
//! event stream, see `sagemaker.rs`).
//!
//! One SSE event per token, `data:` without a space (as TGI's axum server
//! writes them). The last event carries `generated_text` and, when the
//! request asked for `details`, the token counts. A response that stops on
//! end-of-sequence ends with the special `</s>` token, which TGI counts in
//! `generated_tokens` (so its count is one more than the text's tokens); a
//! response cut by `max_new_tokens` ends on its last content token.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ResponseBody;
use super::generate::{FinishReason, MAX_OUTPUT_TOKENS};
use super::protocol::{json_response, Protocol, ResponseInfo};
use super::request::{GenerationRequest, DEFAULT_MODEL};
use super::schedule::TokenKind;
use super::timeline::{Ending, StreamFormat};

/// `POST /generate_stream`.
pub(crate) static TGI: Tgi = Tgi;

/// Hugging Face TGI's native streaming route.
pub(crate) struct Tgi;

impl Protocol for Tgi {
    fn parse(&self, body: &[u8]) -> Result<GenerationRequest, String> {
        parse(body)
    }

    fn error(
        &self,
        status: StatusCode,
        message: &str,
        _kind: &str,
        _code: Value,
    ) -> Response<ResponseBody> {
        let error_type = match status.as_u16() {
            400 | 422 => "validation",
            429 => "overloaded",
            _ => "generation",
        };
        json_response(status, error_body(message, error_type))
    }

    fn format(&self, info: &ResponseInfo) -> Box<dyn StreamFormat> {
        Box::new(TgiFormat::new(info.prompt_tokens, info.crlf))
    }
}

#[derive(Deserialize)]
struct Raw {
    inputs: Option<Inputs>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    Text(String),
    Texts(Vec<String>),
}

#[derive(Deserialize)]
struct Parameters {
    max_new_tokens: Option<u64>,
    details: Option<bool>,
    ignore_eos_token: Option<bool>,
    min_new_tokens: Option<u64>,
}

/// Parses a TGI (or LMI) `{"inputs", "parameters"}` body; the error is a
/// message for a 400. `details` asks for the token counts; LMI's
/// `ignore_eos_token` or any `min_new_tokens` keeps generating after the
/// answer.
pub(crate) fn parse(body: &[u8]) -> Result<GenerationRequest, String> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let prompt = match raw
        .inputs
        .ok_or("invalid request body: missing field `inputs`")?
    {
        Inputs::Text(text) => text,
        Inputs::Texts(texts) => texts.join("\n"),
    };
    let parameters = raw.parameters;
    Ok(GenerationRequest {
        // A container serves one model and takes no name.
        model: DEFAULT_MODEL.to_string(),
        prompt,
        max_tokens: parameters
            .as_ref()
            .and_then(|p| p.max_new_tokens)
            .map(|n| n.min(u64::from(MAX_OUTPUT_TOKENS)) as u32),
        stream: true,
        include_usage: parameters.as_ref().and_then(|p| p.details) == Some(true),
        fill: parameters
            .as_ref()
            .is_some_and(|p| p.ignore_eos_token == Some(true) || p.min_new_tokens.is_some()),
    })
}

/// The id TGI's Llama-style tokenizers give `</s>`.
const EOS_ID: u32 = 2;
/// Stand-in ids for generated tokens (nothing reads them).
const FIRST_TOKEN_ID: usize = 1000;

/// Formats one `/generate_stream` response.
pub(crate) struct TgiFormat {
    /// 1-based position of the next token.
    index: usize,
    prompt_tokens: usize,
    newline: &'static str,
}

impl TgiFormat {
    pub(crate) fn new(prompt_tokens: usize, crlf: bool) -> Self {
        TgiFormat {
            index: 1,
            prompt_tokens,
            newline: if crlf { "\r\n" } else { "\n" },
        }
    }

    fn event(&self, payload: &str) -> String {
        let nl = self.newline;
        format!("data:{payload}{nl}{nl}")
    }

    /// One token's event; `end` is the final event's `generated_text` and
    /// `details` (already JSON).
    fn token_event(
        &mut self,
        id: usize,
        text: &str,
        special: bool,
        end: Option<(&str, &str)>,
    ) -> String {
        let index = self.index;
        self.index += 1;
        let token = json!({ "id": id, "text": text, "logprob": -0.25, "special": special });
        let (generated_text, details) = end.unwrap_or(("null", "null"));
        self.event(&format!(
            r#"{{"index":{index},"token":{token},"generated_text":{generated_text},"details":{details}}}"#
        ))
    }

    fn plain(&mut self, text: &str) -> String {
        let id = FIRST_TOKEN_ID + self.index;
        self.token_event(id, text, false, None)
    }

    /// `generated_text` and `details` of the final event.
    fn end_fields(&self, ending: &Ending, generated_tokens: usize) -> (String, String) {
        let text = json!(ending.output.content.concat()).to_string();
        let details = if ending.include_usage {
            json!({
                "finish_reason": match ending.output.finish_reason {
                    FinishReason::Length => "length",
                    FinishReason::Stop => "eos_token",
                },
                "generated_tokens": generated_tokens,
                "seed": null,
                "input_length": self.prompt_tokens,
            })
            .to_string()
        } else {
            "null".to_string()
        };
        (text, details)
    }
}

impl StreamFormat for TgiFormat {
    fn keep_alive(&mut self) -> Option<Bytes> {
        let nl = self.newline;
        Some(Bytes::from(format!(":{nl}{nl}")))
    }

    fn tokens(&mut self, _kind: TokenKind, tokens: &[String]) -> Bytes {
        let mut frame = String::new();
        for text in tokens {
            frame.push_str(&self.plain(text));
        }
        Bytes::from(frame)
    }

    fn last_tokens(&mut self, kind: TokenKind, tokens: &[String], ending: &Ending) -> Vec<Bytes> {
        let Some((last, before)) = tokens.split_last() else {
            return self.closing(ending);
        };
        if !ending.end_marker || ending.output.finish_reason == FinishReason::Stop {
            let mut frames = vec![self.tokens(kind, tokens)];
            frames.extend(self.closing(ending));
            return frames;
        }
        // Cut by max_new_tokens: the last content token is the final event.
        let mut frame = String::new();
        for text in before {
            frame.push_str(&self.plain(text));
        }
        let (text, details) = self.end_fields(ending, ending.usage.completion_tokens);
        let id = FIRST_TOKEN_ID + self.index;
        frame.push_str(&self.token_event(id, last, false, Some((&text, &details))));
        vec![Bytes::from(frame)]
    }

    fn closing(&mut self, ending: &Ending) -> Vec<Bytes> {
        if !ending.end_marker {
            return Vec::new();
        }
        // End of sequence: the special token, counted by TGI.
        let (text, details) = self.end_fields(ending, ending.usage.completion_tokens + 1);
        let eos = self.token_event(EOS_ID as usize, "</s>", true, Some((&text, &details)));
        vec![Bytes::from(eos)]
    }

    fn stream_error(&mut self) -> Vec<Bytes> {
        vec![Bytes::from(self.event(
            r#"{"error":"Request failed during generation: injected stream error","error_type":"generation"}"#,
        ))]
    }

    fn malformed(&mut self) -> Bytes {
        Bytes::from(self.event(r#"{"index":"#))
    }
}

/// TGI's error body: `{"error": …, "error_type": …}`.
pub(crate) fn error_body(message: &str, error_type: &str) -> Bytes {
    Bytes::from(json!({ "error": message, "error_type": error_type }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::generate::Output;
    use crate::builtin::schedule::Usage;

    fn output(reason: FinishReason) -> Output {
        Output {
            reasoning: Vec::new(),
            content: vec![" a".to_string(), " b".to_string()],
            finish_reason: reason,
        }
    }

    fn ending(output: &Output, end_marker: bool) -> Ending<'_> {
        Ending {
            output,
            usage: Usage {
                prompt_tokens: 4,
                completion_tokens: 2,
                reasoning_tokens: 0,
            },
            include_usage: true,
            end_marker,
        }
    }

    fn parsed(frames: &[Bytes]) -> Vec<serde_json::Value> {
        frames
            .iter()
            .flat_map(|frame| {
                std::str::from_utf8(frame)
                    .unwrap()
                    .split("\n\n")
                    .filter(|e| !e.is_empty())
                    .map(|e| serde_json::from_str(e.strip_prefix("data:").unwrap()).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_length_stop_ends_on_the_last_token_and_eos_on_a_special_one() {
        let length = output(FinishReason::Length);
        let mut format = TgiFormat::new(4, false);
        let frames =
            format.last_tokens(TokenKind::Content, &length.content, &ending(&length, true));
        let events = parsed(&frames);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["generated_text"], serde_json::Value::Null);
        assert_eq!(events[1]["token"]["text"], " b");
        assert_eq!(events[1]["generated_text"], " a b");
        assert_eq!(events[1]["details"]["generated_tokens"], 2);
        assert_eq!(events[1]["details"]["input_length"], 4);
        assert_eq!(events[1]["index"], 2);

        let stop = output(FinishReason::Stop);
        let mut format = TgiFormat::new(4, false);
        let events =
            parsed(&format.last_tokens(TokenKind::Content, &stop.content, &ending(&stop, true)));
        assert_eq!(events.len(), 3);
        assert_eq!(events[2]["token"]["special"], true);
        assert_eq!(events[2]["details"]["finish_reason"], "eos_token");
        assert_eq!(events[2]["details"]["generated_tokens"], 3);

        let mut format = TgiFormat::new(4, false);
        let events =
            parsed(&format.last_tokens(TokenKind::Content, &stop.content, &ending(&stop, false)));
        assert!(events.iter().all(|e| e["generated_text"].is_null()));
    }

    #[test]
    fn bodies_parse_and_problems_are_named() {
        let request =
            parse(br#"{"inputs":"hi","parameters":{"max_new_tokens":7,"details":true,"stop":[]}}"#)
                .unwrap();
        assert_eq!(request.prompt, "hi");
        assert_eq!(request.max_tokens, Some(7));
        assert!(request.stream && request.include_usage && !request.fill);
        let bare = parse(br#"{"inputs":"hi"}"#).unwrap();
        assert!(!bare.include_usage);
        assert!(parse(br#"{"prompt":"hi"}"#)
            .unwrap_err()
            .contains("`inputs`"));
    }
}
