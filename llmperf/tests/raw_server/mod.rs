//! A minimal raw HTTP/1.1 server on loopback, for server behaviours the
//! built-in endpoint does not script (a stream held open after `[DONE]`, a
//! server that echoes or cuts, half a status line then a close), one that
//! records every request head, a small forward proxy and a tunnelling one.
//!
//! Included by test files with `mod raw_server;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Listens on 127.0.0.1 and hands each of the first `connections`
/// connections, in turn, to `handle` on one thread. Returns the `/v1` base
/// URL and the thread.
pub fn spawn(
    connections: usize,
    mut handle: impl FnMut(TcpStream) + Send + 'static,
) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let thread = thread::spawn(move || {
        for _ in 0..connections {
            let Ok((socket, _)) = listener.accept() else {
                return;
            };
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            handle(socket);
        }
    });
    (url, thread)
}

/// Reads one request, its head and its `Content-Length` body, as text, from
/// a socket or anything read like one (a TLS stream); `None` at the end of
/// the connection or when a read fails (after 10 s of silence on a socket
/// from [`spawn`], or a refused TLS handshake).
pub fn read_request(stream: &mut impl Read) -> Option<String> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    request.extend_from_slice(&body);
    Some(String::from_utf8_lossy(&request).into_owned())
}

/// The JSON body of a request read by [`read_request`].
pub fn json_body(request: &str) -> Option<serde_json::Value> {
    serde_json::from_str(request.split_once("\r\n\r\n")?.1).ok()
}

/// A complete SSE answer: one `data:` event per chunk, then `[DONE]`, with
/// `Content-Length` and `Connection: close`.
pub fn sse_response(chunks: &[serde_json::Value]) -> String {
    let mut body = String::new();
    for chunk in chunks {
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// An OpenAI chat answer as [`sse_response`]: `text` in one content delta,
/// then `finish_reason`.
pub fn chat_answer(text: &str, finish_reason: &str) -> String {
    sse_response(&[
        serde_json::json!({"choices": [{"delta": {"content": text}}]}),
        serde_json::json!({"choices": [{"delta": {}, "finish_reason": finish_reason}]}),
    ])
}

/// The value of header `name` in a request head, each occurrence.
pub fn header_values(request: &str, name: &str) -> Vec<String> {
    let head = request.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// Every file under `dir` (a results directory), as text: to search it
/// for a secret.
pub fn all_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// A server answering each of `requests` connections' one request with
/// `answer`; the request heads and bodies, in order.
pub fn recording_server(
    requests: usize,
    answer: String,
) -> (String, Arc<Mutex<Vec<String>>>, thread::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let (url, handle) = spawn(requests, move |mut socket| {
        if let Some(request) = read_request(&mut socket) {
            log.lock().unwrap().push(request);
            let _ = socket.write_all(answer.as_bytes());
        }
    });
    (url, seen, handle)
}

/// A forward proxy on loopback for `connections` connections, one request
/// each: a plain request (absolute form) is forwarded to its origin and
/// the answer copied back; a `CONNECT` is answered `200` and then closed
/// (no TLS server behind it). Every head it received, in order.
pub fn forward_proxy(
    connections: usize,
) -> (String, Arc<Mutex<Vec<String>>>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let handle = thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut client, _)) = listener.accept() else {
                return;
            };
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let Some(request) = read_request(&mut client) else {
                continue;
            };
            log.lock().unwrap().push(request.clone());
            let line = request.lines().next().unwrap_or("").to_string();
            if line.starts_with("CONNECT ") {
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                continue;
            }
            // `POST http://host:port/path HTTP/1.1` → origin form to host:port.
            let target = line.split(' ').nth(1).unwrap_or("");
            let rest = target.strip_prefix("http://").unwrap_or(target);
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let mut origin = TcpStream::connect(authority).unwrap();
            let forwarded = request.replacen(target, path, 1);
            let forwarded: String = forwarded
                .split_inclusive("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("proxy-authorization:"))
                .collect();
            origin.write_all(forwarded.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let _ = origin.read_to_end(&mut answer);
            let _ = client.write_all(&answer);
        }
    });
    (format!("http://{address}"), seen, handle)
}

/// A tunnelling proxy on loopback, serving until the test process ends:
/// each connection's `CONNECT host:port` is answered `200` and its bytes
/// piped both ways to `host:port` until both sides have closed (a request
/// of any other method, or a target that cannot be reached, gets `502`).
/// Every head it received, in order.
pub fn tunnel_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let log = Arc::clone(&log);
            thread::spawn(move || tunnel(client, &log));
        }
    });
    (url, seen)
}

/// One connection of [`tunnel_proxy`].
fn tunnel(mut client: TcpStream, log: &Mutex<Vec<String>>) {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let Some(request) = read_request(&mut client) else {
        return;
    };
    log.lock().unwrap().push(request.clone());
    let target = request
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next());
    let Some(mut origin) = target.and_then(|target| TcpStream::connect(target).ok()) else {
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(mut from_client), Ok(mut to_origin)) = (client.try_clone(), origin.try_clone()) else {
        return;
    };
    // Client to origin on a thread of its own, origin to client here; each
    // direction passes its end on.
    let upstream = thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_origin);
        let _ = to_origin.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut origin, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

/// What a fake saw: what it issued, and why it refused the requests it
/// refused (which field was wrong, never its value).
#[derive(Clone, Default)]
pub struct Ledger {
    issued: Arc<std::sync::atomic::AtomicUsize>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Ledger {
    /// How many credentials or tokens the fake issued.
    pub fn issued(&self) -> usize {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts one more issued; its number, from 1.
    pub fn issue(&self) -> usize {
        self.issued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Why each refused request was refused.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    /// Notes a refusal and why.
    pub fn refuse(&self, why: impl Into<String>) {
        self.refused.lock().unwrap().push(why.into());
    }
}

/// Serves each connection of `listener` (one request each) on one thread:
/// `answer` gets the request as text and returns the whole response.
pub fn serve_each(listener: TcpListener, mut answer: impl FnMut(&str) -> String + Send + 'static) {
    thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            if let Some(request) = read_request(&mut socket) {
                let _ = socket.write_all(answer(&request).as_bytes());
            }
        }
    });
}
