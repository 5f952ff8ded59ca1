//! The HTTP/1.1 client requests go out on.
//!
//! One connection per request in flight, as the common SDKs use (with
//! HTTP/2, requests past the server's stream limit would queue inside the
//! client and count as time to first token). Every request knows what its
//! connection was ([`ConnectionRecord`]): new or reused, how long
//! connecting and the TLS handshake took.
//!
//! Connections are reused under the server's own rules: a response with
//! `Connection: close` retires its connection, and `Keep-Alive: timeout=T,
//! max=N` bounds how long one may sit idle (less a margin) and how many
//! more requests it may carry. Some servers (llama.cpp's `llama-server`
//! among them) advertise keep-alive and then close the connection as soon
//! as a stream ends, so the next request can go out on a connection the
//! server has already closed. The rule real clients follow, and this one
//! too: a request that failed on a **reused** connection **before any byte
//! of its response arrived** is sent again, once, on a new connection.
//! Nothing else is ever re-sent: not a failure on a new connection, not one
//! after response bytes arrived, not a timeout.
//!
//! HTTP/1.1 itself is `http1.rs`: the response is read by the task that
//! sent the request, so a read and its timestamp have nothing between
//! them. Proxies come from the environment (see `proxy.rs`); the built-in
//! endpoint is never reached through one.

mod connect;
mod http1;
pub mod open_files;
mod pool;
mod proxy;
mod stamped;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, HOST, PROXY_AUTHORIZATION, USER_AGENT};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, RequestError};
use connect::Connector;
use http1::{BodyReader, Framing};
pub(crate) use http1::{Head, Step, WireError};
use pool::{Connection, KeepAlive, Pool};
pub(crate) use proxy::Proxies;

/// What happened to one request's connection (in `requests.jsonl` as
/// `connection`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The connection's number in the run (1, 2, …): requests with the same
    /// number shared it.
    pub id: u64,
    /// The request went out on a connection an earlier request had used.
    pub reused: bool,
    /// A new connection: name resolution, TCP connect and any proxy tunnel, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_us: Option<u64>,
    /// A new HTTPS connection: the TLS handshake, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<u64>,
    /// A new HTTPS connection: the protocol version negotiated, `TLS 1.3`
    /// or `TLS 1.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// A new HTTPS connection: the application protocol the server chose by
    /// ALPN (`http/1.1`), when it chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The first attempt failed on a reused connection before any byte of
    /// its response arrived, and the request was sent again on a new
    /// connection (this record describes that one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resent: bool,
    /// From the first send to the second, µs. TTFT and E2E count from the
    /// first send; subtract this for the figures from the second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent_after_us: Option<u64>,
    /// Why the first attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt_error: Option<String>,
}

/// How the transport connects.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Idle connections kept per origin (the most requests in flight).
    pub max_idle_per_origin: usize,
    /// Longest wait for a new connection (name resolution, TCP, any proxy
    /// tunnel), and separately for its TLS handshake.
    pub connect_timeout: Duration,
    /// Use the proxies the environment configures (`HTTPS_PROXY`, …);
    /// off for the built-in endpoint.
    pub env_proxies: bool,
    /// One `http://` proxy for every request, whatever the environment says.
    pub proxy: Option<String>,
    /// Which servers are trusted, the client certificate, `insecure`.
    pub tls: crate::spec::Tls,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            max_idle_per_origin: 64,
            connect_timeout: Duration::from_secs(10),
            env_proxies: true,
            proxy: None,
            tls: crate::spec::Tls::default(),
        }
    }
}

/// The client: a pool of HTTP/1.1 connections. Cheap to clone (shared).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

struct Inner {
    pool: Pool,
    connector: Connector,
    /// Builds the requests endpoint kinds describe; never sends.
    builder: reqwest::Client,
    next_id: AtomicU64,
    user_agent: HeaderValue,
}

/// Where a request goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Origin {
    fn of(url: &reqwest::Url) -> Result<Origin, RequestError> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(RequestError::new(
                    ErrorKind::Request,
                    format!("{other}:// URLs are not supported: use http:// or https://"),
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| RequestError::new(ErrorKind::Request, "the URL has no host"))?;
        Ok(Origin {
            https,
            host: host.to_string(),
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// `host:port`, always with the port (a `CONNECT` target).
    fn authority_with_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The `Host` header: the port only when it is not the scheme's default.
    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            self.authority_with_port()
        }
    }
}

/// A response head, when it arrived, and its body still to read from
/// the connection.
pub(crate) struct Answered {
    /// When the head arrived (stamped as the read that completed it returned).
    pub(crate) at: Instant,
    pub(crate) head: Head,
    pub(crate) body: Body,
}

/// A response's body, read from its connection by the task that sent the
/// request. [`Body::release`] once it ended gives the connection back for
/// the next request; dropping the body closes it.
pub(crate) struct Body {
    inner: Arc<Inner>,
    origin: Origin,
    connection: Connection,
    reader: BodyReader,
    head_at: Instant,
}

impl Body {
    /// Waits for the next bytes of the body and hands each piece of body
    /// data to `data` with the instant its read returned (the bytes that
    /// came with the head are stamped with the head's arrival).
    pub(crate) async fn next(
        &mut self,
        data: impl FnMut(Instant, &[u8]),
    ) -> Result<(Instant, Step), WireError> {
        self.reader
            .next(&mut self.connection.wire, self.head_at, data)
            .await
    }

    /// The body was read to its end: the connection may serve another
    /// request (if nothing followed the body and the server allows it).
    pub(crate) fn release(self) {
        if self.reader.reusable(&self.connection.wire) {
            self.inner.pool.put(&self.origin, self.connection);
        }
    }
}

impl Transport {
    /// A transport with these options; `Err` names what could not be set up
    /// (a malformed proxy variable, a CA or client certificate file that
    /// cannot be used).
    pub fn new(options: TransportOptions) -> Result<Transport, String> {
        let proxies = match (&options.proxy, options.env_proxies) {
            (Some(url), _) => Proxies::explicit(url)?,
            (None, true) => Proxies::from_env(),
            (None, false) => Proxies::none(),
        };
        let builder = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build requests: {e}"))?;
        Ok(Transport {
            inner: Arc::new(Inner {
                pool: Pool::new(options.max_idle_per_origin.max(1)),
                connector: Connector::new(proxies, options.connect_timeout, &options.tls)?,
                builder,
                next_id: AtomicU64::new(1),
                user_agent: HeaderValue::from_static(concat!(
                    "llmperf/",
                    env!("CARGO_PKG_VERSION")
                )),
            }),
        })
    }

    /// The TLS client configuration the transport's connections use, for
    /// side requests (server-metrics scrapes) that must trust the same
    /// servers and present the same client certificate.
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.inner.connector.tls_config()
    }

    /// The request builder handed to [`EndpointKind::build_request`](crate::endpoint::EndpointKind::build_request)
    /// (it describes requests; this transport sends them).
    pub fn request_builder(&self) -> &reqwest::Client {
        &self.inner.builder
    }

    /// Sends `prepared` and waits for the response head; `first_send` is
    /// when the request was handed over. `record` is filled as soon as a
    /// connection is known, so a request cut short by its timeout still
    /// says what its connection was.
    pub(crate) async fn send(
        &self,
        prepared: &Prepared,
        first_send: Instant,
        record: &mut Option<ConnectionRecord>,
    ) -> Result<Answered, RequestError> {
        let (mut connection, found) = match self.checkout(&prepared.origin) {
            Some(kept) => kept,
            None => self.open(&prepared.origin).await?,
        };
        let reused = found.reused;
        *record = Some(found);
        let read_before = connection.wire.bytes_read();
        let error = match self.attempt(prepared, &mut connection).await {
            Ok((at, head)) => return self.answered(prepared, connection, at, head),
            Err(error) => error,
        };
        let closed_unanswered = reused
            && !matches!(error, WireError::Malformed(_))
            && connection.wire.bytes_read() == read_before;
        if !closed_unanswered {
            return Err(self.send_error(&prepared.origin, &error));
        }
        // The server had closed the kept connection: once more, on a new one.
        drop(connection);
        let resent_at = Instant::now();
        if let Some(first) = record.as_mut() {
            first.first_attempt_error = Some(error.to_string());
        }
        let (mut fresh, mut second) = self.open(&prepared.origin).await?;
        second.resent = true;
        second.resent_after_us =
            Some(resent_at.saturating_duration_since(first_send).as_micros() as u64);
        second.first_attempt_error = Some(error.to_string());
        *record = Some(second);
        match self.attempt(prepared, &mut fresh).await {
            Ok((at, head)) => self.answered(prepared, fresh, at, head),
            Err(error) => Err(self.send_error(&prepared.origin, &error)),
        }
    }

    /// A failure to send or to read the head: a `tls` error when TLS
    /// failed after the handshake (a TLS 1.3 server refuses a missing or
    /// unknown client certificate only then), else a `request` error.
    fn send_error(&self, origin: &Origin, error: &WireError) -> RequestError {
        if let WireError::Io(io) = error {
            if let Some(failure) = self.inner.connector.tls_failure(&origin.host, io) {
                return RequestError::new(failure.kind, failure.message);
            }
        }
        send_error(error)
    }

    fn answered(
        &self,
        prepared: &Prepared,
        connection: Connection,
        at: Instant,
        head: Head,
    ) -> Result<Answered, RequestError> {
        let framing = Framing::of(&head).map_err(|e| send_error(&e))?;
        Ok(Answered {
            at,
            head,
            body: Body {
                inner: Arc::clone(&self.inner),
                origin: prepared.origin.clone(),
                connection,
                reader: BodyReader::new(framing),
                head_at: at,
            },
        })
    }

    /// A kept connection the server has not closed meanwhile, if any (and
    /// the record of it).
    fn checkout(&self, origin: &Origin) -> Option<(Connection, ConnectionRecord)> {
        while let Some(mut connection) = self.inner.pool.take(origin) {
            if !connection.wire.closed_while_idle() {
                let record = ConnectionRecord {
                    id: connection.id,
                    reused: true,
                    ..ConnectionRecord::default()
                };
                return Some((connection, record));
            }
        }
        None
    }

    /// A new connection to `origin`.
    async fn open(&self, origin: &Origin) -> Result<(Connection, ConnectionRecord), RequestError> {
        let opened = self
            .inner
            .connector
            .open(origin)
            .await
            .map_err(|e| RequestError::new(e.kind, e.message))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let record = ConnectionRecord {
            id,
            reused: false,
            connect_us: Some(opened.connect.as_micros() as u64),
            tls_us: opened.tls.map(|t| t.as_micros() as u64),
            tls_version: opened.tls_version,
            alpn: opened.alpn,
            ..ConnectionRecord::default()
        };
        let connection = Connection {
            id,
            wire: http1::Wire::new(opened.stream),
            proxy: opened.proxy,
            requests: 0,
            keep_alive: KeepAlive::default(),
        };
        Ok((connection, record))
    }

    /// Sends the request on `connection` and reads the response head; the
    /// instant it arrived, stamped before anything else.
    async fn attempt(
        &self,
        prepared: &Prepared,
        connection: &mut Connection,
    ) -> Result<(Instant, Head), WireError> {
        let request = prepared.bytes(connection, &self.inner.user_agent);
        connection.requests += 1;
        connection.wire.write(&request).await?;
        let (at, head) = connection.wire.read_head().await?;
        // What the server allows next (the response's own `max=` is the
        // count of requests still allowed).
        connection.keep_alive = KeepAlive::of(head.version, &head.headers);
        Ok((at, head))
    }
}

/// A request ready to go out on any connection (prepared before the send
/// is stamped).
pub(crate) struct Prepared {
    origin: Origin,
    method: hyper::Method,
    /// `/path?query` (origin form).
    path: String,
    /// The whole URL (absolute form, for an HTTP proxy).
    url: String,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Prepared {
    /// Checks and copies what an endpoint kind built.
    pub(crate) fn of(request: &reqwest::Request) -> Result<Prepared, RequestError> {
        let url = request.url();
        let origin = Origin::of(url)?;
        let body = match request.body() {
            None => Vec::new(),
            Some(body) => match body.as_bytes() {
                Some(bytes) => bytes.to_vec(),
                None => {
                    return Err(RequestError::new(
                        ErrorKind::Request,
                        "the endpoint kind built a streaming request body; llmperf sends bodies known in full",
                    ))
                }
            },
        };
        let mut path = url.path().to_string();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        // reqwest's URL type has already percent-encoded the target; it
        // must still be one line of visible characters.
        if path
            .bytes()
            .chain(url.as_str().bytes())
            .any(|b| !b.is_ascii_graphic())
        {
            return Err(RequestError::new(
                ErrorKind::Request,
                "the request's URL is not a valid HTTP request target",
            ));
        }
        let mut headers = request.headers().clone();
        if !headers.contains_key(ACCEPT) {
            // What reqwest sent by default; some gateways refuse no Accept.
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        Ok(Prepared {
            origin,
            method: request.method().clone(),
            path,
            url: url.as_str().to_string(),
            headers,
            body,
        })
    }

    /// The request's bytes as they go out on `connection`: the request line
    /// (in absolute form through an HTTP proxy), the headers with `Host`,
    /// `User-Agent`, `Content-Length` and any proxy credentials added, and
    /// the body.
    fn bytes(&self, connection: &Connection, user_agent: &HeaderValue) -> Vec<u8> {
        let target = if connection.proxy.is_some() {
            &self.url
        } else {
            &self.path
        };
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {target} HTTP/1.1\r\n", self.method).as_bytes());
        let mut line = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if !self.headers.contains_key(HOST) {
            line(HOST.as_str(), self.origin.host_header().as_bytes());
        }
        for (name, value) in &self.headers {
            line(name.as_str(), value.as_bytes());
        }
        if !self.headers.contains_key(USER_AGENT) {
            line(USER_AGENT.as_str(), user_agent.as_bytes());
        }
        let sends_body = !self.body.is_empty()
            || matches!(
                self.method,
                hyper::Method::POST | hyper::Method::PUT | hyper::Method::PATCH
            );
        if sends_body && !self.headers.contains_key(CONTENT_LENGTH) {
            line(
                CONTENT_LENGTH.as_str(),
                self.body.len().to_string().as_bytes(),
            );
        }
        if let Some(authorization) = connection
            .proxy
            .as_ref()
            .and_then(|p| p.authorization.as_deref())
        {
            line(PROXY_AUTHORIZATION.as_str(), authorization.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn send_error(error: &WireError) -> RequestError {
    RequestError::new(ErrorKind::Request, error.to_string())
}

/// The error and its sources, one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use base64::Engine as _;

    use super::*;

    /// A one-connection server: hands the request head it read to `check`
    /// and writes what `check` returns.
    fn one_shot(
        check: impl FnOnce(String) -> Vec<u8> + Send + 'static,
    ) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let answer = check(String::from_utf8_lossy(&head).into_owned());
            let _ = socket.write_all(&answer);
        });
        (address, handle)
    }

    fn transport(proxy: &str) -> Transport {
        Transport::new(TransportOptions {
            proxy: Some(proxy.to_string()),
            ..TransportOptions::default()
        })
        .unwrap()
    }

    /// The answer, or the error, and the connection record.
    fn send(
        transport: &Transport,
        url: &str,
    ) -> (Result<Answered, RequestError>, Option<ConnectionRecord>) {
        let request = reqwest::Client::new().post(url).body("{}").build().unwrap();
        let prepared = match Prepared::of(&request) {
            Ok(prepared) => prepared,
            Err(error) => return (Err(error), None),
        };
        let mut record = None;
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(transport.send(&prepared, Instant::now(), &mut record));
        (result, record)
    }

    #[test]
    fn a_plain_request_goes_to_an_http_proxy_in_absolute_form_with_its_credentials() {
        let (proxy, server) = one_shot(|head| {
            assert!(
                head.starts_with("POST http://model.invalid:8080/v1/chat?x=1 HTTP/1.1\r\n"),
                "{head}"
            );
            let token = base64::engine::general_purpose::STANDARD.encode("me:pw");
            assert!(
                head.contains(&format!("proxy-authorization: Basic {token}")),
                "{head}"
            );
            assert!(head.contains("host: model.invalid:8080"), "{head}");
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
        });
        let sent = send(
            &transport(&format!("http://me:pw@{proxy}")),
            "http://model.invalid:8080/v1/chat?x=1",
        );
        let (result, connection) = sent;
        let answered = result.expect("answered through the proxy");
        assert_eq!(answered.head.status, 204);
        let connection = connection.unwrap();
        assert!(!connection.reused && connection.connect_us.is_some());
        server.join().unwrap();
    }

    #[test]
    fn an_https_request_asks_the_proxy_for_a_tunnel_and_a_refusal_names_the_proxy() {
        let (proxy, server) = one_shot(|head| {
            assert!(
                head.starts_with("CONNECT model.invalid:443 HTTP/1.1\r\n"),
                "{head}"
            );
            b"HTTP/1.1 403 Forbidden\r\n\r\n".to_vec()
        });
        let sent = send(
            &transport(&format!("http://me:secret@{proxy}")),
            "https://model.invalid/v1/chat",
        );
        let error = sent.0.err().expect("refused");
        assert_eq!(error.kind, ErrorKind::Connect);
        assert!(
            error.message.contains("refused the tunnel"),
            "{}",
            error.message
        );
        assert!(error.message.contains("403"), "{}", error.message);
        assert!(!error.message.contains("secret"), "{}", error.message);
        server.join().unwrap();

        // A tunnel granted to something that does not speak TLS: the
        // handshake fails, after the tunnel was made.
        let (proxy, server) =
            one_shot(|_| b"HTTP/1.1 200 Connection established\r\n\r\nnot tls".to_vec());
        let error = send(&transport(&proxy), "https://model.invalid/v1/chat")
            .0
            .err()
            .unwrap();
        assert!(
            error.message.contains("TLS handshake failed"),
            "{}",
            error.message
        );
        server.join().unwrap();
    }

    #[test]
    fn unsupported_urls_and_refused_connections_are_named_errors() {
        let transport = Transport::new(TransportOptions {
            env_proxies: false,
            ..TransportOptions::default()
        })
        .unwrap();
        let error = send(&transport, "ftp://example.com/x").0.err().unwrap();
        assert!(error.message.contains("ftp://"), "{}", error.message);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = listener.local_addr().unwrap();
        drop(listener);
        let error = send(&transport, &format!("http://{closed}/v1"))
            .0
            .err()
            .unwrap();
        assert_eq!(error.kind, ErrorKind::Connect, "{}", error.message);
    }
}
