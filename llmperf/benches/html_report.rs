//! How long the HTML report takes for a large benchmark: a synthetic
//! 100,000-request result (`llmperf::baseline::synthetic`) is written to a
//! temporary results directory as a run writes it (`requests.jsonl` and
//! `summary.json`), then rendered with `render_report`. Printed: the time to
//! read the stored result, to render its page alone, and of the whole
//! report (read, render, write), with the page's size and the peak memory
//! while rendering. The target is under 2 s for the page.
//!
//! `cargo bench -p llmperf --bench html_report` runs the full measurement;
//! without `--bench` (under `cargo test --benches`) it renders 2,000
//! requests as a smoke test.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

// Only the selection flags and the memory readings are used here.
#[allow(dead_code)]
mod support;

use llmperf::baseline::synthetic::Synthetic;
use llmperf::report::html::{render_page, render_report, HtmlOptions, StoredResult};
use llmperf::results::{write_summary, RecordWriter};

const NAME: &str = "html_report";

/// Writes `requests` synthetic requests and their summary under
/// `root/synthetic/ttft/new/`, as a run stores them; returns that directory.
fn write_result(root: &Path, requests: usize, tokens: usize) -> Result<PathBuf, String> {
    let mut synthetic = Synthetic::new(requests, 180.0, 7);
    synthetic.tokens = tokens;
    let dir = root.join("synthetic").join("ttft").join("new");
    let mut writer = RecordWriter::create(&dir).map_err(|e| e.to_string())?;
    for record in synthetic.records() {
        writer.write(&record).map_err(|e| e.to_string())?;
    }
    write_summary(&dir, &synthetic.baseline("html").result).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn measure(root: &Path, requests: usize, tokens: usize) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(root);
    let dir = write_result(root, requests, tokens)?;
    let options = HtmlOptions::default();

    let started = Instant::now();
    let result = StoredResult::read(&dir).map_err(|e| e.to_string())?;
    let read = started.elapsed();
    let started = Instant::now();
    let page = render_page(&result, &options).map_err(|e| e.to_string())?;
    let page_only = started.elapsed();
    drop(result);

    support::reset_peak_rss();
    let out = root.join("report");
    let started = Instant::now();
    let pages = render_report(root, &out, &options).map_err(|e| e.to_string())?;
    let whole = started.elapsed();
    let peak = support::peak_rss_mib();

    let written = std::fs::metadata(&pages.pages[0]).map_err(|e| e.to_string())?;
    if pages.pages.len() != 1 || written.len() != page.len() as u64 {
        return Err(format!(
            "expected one page of {} bytes, got {:?} ({} bytes)",
            page.len(),
            pages.pages,
            written.len()
        ));
    }
    println!(
        "{requests:>9} {tokens:>7} {:>11} {:>11} {:>11} {:>8.0} KiB {:>9} {:>7.1} MiB",
        seconds(read),
        seconds(page_only),
        seconds(whole),
        page.len() as f64 / 1024.0,
        page.matches("<svg").count(),
        peak
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !support::selected(NAME, &args) {
        return ExitCode::SUCCESS;
    }
    let measuring = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let requests = if measuring { 100_000 } else { 2_000 };

    let root = std::env::temp_dir().join(format!("llmperf-html-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    println!("HTML report of one synthetic benchmark (one level; tokens per answer as given)");
    println!(
        "{:>9} {:>7} {:>11} {:>11} {:>11} {:>12} {:>9} {:>11}",
        "requests", "tokens", "read", "page", "report", "page size", "charts", "peak RSS"
    );
    // Short answers, then answers of a typical chat length.
    let outcome = measure(&root, requests, 6).and_then(|()| measure(&root, requests, 150));
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "(read: requests.jsonl and summary.json parsed. page: render_page alone. report: \
         render_report, reading, rendering and writing index and page. peak RSS: the process \
         during render_report.)"
    );
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{NAME}: {error}");
            ExitCode::FAILURE
        }
    }
}
