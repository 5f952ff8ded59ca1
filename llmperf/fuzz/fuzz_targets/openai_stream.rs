//! The OpenAI stream decoder (every OpenAI-compatible kind: openai-chat and
//! -completions, azure-openai, together, the presets, vertex-raw and
//! vertex-openai) on arbitrary bytes in arbitrary reads (see `common.rs`).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, &[u8])| {
    common::check_kind("openai-chat", input, common::Holds::Text, false);
});
