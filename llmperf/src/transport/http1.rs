//! HTTP/1.1 on one connection, read by the task that sent the request.
//!
//! A streaming client needs little of HTTP/1.1: write a request, read a
//! response head, then the body as its bytes arrive, framed by
//! `Content-Length`, chunked transfer coding, or the connection's close.
//! Doing that here, rather than through a general client, puts the read
//! that brings an event and its timestamp in the request's own task: no
//! connection task, no channel and no wake-up between them. The body is
//! handed to the caller a read at a time, every piece of it stamped with
//! the instant that read returned.
//!
//! Everything is bounded whatever the server sends: a response head of
//! more than [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] headers, a chunk-size
//! or trailer line of more than [`MAX_LINE_BYTES`], are errors; body bytes
//! are handed on as they come and never gathered here.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use super::connect::CountingStream;

/// Largest response head (status line and headers).
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in a response head.
pub(crate) const MAX_HEADERS: usize = 128;
/// Longest chunk-size or trailer line.
pub(crate) const MAX_LINE_BYTES: usize = 4096;
/// Room made in the read buffer before each read: an event or a few fit,
/// and a thousand idle streams hold a few MB.
const READ_ROOM: usize = 4096;

/// Why a connection could not carry a response.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The socket failed.
    Io(io::Error),
    /// The connection closed before the response head, or the body, ended.
    Closed(&'static str),
    /// The server sent something that is not HTTP/1.x, or over a bound.
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(error) => write!(f, "{error}"),
            WireError::Closed(what) => write!(f, "the connection closed before {what}"),
            WireError::Malformed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(error: io::Error) -> Self {
        WireError::Io(error)
    }
}

/// A response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
}

/// An open connection's socket and the bytes read from it not yet used.
pub(crate) struct Wire {
    stream: CountingStream,
    buf: Vec<u8>,
    /// No read is dated before this: the last read's date, or the request's
    /// write (a kernel date comes from another clock, and a read without
    /// one is dated when it returned: either could otherwise step back).
    floor: Instant,
}

impl Wire {
    pub(crate) fn new(stream: CountingStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            floor: Instant::now(),
        }
    }

    /// Bytes read from the socket so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.stream.bytes_read()
    }

    /// Whether an idle connection can no longer carry a request: the
    /// server closed it (or sent something unasked). One read attempt that
    /// does not wait.
    pub(crate) fn closed_while_idle(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut read = ReadBuf::new(&mut byte);
        !matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut read),
            Poll::Pending
        )
    }

    /// Writes a whole request.
    pub(crate) async fn write(&mut self, request: &[u8]) -> io::Result<()> {
        self.floor = Instant::now();
        self.stream.write_all(request).await?;
        self.stream.flush().await
    }

    /// One read into the buffer: the number of bytes (0 at the end of the
    /// stream) and when they arrived (the kernel's receive time where it
    /// gives one, see `stamped.rs`; else when the read returned).
    async fn fill(&mut self) -> io::Result<(usize, Instant)> {
        if self.buf.capacity() - self.buf.len() < READ_ROOM / 4 {
            self.buf.reserve(READ_ROOM);
        }
        let read = self.stream.read_buf(&mut self.buf).await?;
        // When the bytes arrived, which a busy client reads later; never
        // before an earlier read or the request.
        let at = self.stream.arrival(Instant::now()).max(self.floor);
        self.floor = at;
        Ok((read, at))
    }

    /// Reads a response head (skipping interim 1xx responses); the instant
    /// the read that completed it returned.
    pub(crate) async fn read_head(&mut self) -> Result<(Instant, Head), WireError> {
        let mut at = Instant::now();
        // Where to look for the head's end (earlier bytes were searched).
        let mut searched = 0;
        loop {
            if let Some(end) = head_end(&self.buf, searched) {
                let head = parse_head(&self.buf[..end])?;
                self.buf.drain(..end);
                searched = 0;
                // 100 Continue, 103 Early Hints: the answer is still to come.
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    continue;
                }
                if self.buf.is_empty() && self.buf.capacity() > 4 * READ_ROOM {
                    // A big head grew the buffer; a stream needs far less.
                    self.buf = Vec::new();
                }
                return Ok((at, head));
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(WireError::Malformed(format!(
                    "the response head passed {MAX_HEAD_BYTES} bytes without ending"
                )));
            }
            searched = self.buf.len().saturating_sub(3);
            let (read, when) = self.fill().await?;
            at = when;
            if read == 0 {
                return Err(WireError::Closed("a response"));
            }
        }
    }
}

/// The end of a response head in `buf` (just past its blank line), looking
/// from `from` on.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    let crlf = buf[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4);
    // Bare-LF line ends, as some servers write them.
    let lf = buf[from..]
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| from + at + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(WireError::Malformed(
                "the response head is incomplete".to_string(),
            ))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(WireError::Malformed(format!(
                "the response head has more than {MAX_HEADERS} headers"
            )))
        }
        Err(error) => {
            return Err(WireError::Malformed(format!(
                "not an HTTP/1.x response ({error}): {}",
                crate::error::excerpt(String::from_utf8_lossy(bytes).trim(), 120)
            )))
        }
    }
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| WireError::Malformed("the response has no valid status".to_string()))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut map = HeaderMap::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Err(WireError::Malformed(format!(
                "the response has an invalid header: {}",
                crate::error::excerpt(header.name, 60)
            )));
        };
        map.append(name, value);
    }
    Ok(Head {
        status,
        version,
        headers: map,
    })
}

/// How a response's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (204, 304, a 1xx).
    Empty,
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunk),
    /// Until the server closes the connection.
    Close,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes still to come.
    Data(u64),
    /// Expecting the line end after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailers,
}

impl Framing {
    /// The framing of a response with `head`.
    pub(crate) fn of(head: &Head) -> Result<Framing, WireError> {
        let code = head.status.as_u16();
        if head.status.is_informational() || code == 204 || code == 304 {
            return Ok(Framing::Empty);
        }
        if let Some(last) = head
            .headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|coding| coding.trim().to_ascii_lowercase())
            .rfind(|coding| !coding.is_empty())
        {
            // A coding other than chunked last: the body runs to the close.
            return Ok(if last == "chunked" {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            });
        }
        let mut length = None;
        for value in head.headers.get_all(CONTENT_LENGTH) {
            for part in value.to_str().unwrap_or("x").split(',') {
                let part = part.trim();
                let parsed = part
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| part.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        WireError::Malformed(format!(
                            "the response has an invalid Content-Length: {}",
                            crate::error::excerpt(part, 40)
                        ))
                    })?;
                if length.is_some_and(|l| l != parsed) {
                    return Err(WireError::Malformed(
                        "the response has conflicting Content-Length headers".to_string(),
                    ));
                }
                length = Some(parsed);
            }
        }
        Ok(match length {
            Some(0) => Framing::Empty,
            Some(length) => Framing::Length(length),
            None => Framing::Close,
        })
    }
}

/// Whether a body read ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More is to come.
    More,
    /// The body ended (cleanly).
    End,
}

/// Reading one response's body from a [`Wire`].
pub(crate) struct BodyReader {
    framing: Framing,
    /// The bytes read along with the head were handed on.
    primed: bool,
    ended: bool,
}

impl BodyReader {
    pub(crate) fn new(framing: Framing) -> BodyReader {
        BodyReader {
            framing,
            primed: false,
            ended: framing == Framing::Empty,
        }
    }

    /// The body ended and nothing more was sent after it: the connection
    /// can carry another request (if the server's headers allow).
    pub(crate) fn reusable(&self, wire: &Wire) -> bool {
        self.ended && self.framing != Framing::Close && wire.buf.is_empty()
    }

    /// Waits for the next bytes of the body and hands each piece of body
    /// data in them to `data`, with the instant the read returned (the
    /// bytes that came with the head first, stamped with `head_at`).
    pub(crate) async fn next(
        &mut self,
        wire: &mut Wire,
        head_at: Instant,
        mut data: impl FnMut(Instant, &[u8]),
    ) -> Result<(Instant, Step), WireError> {
        if !self.primed {
            self.primed = true;
            if !wire.buf.is_empty() && !self.ended {
                self.decode(wire, |bytes| data(head_at, bytes))?;
                return Ok((head_at, self.step()));
            }
        }
        if self.ended {
            return Ok((head_at, Step::End));
        }
        let (read, at) = wire.fill().await?;
        if read == 0 {
            return match self.framing {
                Framing::Close => {
                    self.decode(wire, |bytes| data(at, bytes))?;
                    self.ended = true;
                    Ok((at, Step::End))
                }
                _ => Err(WireError::Closed("the response ended")),
            };
        }
        self.decode(wire, |bytes| data(at, bytes))?;
        Ok((at, self.step()))
    }

    fn step(&self) -> Step {
        if self.ended {
            Step::End
        } else {
            Step::More
        }
    }

    /// Hands on the body data in the buffer and keeps what is left of the
    /// framing for the next read.
    fn decode(&mut self, wire: &mut Wire, mut data: impl FnMut(&[u8])) -> Result<(), WireError> {
        let buf = &wire.buf;
        let mut at = 0;
        match &mut self.framing {
            Framing::Empty => self.ended = true,
            Framing::Close => {
                if !buf.is_empty() {
                    data(buf);
                }
                at = buf.len();
            }
            Framing::Length(remaining) => {
                let take = (*remaining).min(buf.len() as u64) as usize;
                if take > 0 {
                    data(&buf[..take]);
                }
                *remaining -= take as u64;
                at = take;
                self.ended = *remaining == 0;
            }
            Framing::Chunked(chunk) => loop {
                match chunk {
                    Chunk::Size | Chunk::Trailers => {
                        let Some(newline) = buf[at..].iter().position(|&b| b == b'\n') else {
                            if buf.len() - at > MAX_LINE_BYTES {
                                return Err(WireError::Malformed(format!(
                                    "a chunk-size or trailer line passed {MAX_LINE_BYTES} bytes"
                                )));
                            }
                            break;
                        };
                        let line = &buf[at..at + newline];
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        at += newline + 1;
                        if *chunk == Chunk::Trailers {
                            if line.is_empty() {
                                self.ended = true;
                                break;
                            }
                            continue;
                        }
                        let size = chunk_size(line)?;
                        *chunk = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(remaining) => {
                        let take = (*remaining).min((buf.len() - at) as u64) as usize;
                        if take == 0 {
                            break;
                        }
                        data(&buf[at..at + take]);
                        at += take;
                        *remaining -= take as u64;
                        if *remaining == 0 {
                            *chunk = Chunk::DataEnd;
                        }
                    }
                    Chunk::DataEnd => match buf.get(at..).unwrap_or(&[]) {
                        [] | [b'\r'] => break,
                        [b'\r', b'\n', ..] => {
                            at += 2;
                            *chunk = Chunk::Size;
                        }
                        [b'\n', ..] => {
                            at += 1;
                            *chunk = Chunk::Size;
                        }
                        _ => {
                            return Err(WireError::Malformed(
                                "a chunk's data did not end where its size said".to_string(),
                            ))
                        }
                    },
                }
            },
        }
        wire.buf.drain(..at);
        Ok(())
    }
}

/// A chunk-size line's size (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let digits = digits.trim_ascii();
    let invalid = || {
        WireError::Malformed(format!(
            "an invalid chunk size: {}",
            crate::error::excerpt(String::from_utf8_lossy(line).trim(), 40)
        ))
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid());
    }
    let mut size = 0u64;
    for &digit in digits {
        let value = (digit as char).to_digit(16).ok_or_else(invalid)?;
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&'static str, &'static str)]) -> Head {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        Head {
            status: StatusCode::from_u16(status).unwrap(),
            version: Version::HTTP_11,
            headers: map,
        }
    }

    #[test]
    fn framing_follows_the_headers_as_rfc_9112_orders_them() {
        let chunked = head(200, &[("transfer-encoding", "gzip, chunked")]);
        assert_eq!(
            Framing::of(&chunked).unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        let both = head(
            200,
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(Framing::of(&both).unwrap(), Framing::Chunked(Chunk::Size));
        let zipped = head(200, &[("transfer-encoding", "gzip")]);
        assert_eq!(Framing::of(&zipped).unwrap(), Framing::Close);
        let length = head(200, &[("content-length", "12, 12")]);
        assert_eq!(Framing::of(&length).unwrap(), Framing::Length(12));
        assert!(Framing::of(&head(200, &[("content-length", "12, 13")])).is_err());
        assert!(Framing::of(&head(200, &[("content-length", "-1")])).is_err());
        assert!(Framing::of(&head(200, &[("content-length", "+1")])).is_err());
        assert_eq!(Framing::of(&head(204, &[])).unwrap(), Framing::Empty);
        assert_eq!(
            Framing::of(&head(200, &[("content-length", "0")])).unwrap(),
            Framing::Empty
        );
        assert_eq!(Framing::of(&head(200, &[])).unwrap(), Framing::Close);
    }

    #[test]
    fn chunk_sizes_are_hex_with_extensions_and_bounded() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"FF ;name=value").unwrap(), 255);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"zz").is_err());
        assert!(chunk_size(b"1234567890abcdef0").is_err());
    }

    #[test]
    fn a_head_ends_at_its_blank_line_however_lines_end() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nbody", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n", 0), None);
        let parsed = parse_head(b"HTTP/1.0 404 Not Found\r\nX-A: 1\r\nx-a: 2\r\n\r\n").unwrap();
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.version, Version::HTTP_10);
        assert_eq!(parsed.headers.get_all("x-a").iter().count(), 2);
        let garbage = parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(
            garbage.to_string().contains("not an HTTP/1.x response"),
            "{garbage}"
        );
    }
}
