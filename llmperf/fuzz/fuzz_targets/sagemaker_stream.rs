//! The SageMaker stream decoder (event-stream frames carrying TGI or LMI
//! lines) on arbitrary bytes in arbitrary reads: errors are events, never
//! panics; how the bytes are cut into reads changes nothing; the decoder
//! never claims to hold more than the bytes it was fed could make.
//!
//! Every frame carries two CRC32s, which random mutations almost always
//! break, so the container's own stream inside the frames (TGI SSE, LMI
//! JSON lines) would hardly be reached. A custom mutator therefore repairs
//! the checksums of the frames it can find in three mutations out of four;
//! the fourth keeps corrupted frames in the search.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

mod common;

// Frame wire bytes and the container's line or SSE event inside them: at
// most three times what was fed.
fuzz_target!(|input: (Vec<u8>, &[u8])| {
    common::check_kind("sagemaker", input, common::Holds::Framed, false);
});

/// Rewrites the prelude and message CRCs of the whole frames at the start of
/// the stream part of an input (after arbitrary's encoding of the cuts: a
/// byte with its low bit set and a cut per cut, then one byte ending the
/// list). Stops at the first length that cannot be a frame or runs past the
/// end, which stays as the mutation left it.
fn repair_checksums(input: &mut [u8]) {
    let mut at = 0;
    while input.get(at).is_some_and(|b| b & 1 == 1) {
        at += 2;
    }
    at += 1;
    while let Some(prelude) = input.get(at..at + 8) {
        let word = |i: usize| {
            u32::from_be_bytes([prelude[i], prelude[i + 1], prelude[i + 2], prelude[i + 3]])
                as usize
        };
        let (total, headers) = (word(0), word(4));
        if total < 16 || headers > total - 16 || at + total > input.len() {
            return;
        }
        let crc = crc32fast::hash(&input[at..at + 8]);
        input[at + 8..at + 12].copy_from_slice(&crc.to_be_bytes());
        let end = at + total;
        let crc = crc32fast::hash(&input[at..end - 4]);
        input[end - 4..end].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if seed % 4 != 0 {
        repair_checksums(&mut data[..size]);
    }
    size
});
