//! The shared stream reader: sends one request and stamps every read.
//!
//! This is the hot path. Between a read completing and its bytes being
//! stamped there is only `Instant::now()`; decoding follows at once, and
//! everything else (tokenizing, validation, statistics, JSON output) waits
//! until the request is over.
//!
//! Whatever the server sends, one stream holds bounded memory: an event
//! still incomplete past [`Limits::max_event_bytes`] ends the stream
//! (`event_too_large`), and so does an answer of more events or text than
//! its [`Bounds`] allow (`response_too_large`); the connection is then
//! dropped. Events are kept compactly: one string of text, and per event
//! where its text ends and when it arrived ([`TextEvents`]).

use std::time::{Duration, Instant};

use super::QUOTED_CHARS;
use super::{
    excerpt, EndpointKind, ErrorKind, RequestError, RequestExtras, StreamEvent, Target, TimedEvent,
    Usage,
};
use crate::transport::{Body, ConnectionRecord, Prepared, Step, Transport};
use crate::workload::RequestPlan;

pub use crate::spec::DEFAULT_MAX_EVENT_BYTES;
/// The most content and reasoning events one response may carry (beyond
/// any model's output; 12 bytes each).
pub const MAX_RESPONSE_EVENTS: usize = 1 << 22;
/// The most answer text (content and reasoning) kept for one response.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// How much one answer may hold: [`MAX_RESPONSE_EVENTS`] and
/// [`MAX_ANSWER_BYTES`], or for a request with a `max_tokens`, 8 events
/// and 64 bytes of text per token it allows (plus 4,096 events and 64 KiB),
/// whichever is less. A server may split a token's text or send reasoning
/// apart, but not eight times over: past that it is not honouring the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Content and reasoning events.
    pub events: usize,
    /// Bytes of content and reasoning text.
    pub text_bytes: usize,
}

impl Bounds {
    /// The bounds of a request sending `max_tokens`.
    pub fn for_max_tokens(max_tokens: Option<u32>) -> Bounds {
        let Some(tokens) = max_tokens.map(|t| t as usize) else {
            return Bounds {
                events: MAX_RESPONSE_EVENTS,
                text_bytes: MAX_ANSWER_BYTES,
            };
        };
        Bounds {
            events: tokens
                .saturating_mul(8)
                .saturating_add(4096)
                .min(MAX_RESPONSE_EVENTS),
            text_bytes: tokens
                .saturating_mul(64)
                .saturating_add(64 * 1024)
                .min(MAX_ANSWER_BYTES),
        }
    }
}

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From send to the end of the stream.
    pub timeout: Duration,
    /// Longest silence, before the response headers and inside the stream.
    pub stall_timeout: Option<Duration>,
    /// Largest event (an incomplete event holding more ends the stream).
    pub max_event_bytes: usize,
}

/// Text events of one kind (content, or reasoning), stored compactly: the
/// text of all of them in one string, and per event where its text ends and
/// when it arrived (nanoseconds after the send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextEvents {
    text: String,
    ends: Vec<u32>,
    arrivals_ns: Vec<u64>,
}

impl TextEvents {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All the text, in order.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Each event's arrival (after the send) and text.
    pub fn iter(&self) -> impl Iterator<Item = (Duration, &str)> + '_ {
        let mut start = 0usize;
        self.ends
            .iter()
            .zip(&self.arrivals_ns)
            .map(move |(&end, &at)| {
                let end = end as usize;
                let piece = self.text.get(start..end).unwrap_or("");
                start = end;
                (Duration::from_nanos(at), piece)
            })
    }

    /// When the first event arrived, after the send.
    pub fn first_arrival(&self) -> Option<Duration> {
        self.arrivals_ns.first().map(|&ns| Duration::from_nanos(ns))
    }

    /// Adds an event; `false` (nothing added) when there is no room for it.
    pub(crate) fn push(&mut self, after_send: Duration, piece: &str, room: usize) -> bool {
        if piece.len() > room {
            return false;
        }
        self.text.push_str(piece);
        self.ends.push(self.text.len() as u32);
        self.arrivals_ns
            .push(u64::try_from(after_send.as_nanos()).unwrap_or(u64::MAX));
        true
    }
}

/// Everything observed about one request, before any analysis.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When the request was handed to the transport (TTFT and E2E count
    /// from here, a re-sent request's included).
    pub sent_at: Instant,
    /// When the response headers arrived.
    pub headers_at: Option<Instant>,
    /// Answer text events.
    pub content: TextEvents,
    /// Reasoning text events (they do not end TTFT).
    pub reasoning: TextEvents,
    /// The server's token counts (the last report).
    pub usage: Option<Usage>,
    /// The server's finish reason.
    pub finish_reason: Option<String>,
    /// The protocol's end marker came.
    pub done: bool,
    /// When the stream ended: the end marker's arrival, the close, or the failure.
    pub ended_at: Instant,
    /// The HTTP status, when a response came.
    pub http_status: Option<u16>,
    /// The connection the request went out on (`None`: none was made).
    pub connection: Option<ConnectionRecord>,
    /// The first failure, if any.
    pub error: Option<RequestError>,
}

impl Exchange {
    pub(crate) fn new(sent_at: Instant) -> Exchange {
        Exchange {
            sent_at,
            headers_at: None,
            content: TextEvents::default(),
            reasoning: TextEvents::default(),
            usage: None,
            finish_reason: None,
            done: false,
            ended_at: sent_at,
            http_status: None,
            connection: None,
            error: None,
        }
    }

    /// Takes decoded events into the record; `Err` when the answer passes
    /// its bounds. The first error event is kept (an error inside the stream
    /// comes before any transport failure that ends it).
    fn absorb(
        &mut self,
        events: &mut Vec<TimedEvent>,
        stream_error: &mut Option<RequestError>,
        bounds: Bounds,
    ) -> Result<(), RequestError> {
        for TimedEvent { at, event } in events.drain(..) {
            let after_send = at.saturating_duration_since(self.sent_at);
            let room = if self.content.len() + self.reasoning.len() >= bounds.events {
                0
            } else {
                bounds
                    .text_bytes
                    .saturating_sub(self.content.text.len() + self.reasoning.text.len())
            };
            let kept = match &event {
                StreamEvent::Content(piece) => self.content.push(after_send, piece, room),
                StreamEvent::Reasoning(piece) => self.reasoning.push(after_send, piece, room),
                StreamEvent::Usage(usage) => {
                    self.usage = Some(*usage);
                    true
                }
                StreamEvent::Finish(reason) => {
                    self.finish_reason = Some(reason.clone());
                    true
                }
                StreamEvent::Error(error) => {
                    stream_error.get_or_insert_with(|| error.clone());
                    true
                }
                StreamEvent::Done => {
                    self.done = true;
                    true
                }
            };
            if !kept {
                return Err(RequestError::new(
                    ErrorKind::ResponseTooLarge,
                    format!(
                        "the answer passed {} events or {} bytes of text (the most a response to this request may hold): stopped reading, the connection is dropped",
                        bounds.events, bounds.text_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// How long to keep reading after the end marker, so the connection ends
/// its body cleanly and goes back to the pool.
const DRAIN_AFTER_DONE: Duration = Duration::from_millis(200);
/// Most bytes of an error response kept for its message.
const ERROR_BODY_BYTES: usize = 4096;

/// Sends `plan` to `target` with the spec's `extras` (extra headers and
/// query parameters, added after the kind built the request, replacing
/// what it set of the same name) and reads the whole stream.
pub async fn exchange(
    transport: &Transport,
    kind: &dyn EndpointKind,
    target: &Target,
    extras: &RequestExtras,
    plan: &RequestPlan,
    limits: Limits,
) -> Exchange {
    let request = kind
        .build_request(transport.request_builder(), target, plan)
        .and_then(|builder| {
            builder.build().map_err(|e| {
                RequestError::new(
                    ErrorKind::Request,
                    format!(
                        "cannot build the request: {}",
                        crate::transport::error_chain(&e.without_url())
                    ),
                )
            })
        })
        .and_then(|mut request| {
            extras.apply(&mut request);
            Prepared::of(&request)
        });
    let bounds = Bounds::for_max_tokens(plan.max_tokens);
    let mut exchange = Exchange::new(Instant::now());
    let request = match request {
        Ok(request) => request,
        Err(mut error) => {
            error.message = extras.redact(&redact(&error.message, target));
            exchange.error = Some(error);
            return exchange;
        }
    };
    let mut ended_at = None;
    let mut stream_error = None;
    let transport_error = read(
        transport,
        &request,
        kind,
        target,
        (limits, bounds),
        &mut exchange,
        &mut ended_at,
        &mut stream_error,
    )
    .await
    .err();
    exchange.ended_at = ended_at.unwrap_or_else(Instant::now);
    exchange.error = stream_error.or(transport_error).or_else(|| {
        (exchange.content.is_empty() && exchange.reasoning.is_empty()).then(|| {
            RequestError::new(
                ErrorKind::EmptyResponse,
                "the stream ended without any content",
            )
        })
    });
    if let Some(error) = exchange.error.as_mut() {
        error.message = extras.redact(&redact(&error.message, target));
    }
    exchange
}

#[allow(clippy::too_many_arguments)]
async fn read(
    transport: &Transport,
    request: &Prepared,
    kind: &dyn EndpointKind,
    target: &Target,
    (limits, bounds): (Limits, Bounds),
    exchange: &mut Exchange,
    ended_at: &mut Option<Instant>,
    stream_error: &mut Option<RequestError>,
) -> Result<(), RequestError> {
    let mut clock = Deadlines::new(exchange.sent_at, limits);
    // Boxed: connecting (name resolution, TLS) needs far more state than
    // reading a stream, and the box goes once the headers are in, so an
    // open stream holds only what reading it needs.
    let send = Box::pin(transport.send(request, exchange.sent_at, &mut exchange.connection));
    let answered = clock
        .guard(send)
        .await
        .map_err(|expired| clock.error(expired, "before the response headers"))??;
    clock.progress(answered.at);
    let (head, mut body) = (answered.head, answered.body);
    exchange.headers_at = Some(answered.at);
    let status = head.status;
    exchange.http_status = Some(status.as_u16());
    let content_type = head
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let location = head
        .headers
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // The headers are not needed past this point (nor kept while streaming).
    drop(head);
    if !status.is_success() {
        let text = error_body(body, &mut clock).await;
        *ended_at = Some(Instant::now());
        return Err(status_error(
            status,
            &text,
            location.as_deref(),
            kind,
            target,
        ));
    }
    if !content_type.is_empty() && !kind.accepts_content_type(&content_type) {
        let text = error_body(body, &mut clock).await;
        *ended_at = Some(Instant::now());
        return Err(RequestError::new(
            ErrorKind::NotStreaming,
            format!(
                "the server answered with {content_type}, not an event stream: does it support \"stream\": true? ({})",
                excerpt(text.trim(), QUOTED_CHARS)
            ),
        ));
    }
    let mut decoder = kind.decoder();
    let mut events: Vec<TimedEvent> = Vec::with_capacity(16);
    loop {
        let read = body.next(|at, bytes| decoder.feed(bytes, at, &mut events));
        let next = match clock.guard(read).await {
            Ok(next) => next,
            Err(expired) => {
                *ended_at = Some(Instant::now());
                return Err(clock.error(expired, "inside the stream"));
            }
        };
        let (at, step) = match next {
            Ok(next) => next,
            Err(error) => {
                *ended_at = Some(Instant::now());
                return Err(RequestError::new(
                    ErrorKind::Disconnect,
                    format!(
                        "the stream broke after {} events: {error}",
                        exchange.content.len() + exchange.reasoning.len()
                    ),
                ));
            }
        };
        clock.progress(at);
        if let Err(error) = exchange.absorb(&mut events, stream_error, bounds) {
            *ended_at = Some(at);
            return Err(error);
        }
        if exchange.done {
            *ended_at = Some(at);
            break;
        }
        if step == Step::End {
            decoder.finish(at, &mut events);
            exchange.absorb(&mut events, stream_error, bounds)?;
            *ended_at = Some(at);
            // The body ended cleanly: the connection may serve again.
            body.release();
            return Ok(());
        }
        if decoder.buffered_bytes() > limits.max_event_bytes {
            *ended_at = Some(at);
            return Err(RequestError::new(
                ErrorKind::EventTooLarge,
                format!(
                    "an event passed {} bytes without ending (the maximum event size; --max-event-size raises it): stopped reading after {} events",
                    limits.max_event_bytes,
                    exchange.content.len() + exchange.reasoning.len()
                ),
            ));
        }
    }
    // The end marker came: read on (ignoring the bytes) until the body
    // ends, so the connection goes back clean; if it does not end soon, the
    // answer is still complete and the connection is dropped.
    let deadline = tokio::time::Instant::now() + DRAIN_AFTER_DONE;
    loop {
        match tokio::time::timeout_at(deadline, body.next(|_, _| {})).await {
            Ok(Ok((_, Step::End))) => {
                body.release();
                return Ok(());
            }
            Ok(Ok((_, Step::More))) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
    }
}

/// A request's time limits: the whole request's timeout and the stall
/// timeout, at the cost of one timer per request rather than one per read.
/// The timer is set for the earlier of the two deadlines known when it is
/// set; when it fires, it is set again from the latest progress, unless a
/// deadline has really passed.
struct Deadlines {
    limits: Limits,
    /// When the whole request must have ended.
    end: Instant,
    /// When bytes last arrived (or the request was sent).
    last: Instant,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// `at + after`, or a time no run reaches when that is past what the
/// clock can hold (a limit of "forever").
fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(at)
}

/// The earlier of `end` and a stall after `last`.
fn first_due(limits: Limits, last: Instant, end: Instant) -> Instant {
    match limits.stall_timeout {
        Some(stall) => later(last, stall).min(end),
        None => end,
    }
}

/// Which limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Timeout,
    Stall,
}

impl Deadlines {
    fn new(sent_at: Instant, limits: Limits) -> Deadlines {
        let end = later(sent_at, limits.timeout);
        Deadlines {
            limits,
            end,
            last: sent_at,
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                first_due(limits, sent_at, end),
            ))),
        }
    }

    fn due(&self) -> Instant {
        first_due(self.limits, self.last, self.end)
    }

    /// Bytes arrived at `at`.
    fn progress(&mut self, at: Instant) {
        self.last = at;
    }

    /// `work`'s output, or which limit passed first.
    async fn guard<T>(&mut self, work: impl std::future::Future<Output = T>) -> Result<T, Expired> {
        use std::future::Future as _;
        use std::task::Poll;
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            while self.sleep.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                if now >= self.end {
                    return Poll::Ready(Err(Expired::Timeout));
                }
                if self
                    .limits
                    .stall_timeout
                    .is_some_and(|stall| now >= later(self.last, stall))
                {
                    return Poll::Ready(Err(Expired::Stall));
                }
                let due = tokio::time::Instant::from_std(self.due());
                self.sleep.as_mut().reset(due);
            }
            Poll::Pending
        })
        .await
    }

    /// The error of a limit that passed `place` ("inside the stream").
    fn error(&self, expired: Expired, place: &str) -> RequestError {
        match (expired, self.limits.stall_timeout) {
            (Expired::Stall, Some(stall)) => stalled(stall, place),
            _ => RequestError::new(
                ErrorKind::Timeout,
                format!(
                    "no complete response within the {} timeout",
                    humantime::format_duration(self.limits.timeout)
                ),
            ),
        }
    }
}

fn stalled(stall: Duration, place: &str) -> RequestError {
    RequestError::new(
        ErrorKind::Stall,
        format!(
            "no bytes for {} {place} (stall timeout)",
            humantime::format_duration(stall)
        ),
    )
}

/// Up to [`ERROR_BODY_BYTES`] of a response body, as text, read within
/// the request's limits; the connection is kept when the body ended
/// within them.
async fn error_body(mut body: Body, clock: &mut Deadlines) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ERROR_BODY_BYTES {
        let read = body.next(|_, data| {
            let room = ERROR_BODY_BYTES.saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
        });
        match clock.guard(read).await {
            Ok(Ok((_, Step::End))) => {
                body.release();
                break;
            }
            Ok(Ok((at, Step::More))) => clock.progress(at),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn status_error(
    status: hyper::StatusCode,
    body: &str,
    location: Option<&str>,
    kind: &dyn EndpointKind,
    target: &Target,
) -> RequestError {
    let code = status.as_u16();
    let detail = kind
        .error_detail(body)
        .unwrap_or_else(|| excerpt(body.trim(), QUOTED_CHARS));
    let (kind, hint) = match code {
        300..=399 => (
            ErrorKind::ClientError,
            format!(
                " (redirected to {}: llmperf does not follow redirects, use that address as the base URL)",
                location.map_or("an address the server did not give".to_string(), crate::spec::display_url)
            ),
        ),
        401 | 403 => (
            ErrorKind::Unauthorized,
            format!(
                " (check {}: the key is missing, wrong or expired)",
                target.api_key_source
            ),
        ),
        404 => (
            ErrorKind::ClientError,
            format!(
                " (check the base URL {} and the model name)",
                crate::spec::display_url(&target.base_url)
            ),
        ),
        429 => (
            ErrorKind::RateLimited,
            " (rate limited: lower the concurrency or add a sleep between requests)".to_string(),
        ),
        500..=599 => (ErrorKind::ServerError, String::new()),
        _ => (ErrorKind::ClientError, String::new()),
    };
    RequestError {
        kind,
        message: format!("HTTP {status}: {detail}{hint}"),
        http_status: Some(code),
    }
}

/// Removes the API key from text that may echo it.
fn redact(message: &str, target: &Target) -> String {
    match &target.api_key {
        Some(key) if key.expose().len() >= 4 => message.replace(key.expose(), "***"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_events_keep_each_piece_and_its_arrival_and_stop_at_their_bounds() {
        let mut events = TextEvents::default();
        assert!(events.push(Duration::from_millis(5), "Hello", 100));
        assert!(events.push(Duration::from_millis(7), ", world", 100));
        assert!(events.push(Duration::from_millis(9), "", 100));
        let seen: Vec<(u128, &str)> = events.iter().map(|(at, t)| (at.as_millis(), t)).collect();
        assert_eq!(seen, [(5, "Hello"), (7, ", world"), (9, "")]);
        assert_eq!(events.text(), "Hello, world");
        assert_eq!(events.first_arrival(), Some(Duration::from_millis(5)));
        assert!(!events.push(Duration::ZERO, "too long", 3));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_responses_bounds_follow_its_max_tokens() {
        let unlimited = Bounds::for_max_tokens(None);
        assert_eq!(
            (unlimited.events, unlimited.text_bytes),
            (MAX_RESPONSE_EVENTS, MAX_ANSWER_BYTES)
        );
        let short = Bounds::for_max_tokens(Some(150));
        assert_eq!((short.events, short.text_bytes), (5_296, 75_136));
        let huge = Bounds::for_max_tokens(Some(u32::MAX));
        assert_eq!(
            (huge.events, huge.text_bytes),
            (MAX_RESPONSE_EVENTS, MAX_ANSWER_BYTES)
        );
    }
}
