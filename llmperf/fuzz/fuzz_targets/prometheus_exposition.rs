//! The Prometheus text reader (server metrics) on arbitrary text: it never
//! panics, every line is a sample, a comment or a counted bad line, and the
//! tracker takes whatever it reads.
#![no_main]

use llmperf::metrics::server::{Exposition, Tracker};

libfuzzer_sys::fuzz_target!(|text: &str| {
    let exposition = Exposition::parse(text);
    assert!(exposition.samples.len() + exposition.bad_lines <= text.lines().count());
    let mut tracker = Tracker::new(1);
    let (values, _) = tracker.number(0, &exposition);
    tracker.observe(0, &values);
    let _ = tracker.point(0);
});
