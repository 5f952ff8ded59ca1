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
//! Proxies come from the environment (see `proxy.rs`); the built-in
//! endpoint is never reached through one.

mod connect;
pub mod open_files;
mod pool;
mod proxy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, HOST, PROXY_AUTHORIZATION, USER_AGENT};
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::endpoint::{ErrorKind, RequestError};
use connect::Connector;
use pool::{Connection, KeepAlive, Pool};
pub(crate) use proxy::Proxies;

/// How long a kept connection may take to become ready for the next
/// request before it is given up for a new one.
const READY_WAIT: Duration = Duration::from_millis(100);

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
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            max_idle_per_origin: 64,
            connect_timeout: Duration::from_secs(10),
            env_proxies: true,
            proxy: None,
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

/// A response head: when it arrived, the response, and the lease on its
/// connection.
pub(crate) struct Answered {
    /// When the head arrived (stamped as `send_request` returned).
    pub(crate) at: Instant,
    pub(crate) response: Response<Incoming>,
    pub(crate) lease: Lease,
}

/// The connection a response is being read from. [`Lease::release`] once
/// the whole body was read gives it back for the next request; dropping the
/// lease closes it.
pub(crate) struct Lease {
    inner: Arc<Inner>,
    origin: Origin,
    connection: Connection,
}

impl Lease {
    /// The body was read to its end: the connection may serve another request.
    pub(crate) fn release(self) {
        self.inner.pool.put(&self.origin, self.connection);
    }
}

impl Transport {
    /// A transport with these options; `Err` names what could not be set up
    /// (a malformed proxy variable, the TLS configuration).
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
                connector: Connector::new(proxies, options.connect_timeout)?,
                builder,
                next_id: AtomicU64::new(1),
                user_agent: HeaderValue::from_static(concat!(
                    "llmperf/",
                    env!("CARGO_PKG_VERSION")
                )),
            }),
        })
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
        let (mut connection, found) = self.checkout(&prepared.origin).await?;
        let reused = found.reused;
        *record = Some(found);
        let read_before = connection.bytes_read.load(Ordering::Relaxed);
        let error = match self.attempt(prepared, &mut connection).await {
            Ok((at, response)) => {
                return Ok(Answered {
                    at,
                    response,
                    lease: self.lease(prepared, connection),
                })
            }
            Err(error) => error,
        };
        let closed_unanswered = reused
            && !error.is_user()
            && connection.bytes_read.load(Ordering::Relaxed) == read_before;
        if !closed_unanswered {
            return Err(send_error(&error));
        }
        // The server had closed the kept connection: once more, on a new one.
        drop(connection);
        let resent_at = Instant::now();
        if let Some(first) = record.as_mut() {
            first.first_attempt_error = Some(error_chain(&error));
        }
        let (mut fresh, mut second) = self.open(&prepared.origin).await?;
        second.resent = true;
        second.resent_after_us =
            Some(resent_at.saturating_duration_since(first_send).as_micros() as u64);
        second.first_attempt_error = Some(error_chain(&error));
        *record = Some(second);
        match self.attempt(prepared, &mut fresh).await {
            Ok((at, response)) => Ok(Answered {
                at,
                response,
                lease: self.lease(prepared, fresh),
            }),
            Err(error) => Err(send_error(&error)),
        }
    }

    fn lease(&self, prepared: &Prepared, connection: Connection) -> Lease {
        Lease {
            inner: Arc::clone(&self.inner),
            origin: prepared.origin.clone(),
            connection,
        }
    }

    /// A kept connection ready for a request, else a new one.
    async fn checkout(
        &self,
        origin: &Origin,
    ) -> Result<(Connection, ConnectionRecord), RequestError> {
        while let Some(mut connection) = self.inner.pool.take(origin) {
            // Ready once the previous response has been fully processed;
            // an error means the server closed it meanwhile.
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, connection.sender.ready()).await {
                let record = ConnectionRecord {
                    id: connection.id,
                    reused: true,
                    ..ConnectionRecord::default()
                };
                return Ok((connection, record));
            }
        }
        self.open(origin).await
    }

    /// A new connection to `origin`.
    async fn open(&self, origin: &Origin) -> Result<(Connection, ConnectionRecord), RequestError> {
        let opened = self
            .inner
            .connector
            .open(origin)
            .await
            .map_err(|e| RequestError::new(e.kind, e.message))?;
        let bytes_read = opened.stream.counter();
        let (sender, task) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, Full<Bytes>>(TokioIo::new(opened.stream))
            .await
            .map_err(|e| {
                RequestError::new(
                    ErrorKind::Connect,
                    format!("cannot start HTTP/1.1: {}", error_chain(&e)),
                )
            })?;
        // The connection's own task: reads and writes the socket until the
        // connection closes (it ends by itself once the sender is dropped).
        tokio::spawn(async move {
            let _ = task.await;
        });
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let record = ConnectionRecord {
            id,
            reused: false,
            connect_us: Some(opened.connect.as_micros() as u64),
            tls_us: opened.tls.map(|t| t.as_micros() as u64),
            ..ConnectionRecord::default()
        };
        let connection = Connection {
            id,
            sender,
            bytes_read,
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
    ) -> Result<(Instant, Response<Incoming>), hyper::Error> {
        let request = prepared.request(connection, &self.inner.user_agent);
        connection.requests += 1;
        let response = connection.sender.send_request(request).await?;
        let at = Instant::now();
        // What the server allows next (the response's own `max=` is the
        // count of requests still allowed).
        connection.keep_alive = KeepAlive::of(response.version(), response.headers());
        Ok((at, response))
    }
}

/// A request ready to go out on any connection (prepared before the send
/// is stamped).
pub(crate) struct Prepared {
    origin: Origin,
    method: hyper::Method,
    /// `/path?query` (origin form).
    path: hyper::Uri,
    /// The whole URL (absolute form, for an HTTP proxy).
    url: hyper::Uri,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Prepared {
    /// Checks and copies what an endpoint kind built.
    pub(crate) fn of(request: &reqwest::Request) -> Result<Prepared, RequestError> {
        let url = request.url();
        let origin = Origin::of(url)?;
        let body = match request.body() {
            None => Bytes::new(),
            Some(body) => match body.as_bytes() {
                Some(bytes) => Bytes::copy_from_slice(bytes),
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
        let target = |text: &str| {
            text.parse::<hyper::Uri>().map_err(|e| {
                RequestError::new(
                    ErrorKind::Request,
                    format!("the request's URL is not a valid HTTP request target: {e}"),
                )
            })
        };
        let mut headers = request.headers().clone();
        if !headers.contains_key(ACCEPT) {
            // What reqwest sent by default; some gateways refuse no Accept.
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        Ok(Prepared {
            origin,
            method: request.method().clone(),
            path: target(&path)?,
            url: target(url.as_str())?,
            headers,
            body,
        })
    }

    fn request(
        &self,
        connection: &Connection,
        user_agent: &HeaderValue,
    ) -> hyper::Request<Full<Bytes>> {
        let target = if connection.proxy.is_some() {
            &self.url
        } else {
            &self.path
        };
        let mut request = hyper::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = target.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.headers);
        if !headers.contains_key(HOST) {
            if let Ok(host) = HeaderValue::from_str(&self.origin.host_header()) {
                headers.insert(HOST, host);
            }
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, user_agent.clone());
        }
        if let Some(authorization) = connection
            .proxy
            .as_ref()
            .and_then(|p| p.authorization.as_deref())
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert(PROXY_AUTHORIZATION, authorization);
        }
        request
    }
}

fn send_error(error: &hyper::Error) -> RequestError {
    RequestError::new(ErrorKind::Request, error_chain(error))
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
        let response = result.expect("answered through the proxy").response;
        assert_eq!(response.status(), 204);
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
