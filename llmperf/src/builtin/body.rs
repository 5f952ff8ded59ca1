//! The response body: a state machine that hands hyper each planned frame
//! at its absolute deadline. Each frame is its own body frame, so hyper
//! writes and flushes it when it is due; deadlines are absolute (admission +
//! offset), so a late wake-up never delays the events after it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::connection::ConnectionState;
use super::generate::FinishReason;
use super::pacer::{Alarm, PacerHandle};
use super::state::Slot;
use super::timeline::{End, Tail, Timeline};

/// How long a stalled response stays silent before the connection is
/// aborted, if the client has not gone away first.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(600);

/// A response body sent on a schedule.
pub(crate) struct ResponseBody {
    frames: VecDeque<(Instant, Bytes)>,
    end_at: Instant,
    end: End,
    length: Option<u64>,
    /// Wakes the connection's task when the next frame is due; `None` for
    /// bodies that are due at once.
    alarm: Option<Alarm>,
    /// The request's concurrency slot and in-flight count; released when the
    /// body ends, or when hyper drops it because the client went away.
    slot: Option<Slot>,
    /// An abort has yielded once so the frames before it got flushed.
    flushed: bool,
    /// The connection it is sent on, told when it ends (idle timeouts).
    connection: Option<Arc<ConnectionState>>,
    /// Chunks sent back to back once the frames are out (hostile faults),
    /// and when that started.
    tail: Option<(Tail, Option<Instant>)>,
    /// When the first generated event is due, until it has gone out.
    first_event_at: Option<Instant>,
    /// Frames handed to hyper so far.
    sent: usize,
    /// `(frame index, tokens)` of the frames still to send that carry
    /// generated tokens.
    generated: VecDeque<(usize, usize)>,
    /// How the response finishes if every frame goes out (`None`: a fault).
    finish: Option<FinishReason>,
}

impl ResponseBody {
    /// A body sent at once: error bodies, `/health`, `/v1/models`.
    pub(crate) fn now(bytes: Bytes) -> Self {
        let at = Instant::now();
        ResponseBody {
            length: Some(bytes.len() as u64),
            frames: VecDeque::from([(at, bytes)]),
            end_at: at,
            end: End::Finish,
            alarm: None,
            slot: None,
            flushed: false,
            connection: None,
            tail: None,
            first_event_at: None,
            sent: 0,
            generated: VecDeque::new(),
            finish: None,
        }
    }

    /// The planned body of a generation request admitted at `admitted`.
    pub(crate) fn scripted(
        admitted: Instant,
        timeline: Timeline,
        slot: Slot,
        pacer: PacerHandle,
    ) -> Self {
        let length = timeline
            .whole
            .then(|| timeline.frames.iter().map(|(_, b)| b.len() as u64).sum());
        ResponseBody {
            frames: timeline
                .frames
                .into_iter()
                .map(|(offset, bytes)| (admitted + offset, bytes))
                .collect(),
            end_at: admitted + timeline.end_at,
            end: timeline.end,
            length,
            alarm: Some(Alarm::new(pacer)),
            slot: Some(slot),
            flushed: false,
            connection: None,
            tail: timeline.tail.map(|tail| (tail, None)),
            first_event_at: timeline.first_event.map(|offset| admitted + offset),
            sent: 0,
            generated: timeline.accounting.generated.into(),
            finish: timeline.accounting.finish,
        }
    }

    /// The next chunk of the tail, or `None` once it has all gone out (or
    /// an endless one has run for [`STALL_LIMIT`]).
    fn next_tail_chunk(&mut self) -> Option<Bytes> {
        let (tail, started) = self.tail.as_mut()?;
        let started = *started.get_or_insert_with(Instant::now);
        let more = match &mut tail.repeat {
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => started.elapsed() < STALL_LIMIT,
        };
        if more {
            return Some(tail.chunk.clone());
        }
        if tail.then.is_empty() {
            self.tail = None;
            return None;
        }
        Some(tail.then.remove(0))
    }

    /// Tells `connection` when this body has been sent.
    pub(crate) fn on_connection(&mut self, connection: Arc<ConnectionState>) {
        self.connection = Some(connection);
    }

    fn ended(&mut self) {
        self.slot = None;
        if let Some(connection) = self.connection.take() {
            connection.ended();
        }
    }

    /// Whether `at` has come; if not, arranges a wake-up for it.
    fn due(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        match &mut self.alarm {
            Some(alarm) => alarm.due(at, cx),
            None => true,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(at) = this.frames.front().map(|(at, _)| *at) {
                if !this.due(at, cx) {
                    return Poll::Pending;
                }
                if let Some((_, bytes)) = this.frames.pop_front() {
                    let index = this.sent;
                    this.sent += 1;
                    let generated = match this.generated.front() {
                        Some(&(at_frame, tokens)) if at_frame == index => {
                            this.generated.pop_front();
                            tokens
                        }
                        _ => 0,
                    };
                    if let Some(slot) = &mut this.slot {
                        let now = Instant::now();
                        let late = now.saturating_duration_since(at);
                        slot.record_lateness(late);
                        if this.first_event_at == Some(at) {
                            this.first_event_at = None;
                            slot.record_first_event_lateness(late);
                        }
                        // The frame is handed to the connection now.
                        slot.frame_sent(now, generated);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
            }
            if !this.due(this.end_at, cx) {
                return Poll::Pending;
            }
            if let Some(chunk) = this.next_tail_chunk() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            match this.end {
                End::Finish => {
                    if let (Some(slot), Some(reason)) = (&mut this.slot, this.finish) {
                        slot.finished(reason);
                    }
                    this.ended();
                    return Poll::Ready(None);
                }
                End::Abort if !this.flushed => {
                    // Frames handed to hyper in this same poll may still sit
                    // in its write buffer, and an error drops the connection
                    // without flushing: yield once so hyper flushes them.
                    this.flushed = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                End::Abort => {
                    this.ended();
                    this.end = End::Finish;
                    // hyper closes the connection without ending the chunked
                    // body, so the client sees a broken body, not a clean end.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "injected disconnect",
                    ))));
                }
                End::Stall => {
                    this.end = End::Abort;
                    this.end_at += STALL_LIMIT;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.end == End::Finish && self.slot.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn frames_come_at_their_deadlines_and_an_abort_is_an_error() {
        let pacer = crate::builtin::pacer::Pacer::start().unwrap();
        let state = std::sync::Arc::new(crate::builtin::state::State::new(
            crate::builtin::Script::new(),
            pacer.handle(),
        ));
        let slot = state.enter(None, crate::builtin::state::Admission::now());
        assert_eq!(state.stats().max_in_flight, 1);
        let timeline = Timeline {
            status: hyper::StatusCode::OK,
            content_type: "text/plain",
            head_at: Duration::ZERO,
            frames: vec![
                (Duration::ZERO, Bytes::from_static(b"a")),
                (Duration::from_millis(30), Bytes::from_static(b"b")),
            ],
            end_at: Duration::from_millis(40),
            end: End::Abort,
            whole: false,
            tail: None,
            first_event: None,
            accounting: crate::builtin::timeline::Accounting::default(),
        };
        let start = Instant::now();
        let mut body = ResponseBody::scripted(start, timeline, slot, pacer.handle());
        let a = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(
            (&a[..], start.elapsed() < Duration::from_millis(10)),
            (&b"a"[..], true)
        );
        let b = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&b[..], b"b");
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(body.frame().await.unwrap().is_err());
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(state.in_flight(), 0, "the slot is released at the end");
    }
}
