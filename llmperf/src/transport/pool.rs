//! Idle connections, kept per origin and handed out most recent first,
//! under the server's own keep-alive rules: `Connection: close` retires a
//! connection, `Keep-Alive: timeout=T, max=N` bounds how long it may sit
//! idle and how many more requests it may carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderValue, CONNECTION};

use super::http1::Wire;
use super::proxy::ProxyServer;
use super::Origin;

/// Most that is taken off a server's idle timeout, so a connection is not
/// reused at the very moment the server closes it.
const IDLE_MARGIN: Duration = Duration::from_secs(1);

/// One open connection and what is known of its future.
pub(crate) struct Connection {
    /// Its number in the run (1, 2, …).
    pub(crate) id: u64,
    /// The socket and the bytes read from it not yet used.
    pub(crate) wire: Wire,
    /// The HTTP proxy its requests go to (in absolute form), if any.
    pub(crate) proxy: Option<ProxyServer>,
    /// Requests sent on it so far.
    pub(crate) requests: u32,
    pub(crate) keep_alive: KeepAlive,
}

/// What the last response said about keeping the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeepAlive {
    /// `Connection: close` (or an HTTP/1.0 answer without keep-alive).
    pub(crate) closing: bool,
    /// How long the server keeps it open when idle (`timeout=`).
    pub(crate) idle_timeout: Option<Duration>,
    /// Further requests the server accepts on it (`max=`).
    pub(crate) remaining: Option<u32>,
}

impl KeepAlive {
    /// Reads a response's `Connection` and `Keep-Alive` headers.
    pub(crate) fn of(version: hyper::Version, headers: &HeaderMap) -> KeepAlive {
        let tokens = |value: &HeaderValue| -> Vec<String> {
            value
                .to_str()
                .unwrap_or("")
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect()
        };
        let connection: Vec<String> = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(tokens)
            .collect();
        let closing = connection.iter().any(|t| t == "close")
            || (version == hyper::Version::HTTP_10
                && !connection.iter().any(|t| t == "keep-alive"));
        let mut keep_alive = KeepAlive {
            closing,
            ..KeepAlive::default()
        };
        for parameter in headers.get_all("keep-alive").iter().flat_map(tokens) {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim() {
                "timeout" => {
                    keep_alive.idle_timeout = value
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                }
                "max" => keep_alive.remaining = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        keep_alive
    }

    /// How long the connection may sit idle before it must not be used.
    fn usable_idle(&self) -> Option<Duration> {
        self.idle_timeout
            .map(|timeout| timeout.saturating_sub(IDLE_MARGIN.min(timeout / 2)))
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        let keep_alive = &self.connection.keep_alive;
        !keep_alive.closing
            && keep_alive.remaining != Some(0)
            && keep_alive
                .usable_idle()
                .is_none_or(|limit| now.saturating_duration_since(self.since) < limit)
    }
}

/// Idle connections by origin.
pub(crate) struct Pool {
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
    max_idle_per_origin: usize,
}

impl Pool {
    pub(crate) fn new(max_idle_per_origin: usize) -> Self {
        Pool {
            idle: Mutex::default(),
            max_idle_per_origin,
        }
    }

    /// The most recently used idle connection to `origin` that may still
    /// be used; the ones that may not are dropped (closed) on the way.
    pub(crate) fn take(&self, origin: &Origin) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(origin)?;
        while let Some(entry) = list.pop() {
            if entry.usable(now) {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Keeps `connection` for a later request, if the server allows it.
    pub(crate) fn put(&self, origin: &Origin, connection: Connection) {
        let entry = Idle {
            connection,
            since: Instant::now(),
        };
        if !entry.usable(entry.since) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(origin.clone()).or_default();
        if list.len() < self.max_idle_per_origin {
            list.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn keep_alive_headers_are_read_as_servers_write_them() {
        let llama = KeepAlive::of(
            hyper::Version::HTTP_11,
            &headers(&[("keep-alive", "timeout=5, max=100")]),
        );
        assert_eq!(
            llama,
            KeepAlive {
                closing: false,
                idle_timeout: Some(Duration::from_secs(5)),
                remaining: Some(100)
            }
        );
        assert_eq!(llama.usable_idle(), Some(Duration::from_secs(4)));
        let close = KeepAlive::of(
            hyper::Version::HTTP_11,
            &headers(&[("connection", "Keep-Alive, Close")]),
        );
        assert!(close.closing);
        let old = KeepAlive::of(hyper::Version::HTTP_10, &HeaderMap::new());
        assert!(old.closing, "HTTP/1.0 closes unless it says keep-alive");
        let old_kept = KeepAlive::of(
            hyper::Version::HTTP_10,
            &headers(&[("connection", "keep-alive"), ("keep-alive", "max=0")]),
        );
        assert_eq!((old_kept.closing, old_kept.remaining), (false, Some(0)));
        let short = KeepAlive::of(
            hyper::Version::HTTP_11,
            &headers(&[("keep-alive", "timeout=1")]),
        );
        assert_eq!(short.usable_idle(), Some(Duration::from_millis(500)));
        let junk = KeepAlive::of(
            hyper::Version::HTTP_11,
            &headers(&[("keep-alive", "timeout=soon, max=-1, x")]),
        );
        assert_eq!(junk, KeepAlive::default());
    }
}
