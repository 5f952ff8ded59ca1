//! The Gemini `alt=sse` stream decoder on arbitrary bytes in arbitrary reads
//! (see `common.rs`).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, &[u8])| {
    common::check_kind("vertex-gemini", input, common::Holds::Text, false);
});
