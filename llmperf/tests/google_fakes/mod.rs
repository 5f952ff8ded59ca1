//! Fakes of the Google services Application Default Credentials call, on
//! loopback.
//!
//! - [`token_server`], [`token_series`]: an OAuth token endpoint (an
//!   `authorized_user` file's `token_uri`) or the metadata server's token
//!   path (`GCE_METADATA_HOST`).
//!
//! Included by test files with `mod google_fakes;`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A fake token server on loopback: answers `token` as an hour's access
/// token to requests for `path` that hold `must_contain` (in the head or
/// the body), 401 otherwise. Counts the tokens it gave.
pub fn token_server(
    path: &'static str,
    must_contain: &'static str,
    token: &'static str,
) -> (String, Arc<AtomicUsize>) {
    token_series(path, must_contain, vec![(token, 3600)])
}

/// [`token_server`] giving `tokens` in turn, each `(token, expires_in)`;
/// the last one again once they are all given.
pub fn token_series(
    path: &'static str,
    must_contain: &'static str,
    tokens: Vec<(&'static str, u64)>,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request = format!("{head}{}", String::from_utf8_lossy(&body));
            let path_ok = head
                .lines()
                .next()
                .is_some_and(|line| line.split(' ').nth(1).unwrap_or("").starts_with(path));
            if !path_ok
                || !request
                    .to_ascii_lowercase()
                    .contains(&must_contain.to_ascii_lowercase())
            {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            }
            let given = count.fetch_add(1, Ordering::SeqCst);
            let (token, expires_in) = tokens[given.min(tokens.len() - 1)];
            let body = format!(
                r#"{{"access_token":"{token}","expires_in":{expires_in},"token_type":"Bearer"}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (address, served)
}
