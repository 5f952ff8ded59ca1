//! The OpenAI stream decoder on arbitrary bytes in arbitrary reads: errors
//! are events, never panics.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use llmperf::endpoint::TimedEvent;

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, bytes) = input;
    let kind = llmperf::endpoint::find("openai-chat").expect("registered");
    let mut decoder = kind.decoder();
    let mut out: Vec<TimedEvent> = Vec::new();
    let now = Instant::now();
    let mut rest = bytes;
    for cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        decoder.feed(piece, now, &mut out);
        rest = tail;
    }
    decoder.feed(rest, now, &mut out);
    decoder.finish(now, &mut out);
});
