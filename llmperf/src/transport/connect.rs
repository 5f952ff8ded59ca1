//! Opening a connection: name resolution, TCP, a proxy's `CONNECT` tunnel,
//! and the TLS handshake, each timed, and the byte stream wrapped so the
//! transport knows whether any byte of a response arrived.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::proxy::{Proxies, ProxyServer};
use super::stamped::StampedTcp;
use super::Origin;
use crate::error::ErrorKind;
use crate::spec::{ClientCert, Tls};

/// Longest response head a proxy may send to `CONNECT`.
const MAX_PROXY_RESPONSE_BYTES: usize = 16 * 1024;

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl ConnectError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectError {
            kind,
            message: message.into(),
        }
    }
}

/// A freshly opened connection and what opening it took.
pub(crate) struct Opened {
    pub(crate) stream: CountingStream,
    /// Name resolution, TCP connect and any proxy tunnel.
    pub(crate) connect: Duration,
    /// The TLS handshake (HTTPS only).
    pub(crate) tls: Option<Duration>,
    /// The negotiated protocol version, `TLS 1.3` (HTTPS only).
    pub(crate) tls_version: Option<String>,
    /// The protocol the server chose by ALPN, if it chose one.
    pub(crate) alpn: Option<String>,
    /// Requests on it go to an HTTP proxy, in absolute form.
    pub(crate) proxy: Option<ProxyServer>,
}

/// Opens connections for the transport.
pub(crate) struct Connector {
    tls: TlsConnector,
    /// Named in errors when a server refuses it.
    client_cert: Option<ClientCert>,
    proxies: Proxies,
    timeout: Duration,
}

impl Connector {
    /// `Err` names a TLS file or variable that cannot be used.
    pub(crate) fn new(proxies: Proxies, timeout: Duration, tls: &Tls) -> Result<Connector, String> {
        let config = super::tls::client_config(tls)?;
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
            client_cert: tls.client_cert.clone(),
            proxies,
            timeout,
        })
    }

    /// The TLS client configuration (for side requests that must trust
    /// what the benchmark's requests trust).
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(self.tls.config())
    }

    /// A `tls` error for a TLS failure of a connection to `host` that
    /// surfaced as `error` (an alert after the handshake, when a server
    /// refuses the client's certificate); `None` when it is not one.
    pub(crate) fn tls_failure(&self, host: &str, error: &io::Error) -> Option<ConnectError> {
        let tls_error = super::tls::rustls_error(error)?;
        Some(ConnectError::new(
            ErrorKind::Tls,
            super::tls::explain(tls_error, host, self.client_cert.as_ref()),
        ))
    }

    /// Opens a connection to `origin`, through its proxy if one applies,
    /// within the connect timeout.
    pub(crate) async fn open(&self, origin: &Origin) -> Result<Opened, ConnectError> {
        let proxy = self
            .proxies
            .for_target(origin.https, &origin.host)
            .map_err(|why| ConnectError::new(ErrorKind::Connect, why))?
            .cloned();
        let started = Instant::now();
        let tcp = tokio::time::timeout(self.timeout, self.tcp(origin, proxy.as_ref()))
            .await
            .map_err(|_| {
                ConnectError::new(
                    ErrorKind::Connect,
                    format!(
                        "no connection within {} (connect timeout)",
                        humantime::format_duration(self.timeout)
                    ),
                )
            })??;
        let connect = started.elapsed();
        let tcp = StampedTcp::new(tcp).map_err(|e| {
            ConnectError::new(
                ErrorKind::Connect,
                format!("cannot use the connection: {e}"),
            )
        })?;
        if !origin.https {
            return Ok(Opened {
                stream: CountingStream::new(Stream::Plain(tcp)),
                connect,
                tls: None,
                tls_version: None,
                alpn: None,
                proxy,
            });
        }
        let name = server_name(&origin.host)?;
        let handshake_started = Instant::now();
        let tls = tokio::time::timeout(self.timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| {
                ConnectError::new(
                    ErrorKind::Connect,
                    format!(
                        "no TLS handshake within {} (connect timeout)",
                        humantime::format_duration(self.timeout)
                    ),
                )
            })?
            .map_err(|e| match self.tls_failure(&origin.host, &e) {
                Some(failure) => ConnectError::new(
                    failure.kind,
                    format!("TLS handshake failed: {}", failure.message),
                ),
                None => ConnectError::new(ErrorKind::Connect, format!("TLS handshake failed: {e}")),
            })?;
        let handshake = handshake_started.elapsed();
        let session = tls.get_ref().1;
        let tls_version = session.protocol_version().map(super::tls::version_name);
        let alpn = session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Opened {
            stream: CountingStream::new(Stream::Tls(Box::new(tls))),
            connect,
            tls: Some(handshake),
            tls_version,
            alpn,
            // Through a tunnel, requests go in origin form.
            proxy: None,
        })
    }

    /// TCP to the origin, or to its proxy (with a tunnel for HTTPS).
    async fn tcp(
        &self,
        origin: &Origin,
        proxy: Option<&ProxyServer>,
    ) -> Result<TcpStream, ConnectError> {
        let (host, port) = match proxy {
            Some(proxy) => (proxy.host.as_str(), proxy.port),
            None => (origin.host.as_str(), origin.port),
        };
        let addresses = resolve(host, port).await?;
        let (stream, last) = race(addresses).await;
        let stream = stream.ok_or_else(|| {
            let what = if proxy.is_some() { "the proxy " } else { "" };
            ConnectError::new(
                ErrorKind::Connect,
                match last {
                    Some(e) => format!("cannot connect to {what}{host}:{port}: {e}"),
                    None => format!("{host} resolved to no address"),
                },
            )
        })?;
        // Events are small writes: never hold them back for coalescing.
        let _ = stream.set_nodelay(true);
        match proxy {
            Some(proxy) if origin.https => tunnel(stream, origin, proxy).await,
            _ => Ok(stream),
        }
    }
}

/// How long an address is tried alone before the next one is tried beside
/// it (RFC 8305's "Happy Eyeballs" delay): an address whose packets are
/// silently dropped (an IPv6 path that leads nowhere) costs this, not the
/// whole connect timeout.
const NEXT_ADDRESS_DELAY: Duration = Duration::from_millis(250);

/// Connects to the first of `addresses` that answers, starting each next
/// attempt [`NEXT_ADDRESS_DELAY`] after the one before (or at once when it
/// failed); the last error when none answers.
async fn race(addresses: Vec<SocketAddr>) -> (Option<TcpStream>, Option<io::Error>) {
    let mut pending = tokio::task::JoinSet::new();
    let mut addresses = addresses.into_iter();
    let mut last = None;
    loop {
        if let Some(address) = addresses.next() {
            pending.spawn(TcpStream::connect(address));
        }
        let more = addresses.len() > 0;
        let joined = if more {
            match tokio::time::timeout(NEXT_ADDRESS_DELAY, pending.join_next()).await {
                Ok(joined) => joined,
                // Still connecting: start the next address beside it.
                Err(_) => continue,
            }
        } else {
            pending.join_next().await
        };
        match joined {
            Some(Ok(Ok(stream))) => return (Some(stream), last),
            Some(Ok(Err(error))) => last = Some(error),
            Some(Err(join)) => last = Some(io::Error::other(join.to_string())),
            None if !more => return (None, last),
            None => {}
        }
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    tokio::net::lookup_host((host, port))
        .await
        .map(Iterator::collect)
        .map_err(|e| ConnectError::new(ErrorKind::Dns, format!("cannot resolve {host}: {e}")))
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, ConnectError> {
    let host = host.trim_matches(['[', ']']);
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|_| {
        ConnectError::new(
            ErrorKind::Connect,
            format!("{host} is not a valid TLS server name"),
        )
    })
}

/// Asks an HTTP proxy for a tunnel to `origin`.
async fn tunnel(
    mut stream: TcpStream,
    origin: &Origin,
    proxy: &ProxyServer,
) -> Result<TcpStream, ConnectError> {
    let authority = origin.authority_with_port();
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(authorization) = &proxy.authorization {
        head.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    head.push_str("\r\n");
    let failed = |what: String| {
        ConnectError::new(
            ErrorKind::Connect,
            format!("proxy {}:{}: {what}", proxy.host, proxy.port),
        )
    };
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| failed(format!("cannot send CONNECT: {e}")))?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        if response.len() > MAX_PROXY_RESPONSE_BYTES {
            return Err(failed("its answer to CONNECT has no end".to_string()));
        }
        let n = stream
            .read(&mut buffer)
            .await
            .map_err(|e| failed(format!("no answer to CONNECT: {e}")))?;
        if n == 0 {
            return Err(failed(
                "closed the connection instead of answering CONNECT".to_string(),
            ));
        }
        response.extend_from_slice(&buffer[..n]);
    }
    let status_line = String::from_utf8_lossy(&response);
    let status_line = status_line.lines().next().unwrap_or("");
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(stream)
    } else {
        Err(failed(format!(
            "refused the tunnel to {authority}: {}",
            crate::error::excerpt(status_line, 120)
        )))
    }
}

/// A plain or TLS connection.
pub(crate) enum Stream {
    Plain(StampedTcp),
    Tls(Box<TlsStream<StampedTcp>>),
}

/// A connection that counts the bytes read from it, so a failed request
/// can tell whether any byte of its response had arrived.
pub(crate) struct CountingStream {
    inner: Stream,
    read: u64,
}

impl CountingStream {
    fn new(inner: Stream) -> Self {
        CountingStream { inner, read: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    /// When the bytes of the reads since the last call arrived (see
    /// [`StampedTcp::arrival`]); `read_at` is when the read returned.
    pub(crate) fn arrival(&mut self, read_at: Instant) -> Instant {
        match &mut self.inner {
            Stream::Plain(tcp) => tcp.arrival(read_at),
            Stream::Tls(tls) => tls.get_mut().0.arrival(read_at),
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.read += read as u64;
        }
        result
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
