//! Named OpenAI-compatible providers: chat completions with a provider's
//! default base URL and environment variable names.
//!
//! A preset is data, not code: the request and the stream are exactly
//! [`openai-chat`](super::openai::OpenAiChat)'s (`POST
//! {base}/chat/completions`, SSE, `stream_options.include_usage`, Bearer
//! key). What differs is where the requests go when nothing else is
//! configured and which variables name the base URL and the key
//! (`{PREFIX}_API_BASE`, `{PREFIX}_API_KEY`, as the older tool's `.env`
//! files used them).
//!
//! | kind | default base URL | variables |
//! | --- | --- | --- |
//! | `openai` | `https://api.openai.com/v1` | `OPENAI_API_BASE`, `OPENAI_API_KEY` |
//! | `anyscale` | `https://api.endpoints.anyscale.com/v1` | `ANYSCALE_API_BASE`, `ANYSCALE_API_KEY` |
//! | `fireworks` | `https://api.fireworks.ai/inference/v1` | `FIREWORKS_API_BASE`, `FIREWORKS_API_KEY` |
//! | `perplexity` | `https://api.perplexity.ai` | `PERPLEXITY_API_BASE`, `PERPLEXITY_API_KEY` |
//! | `together` | `https://api.together.xyz/v1` | `TOGETHER_API_BASE`, `TOGETHER_API_KEY` |
//! | `vllm` | none | `VLLM_API_BASE` (e.g. `http://host:8000/v1`), `VLLM_API_KEY` |
//! | `sglang` | none | `SGLANG_API_BASE` (e.g. `http://host:30000/v1`), `SGLANG_API_KEY` |
//! | `llamacpp` | none | `LLAMACPP_API_BASE` (e.g. `http://host:8080/v1`), `LLAMACPP_API_KEY` |
//! | `tgi-messages` | none | `TGI_API_BASE` (the TGI server's root, e.g. `http://host:8080`; `/v1/chat/completions` is appended), `TGI_API_KEY` (a Hugging Face token) |
//!
//! ```sh
//! FIREWORKS_API_KEY=… llmperf run --api fireworks -m accounts/fireworks/models/llama-v3p1-8b-instruct -r 20 -c 4
//! VLLM_API_BASE=http://gpu-box:8000/v1 llmperf run --api vllm -m meta-llama/Llama-3.1-8B-Instruct
//! ```
//!
//! A default base URL is used only when a key is configured for the preset
//! (in the spec or in `{PREFIX}_API_KEY`), so an unconfigured benchmark runs
//! against the built-in endpoint rather than failing on a public API.
//! `--base-url` or `{PREFIX}_API_BASE` always wins.
//!
//! Together's chunks repeat the text in `choices[].text` and
//! `delta.content` and end with `finish_reason: "eos"`; the text is counted
//! once.
//!
//! ```
//! let fireworks = llmperf::endpoint::find("fireworks").unwrap();
//! assert_eq!(fireworks.about().env_prefix, "FIREWORKS");
//! assert_eq!(fireworks.about().default_base_url, Some("https://api.fireworks.ai/inference/v1"));
//! ```

use serde_json::json;

use super::openai::{self, OpenAiDecoder};
use super::{About, EndpointKind, Registration, RequestError, StreamDecoder, Target};
use crate::workload::RequestPlan;

/// An OpenAI-compatible provider: chat completions under its own name,
/// default base URL and environment prefix.
#[derive(Debug)]
pub struct OpenAiPreset {
    /// The kind's name, e.g. `fireworks`.
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// The provider's public base URL, if it has one.
    pub base: Option<&'static str>,
    /// The environment variable prefix, e.g. `FIREWORKS`.
    pub prefix: &'static str,
    /// The chat completions path under the base URL. A path starting with
    /// `v1/` means the base URL is the server's root (TGI's convention); a
    /// base that already ends in `/v1` does not get a second one.
    pub path: &'static str,
}

/// `openai`: api.openai.com.
pub static OPENAI: OpenAiPreset = OpenAiPreset {
    name: "openai",
    description: "OpenAI chat completions (api.openai.com; OPENAI_API_KEY)",
    base: Some("https://api.openai.com/v1"),
    prefix: "OPENAI",
    path: "chat/completions",
};

/// `anyscale`: Anyscale Endpoints.
pub static ANYSCALE: OpenAiPreset = OpenAiPreset {
    name: "anyscale",
    description: "Anyscale Endpoints, OpenAI-compatible chat (ANYSCALE_API_KEY)",
    base: Some("https://api.endpoints.anyscale.com/v1"),
    prefix: "ANYSCALE",
    path: "chat/completions",
};

/// `fireworks`: Fireworks AI.
pub static FIREWORKS: OpenAiPreset = OpenAiPreset {
    name: "fireworks",
    description: "Fireworks AI, OpenAI-compatible chat (FIREWORKS_API_KEY)",
    base: Some("https://api.fireworks.ai/inference/v1"),
    prefix: "FIREWORKS",
    path: "chat/completions",
};

/// `perplexity`: Perplexity (no `/v1` in its base URL).
pub static PERPLEXITY: OpenAiPreset = OpenAiPreset {
    name: "perplexity",
    description: "Perplexity, OpenAI-compatible chat (PERPLEXITY_API_KEY)",
    base: Some("https://api.perplexity.ai"),
    prefix: "PERPLEXITY",
    path: "chat/completions",
};

/// `together`: Together AI's OpenAI-compatible API.
pub static TOGETHER: OpenAiPreset = OpenAiPreset {
    name: "together",
    description: "Together AI, OpenAI-compatible chat (TOGETHER_API_KEY)",
    base: Some("https://api.together.xyz/v1"),
    prefix: "TOGETHER",
    path: "chat/completions",
};

/// `vllm`: a vLLM server (no public default).
pub static VLLM: OpenAiPreset = OpenAiPreset {
    name: "vllm",
    description: "vLLM's OpenAI-compatible server (VLLM_API_BASE, e.g. http://host:8000/v1)",
    base: None,
    prefix: "VLLM",
    path: "chat/completions",
};

/// `sglang`: an SGLang server (no public default).
pub static SGLANG: OpenAiPreset = OpenAiPreset {
    name: "sglang",
    description: "SGLang's OpenAI-compatible server (SGLANG_API_BASE, e.g. http://host:30000/v1)",
    base: None,
    prefix: "SGLANG",
    path: "chat/completions",
};

/// `llamacpp`: a llama.cpp server (no public default).
pub static LLAMACPP: OpenAiPreset = OpenAiPreset {
    name: "llamacpp",
    description:
        "llama.cpp server's OpenAI-compatible chat (LLAMACPP_API_BASE, e.g. http://host:8080/v1)",
    base: None,
    prefix: "LLAMACPP",
    path: "chat/completions",
};

/// `tgi-messages`: TGI's Messages API, `{root}/v1/chat/completions`, so
/// that `TGI_API_BASE` is the same server root the `tgi` kind uses.
pub static TGI_MESSAGES: OpenAiPreset = OpenAiPreset {
    name: "tgi-messages",
    description: "Hugging Face TGI's OpenAI-compatible Messages API (POST {TGI_API_BASE}/v1/chat/completions)",
    base: None,
    prefix: "TGI",
    path: "v1/chat/completions",
};

inventory::submit! { Registration::new(&OPENAI) }
inventory::submit! { Registration::new(&ANYSCALE) }
inventory::submit! { Registration::new(&FIREWORKS) }
inventory::submit! { Registration::new(&PERPLEXITY) }
inventory::submit! { Registration::new(&TOGETHER) }
inventory::submit! { Registration::new(&VLLM) }
inventory::submit! { Registration::new(&SGLANG) }
inventory::submit! { Registration::new(&LLAMACPP) }
inventory::submit! { Registration::new(&TGI_MESSAGES) }

impl OpenAiPreset {
    /// The path to post to under `base`: [`path`](Self::path) without a
    /// leading `v1/` when `base` already ends in `/v1`.
    fn path_under(&self, base: &str) -> &'static str {
        match self.path.strip_prefix("v1/") {
            Some(rest) if base.ends_with("/v1") => rest,
            _ => self.path,
        }
    }
}

impl EndpointKind for OpenAiPreset {
    fn about(&self) -> About {
        let about = About {
            default_base_url: self.base,
            ..About::new(self.name, self.description).env_prefix(self.prefix)
        };
        // A path that starts with its own `v1/` is served from the root.
        if self.path.starts_with("v1/") {
            about.served_from_root()
        } else {
            about
        }
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
        let path = self.path_under(&target.base_url);
        Ok(openai::post(client, target, path, body, plan))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(OpenAiDecoder::default())
    }
}

/// Every preset, in the order of the table above.
pub fn all() -> [&'static OpenAiPreset; 9] {
    [
        &OPENAI,
        &ANYSCALE,
        &FIREWORKS,
        &PERPLEXITY,
        &TOGETHER,
        &VLLM,
        &SGLANG,
        &LLAMACPP,
        &TGI_MESSAGES,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_registered_under_its_name() {
        for preset in all() {
            let kind = super::super::find(preset.name).expect(preset.name);
            assert_eq!(kind.about().env_prefix, preset.prefix);
            assert_eq!(kind.about().default_base_url, preset.base);
        }
    }

    #[test]
    fn tgi_messages_takes_the_server_root_with_or_without_v1() {
        assert_eq!(
            TGI_MESSAGES.path_under("http://tgi:8080"),
            "v1/chat/completions"
        );
        assert_eq!(
            TGI_MESSAGES.path_under("http://tgi:8080/v1"),
            "chat/completions"
        );
        assert_eq!(
            TGI_MESSAGES.about().builtin_base_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            VLLM.about().builtin_base_url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(VLLM.path_under("http://x/v1"), "chat/completions");
    }
}
