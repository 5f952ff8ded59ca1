//! `RequestRecord`: everything one request did, as written to `requests.jsonl`.
//!
//! Times are whole microseconds since the run started (a monotonic clock),
//! so records of one run line up on one timeline. A failed request is a
//! record like any other, with its error kind and what arrived before the
//! failure.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::endpoint::reader::Exchange;
use crate::error::{excerpt, RequestError};
use crate::load::Phase;
use crate::shard::Shard;
use crate::transport::ConnectionRecord;
use crate::validate::{self, Direction, Ending, Outcome};
use crate::workload::tokenizer::Tokenizer;
use crate::workload::{Numbers, RequestPlan};
use timing::RequestMetrics;

pub mod timing;

/// Characters of response text kept in a record.
const EXCERPT_CHARS: usize = 240;
/// Most client-tokenizer tokens in one event of a stream taken to send one
/// token per event: one token of another vocabulary re-tokenises into a
/// few at most.
const MAX_TOKENS_IN_ONE: u32 = 4;

/// One request, as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The plan's id (request index in its level).
    pub id: u64,
    /// The level of the run (index in a sweep; 0 without one).
    #[serde(default)]
    pub level: u32,
    /// Warmup and cooldown requests are kept but left out of the statistics.
    #[serde(default)]
    pub phase: Phase,
    /// Its place in a multi-turn conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<crate::workload::Turn>,
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RequestError>,
    /// HTTP status of the response, when one came.
    pub http_status: Option<u16>,
    /// What happened to its connection: new or reused, how long connecting
    /// took, whether it was re-sent (`None`: no connection was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionRecord>,
    /// When the load driver meant to send it.
    pub scheduled_us: u64,
    /// How long it waited for an in-flight slot before going out (an open
    /// loop at its cap), in µs; part of the send lag.
    #[serde(default)]
    pub queued_us: u64,
    /// When it was sent.
    pub sent_us: u64,
    /// When the response headers arrived.
    pub headers_us: Option<u64>,
    /// When the first content text arrived.
    pub first_token_us: Option<u64>,
    /// When the first reasoning text arrived.
    pub first_reasoning_us: Option<u64>,
    /// When the stream ended (`[DONE]`, close, or failure).
    pub end_us: u64,
    /// Arrival time of every content event.
    pub content_events_us: Vec<u64>,
    /// Client-tokenizer tokens in each content event.
    pub content_event_tokens: Vec<u32>,
    /// Without server counts: the stream sends one token per content event
    /// (nine in ten events' text is at most one word, as one token's text
    /// is), so each event counts as one token
    /// ([`RequestRecord::counted_by_events`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_token_events: bool,
    /// Number of reasoning events.
    pub reasoning_events: u32,
    /// `max_tokens` sent.
    pub max_tokens: Option<u32>,
    /// The server's finish reason.
    pub finish_reason: Option<String>,
    /// Prompt tokens, by the server.
    pub input_tokens_server: Option<u32>,
    /// Prompt tokens, by the client's tokenizer.
    pub input_tokens_client: u32,
    /// Completion tokens (content and reasoning), by the server.
    pub output_tokens_server: Option<u32>,
    /// Content and reasoning tokens, by the client's tokenizer.
    pub output_tokens_client: u32,
    /// Reasoning tokens, by the server.
    pub reasoning_tokens_server: Option<u32>,
    /// Reasoning tokens, by the client's tokenizer.
    pub reasoning_tokens_client: u32,
    /// The server's and the client's output counts differ (input counts
    /// are kept but not compared: chat servers count their template too).
    pub token_count_mismatch: bool,
    /// The start of the response text.
    pub text_excerpt: String,
    /// The validation outcome, when validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationRecord>,
    /// Per-request metrics derived from the fields above.
    pub metrics: RequestMetrics,
}

/// The validation outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The number this request asked about.
    pub expected: u64,
    /// `digits_to_words` or `words_to_digits`.
    pub direction: String,
    /// `pass`, `cross_over`, `truncated` or `mismatch`.
    pub outcome: ValidationOutcome,
    /// The other request's number found in the answer (cross-over); in a
    /// shard's mismatch or truncation, a number another shard may have
    /// drawn, which `llmperf merge` looks up among every shard's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_number: Option<u64>,
    /// The other request's id (cross-over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_request_id: Option<u64>,
}

/// How a validated response compared with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationOutcome {
    /// The right number.
    Pass,
    /// Another request's number: a response went to the wrong request.
    CrossOver,
    /// Cut short (its token limit, a broken stream) before a right number.
    Truncated,
    /// Neither.
    Mismatch,
}

/// Whether a finish reason says the token limit ended the answer (`length`
/// for OpenAI-style servers and TGI, `max_tokens` for Anthropic, Gemini's
/// `MAX_TOKENS`).
pub fn is_length_finish(reason: &str) -> bool {
    matches!(
        reason.to_ascii_lowercase().as_str(),
        "length" | "max_tokens" | "max_new_tokens" | "max_output_tokens"
    )
}

/// What the collector needs to finish records: the run's clock origin,
/// tokenizer and validation numbers.
pub struct RecordContext<'a> {
    /// Run start; record times count from here.
    pub t0: Instant,
    /// Client-side token counting.
    pub tokenizer: &'a Tokenizer,
    /// Validation number → request id, of every request planned so far.
    pub numbers: Numbers,
    /// The run's shard: an answer stating a number another shard may
    /// have sent is kept for `llmperf merge` to settle.
    pub shard: Shard,
}

/// Where a request sat in the load: when it was meant to go out, how
/// long it queued, its level and phase.
#[derive(Debug, Clone, Copy)]
pub struct Scheduling {
    /// When the driver meant to send it.
    pub scheduled_at: Instant,
    /// Time waiting for an in-flight slot.
    pub queued: Duration,
    /// Level index.
    pub level: u32,
    /// Phase within the level.
    pub phase: Phase,
}

impl RecordContext<'_> {
    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }
}

impl RequestRecord {
    /// Builds the record of one finished exchange (after the request, off
    /// the streaming path: tokenizing and validation happen here).
    pub fn from_exchange(
        plan: &RequestPlan,
        scheduling: &Scheduling,
        exchange: &Exchange,
        context: &RecordContext<'_>,
    ) -> RequestRecord {
        let after_send = |after: Duration| context.us(exchange.sent_at + after);
        let mut content_events_us = Vec::with_capacity(exchange.content.len());
        let mut content_event_tokens = Vec::with_capacity(exchange.content.len());
        for (after, piece) in exchange.content.iter() {
            content_events_us.push(after_send(after));
            content_event_tokens.push(context.tokenizer.count_piece(piece));
        }
        let text = exchange.content.text();
        // One token's text is at most one word, and short: a stream whose
        // events mostly are has one token per event (checked only without
        // server counts). Chunks of several tokens have spaces between
        // words, or, in text without spaces, run long.
        let single_token_events = exchange.usage.and_then(|u| u.completion_tokens).is_none()
            && !exchange.content.is_empty()
            && exchange
                .content
                .iter()
                .zip(&content_event_tokens)
                .filter(|((_, piece), &tokens)| {
                    tokens <= MAX_TOKENS_IN_ONE && !piece.trim().contains(char::is_whitespace)
                })
                .count()
                * 10
                >= exchange.content.len() * 9;
        let first_reasoning_us = exchange.reasoning.first_arrival().map(after_send);
        let reasoning_events = exchange.reasoning.len() as u32;
        let usage = exchange.usage.unwrap_or_default();
        let finish_reason = exchange.finish_reason.clone();
        let content_tokens = context.tokenizer.count(text) as u32;
        let reasoning_tokens_client = context.tokenizer.count(exchange.reasoning.text()) as u32;
        let output_tokens_client = content_tokens + reasoning_tokens_client;
        // Output only: a chat server's prompt count includes its chat
        // template, which the client never sees.
        let token_count_mismatch = usage
            .completion_tokens
            .is_some_and(|server| server != output_tokens_client);
        // Cut short: a stream that failed, a length finish, or the limit reached.
        let events = (exchange.content.len() + exchange.reasoning.len()) as u32;
        let cut = exchange.error.is_some()
            || finish_reason.as_deref().is_some_and(is_length_finish)
            || match (plan.max_tokens, usage.completion_tokens) {
                (Some(limit), Some(server)) => server >= limit,
                (Some(limit), None) => finish_reason.is_none() && events >= limit,
                (None, _) => false,
            };
        // The answer's own tokens: the server's count of content, else the
        // client's (the events when they are tokens).
        let answer_tokens = match usage.completion_tokens {
            Some(server) => server.saturating_sub(usage.reasoning_tokens.unwrap_or(0)),
            None if single_token_events => exchange.content.len() as u32,
            None => content_tokens,
        };
        let validation = plan.task.as_ref().map(|task| {
            // Cut before it had room for its number, or after.
            let ending = match cut {
                false => Ending::Finished,
                true if answer_tokens < crate::workload::answer_room(task, context.tokenizer) => {
                    Ending::CutEarly
                }
                true => Ending::CutLate,
            };
            // A number the request's own prompt states (a dataset's text, an
            // earlier turn's answer in a conversation) is no sign of a
            // cross-over when the answer repeats it.
            let in_prompt: std::collections::HashSet<u64> =
                validate::numbers_in(&plan.prompt).into_iter().collect();
            let stated_elsewhere = |n: u64| n != task.number && !in_prompt.contains(&n);
            let outcome = validate::check(task, text, ending, |n| {
                stated_elsewhere(n) && context.numbers.request_of(n).is_some()
            });
            // In a shard, an answer that states no number of this shard's
            // may state another shard's: keep the first such number for
            // `llmperf merge`, which knows every shard's requests.
            let another_shards = match outcome {
                Outcome::Mismatch | Outcome::Truncated if context.shard.is_sharded() => {
                    match validate::check(task, text, ending, |n| {
                        stated_elsewhere(n)
                            && !context.shard.owns_number(n)
                            && validate::could_be_task_number(n)
                    }) {
                        Outcome::CrossOver { other_number } => Some(other_number),
                        _ => None,
                    }
                }
                _ => None,
            };
            let (outcome, other_number) = match outcome {
                Outcome::Pass => (ValidationOutcome::Pass, None),
                Outcome::CrossOver { other_number } => {
                    (ValidationOutcome::CrossOver, Some(other_number))
                }
                Outcome::Truncated => (ValidationOutcome::Truncated, another_shards),
                Outcome::Mismatch => (ValidationOutcome::Mismatch, another_shards),
            };
            ValidationRecord {
                expected: task.number,
                direction: match task.direction {
                    Direction::DigitsToWords => "digits_to_words",
                    Direction::WordsToDigits => "words_to_digits",
                }
                .to_string(),
                outcome,
                other_request_id: other_number.and_then(|n| context.numbers.request_of(n)),
                other_number,
            }
        });
        let mut record = RequestRecord {
            id: plan.id,
            level: scheduling.level,
            phase: scheduling.phase,
            turn: plan.turn,
            ok: exchange.error.is_none(),
            error: exchange.error.clone(),
            http_status: exchange.http_status,
            connection: exchange.connection.clone(),
            scheduled_us: context.us(scheduling.scheduled_at),
            queued_us: scheduling.queued.as_micros() as u64,
            sent_us: context.us(exchange.sent_at),
            headers_us: exchange.headers_at.map(|at| context.us(at)),
            first_token_us: content_events_us.first().copied(),
            first_reasoning_us,
            end_us: context.us(exchange.ended_at),
            content_events_us,
            content_event_tokens,
            single_token_events,
            reasoning_events,
            max_tokens: plan.max_tokens,
            finish_reason,
            input_tokens_server: usage.prompt_tokens,
            input_tokens_client: plan.input_tokens_client,
            output_tokens_server: usage.completion_tokens,
            output_tokens_client,
            reasoning_tokens_server: usage.reasoning_tokens,
            reasoning_tokens_client,
            token_count_mismatch,
            text_excerpt: excerpt(text, EXCERPT_CHARS),
            validation,
            metrics: RequestMetrics::default(),
        };
        record.metrics = RequestMetrics::of(&record);
        record
    }

    /// Output tokens: the server's count when it gave one, else a client
    /// estimate ([`RequestRecord::content_tokens`] and the client's
    /// reasoning count).
    pub fn output_tokens(&self) -> u32 {
        self.output_tokens_server.unwrap_or_else(|| {
            self.content_tokens()
                .saturating_add(self.reasoning_tokens_client)
        })
    }

    /// Content (non-reasoning) output tokens: the server's count less its
    /// reasoning tokens (the client's reasoning count when the server does
    /// not break them out). Without a server count, an estimate: the number
    /// of content events when the stream sends one token per event
    /// ([`RequestRecord::counted_by_events`]), else the client tokenizer's
    /// count of the text.
    pub fn content_tokens(&self) -> u32 {
        match self.output_tokens_server {
            Some(server) => server.saturating_sub(
                self.reasoning_tokens_server
                    .unwrap_or(self.reasoning_tokens_client),
            ),
            None if self.counted_by_events() => self.content_events_us.len() as u32,
            None => self
                .output_tokens_client
                .saturating_sub(self.reasoning_tokens_client),
        }
    }

    /// Whether this request's tokens are counted by its events: no server
    /// count, and a stream of one token per event
    /// ([`RequestRecord::single_token_events`]), as llama.cpp and vLLM send
    /// by default. The event count is then a better count than re-tokenising
    /// the text (another model's vocabulary splits it differently), and each
    /// event is one token for the inter-token latency.
    pub fn counted_by_events(&self) -> bool {
        self.output_tokens_server.is_none() && self.single_token_events
    }

    /// Input tokens: the server's count when it gave one, else the client's.
    pub fn input_tokens(&self) -> u32 {
        self.input_tokens_server.unwrap_or(self.input_tokens_client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Usage;
    use crate::shard::{Shard, WHOLE};
    use crate::workload::plan_workload;

    /// The validation of `plans[0]` answered with `text`.
    fn validated(
        shard: Shard,
        plans: &[RequestPlan],
        text: &str,
        finish: &str,
        completion_tokens: Option<u32>,
    ) -> (ValidationOutcome, Option<u64>) {
        let t0 = Instant::now();
        let mut exchange = Exchange::new(t0);
        for piece in text.split_inclusive(' ') {
            exchange
                .content
                .push(Duration::from_millis(1), piece, usize::MAX);
        }
        exchange.finish_reason = Some(finish.to_string());
        exchange.usage = completion_tokens.map(|tokens| Usage {
            prompt_tokens: None,
            completion_tokens: Some(tokens),
            reasoning_tokens: None,
        });
        exchange.done = true;
        let context = RecordContext {
            t0,
            tokenizer: Tokenizer::bundled(),
            numbers: plans
                .iter()
                .filter_map(|p| p.task.as_ref().map(|t| (t.number, p.id)))
                .collect(),
            shard,
        };
        let scheduling = Scheduling {
            scheduled_at: t0,
            queued: Duration::ZERO,
            level: 0,
            phase: Phase::Measured,
        };
        let record = RequestRecord::from_exchange(&plans[0], &scheduling, &exchange, &context);
        let validation = record.validation.expect("validated");
        (validation.outcome, validation.other_number)
    }

    #[test]
    fn a_shard_judges_an_answer_as_the_whole_run_and_keeps_another_shards_number() {
        let shard = Shard { index: 1, count: 2 };
        let plan = |shard| {
            plan_workload(
                &crate::spec::Workload::validation_only(),
                true,
                4,
                42,
                shard,
                Tokenizer::bundled(),
            )
            .unwrap()
            .requests
        };
        let mine = plan(shard);
        let theirs = plan(Shard { index: 0, count: 2 });
        let drawn: std::collections::HashSet<u64> = mine
            .iter()
            .chain(&theirs)
            .filter_map(|p| p.task.as_ref().map(|t| t.number))
            .collect();
        // A number of shard 0's kind that no request drew.
        let stray = (10_002..)
            .step_by(2)
            .find(|n| validate::could_be_task_number(*n) && !drawn.contains(n))
            .unwrap();
        let same_shard = mine[1].task.as_ref().unwrap().number;
        let other_shard = theirs[0].task.as_ref().unwrap().number;

        // A stray number first, then a request of this shard's: the
        // cross-over is this shard's to name.
        let text = format!("{stray} {same_shard}");
        assert_eq!(
            validated(shard, &mine, &text, "stop", None),
            (ValidationOutcome::CrossOver, Some(same_shard))
        );
        // Another shard's number: a mismatch here, the number kept.
        assert_eq!(
            validated(shard, &mine, &other_shard.to_string(), "stop", None),
            (ValidationOutcome::Mismatch, Some(other_shard))
        );
        // Cut before its room: truncated, as unsharded, the number kept.
        let cut = format!("{stray} is not it and");
        assert_eq!(
            validated(shard, &mine, &cut, "length", Some(2)),
            (ValidationOutcome::Truncated, Some(stray))
        );
        // Unsharded, nothing of the kind is kept.
        let whole = plan(WHOLE);
        assert_eq!(
            validated(WHOLE, &whole, &cut, "length", Some(2)),
            (ValidationOutcome::Truncated, None)
        );
    }
}
