//! The shared stream reader: sends one request and stamps every read.
//!
//! This is the hot path. Between a read completing and its bytes being
//! stamped there is only `Instant::now()`; decoding follows at once, and
//! everything else (tokenizing, validation, statistics, JSON output) waits
//! until the request is over.

use std::time::{Duration, Instant};

use super::{excerpt, EndpointKind, ErrorKind, RequestError, StreamEvent, Target, TimedEvent};
use crate::workload::RequestPlan;

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From send to the end of the stream.
    pub timeout: Duration,
    /// Longest silence, before the response headers and inside the stream.
    pub stall_timeout: Option<Duration>,
}

/// Everything observed about one request, before any analysis.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When the request was handed to the connection.
    pub sent_at: Instant,
    /// When the response headers arrived.
    pub headers_at: Option<Instant>,
    /// Decoded events with the arrival time of their bytes.
    pub events: Vec<TimedEvent>,
    /// When the stream ended: the end marker's arrival, the close, or the failure.
    pub ended_at: Instant,
    /// The HTTP status, when a response came.
    pub http_status: Option<u16>,
    /// The first failure, if any.
    pub error: Option<RequestError>,
}

/// How long to keep reading after the end marker, so the connection ends
/// its body cleanly and goes back to the pool.
const DRAIN_AFTER_DONE: Duration = Duration::from_millis(200);
/// Most bytes of an error response kept for its message.
const ERROR_BODY_BYTES: usize = 4096;
/// Characters of an error body quoted in a message.
const QUOTED_CHARS: usize = 200;
/// Events reserved up front (a guess; the vector grows past it).
const RESERVED_EVENTS: u32 = 4096;

/// Sends `plan` to `target` and reads the whole stream.
pub async fn exchange(
    client: &reqwest::Client,
    kind: &dyn EndpointKind,
    target: &Target,
    plan: &RequestPlan,
    limits: Limits,
) -> Exchange {
    let request = kind.build_request(client, target, plan);
    let reserved = plan.max_tokens.unwrap_or(256).min(RESERVED_EVENTS) as usize + 8;
    let sent_at = Instant::now();
    let request = match request {
        Ok(request) => request,
        Err(mut error) => {
            error.message = redact(&error.message, target);
            return Exchange {
                sent_at,
                headers_at: None,
                events: Vec::new(),
                ended_at: sent_at,
                http_status: None,
                error: Some(error),
            };
        }
    };
    let mut exchange = Exchange {
        sent_at,
        headers_at: None,
        events: Vec::with_capacity(reserved),
        ended_at: sent_at,
        http_status: None,
        error: None,
    };
    let mut ended_at = None;
    let outcome = tokio::time::timeout(
        limits.timeout,
        read(request, kind, target, limits, &mut exchange, &mut ended_at),
    )
    .await;
    let transport_error = match outcome {
        Ok(result) => result.err(),
        Err(_) => Some(RequestError::new(
            ErrorKind::Timeout,
            format!(
                "no complete response within the {} timeout",
                humantime::format_duration(limits.timeout)
            ),
        )),
    };
    exchange.ended_at = ended_at.unwrap_or_else(Instant::now);
    // The first failure: an error inside the stream always came before a
    // transport failure that ended it.
    exchange.error = stream_error(&exchange.events)
        .or(transport_error)
        .or_else(|| empty_response(&exchange.events));
    if let Some(error) = exchange.error.as_mut() {
        error.message = redact(&error.message, target);
    }
    exchange
}

async fn read(
    request: reqwest::RequestBuilder,
    kind: &dyn EndpointKind,
    target: &Target,
    limits: Limits,
    exchange: &mut Exchange,
    ended_at: &mut Option<Instant>,
) -> Result<(), RequestError> {
    let send = request.send();
    let sent = match limits.stall_timeout {
        Some(stall) => tokio::time::timeout(stall, send)
            .await
            .map_err(|_| stalled(stall, "before the response headers"))?,
        None => send.await,
    };
    let mut response = sent.map_err(send_error)?;
    exchange.headers_at = Some(Instant::now());
    let status = response.status();
    exchange.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = error_body(&mut response).await;
        *ended_at = Some(Instant::now());
        return Err(status_error(status, &body, kind, target));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.is_empty() && !kind.accepts_content_type(&content_type) {
        let body = error_body(&mut response).await;
        *ended_at = Some(Instant::now());
        return Err(RequestError::new(
            ErrorKind::NotStreaming,
            format!(
                "the server answered with {content_type}, not an event stream: does it support \"stream\": true? ({})",
                excerpt(body.trim(), QUOTED_CHARS)
            ),
        ));
    }
    let mut decoder = kind.decoder();
    let mut drain_until = None;
    loop {
        let next = match (drain_until, limits.stall_timeout) {
            (Some(deadline), _) => {
                match tokio::time::timeout_at(deadline, response.chunk()).await {
                    Ok(next) => next,
                    // The answer is complete; only the connection's clean end is missing.
                    Err(_) => return Ok(()),
                }
            }
            (None, Some(stall)) => match tokio::time::timeout(stall, response.chunk()).await {
                Ok(next) => next,
                Err(_) => {
                    *ended_at = Some(Instant::now());
                    return Err(stalled(stall, "inside the stream"));
                }
            },
            (None, None) => response.chunk().await,
        };
        match next {
            Ok(Some(bytes)) => {
                let at = Instant::now();
                let seen = exchange.events.len();
                decoder.feed(&bytes, at, &mut exchange.events);
                if drain_until.is_none()
                    && exchange.events[seen..]
                        .iter()
                        .any(|e| matches!(e.event, StreamEvent::Done))
                {
                    *ended_at = Some(at);
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_DONE);
                }
            }
            Ok(None) => {
                let at = Instant::now();
                if drain_until.is_none() {
                    decoder.finish(at, &mut exchange.events);
                    *ended_at = Some(at);
                }
                return Ok(());
            }
            Err(_) if drain_until.is_some() => return Ok(()),
            Err(error) => {
                *ended_at = Some(Instant::now());
                return Err(RequestError::new(
                    ErrorKind::Disconnect,
                    format!(
                        "the stream broke after {} events: {}",
                        exchange.events.len(),
                        error_chain(&error.without_url())
                    ),
                ));
            }
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

/// Up to [`ERROR_BODY_BYTES`] of a response body, as text.
async fn error_body(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

fn stream_error(events: &[TimedEvent]) -> Option<RequestError> {
    events.iter().find_map(|e| match &e.event {
        StreamEvent::Error(error) => Some(error.clone()),
        _ => None,
    })
}

fn empty_response(events: &[TimedEvent]) -> Option<RequestError> {
    let has_output = events
        .iter()
        .any(|e| matches!(e.event, StreamEvent::Content(_) | StreamEvent::Reasoning(_)));
    (!has_output).then(|| {
        RequestError::new(
            ErrorKind::EmptyResponse,
            "the stream ended without any content",
        )
    })
}

fn send_error(error: reqwest::Error) -> RequestError {
    let error = error.without_url();
    let chain = error_chain(&error);
    let kind = if chain.contains("dns error") || chain.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if error.is_connect() {
        ErrorKind::Connect
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Request
    };
    RequestError::new(kind, chain)
}

fn status_error(
    status: reqwest::StatusCode,
    body: &str,
    kind: &dyn EndpointKind,
    target: &Target,
) -> RequestError {
    let code = status.as_u16();
    let detail = kind
        .error_detail(body)
        .unwrap_or_else(|| excerpt(body.trim(), QUOTED_CHARS));
    let (kind, hint) = match code {
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

/// The error and its sources, one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Removes the API key from text that may echo it.
fn redact(message: &str, target: &Target) -> String {
    match &target.api_key {
        Some(key) if key.expose().len() >= 4 => message.replace(key.expose(), "***"),
        _ => message.to_string(),
    }
}
