//! The binary event-stream frame decoder (SageMaker) on arbitrary bytes in
//! arbitrary pieces: a bad frame is an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmperf::endpoint::framing::eventstream::FrameDecoder;

mod common;

fuzz_target!(|input: (Vec<u8>, &[u8])| {
    let (cuts, bytes) = input;
    let mut decoder = FrameDecoder::new();
    for piece in common::reads(&cuts, bytes) {
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
