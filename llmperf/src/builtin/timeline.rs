//! What a response sends and when: the [`Timeline`] the body plays, and
//! the one way a protocol formats it ([`StreamFormat`]).
//!
//! [`lay_out`] puts a format's bytes on a [`Schedule`] with the same fault
//! handling for every protocol: the stream cut after the first half of the
//! tokens for a disconnect, a stall or an error event, a malformed event in
//! the middle, no end marker. A format only says what bytes carry the
//! tokens (OpenAI's chunks, TGI's one event per token, Anthropic's named
//! events, Gemini's chunks, …).

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

use super::generate::{FinishReason, Output};
use super::schedule::{Schedule, TokenKind, Usage};
use crate::spec::Fault;

/// How a response body ends once its frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// A clean end of the body.
    Finish,
    /// Abort the connection: the client sees a body error.
    Abort,
    /// Send nothing more, then abort after [`STALL_LIMIT`](super::body::STALL_LIMIT).
    Stall,
}

/// One planned response.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    /// When the status line and headers go out.
    pub(crate) head_at: Duration,
    /// Body frames, each sent at its offset (or at once, if that is past).
    pub(crate) frames: Vec<(Duration, Bytes)>,
    /// When the body ends, the way `end` says.
    pub(crate) end_at: Duration,
    pub(crate) end: End,
    /// The body is one known block (sent with `content-length`).
    pub(crate) whole: bool,
    /// Bytes sent as fast as the connection takes them once the frames are
    /// out (the hostile faults), before the end.
    pub(crate) tail: Option<Tail>,
    /// When the first generated event is due (the server's own time to
    /// first token, as scheduled); how late it went out is counted apart.
    pub(crate) first_event: Option<Duration>,
    /// What the response counts in `GET /metrics`.
    pub(crate) accounting: Accounting,
}

/// What a planned response counts in the endpoint's own metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounting {
    /// The prompt tokens its usage reports.
    pub(crate) prompt_tokens: usize,
    /// `(frame index, tokens)` of every frame that carries generated
    /// tokens, in frame order: counted as each frame is handed over.
    pub(crate) generated: Vec<(usize, usize)>,
    /// How the response finishes once every frame has gone out; `None` when
    /// a fault cuts or replaces it (counted as aborted).
    pub(crate) finish: Option<FinishReason>,
}

/// A run of identical chunks after a response's frames, then its last frames.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub(crate) chunk: Bytes,
    /// How many times `chunk` is sent; `None`: until the client goes away
    /// (at most [`STALL_LIMIT`](super::body::STALL_LIMIT)).
    pub(crate) repeat: Option<u64>,
    /// Frames sent after the run.
    pub(crate) then: Vec<Bytes>,
}

/// How a response ends, for [`StreamFormat::closing`].
pub(crate) struct Ending<'a> {
    pub(crate) output: &'a Output,
    pub(crate) usage: Usage,
    /// The request asked for token counts (where the protocol makes that optional).
    pub(crate) include_usage: bool,
    /// Send the protocol's end marker ([`Fault::MissingDone`] leaves it out).
    pub(crate) end_marker: bool,
}

/// The bytes of one protocol's response. Formatting happens in order, so a
/// format may keep state (an open content block, a token index).
pub(crate) trait StreamFormat {
    /// The response's content type.
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    /// Frames sent at admission, before any token.
    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
    /// A keep-alive the client must ignore (`None`: the format has none).
    fn keep_alive(&mut self) -> Option<Bytes>;
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
    /// The [`Fault::StreamError`] event (and whatever must follow it).
    fn stream_error(&mut self) -> Vec<Bytes>;
    /// The [`Fault::MalformedEvent`] event.
    fn malformed(&mut self) -> Bytes;
}

/// Lays `format`'s frames on `schedule`, with `fault` (other than
/// `Status`, which never reaches a stream) applied.
pub(crate) fn lay_out(
    format: &mut dyn StreamFormat,
    schedule: &Schedule,
    fault: Option<Fault>,
) -> Timeline {
    let (events, offsets, last) = (&schedule.events, &schedule.offsets, schedule.last);
    let mut frames: Vec<(Duration, Bytes)> = Vec::with_capacity(events.len() + 6);
    for frame in format.opening() {
        frames.push((Duration::ZERO, frame));
    }
    if schedule.keep_alive {
        if let Some(frame) = format.keep_alive() {
            let first_event = schedule.first_event().unwrap_or(schedule.first);
            frames.push((first_event / 2, frame));
        }
    }
    let content_type = format.content_type();
    let mut generated = Vec::with_capacity(events.len());
    let stream = |frames, end_at, end, generated, finish| Timeline {
        status: StatusCode::OK,
        content_type,
        head_at: Duration::ZERO,
        frames,
        end_at,
        end,
        whole: false,
        tail: None,
        first_event: schedule.first_event(),
        accounting: Accounting {
            prompt_tokens: schedule.usage.prompt_tokens,
            generated,
            finish,
        },
    };
    if let Some(fault @ (Fault::Disconnect | Fault::Stall | Fault::StreamError)) = fault {
        let (kept, at) = schedule.cut();
        for (event, sent_at) in events.iter().zip(offsets).take(kept) {
            generated.push((frames.len(), event.tokens));
            frames.push((*sent_at, format.tokens(event.kind, schedule.texts(event))));
        }
        return match fault {
            Fault::Disconnect => stream(frames, at, End::Abort, generated, None),
            Fault::Stall => stream(frames, at, End::Stall, generated, None),
            _ => {
                for frame in format.stream_error() {
                    frames.push((at, frame));
                }
                stream(frames, at, End::Finish, generated, None)
            }
        };
    }
    let ending = Ending {
        output: &schedule.output,
        usage: schedule.usage,
        include_usage: schedule.include_usage,
        end_marker: fault != Some(Fault::MissingDone),
    };
    let malformed_after = (fault == Some(Fault::MalformedEvent)).then_some(events.len() / 2);
    if malformed_after == Some(0) {
        frames.push((Duration::ZERO, format.malformed()));
    }
    for (i, (event, at)) in events.iter().zip(offsets).enumerate() {
        let tokens = schedule.texts(event);
        // A last event's first frame carries its tokens; the rest close.
        generated.push((frames.len(), event.tokens));
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
    let finish = schedule.output.finish_reason;
    stream(frames, last, End::Finish, generated, Some(finish))
}
