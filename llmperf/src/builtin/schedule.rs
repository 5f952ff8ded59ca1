//! When a response's tokens go out: the only copy of the built-in
//! endpoint's timing (first-token offset, per-event offsets, jitter).
//!
//! Every protocol formats the same [`Schedule`]: the words come from the
//! seeded generator (one independent stream per request, so a request's
//! words and jitter do not depend on what ran concurrently), the first
//! token after `ttft + ttft_per_prompt_token × prompt tokens`, each later
//! event `inter_token` per token after it, ± `jitter`.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::generate::{self, Output, Spec, MAX_OUTPUT_TOKENS};
use super::request::GenerationRequest;
use crate::spec::Script;
use crate::validate::Task;
use crate::workload::tokenizer::Tokenizer;

/// The latest offset planned; keeps `Instant + offset` far from overflow
/// whatever the script says.
const MAX_OFFSET: Duration = Duration::from_secs(30 * 24 * 3600);

/// Whether a token is streamed as reasoning or as content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Reasoning,
    Content,
}

/// Token counts a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: usize,
    /// Content plus reasoning tokens.
    pub(crate) completion_tokens: usize,
    pub(crate) reasoning_tokens: usize,
}

/// One token event: where it starts in the token sequence, how many
/// tokens of which kind it carries ([`Schedule::texts`] gives them).
pub(crate) struct TokenEvent {
    pub(crate) tokens_before: usize,
    pub(crate) tokens: usize,
    pub(crate) kind: TokenKind,
}

/// The scheduled token events of one response and their deadlines, as
/// offsets from the request's admission.
pub(crate) struct Schedule {
    pub(crate) output: Output,
    pub(crate) usage: Usage,
    /// The request asked for token counts (where the protocol makes that optional).
    pub(crate) include_usage: bool,
    pub(crate) events: Vec<TokenEvent>,
    /// Each event's deadline.
    pub(crate) offsets: Vec<Duration>,
    /// When the first token would come (the end of an empty response).
    pub(crate) first: Duration,
    /// When the last token event goes out.
    pub(crate) last: Duration,
    /// Send a keep-alive halfway to the first event.
    pub(crate) keep_alive: bool,
}

impl Schedule {
    /// The schedule of the response to request number `index` (1-based):
    /// `task` is the task to answer (already swapped for a cross-over);
    /// `reasoning` says whether the protocol streams reasoning tokens
    /// (a protocol without a field for them gets none).
    pub(crate) fn new(
        script: &Script,
        request: &GenerationRequest,
        task: Option<Task>,
        reasoning: bool,
        index: u64,
    ) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(script.seed);
        rng.set_stream(index);
        let prompt_tokens = Tokenizer::bundled().count(&request.prompt);
        let reasoning_tokens = if reasoning {
            script.reasoning_tokens.min(MAX_OUTPUT_TOKENS)
        } else {
            0
        };
        // A request's `max_tokens` limits reasoning and content together,
        // as real servers count it (vLLM's completion tokens, OpenAI's
        // `max_completion_tokens`, Anthropic's `max_tokens` with thinking):
        // the reasoning comes out of it. Without one, the script's output
        // length is the content's.
        let (max_tokens, reasoning_tokens) = match request.max_tokens {
            Some(limit) => {
                let limit = limit.min(MAX_OUTPUT_TOKENS);
                let reasoning = reasoning_tokens.min(limit);
                (limit - reasoning, reasoning)
            }
            None => (
                script.output_tokens.min(MAX_OUTPUT_TOKENS),
                reasoning_tokens,
            ),
        };
        let spec = Spec {
            max_tokens,
            reasoning_tokens,
            task,
            fill: request.fill,
            long_words: script.long_words,
        };
        let output = generate::generate(&spec, &mut rng);
        let usage = Usage {
            prompt_tokens,
            completion_tokens: output.reasoning.len() + output.content.len(),
            reasoning_tokens: output.reasoning.len(),
        };
        let first = clamp(
            script.ttft.saturating_add(
                script
                    .ttft_per_prompt_token
                    .saturating_mul(u32::try_from(prompt_tokens).unwrap_or(u32::MAX)),
            ),
        );
        let events = token_events(&output, script.tokens_per_event.max(1) as usize);
        let offsets: Vec<Duration> = events
            .iter()
            .map(|event| {
                let at = first.saturating_add(
                    script
                        .inter_token
                        .saturating_mul(u32::try_from(event.tokens_before).unwrap_or(u32::MAX)),
                );
                clamp(jittered(at, script.jitter, &mut rng))
            })
            .collect();
        // The end (and a whole response) goes out with the last token
        // event; a response without tokens ends when its first token would
        // have come.
        let last = offsets.iter().copied().max().unwrap_or(first);
        Schedule {
            output,
            usage,
            include_usage: request.include_usage,
            events,
            offsets,
            first,
            last,
            keep_alive: script.keep_alive,
        }
    }

    /// When the first generated event is due (the server's own time to
    /// first token).
    pub(crate) fn first_event(&self) -> Option<Duration> {
        self.offsets.first().copied()
    }

    /// Where a fault that cuts the stream strikes: the events wholly in the
    /// first half of the tokens are kept, and the fault comes when the next
    /// event would have been sent.
    pub(crate) fn cut(&self) -> (usize, Duration) {
        let half = self.usage.completion_tokens / 2;
        let kept = self
            .events
            .iter()
            .take_while(|event| event.tokens_before + event.tokens <= half)
            .count();
        (kept, self.offsets.get(kept).copied().unwrap_or(self.last))
    }

    /// The texts of `event`'s tokens.
    pub(crate) fn texts(&self, event: &TokenEvent) -> &[String] {
        let output = &self.output;
        let (tokens, start) = match event.kind {
            TokenKind::Reasoning => (&output.reasoning, event.tokens_before),
            TokenKind::Content => (
                &output.content,
                event.tokens_before.saturating_sub(output.reasoning.len()),
            ),
        };
        tokens
            .get(start..start.saturating_add(event.tokens))
            .unwrap_or_default()
    }
}

/// Groups the tokens into events of `per_event` tokens, reasoning first;
/// an event never mixes reasoning and content.
pub(crate) fn token_events(output: &Output, per_event: usize) -> Vec<TokenEvent> {
    let mut events =
        Vec::with_capacity((output.reasoning.len() + output.content.len()) / per_event + 2);
    let mut tokens_before = 0;
    for (kind, tokens) in [
        (TokenKind::Reasoning, &output.reasoning),
        (TokenKind::Content, &output.content),
    ] {
        for chunk in tokens.chunks(per_event) {
            events.push(TokenEvent {
                tokens_before,
                tokens: chunk.len(),
                kind,
            });
            tokens_before += chunk.len();
        }
    }
    events
}

/// `at` moved by a uniform draw from ±`jitter`, never before zero.
pub(crate) fn jittered(at: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return at;
    }
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    let shift = rng.gen_range(0..=nanos.saturating_mul(2));
    if shift >= nanos {
        at.saturating_add(Duration::from_nanos(shift - nanos))
    } else {
        at.saturating_sub(Duration::from_nanos(nanos - shift))
    }
}

fn clamp(offset: Duration) -> Duration {
    offset.min(MAX_OFFSET)
}
