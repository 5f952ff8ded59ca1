#![allow(dead_code)] // each target uses its part
//! What the stream-decoder targets share: cutting the input into reads, and
//! the properties every endpoint kind's decoder must keep on arbitrary
//! bytes — errors are events, never panics; how the bytes are cut into reads
//! changes nothing; the decoder never claims to hold more than the bytes it
//! was fed could make; and, for protocols with an end marker, the marker is
//! the last event (everything after it is ignored).

use std::time::Instant;

use llmperf::endpoint::{EndpointKind, StreamEvent, TimedEvent};

/// How much a decoder may hold after `fed` bytes.
#[derive(Clone, Copy)]
pub enum Holds {
    /// Raw bytes of the element in progress: never more than it was fed.
    Raw,
    /// SSE text: each invalid UTF-8 byte of a field becomes a 3-byte U+FFFD
    /// in the event being built (the decoder replaces rather than refuses
    /// it; see `sse::push_text`), so three times what was fed when the input
    /// is not UTF-8.
    Text,
    /// Wire bytes of a frame and text inside it: three times what was fed.
    Framed,
}

impl Holds {
    fn bound(self, fed: usize, valid_utf8: bool) -> usize {
        match self {
            Holds::Raw => fed,
            Holds::Text if valid_utf8 => fed,
            Holds::Text | Holds::Framed => 3 * fed,
        }
    }
}

/// `bytes` cut into reads at the offsets `cuts` gives, one after the other.
pub fn reads<'a>(cuts: &[u8], bytes: &'a [u8]) -> Vec<&'a [u8]> {
    let mut rest = bytes;
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    for &cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

fn decode(
    kind: &dyn EndpointKind,
    pieces: &[&[u8]],
    holds: Holds,
    valid_utf8: bool,
    now: Instant,
) -> Vec<TimedEvent> {
    let mut decoder = kind.decoder();
    let mut out: Vec<TimedEvent> = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        decoder.feed(piece, now, &mut out);
        fed += piece.len();
        assert!(
            decoder.buffered_bytes() <= holds.bound(fed, valid_utf8),
            "holds {} bytes after {fed} fed",
            decoder.buffered_bytes()
        );
    }
    decoder.finish(now, &mut out);
    out
}

/// Checks the decoder of kind `name` on `bytes` cut by `cuts`.
pub fn check_kind(name: &str, (cuts, bytes): (Vec<u8>, &[u8]), holds: Holds, done_is_last: bool) {
    let kind = llmperf::endpoint::find(name).expect("registered");
    let valid_utf8 = std::str::from_utf8(bytes).is_ok();
    // Both decodes stamp one instant, so their events compare by what they say.
    let now = Instant::now();
    let whole = decode(kind, &[bytes], holds, valid_utf8, now);
    let pieces = reads(&cuts, bytes);
    assert_eq!(decode(kind, &pieces, holds, valid_utf8, now), whole);
    if done_is_last {
        if let Some(done) = whole.iter().position(|e| e.event == StreamEvent::Done) {
            assert_eq!(done + 1, whole.len(), "events after Done: {whole:?}");
        }
    }
}
