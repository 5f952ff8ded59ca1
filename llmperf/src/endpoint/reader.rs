//! The shared stream reader: sends one request and stamps every read.
//!
//! This is the hot path. Between a read completing and its bytes being
//! stamped there is only `Instant::now()`; decoding follows at once, and
//! everything else (tokenizing, validation, statistics, JSON output) waits
//! until the request is over.

use std::time::{Duration, Instant};

use super::openai::excerpt;
use super::{EndpointKind, ErrorKind, RequestError, StreamEvent, Target, TimedEvent};
use crate::workload::RequestPlan;

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From send to the end of the stream.
    pub timeout: Duration,
    /// Longest silence inside the stream.
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
    /// When the stream ended (or failed).
    pub ended_at: Instant,
    /// The HTTP status, when a response came.
    pub http_status: Option<u16>,
    /// The first failure, if any.
    pub error: Option<RequestError>,
}

/// Sends `plan` to `target` and reads the whole stream.
pub async fn exchange(
    client: &reqwest::Client,
    kind: &dyn EndpointKind,
    target: &Target,
    plan: &RequestPlan,
    limits: Limits,
) -> Exchange {
    let request = kind.build_request(client, target, plan);
    let sent_at = Instant::now();
    let mut exchange = Exchange {
        sent_at,
        headers_at: None,
        events: Vec::with_capacity(plan.max_tokens.unwrap_or(256) as usize + 8),
        ended_at: sent_at,
        http_status: None,
        error: None,
    };
    let outcome = tokio::time::timeout(
        limits.timeout,
        read(request, kind, target, limits, &mut exchange),
    )
    .await;
    let error = match outcome {
        Ok(result) => result.err(),
        Err(_) => Some(RequestError::new(
            ErrorKind::Timeout,
            format!(
                "no complete response within the {} timeout",
                humantime::format_duration(limits.timeout)
            ),
        )),
    };
    if exchange.error.is_none() {
        exchange.error = error.or_else(|| first_stream_error(&exchange.events));
    }
    if let Some(error) = exchange.error.as_mut() {
        error.message = redact(&error.message, target);
    }
    if exchange.ended_at == sent_at {
        exchange.ended_at = Instant::now();
    }
    exchange
}

async fn read(
    request: reqwest::RequestBuilder,
    kind: &dyn EndpointKind,
    target: &Target,
    limits: Limits,
    exchange: &mut Exchange,
) -> Result<(), RequestError> {
    let mut response = request.send().await.map_err(send_error)?;
    exchange.headers_at = Some(Instant::now());
    let status = response.status();
    exchange.http_status = Some(status.as_u16());
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        exchange.ended_at = Instant::now();
        return Err(status_error(status, &body, target));
    }
    let mut decoder = kind.decoder();
    loop {
        let next = match limits.stall_timeout {
            Some(stall) => match tokio::time::timeout(stall, response.chunk()).await {
                Ok(next) => next,
                Err(_) => {
                    exchange.ended_at = Instant::now();
                    return Err(RequestError::new(
                        ErrorKind::Stall,
                        format!(
                            "no bytes for {} (stall timeout)",
                            humantime::format_duration(stall)
                        ),
                    ));
                }
            },
            None => response.chunk().await,
        };
        match next {
            Ok(Some(bytes)) => {
                let at = Instant::now();
                decoder.feed(&bytes, at, &mut exchange.events);
            }
            Ok(None) => {
                let at = Instant::now();
                decoder.finish(at, &mut exchange.events);
                exchange.ended_at = exchange
                    .events
                    .iter()
                    .rev()
                    .find(|e| matches!(e.event, StreamEvent::Done))
                    .map_or(at, |e| e.at);
                return Ok(());
            }
            Err(error) => {
                exchange.ended_at = Instant::now();
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

fn first_stream_error(events: &[TimedEvent]) -> Option<RequestError> {
    let error = events.iter().find_map(|e| match &e.event {
        StreamEvent::Error(error) => Some(error.clone()),
        _ => None,
    });
    if error.is_some() {
        return error;
    }
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

fn status_error(status: reqwest::StatusCode, body: &str, target: &Target) -> RequestError {
    let code = status.as_u16();
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").map(super::openai::error_message))
        .unwrap_or_else(|| excerpt(body.trim()));
    let (kind, hint) = match code {
        401 | 403 => (
            ErrorKind::Unauthorized,
            format!(
                " (check {}: the key is missing, wrong or expired)",
                target.api_key_env
            ),
        ),
        429 => (
            ErrorKind::RateLimited,
            " (rate limited: lower --concurrency or add --sleep)".to_string(),
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
