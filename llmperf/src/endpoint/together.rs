//! Together AI's legacy inference API (`together-inference`): `POST
//! {base}/inference`.
//!
//! ```sh
//! TOGETHER_API_KEY=… llmperf run --api together-inference -m togethercomputer/llama-2-7b -r 20 -c 4
//! ```
//!
//! The body is `{"model", "prompt", "max_tokens", "stream_tokens": true}`
//! (the prompt is the workload's messages flattened; the user's extra body
//! merged in), with a Bearer key (`TOGETHER_API_KEY`). `ignore_eos` is not
//! sent (set it with `extra_body` if the model supports it). The answer is
//! SSE whose chunks look like completions chunks with extra fields
//! (`result_type`, `token`, `generated_text`, `stats`), the usage on the
//! last chunk, ending with `data: [DONE]`:
//!
//! ```text
//! data: {"choices":[{"text":" Hello"}],"result_type":"language-model-inference","id":"8a1f…","token":{"id":15043,"text":" Hello","logprob":-0.1,"special":false},"generated_text":null,"details":null,"stats":null,"usage":null}
//! ```
//!
//! so the OpenAI decoder reads them (text from `choices[].text`, the usage
//! on the last chunk when present). For Together's OpenAI-compatible API use
//! the `together` preset (`--api together`). `TOGETHER_API_BASE` defaults
//! to `https://api.together.xyz` and may end in `/v1` (as the preset's
//! does): the legacy path is then taken from the host's root.

use serde_json::json;

use super::openai::OpenAiDecoder;
use super::{About, EndpointKind, Registration, RequestError, StreamDecoder, Target};
use crate::workload::RequestPlan;

/// `together-inference`: see the module docs.
pub struct TogetherInference;

inventory::submit! { Registration::new(&TogetherInference) }

impl EndpointKind for TogetherInference {
    fn about(&self) -> About {
        About::new(
            "together-inference",
            "Together AI's legacy inference API (POST {base}/inference, stream_tokens)",
        )
        .env_prefix("TOGETHER")
        .default_base_url("https://api.together.xyz")
        .served_from_root()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let mut body = json!({
            "model": target.model,
            "prompt": plan.prompt,
            "stream_tokens": true,
        });
        if let Some(fields) = body.as_object_mut() {
            if let Some(max_tokens) = plan.max_tokens {
                fields.insert("max_tokens".into(), json!(max_tokens));
            }
            for (key, value) in &target.extra_body {
                fields.insert(key.clone(), value.clone());
            }
        }
        let root = target
            .base_url
            .strip_suffix("/v1")
            .unwrap_or(&target.base_url);
        Ok(super::sse_post(
            client,
            format!("{root}/inference"),
            &body,
            target,
        ))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::endpoint::{StreamEvent, Usage};

    /// A legacy `/inference` stream in the shape Together documents: one
    /// text per chunk with the token, the last chunk with `generated_text`,
    /// `finish_reason` and `usage`, then `[DONE]`.
    const STREAM: &[u8] = b"data: {\"choices\":[{\"text\":\" Hello\"}],\"result_type\":\"language-model-inference\",\"id\":\"8a1f5c1b2d3e4f50-SJC\",\"token\":{\"id\":15043,\"text\":\" Hello\",\"logprob\":-0.1,\"special\":false},\"generated_text\":null,\"details\":null,\"stats\":null,\"usage\":null}\n\n\
data: {\"choices\":[{\"text\":\" world\"}],\"result_type\":\"language-model-inference\",\"id\":\"8a1f5c1b2d3e4f50-SJC\",\"token\":{\"id\":3186,\"text\":\" world\",\"logprob\":-0.2,\"special\":false},\"generated_text\":null,\"details\":null,\"stats\":null,\"usage\":null}\n\n\
data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}],\"result_type\":\"language-model-inference\",\"id\":\"8a1f5c1b2d3e4f50-SJC\",\"token\":{\"id\":2,\"text\":\"\",\"logprob\":0,\"special\":true},\"generated_text\":\" Hello world\",\"details\":null,\"stats\":{},\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n\
data: [DONE]\n\n";

    fn decode(pieces: &[&[u8]]) -> Vec<StreamEvent> {
        let mut decoder = TogetherInference.decoder();
        crate::endpoint::decode_reads(&mut *decoder, pieces)
    }

    #[test]
    fn a_legacy_stream_split_at_every_byte() {
        let expected = vec![
            StreamEvent::Content(" Hello".into()),
            StreamEvent::Content(" world".into()),
            StreamEvent::Finish("length".into()),
            StreamEvent::Usage(Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(2),
                reasoning_tokens: None,
            }),
            StreamEvent::Done,
        ];
        assert_eq!(decode(&[STREAM]), expected);
        for split in 0..STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(decode(&[a, b]), expected, "split at {split}");
        }
    }

    #[test]
    fn the_request_goes_to_the_hosts_inference_path() {
        let target = |base: &str| Target {
            base_url: base.to_string(),
            model: "togethercomputer/llama-2-7b".to_string(),
            api_key: None,
            api_key_source: "TOGETHER_API_KEY".to_string(),
            extra_body: serde_json::Map::new(),
            options: Default::default(),
            env_prefix: "TOGETHER".to_string(),
        };
        let plan = RequestPlan {
            max_tokens: Some(9),
            ignore_eos: false,
            ..RequestPlan::new(
                0,
                vec![crate::workload::Message::user("hi")],
                crate::Tokenizer::bundled(),
            )
        };
        let client = reqwest::Client::new();
        for base in ["https://api.together.xyz", "https://api.together.xyz/v1"] {
            let request = TogetherInference
                .build_request(&client, &target(base), &plan)
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(request.url().as_str(), "https://api.together.xyz/inference");
            let body: serde_json::Value =
                serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
            assert_eq!(body["stream_tokens"], true);
            assert_eq!(body["max_tokens"], 9);
            assert_eq!(body["prompt"], "hi");
        }
    }
}
