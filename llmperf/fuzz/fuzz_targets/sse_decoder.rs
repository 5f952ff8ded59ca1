//! The SSE decoder on arbitrary bytes, split at an arbitrary point: it must
//! never panic, and the split must not change what it decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmperf::endpoint::framing::sse::SseDecoder;

fn decode(pieces: &[&[u8]]) -> Vec<(Option<String>, String)> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, |e| {
            events.push((e.event.map(str::to_string), e.data.to_string()))
        });
    }
    decoder.finish(|e| events.push((e.event.map(str::to_string), e.data.to_string())));
    events
}

fuzz_target!(|input: (u16, &[u8])| {
    let (split, bytes) = input;
    let split = usize::from(split) % (bytes.len() + 1);
    let (a, b) = bytes.split_at(split);
    assert_eq!(decode(&[bytes]), decode(&[a, b]));
});
