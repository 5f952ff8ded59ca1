//! The terminal block printed for each benchmark, in criterion's spirit.

use std::fmt::Write as _;

use crate::metrics::{Stats, Summary};
use crate::results::SummaryFile;

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    on: bool,
}

impl Palette {
    /// Colours on or off.
    pub fn new(on: bool) -> Self {
        Palette { on }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Bold.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Red (failures).
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Green (passes).
    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Yellow (warnings).
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// Milliseconds for people: `812 µs`, `12.3 ms`, `4.21 s`.
pub fn format_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "-".to_string()
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

fn latency_line(out: &mut String, label: &str, stats: Option<&Stats>) {
    if let Some(s) = stats {
        let _ = writeln!(
            out,
            "  {label:<10} p50 {:>10}  p90 {:>10}  p99 {:>10}  mean {:>10}  (n={})",
            format_ms(s.p50),
            format_ms(s.p90),
            format_ms(s.p99),
            format_ms(s.mean),
            s.count
        );
    }
}

/// One line for `--quiet`: TTFT p50, throughput, requests.
pub fn one_line(file: &SummaryFile) -> String {
    let summary = &file.summary;
    let ttft = summary
        .ttft_ms
        .map_or("-".to_string(), |s| format_ms(s.p50));
    let mut line = format!(
        "{}: ttft p50 {ttft}, {:.1} output tok/s, {} of {} ok",
        file.benchmark,
        summary.throughput.output_tokens_per_s,
        summary.requests.completed,
        summary.requests.total
    );
    if let Some(v) = &summary.validation {
        line.push_str(&format!(", {} cross-overs", v.cross_overs));
    }
    if file.interrupted {
        line.push_str(" (interrupted)");
    }
    line
}

/// The block for one run: latencies, throughput, errors, validation.
pub fn render(file: &SummaryFile, palette: Palette) -> String {
    let summary: &Summary = &file.summary;
    let config = &file.config;
    let mut out = String::new();
    // config.base_url is stored without credentials (spec::display_url).
    let endpoint = if config.builtin_endpoint {
        format!("built-in endpoint {}", config.base_url)
    } else {
        config.base_url.clone()
    };
    let _ = writeln!(
        out,
        "{}  {} · {} · {} · concurrency {}",
        palette.bold(&file.benchmark),
        config.endpoint_kind,
        config.model,
        endpoint,
        config.load.concurrency
    );
    latency_line(&mut out, "ttft", summary.ttft_ms.as_ref());
    latency_line(&mut out, "itl", summary.inter_token_latency_ms.as_ref());
    latency_line(&mut out, "tpot", summary.tpot_ms.as_ref());
    latency_line(&mut out, "e2e", summary.e2e_ms.as_ref());
    latency_line(
        &mut out,
        "reasoning",
        summary.time_to_first_reasoning_ms.as_ref(),
    );
    let t = &summary.throughput;
    let _ = writeln!(
        out,
        "  throughput {:.1} output tok/s · {:.1} total tok/s · {:.1} requests/min over {:.2} s",
        t.output_tokens_per_s, t.total_tokens_per_s, t.requests_per_minute, t.window_s
    );
    let r = &summary.requests;
    let failed = if r.failed > 0 {
        let kinds: Vec<String> = r
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        palette.red(&format!(
            "{} failed ({:.1}%: {})",
            r.failed,
            r.error_rate * 100.0,
            kinds.join(", ")
        ))
    } else {
        "0 failed".to_string()
    };
    let _ = writeln!(out, "  requests   {} ok, {}", r.completed, failed);
    if summary.overload.overloaded {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow(&format!(
                "overloaded: {:.1}% of requests took over 3 s to the first token",
                summary.overload.share_over_threshold * 100.0
            ))
        );
    }
    if summary.token_counts.mismatched_requests > 0 {
        let _ = writeln!(
            out,
            "  tokens     {} requests where the server's and the client's ({}) token counts differ (mean output difference {:.1}%)",
            summary.token_counts.mismatched_requests,
            config.tokenizer,
            summary.token_counts.mean_output_relative_difference * 100.0
        );
    }
    if let Some(v) = &summary.validation {
        let verdict = if v.cross_overs > 0 {
            palette.red(&format!("{} CROSS-OVERS", v.cross_overs))
        } else if v.mismatches > 0 {
            palette.yellow(&format!("{} mismatches", v.mismatches))
        } else {
            palette.green("all correct")
        };
        let _ = writeln!(
            out,
            "  validation {}/{} passed, {}",
            v.passed, v.validated, verdict
        );
        for issue in v.cross_over_requests.iter().take(5) {
            let _ = writeln!(
                out,
                "    request {} (expected {}) got request {}'s answer: {:?}",
                issue.request_id,
                issue.expected,
                issue
                    .other_request_id
                    .map_or("?".to_string(), |id| id.to_string()),
                issue.excerpt
            );
        }
    }
    if file.interrupted {
        let _ = writeln!(
            out,
            "  {}",
            palette.yellow("interrupted before all requests ran")
        );
    }
    out
}
