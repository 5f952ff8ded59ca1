//! How the built-in endpoint keeps or closes its connections: HTTP/1.1
//! keep-alive by default, or the ways real servers close them, so a client
//! can be checked against each (no false errors, keep-alive limits
//! honoured).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderValue, CONNECTION};

use super::Connections;

/// `Keep-Alive` values llama.cpp's server sends.
const ADVERTISED: &str = "timeout=5, max=100";
/// How long after a response [`Connections::CloseAfterResponse`] closes.
pub(crate) const CLOSE_DELAY: Duration = Duration::from_millis(2);

/// What one connection has served.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    served: AtomicU32,
    /// When its last response ended (or started, until it ends).
    last_response: Mutex<Option<Instant>>,
    /// Told when a response ended.
    response_ended: tokio::sync::Notify,
}

impl ConnectionState {
    /// Whether a request arriving now is refused: the connection is closed
    /// without an answer.
    pub(crate) fn refuses(&self, mode: Connections) -> bool {
        let served = self.served.load(Ordering::SeqCst);
        match mode {
            Connections::KeepAlive | Connections::AnnounceClose => false,
            Connections::CloseAfterResponse | Connections::CloseOnReuse => served >= 1,
            Connections::Limited {
                max_requests,
                idle_timeout_s,
            } => {
                let idle = self
                    .last_response
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .map(|at| at.elapsed());
                served >= max_requests
                    || idle
                        .is_some_and(|idle| idle > Duration::from_secs(u64::from(idle_timeout_s)))
            }
        }
    }

    /// Counts an answer and adds the headers `mode` sends with it.
    pub(crate) fn answered(&self, mode: Connections, headers: &mut HeaderMap) {
        let served = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        self.mark();
        match mode {
            Connections::KeepAlive => {}
            Connections::CloseAfterResponse | Connections::CloseOnReuse => {
                headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
                headers.insert("keep-alive", HeaderValue::from_static(ADVERTISED));
            }
            Connections::AnnounceClose => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Connections::Limited {
                max_requests,
                idle_timeout_s,
            } => {
                let remaining = max_requests.saturating_sub(served);
                let value = format!("timeout={idle_timeout_s}, max={remaining}");
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert("keep-alive", value);
                }
            }
        }
    }

    /// A response on this connection ended (or started) now.
    pub(crate) fn mark(&self) {
        *self.last_response.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// A response body was sent in full.
    pub(crate) fn ended(&self) {
        self.mark();
        self.response_ended.notify_one();
    }

    /// Resolves when a response has ended (at once if one ended already).
    pub(crate) async fn response_ended(&self) {
        self.response_ended.notified().await;
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
pub(crate) struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request on a connection the script closes")
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::body::ResponseBody;
    use hyper::Response;

    #[test]
    fn limits_count_down_and_refuse_past_the_last_allowed_request() {
        let mode = Connections::Limited {
            max_requests: 2,
            idle_timeout_s: 60,
        };
        let connection = ConnectionState::default();
        assert!(!connection.refuses(mode));
        let mut first = Response::new(ResponseBody::now(bytes::Bytes::new()));
        connection.answered(mode, first.headers_mut());
        assert_eq!(first.headers()["keep-alive"], "timeout=60, max=1");
        assert!(!connection.refuses(mode));
        let mut second = Response::new(ResponseBody::now(bytes::Bytes::new()));
        connection.answered(mode, second.headers_mut());
        assert_eq!(second.headers()["keep-alive"], "timeout=60, max=0");
        assert!(connection.refuses(mode));
        let reuse = ConnectionState::default();
        assert!(!reuse.refuses(Connections::CloseOnReuse));
        reuse.answered(Connections::CloseOnReuse, first.headers_mut());
        assert!(reuse.refuses(Connections::CloseOnReuse));
        assert_eq!(first.headers()["keep-alive"], ADVERTISED);
    }
}
