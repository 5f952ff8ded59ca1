//! The binary event-stream frame decoder (SageMaker) on arbitrary bytes in
//! arbitrary pieces: a bad frame is an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmperf::endpoint::eventstream::FrameDecoder;

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, bytes) = input;
    let mut decoder = FrameDecoder::new();
    let mut rest = bytes;
    let mut pieces: Vec<&[u8]> = Vec::new();
    for cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    for piece in pieces {
        decoder.push(piece);
        // Drain every complete message; the first error ends the stream.
        loop {
            match decoder.next_message() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
