//! The TGI `generate_stream` decoder on arbitrary bytes in arbitrary reads
//! (see `common.rs`); its end marker is the last event.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, &[u8])| {
    common::check_kind("tgi", input, common::Holds::Text, true);
});
