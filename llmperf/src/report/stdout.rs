//! Standard output that a closed pipe ends quietly.
//!
//! `println!` panics when the reader has gone (`llmperf export … | head`).
//! A process's entry point (the `llmperf` binary, the `cargo bench`
//! harness's `main`) calls [`own`]: from then on writes through here go
//! straight to the file descriptor and stop once it is closed, as Unix tools
//! do — the rest of the output is dropped and the work goes on (results on
//! disk are never affected). Any other write error is reported once on
//! standard error. Until then (a library caller, a test that runs the
//! harness in-process) they go through `print!`, which test harnesses
//! capture.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static OWNED: AtomicBool = AtomicBool::new(false);
static CLOSED: AtomicBool = AtomicBool::new(false);

/// This process owns its standard output: write to it directly, and stop
/// quietly when it is closed.
pub fn own() {
    OWNED.store(true, Ordering::Relaxed);
}

/// Writes `text` to standard output; `false` once it can no longer be written.
pub fn print(text: &str) -> bool {
    if !OWNED.load(Ordering::Relaxed) {
        print!("{text}");
        return true;
    }
    if CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(error) => {
            if !CLOSED.swap(true, Ordering::Relaxed)
                && error.kind() != std::io::ErrorKind::BrokenPipe
            {
                eprintln!("warning: cannot write to standard output: {error}");
            }
            false
        }
    }
}

/// [`print()`] with a line end.
pub fn line(text: &str) -> bool {
    print(&format!("{text}\n"))
}
