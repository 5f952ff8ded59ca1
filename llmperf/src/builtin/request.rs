//! Reading an OpenAI-style generation request body into what the endpoint
//! needs. Lenient about what it ignores, strict (a 400 naming the problem)
//! about what it uses.

use serde::Deserialize;

use super::generate::MAX_OUTPUT_TOKENS;
use crate::workload::tokenizer::Tokenizer;

/// Which OpenAI API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions`
    Completions,
    /// `POST /endpoints/{name}/invocations-response-stream` (Amazon
    /// SageMaker); `lmi`: the container streams LMI JSON lines, not TGI SSE.
    SageMaker { lmi: bool },
    /// Vertex AI Gemini `streamGenerateContent` (`builtin/vertex.rs`).
    Vertex(super::vertex::VertexApi),
    /// Hugging Face TGI's `POST /generate_stream` (see [`super::tgi`]).
    Tgi,
    /// Together's legacy `POST /inference` (see [`super::together`]).
    TogetherInference,
    /// Anthropic's `POST /v1/messages` (see [`super::anthropic`]).
    Anthropic,
}

/// The parts of a generation request the endpoint acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenerationRequest {
    pub(crate) model: String,
    /// Every message's content (or every prompt), joined with `\n`.
    pub(crate) prompt: String,
    /// `max_tokens` or `max_completion_tokens`, capped at
    /// [`MAX_OUTPUT_TOKENS`].
    pub(crate) max_tokens: Option<u32>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// `ignore_eos: true` or any `min_tokens`: keep going after the answer.
    pub(crate) fill: bool,
}

/// The model name used when a request names none.
pub(crate) const DEFAULT_MODEL: &str = "llmperf-builtin";

#[derive(Deserialize)]
struct Raw {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    prompt: Option<Prompt>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    ignore_eos: Option<bool>,
    min_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message {
    // Assistant messages with tool calls carry `content: null`.
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Parses a request body for `api`; the error is a message for a 400.
pub(crate) fn parse(api: Api, body: &[u8]) -> Result<GenerationRequest, String> {
    match api {
        Api::Chat => parse_openai(true, body),
        Api::Completions => parse_openai(false, body),
        Api::Tgi => super::tgi::parse(body),
        Api::TogetherInference => super::together::parse(body),
        Api::Anthropic => super::anthropic::parse(body),
        Api::SageMaker { .. } => super::sagemaker::parse(body),
        Api::Vertex(_) => super::vertex::parse(body),
    }
}

/// Parses an OpenAI chat (`messages`) or completions (`prompt`) body.
fn parse_openai(chat: bool, body: &[u8]) -> Result<GenerationRequest, String> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|error| format!("invalid request body: {error}"))?;
    let prompt = match chat {
        true => {
            let messages = raw
                .messages
                .ok_or("invalid request body: missing field `messages`")?;
            messages
                .into_iter()
                .filter_map(|message| message.content)
                .map(|content| match content {
                    Content::Text(text) => text,
                    Content::Parts(parts) => parts
                        .into_iter()
                        .filter(|part| part.kind.as_deref().is_none_or(|kind| kind == "text"))
                        .filter_map(|part| part.text)
                        .collect::<Vec<_>>()
                        .join("\n"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        false => match raw
            .prompt
            .ok_or("invalid request body: missing field `prompt`")?
        {
            Prompt::Text(text) => text,
            Prompt::Texts(texts) => texts.join("\n"),
            Prompt::Tokens(ids) => Tokenizer::bundled().decode(&ids),
        },
    };
    let max_tokens = raw
        .max_tokens
        .or(raw.max_completion_tokens)
        .map(|n| n.min(u64::from(MAX_OUTPUT_TOKENS)) as u32);
    Ok(GenerationRequest {
        model: raw.model.unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        prompt,
        max_tokens,
        stream: raw.stream.unwrap_or(false),
        include_usage: raw
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        fill: raw.ignore_eos.unwrap_or(false) || raw.min_tokens.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_joins_string_and_part_contents() {
        let body = br#"{"model":"m","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null}
        ],"max_completion_tokens":7,"stream":true,"stream_options":{"include_usage":true},"min_tokens":3}"#;
        let request = parse(Api::Chat, body).unwrap();
        assert_eq!(request.prompt, "be brief\na\nb");
        assert_eq!(request.model, "m");
        assert_eq!(request.max_tokens, Some(7));
        assert!(request.stream && request.include_usage && request.fill);
    }

    #[test]
    fn completions_accept_string_list_and_token_prompts() {
        let one = parse(Api::Completions, br#"{"prompt":"hi"}"#).unwrap();
        assert_eq!(one.prompt, "hi");
        assert_eq!(one.model, DEFAULT_MODEL);
        assert!(!one.stream && !one.fill);
        let many = parse(
            Api::Completions,
            br#"{"prompt":["a","b"],"max_tokens":1e12}"#,
        );
        assert!(many.is_err(), "a float max_tokens is rejected");
        let many = parse(
            Api::Completions,
            br#"{"prompt":["a","b"],"max_tokens":99999999999}"#,
        )
        .unwrap();
        assert_eq!(many.prompt, "a\nb");
        assert_eq!(many.max_tokens, Some(MAX_OUTPUT_TOKENS));
        let ids = Tokenizer::bundled().encode("hello world");
        let body = serde_json::to_vec(&serde_json::json!({ "prompt": ids })).unwrap();
        assert_eq!(
            parse(Api::Completions, &body).unwrap().prompt,
            "hello world"
        );
    }

    #[test]
    fn problems_are_named() {
        let missing = parse(Api::Chat, br#"{"model":"m"}"#).unwrap_err();
        assert!(missing.contains("`messages`"), "{missing}");
        let syntax = parse(Api::Chat, b"{not json").unwrap_err();
        assert!(syntax.contains("line 1 column 2"), "{syntax}");
        let negative = parse(Api::Chat, br#"{"messages":[],"max_tokens":-1}"#).unwrap_err();
        assert!(negative.contains("-1"), "{negative}");
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"\xff\xfe",
            br#"{"messages":"x"}"#,
        ] {
            assert!(parse(Api::Chat, body).is_err());
            assert!(parse(Api::Completions, body).is_err());
        }
    }
}
