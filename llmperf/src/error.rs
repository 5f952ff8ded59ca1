//! Why a request failed: the named kinds results count ([`ErrorKind`]) and
//! the error a record keeps ([`RequestError`]). The ground floor: the
//! transport, the endpoint kinds and the records all name them.

use serde::{Deserialize, Serialize};

/// The named kinds of request failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The connection was refused or could not be made.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// TLS failed: the server's certificate is not trusted (the message
    /// names `--ca-cert`), or the server refused or demanded a client
    /// certificate (`--client-cert`/`--client-key`).
    Tls,
    /// HTTP 401 or 403: a missing, wrong or expired key.
    Unauthorized,
    /// HTTP 429.
    RateLimited,
    /// Another HTTP 4xx.
    ClientError,
    /// HTTP 5xx.
    ServerError,
    /// The request did not finish within the per-request timeout.
    Timeout,
    /// No bytes arrived for longer than the stall timeout.
    Stall,
    /// The connection broke in the middle of the stream.
    Disconnect,
    /// An event that is not valid JSON of the expected shape.
    MalformedEvent,
    /// An error object sent inside a 200 stream.
    StreamError,
    /// The stream ended without the protocol's end marker.
    MissingDone,
    /// The stream ended with no content at all.
    EmptyResponse,
    /// A 200 answer that is not an event stream (the server ignored `stream: true`).
    NotStreaming,
    /// A binary frame that fails its checksum or ends early (event streams).
    Framing,
    /// An event type the protocol does not define.
    UnknownEvent,
    /// An event grew past the maximum event size without ending (a line
    /// that never ends, a giant event): reading stopped, the connection was
    /// dropped.
    EventTooLarge,
    /// The answer passed the most events or text one response may hold:
    /// reading stopped, the connection was dropped.
    ResponseTooLarge,
    /// The request could not be built or sent for another reason.
    Request,
}

impl ErrorKind {
    /// The snake_case name used in results.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Stall => "stall",
            ErrorKind::Disconnect => "disconnect",
            ErrorKind::MalformedEvent => "malformed_event",
            ErrorKind::StreamError => "stream_error",
            ErrorKind::MissingDone => "missing_done",
            ErrorKind::EmptyResponse => "empty_response",
            ErrorKind::NotStreaming => "not_streaming",
            ErrorKind::Framing => "framing",
            ErrorKind::UnknownEvent => "unknown_event",
            ErrorKind::EventTooLarge => "event_too_large",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::Request => "request",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    /// The named kind.
    pub kind: ErrorKind,
    /// What happened, with secrets removed.
    pub message: String,
    /// The HTTP status, when the server answered with an error status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

impl RequestError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RequestError {
            kind,
            message: message.into(),
            http_status: None,
        }
    }
}

/// At most `max` characters of `text`, marked with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
