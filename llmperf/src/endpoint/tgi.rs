//! Hugging Face Text Generation Inference (TGI), its native route:
//! `POST {base}/generate_stream`, one token per SSE event.
//!
//! ```sh
//! TGI_API_BASE=http://gpu-box:8080 llmperf run --api tgi -r 50 -c 8
//! TGI_API_BASE=https://xyz.endpoints.huggingface.cloud TGI_API_KEY=hf_… llmperf run --api tgi
//! ```
//!
//! - `TGI_API_BASE` is the server's root (no `/v1`); `TGI_API_KEY` a
//!   Hugging Face token, sent as a Bearer token when set. The same
//!   variables serve [`tgi-messages`](super::presets::TGI_MESSAGES), TGI's
//!   OpenAI-compatible `/v1/chat/completions`.
//! - The body is `{"inputs": …, "parameters": {"max_new_tokens", "details":
//!   true, "decoder_input_details": false, "stop": []}}`, the inputs being
//!   the workload's messages flattened into one prompt; the spec's
//!   `extra_body` goes into `parameters`, where TGI's sampling settings
//!   live (a `parameters` object is merged key by key).
//! - TGI has no `ignore_eos`: a workload's `ignore_eos(true)` is not sent,
//!   and a model that stops early produces fewer than `max_tokens` tokens.
//! - The stream and what is decoded from it (special tokens skipped, the
//!   event with `generated_text` as the end marker, the server's counts
//!   from its `details`, error events) are TGI's wire format, shared with
//!   SageMaker's TGI containers: see [`wire::tgi`](super::wire::tgi).
//! - TGI counts the end-of-sequence token in `generated_tokens`, so a
//!   response that stops on EOS shows one token more on the server than in
//!   its text (`token_count_mismatch` in its record); one cut by
//!   `max_new_tokens` agrees.
//! - An error body (`{"error", "error_type"}`, or the OpenAI shape a proxy
//!   answers with) gives its message to the request's error.

use super::wire::tgi::{self as wire, Route, TgiDecoder};
use super::{About, EndpointKind, Registration, RequestError, StreamDecoder, Target};
use crate::workload::RequestPlan;

/// `tgi`: see the module docs.
pub struct Tgi;

inventory::submit! { Registration::new(&Tgi) }

impl EndpointKind for Tgi {
    fn about(&self) -> About {
        About::new(
            "tgi",
            "Hugging Face TGI (POST {base}/generate_stream, one token per SSE event)",
        )
        .env_prefix("TGI")
        .served_from_root()
    }

    fn build_request(
        &self,
        client: &reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let body = wire::request_body(target, plan, Route::GenerateStream);
        let url = format!("{}/generate_stream", target.base_url);
        Ok(super::sse_post(client, url, &body, target))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(TgiDecoder::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
