//! Streaming formats other than OpenAI's, on the same schedule and faults.
//!
//! [`plan`](super::plan::plan) works out which tokens go out when; a
//! [`StreamFormat`] only says what bytes carry them (TGI's one event per
//! token, Anthropic's named events, …), and [`timeline`] lays those bytes on
//! the schedule with the same fault handling as the OpenAI formats: the
//! stream cut after the first half of the tokens for a disconnect, a stall
//! or an error event, a malformed event in the middle, no end marker.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

use super::generate::Output;
use super::openai::{TokenKind, Usage};
use super::plan::{End, Timeline, TokenEvent};
use crate::spec::Fault;

/// How a response ends, for [`StreamFormat::closing`].
pub(crate) struct Ending<'a> {
    pub(crate) output: &'a Output,
    pub(crate) usage: Usage,
    /// The request asked for token counts (where the protocol makes that optional).
    pub(crate) include_usage: bool,
    /// Send the protocol's end marker ([`Fault::MissingDone`] leaves it out).
    pub(crate) end_marker: bool,
}

/// The bytes of one protocol's stream. Formatting happens in order, so a
/// format may keep state (an open content block, a token index).
pub(crate) trait StreamFormat {
    /// Frames sent at admission, before any token.
    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
    /// A keep-alive the client must ignore.
    fn keep_alive(&mut self) -> Bytes;
    /// One scheduled event carrying `tokens` (each token's text).
    fn tokens(&mut self, kind: TokenKind, tokens: &[String]) -> Bytes;
    /// The last token event, when the protocol puts the ending on it;
    /// by default an ordinary token event followed by [`closing`](Self::closing).
    fn last_tokens(&mut self, kind: TokenKind, tokens: &[String], ending: &Ending) -> Vec<Bytes> {
        let mut frames = vec![self.tokens(kind, tokens)];
        frames.extend(self.closing(ending));
        frames
    }
    /// What follows the last token event: finish, usage, end marker.
    fn closing(&mut self, ending: &Ending) -> Vec<Bytes>;
    /// The [`Fault::StreamError`] event.
    fn stream_error(&mut self) -> Bytes;
    /// The [`Fault::MalformedEvent`] event.
    fn malformed(&mut self) -> Bytes;
}

/// The scheduled token events of one response and their deadlines.
pub(crate) struct Schedule<'a> {
    pub(crate) output: &'a Output,
    pub(crate) usage: Usage,
    pub(crate) include_usage: bool,
    pub(crate) events: &'a [TokenEvent],
    pub(crate) offsets: &'a [Duration],
    /// When the first token would come (the end of an empty response).
    pub(crate) first: Duration,
    /// When the last token event goes out.
    pub(crate) last: Duration,
    pub(crate) keep_alive: bool,
}

/// The texts of `event`'s tokens.
fn texts<'a>(output: &'a Output, event: &TokenEvent) -> &'a [String] {
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

/// Lays `format`'s frames on the schedule, with `fault` (other than
/// `Status`, which never reaches a stream) applied.
pub(crate) fn timeline(
    format: &mut dyn StreamFormat,
    schedule: &Schedule,
    fault: Option<Fault>,
) -> Timeline {
    let Schedule {
        output,
        events,
        offsets,
        last,
        ..
    } = *schedule;
    let mut frames: Vec<(Duration, Bytes)> = Vec::with_capacity(events.len() + 6);
    for frame in format.opening() {
        frames.push((Duration::ZERO, frame));
    }
    if schedule.keep_alive {
        let first_event = offsets.first().copied().unwrap_or(schedule.first);
        frames.push((first_event / 2, format.keep_alive()));
    }
    let stream = |frames, end_at, end| Timeline {
        status: StatusCode::OK,
        content_type: "text/event-stream",
        head_at: Duration::ZERO,
        frames,
        end_at,
        end,
        whole: false,
        tail: None,
        first_event: offsets.first().copied(),
    };
    // Faults that cut the stream keep the events wholly in the first half.
    let half = schedule.usage.completion_tokens / 2;
    let kept = events
        .iter()
        .take_while(|event| event.tokens_before + event.tokens <= half)
        .count();
    if let Some(fault @ (Fault::Disconnect | Fault::Stall | Fault::StreamError)) = fault {
        for (event, at) in events.iter().zip(offsets).take(kept) {
            frames.push((*at, format.tokens(event.kind, texts(output, event))));
        }
        // The fault strikes when the next event would have been sent.
        let at = offsets.get(kept).copied().unwrap_or(last);
        return match fault {
            Fault::Disconnect => stream(frames, at, End::Abort),
            Fault::Stall => stream(frames, at, End::Stall),
            _ => {
                frames.push((at, format.stream_error()));
                stream(frames, at, End::Finish)
            }
        };
    }
    let ending = Ending {
        output,
        usage: schedule.usage,
        include_usage: schedule.include_usage,
        end_marker: fault != Some(Fault::MissingDone),
    };
    let malformed_after = (fault == Some(Fault::MalformedEvent)).then_some(events.len() / 2);
    if malformed_after == Some(0) {
        frames.push((Duration::ZERO, format.malformed()));
    }
    for (i, (event, at)) in events.iter().zip(offsets).enumerate() {
        let tokens = texts(output, event);
        if i + 1 == events.len() {
            for frame in format.last_tokens(event.kind, tokens, &ending) {
                frames.push((*at, frame));
            }
        } else {
            frames.push((*at, format.tokens(event.kind, tokens)));
        }
        if malformed_after == Some(i + 1) {
            frames.push((*at, format.malformed()));
        }
    }
    if events.is_empty() {
        for frame in format.closing(&ending) {
            frames.push((last, frame));
        }
    }
    stream(frames, last, End::Finish)
}
