//! The Gemini streamed JSON-array decoder on arbitrary bytes in arbitrary
//! reads (see `common.rs`); it buffers the raw bytes of the element in
//! progress.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, &[u8])| {
    common::check_kind("vertex-gemini-json", input, common::Holds::Raw, false);
});
