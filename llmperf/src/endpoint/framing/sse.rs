//! An incremental Server-Sent Events decoder.
//!
//! Bytes are fed as they arrive, in whatever pieces the network delivers:
//! an event may be split across reads and one read may hold many events.
//! Lines end in `\n`, `\r\n` or `\r` (a `\r\n` split across two reads is one
//! line end). Comment lines (`: keep-alive`) are skipped, `data:` is
//! accepted with or without the space, multi-line `data` is joined with
//! `\n`, and the `event:` name is kept for protocols that use named events.
//!
//! ```
//! use llmperf::endpoint::framing::sse::SseDecoder;
//! let mut decoder = SseDecoder::new();
//! let mut seen = Vec::new();
//! decoder.feed(b"data: {\"a\":1}\r\n\r\n: keep-alive\n\ndata:[DO", |e| seen.push(e.data.to_string()));
//! decoder.feed(b"NE]\n\n", |e| seen.push(e.data.to_string()));
//! assert_eq!(seen, ["{\"a\":1}", "[DONE]"]);
//! ```

/// One dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, when the server named the event.
    pub event: Option<&'a str>,
    /// The joined `data:` lines.
    pub data: &'a str,
}

/// Incremental SSE decoder; see the module docs.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    event: String,
    has_data: bool,
    has_event: bool,
    /// The previous read ended in `\r`: a leading `\n` belongs to that line end.
    skip_lf: bool,
}

impl SseDecoder {
    /// A decoder with empty buffers.
    pub fn new() -> Self {
        SseDecoder::default()
    }

    /// Feeds the next bytes of the stream; `on_event` is called for every
    /// event completed by these bytes, in order.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = bytes.split_at(end);
            let mut rest = &tail[1..];
            if tail[0] == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.process_line(head, &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
            bytes = rest;
        }
        self.line.extend_from_slice(bytes);
    }

    /// The stream ended: an unterminated last line is processed and a
    /// pending event is dispatched (servers that close without the final
    /// blank line still deliver their last event).
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent<'_>)) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    /// Bytes held for an incomplete line (for a truncation diagnosis).
    pub fn pending_bytes(&self) -> usize {
        self.line.len() + self.data.len()
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                push_text(&mut self.data, value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                push_text(&mut self.event, value);
                self.has_event = true;
            }
            // `id` and `retry` carry nothing a benchmark needs.
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.has_data {
            on_event(SseEvent {
                event: self.has_event.then_some(self.event.as_str()),
                data: &self.data,
            });
        }
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.has_event = false;
    }
}

/// Appends `bytes` as text; invalid UTF-8 is replaced rather than refused,
/// so the event still reaches the decoder (which reports it as malformed).
fn push_text(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(pieces: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for piece in pieces {
            decoder.feed(piece, |e| {
                out.push((e.event.map(str::to_string), e.data.to_string()))
            });
        }
        decoder.finish(|e| out.push((e.event.map(str::to_string), e.data.to_string())));
        out
    }

    fn data(events: &[(Option<String>, String)]) -> Vec<&str> {
        events.iter().map(|(_, d)| d.as_str()).collect()
    }

    #[test]
    fn events_split_at_every_byte_decode_the_same() {
        let stream: &[u8] =
            b"data: {\"x\":1}\r\n\r\n: keep-alive\r\n\r\nevent: ping\ndata:{}\n\ndata: [DONE]\n\n";
        let whole = decode_in_pieces(&[stream]);
        assert_eq!(data(&whole), ["{\"x\":1}", "{}", "[DONE]"]);
        assert_eq!(whole[1].0.as_deref(), Some("ping"));
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode_in_pieces(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_in_pieces(&bytes), whole);
    }

    #[test]
    fn a_crlf_split_before_a_blank_line_keeps_events_apart() {
        let events = decode_in_pieces(&[b"data: a\r", b"\n", b"\n", b"data: b\n\n"]);
        assert_eq!(data(&events), ["a", "b"]);
        let events = decode_in_pieces(&[b"data: a\r", b"", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(data(&events), ["a", "b"]);
    }

    #[test]
    fn many_events_in_one_read_and_lone_cr_line_ends() {
        let events = decode_in_pieces(&[b"data: a\r\rdata: b\n\ndata: c\r\n\r\n"]);
        assert_eq!(data(&events), ["a", "b", "c"]);
    }

    #[test]
    fn multi_line_data_is_joined_and_comments_are_skipped() {
        let events = decode_in_pieces(&[b": hello\ndata: one\ndata:two\nid: 7\n\n"]);
        assert_eq!(data(&events), ["one\ntwo"]);
    }

    #[test]
    fn a_last_event_without_blank_line_is_delivered_at_finish() {
        let events = decode_in_pieces(&[b"data: first\n\ndata: last"]);
        assert_eq!(data(&events), ["first", "last"]);
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        let events = decode_in_pieces(&[b"\n\n\r\n: only a comment\n\n"]);
        assert!(events.is_empty());
    }

    #[test]
    fn random_streams_decode_the_same_however_they_are_split() {
        use rand::{Rng, SeedableRng};
        // The stable counterpart of fuzz/fuzz_targets/sse_decoder.rs.
        const PIECES: [&[u8]; 12] = [
            b"data:",
            b"data: ",
            b"event: x",
            b":",
            b"\r",
            b"\n",
            b"\r\n",
            b" ",
            b"{}",
            b"[DONE]",
            b"id: 1",
            b"\xff",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..3_000 {
            let mut stream = Vec::new();
            for _ in 0..rng.gen_range(0..40) {
                stream.extend_from_slice(PIECES[rng.gen_range(0..PIECES.len())]);
            }
            let whole = decode_in_pieces(&[&stream]);
            let mut cuts: Vec<usize> = (0..rng.gen_range(0..6))
                .map(|_| rng.gen_range(0..=stream.len()))
                .collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for cut in cuts {
                pieces.push(&stream[last..cut]);
                last = cut;
            }
            pieces.push(&stream[last..]);
            assert_eq!(
                decode_in_pieces(&pieces),
                whole,
                "{:?}",
                String::from_utf8_lossy(&stream)
            );
        }
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        let events = decode_in_pieces(&[b"data: \xff\xfe\n\n"]);
        assert_eq!(events.len(), 1);
    }
}
