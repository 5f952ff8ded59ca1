//! What a generation request asks for, whatever protocol it came in on.

/// The parts of a generation request the endpoint acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenerationRequest {
    pub(crate) model: String,
    /// Every message's content (or every prompt), joined with `\n`.
    pub(crate) prompt: String,
    /// `max_tokens` or `max_completion_tokens`, capped at
    /// [`MAX_OUTPUT_TOKENS`](super::generate::MAX_OUTPUT_TOKENS).
    pub(crate) max_tokens: Option<u32>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// `ignore_eos: true` or any `min_tokens`: keep going after the answer.
    pub(crate) fill: bool,
}

/// The model name used when a request names none.
pub(crate) const DEFAULT_MODEL: &str = "llmperf-builtin";
