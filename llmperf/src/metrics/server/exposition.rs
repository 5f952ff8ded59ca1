//! The Prometheus text exposition format (version 0.0.4) and OpenMetrics
//! text (1.0), read into flat samples.
//!
//! Hand-written on purpose: of the crates on crates.io, `prometheus-parse`
//! (the most used) reads names with `\w+`, so every `vllm:…` sample is
//! lost, and cuts label values at the first `}`; `openmetrics-parser`
//! conforms but is LGPL-3.0, which this MIT/Apache-2.0 crate does not take
//! on; the others are single unmaintained releases. The grammar is small
//! (the format's specification:
//! <https://prometheus.io/docs/instrumenting/exposition_formats/> and
//! <https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>),
//! and what real servers emit is pinned by the tests below.
//!
//! Reading is lenient where servers are: a line that is not a sample or a
//! known comment is counted and skipped (one bad line does not lose a
//! scrape), exemplars and timestamps are read past, `# EOF` ends the text,
//! CRLF line ends, spaces inside label sets and a trailing comma are
//! accepted, and the quoted UTF-8 names of Prometheus 3
//! (`{"name.with.dots", label="v"}`) are read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A metric family's declared type (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Only goes up, resets to zero when the server restarts.
    Counter,
    /// Any value at any time.
    Gauge,
    /// Cumulative `_bucket{le=…}` counts with `_sum` and `_count`.
    Histogram,
    /// Client-side quantiles with `_sum` and `_count`.
    Summary,
    /// OpenMetrics' gauge histogram, info, state set, or undeclared.
    #[serde(other)]
    Other,
}

impl MetricType {
    fn parse(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Other,
        }
    }
}

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (`vllm:prompt_tokens_total`,
    /// `tgi_request_duration_bucket`).
    pub name: String,
    /// Its labels in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value (`NaN` and `±Inf` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Each family's declared type, by family name.
    pub types: BTreeMap<String, MetricType>,
    /// Lines that were neither samples nor comments.
    pub bad_lines: usize,
    /// The first of them: its 1-based number and its start.
    pub first_bad: Option<(usize, String)>,
}

/// Suffixes a sample's name adds to its family's.
const SUFFIXES: &[&str] = &[
    "_total", "_bucket", "_sum", "_count", "_created", "_gsum", "_gcount", "_info",
];

impl Exposition {
    /// Reads `text`. Never fails: what cannot be read is counted in
    /// [`Exposition::bad_lines`].
    pub fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r').trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("EOF"), None, _) => break,
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        out.types
                            .insert(unquote_name(name), MetricType::parse(kind));
                    }
                    _ => {}
                }
                continue;
            }
            match parse_sample(line) {
                Some(sample) => out.samples.push(sample),
                None => {
                    out.bad_lines += 1;
                    if out.first_bad.is_none() {
                        let start: String = line.chars().take(80).collect();
                        out.first_bad = Some((number + 1, start));
                    }
                }
            }
        }
        out
    }

    /// Whether this looks like an exposition at all: some samples, and
    /// fewer bad lines than good ones (an HTML page has none of the one
    /// and many of the other).
    pub fn is_metrics(&self) -> bool {
        !self.samples.is_empty() && self.bad_lines < self.samples.len()
    }

    /// The family `sample_name` belongs to and its type: the name itself
    /// when declared, else the name less a suffix (`_total`, `_bucket`,
    /// …) when that is declared; undeclared names are their own family of
    /// type [`MetricType::Other`].
    pub fn family<'a>(&self, sample_name: &'a str) -> (&'a str, MetricType) {
        if let Some(kind) = self.types.get(sample_name) {
            return (sample_name, *kind);
        }
        for suffix in SUFFIXES {
            if let Some(family) = sample_name.strip_suffix(suffix) {
                if let Some(kind) = self.types.get(family) {
                    return (family, *kind);
                }
            }
        }
        (sample_name, MetricType::Other)
    }
}

/// A `# TYPE` name, quoted or not.
fn unquote_name(name: &str) -> String {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .map_or_else(|| name.to_string(), unescape)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A bare metric or label name at the start of `text`, and the rest.
fn name(text: &str) -> Option<(&str, &str)> {
    let first = text.chars().next()?;
    if !is_name_start(first) {
        return None;
    }
    let end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    Some(text.split_at(end))
}

/// A quoted string at the start of `text` (its escapes undone), and the rest.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut escaped = false;
    for (at, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some((unescape(&body[..at]), &body[at + 1..])),
            _ => {}
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `name{labels} value [timestamp] [# exemplar]`, or the quoted-name form
/// `{"name", labels} value`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (mut sample_name, rest) = match name(line) {
        Some((n, rest)) => (Some(n.to_string()), rest),
        None if line.starts_with('{') => (None, line),
        None => return None,
    };
    let mut labels = Vec::new();
    let mut rest = rest;
    if let Some(inside) = rest.trim_start().strip_prefix('{') {
        let mut text = inside.trim_start();
        loop {
            if let Some(after) = text.strip_prefix('}') {
                rest = after;
                break;
            }
            // A quoted item without `=` is the metric's name (Prometheus 3).
            if let Some((value, after)) = quoted(text) {
                let after = after.trim_start();
                if sample_name.is_none() && !after.starts_with('=') {
                    sample_name = Some(value);
                    text = after.strip_prefix(',').unwrap_or(after).trim_start();
                    continue;
                }
            }
            let (key, after) = match quoted(text) {
                Some((key, after)) => (key, after),
                None => {
                    let (key, after) = name(text)?;
                    (key.to_string(), after)
                }
            };
            let after = after.trim_start().strip_prefix('=')?.trim_start();
            let (value, after) = quoted(after)?;
            labels.push((key, value));
            let after = after.trim_start();
            text = after.strip_prefix(',').unwrap_or(after).trim_start();
            if !after.starts_with(',') && !after.starts_with('}') {
                return None;
            }
        }
    }
    let sample_name = sample_name?;
    // The value is separated from a bare name (`m1` is not `m 1`).
    if labels.is_empty() && !rest.starts_with([' ', '\t']) && !line.contains('{') {
        return None;
    }
    let value_text = rest.split_whitespace().next()?;
    Some(Sample {
        name: sample_name,
        labels,
        value: parse_value(value_text)?,
    })
}

/// A Go- or Python-formatted float: `1.5e-05`, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As vLLM's `/metrics` (prometheus_client, text 0.0.4) writes it.
    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.2345e+06
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 7.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 7.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.75
"#;

    #[test]
    fn names_with_colons_labels_and_types() {
        let e = Exposition::parse(VLLM);
        assert_eq!(e.bad_lines, 0, "{:?}", e.first_bad);
        assert_eq!(e.samples.len(), 6);
        let running = &e.samples[0];
        assert_eq!(running.name, "vllm:num_requests_running");
        assert_eq!(
            running.label("model_name"),
            Some("meta-llama/Llama-3.1-8B-Instruct")
        );
        assert_eq!(running.value, 3.0);
        assert_eq!(e.samples[1].value, 1_234_500.0);
        assert_eq!(
            e.family("vllm:prompt_tokens_total"),
            ("vllm:prompt_tokens_total", MetricType::Counter)
        );
        assert_eq!(
            e.family("vllm:time_to_first_token_seconds_bucket"),
            ("vllm:time_to_first_token_seconds", MetricType::Histogram)
        );
        assert_eq!(e.samples[3].label("le"), Some("+Inf"));
        assert!(e.is_metrics());
    }

    #[test]
    fn openmetrics_counters_exemplars_timestamps_and_eof() {
        let text = "# TYPE tokens counter\n# UNIT tokens tokens\n\
                    tokens_total{a=\"1\"} 17 1700000000000 # {trace_id=\"x\"} 1.0 1.7e9\n\
                    tokens_created{a=\"1\"} 1.7e9\n# EOF\ngarbage after the end\n";
        let e = Exposition::parse(text);
        assert_eq!(e.bad_lines, 0);
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[0].value, 17.0);
        assert_eq!(e.family("tokens_total"), ("tokens", MetricType::Counter));
        assert_eq!(e.family("tokens_created"), ("tokens", MetricType::Counter));
    }

    #[test]
    fn escapes_braces_spaces_and_special_values() {
        let text = "m{path=\"/a}b\",q=\"say \\\"hi\\\"\\n\", w = \"x\",} NaN\r\n\
                    m{path=\"\\\\\"} +Inf\nm -Inf\nm\t2\n";
        let e = Exposition::parse(text);
        assert_eq!(e.bad_lines, 0, "{:?}", e.first_bad);
        assert_eq!(e.samples[0].label("path"), Some("/a}b"));
        assert_eq!(e.samples[0].label("q"), Some("say \"hi\"\n"));
        assert_eq!(e.samples[0].label("w"), Some("x"));
        assert!(e.samples[0].value.is_nan());
        assert_eq!(e.samples[1].label("path"), Some("\\"));
        assert_eq!(e.samples[1].value, f64::INFINITY);
        assert_eq!(e.samples[2].value, f64::NEG_INFINITY);
        assert_eq!(e.samples[3].value, 2.0);
    }

    #[test]
    fn quoted_utf8_names() {
        let e = Exposition::parse(
            "# TYPE \"req.count\" counter\n{\"req.count_total\", code=\"200\"} 4\n",
        );
        assert_eq!(e.bad_lines, 0, "{:?}", e.first_bad);
        assert_eq!(e.samples[0].name, "req.count_total");
        assert_eq!(e.samples[0].label("code"), Some("200"));
        assert_eq!(e.family("req.count_total").1, MetricType::Counter);
    }

    #[test]
    fn bad_lines_are_counted_not_fatal_and_html_is_not_metrics() {
        let e = Exposition::parse(
            "a 1\nb 2\nc 3\ngood 4\nd 5\nbad line here\nm{a=\"1\" 2\nm{a=1} 2\nx 1e400\n",
        );
        assert_eq!(e.samples.len(), 5);
        assert_eq!(e.bad_lines, 4);
        assert_eq!(e.first_bad, Some((6, "bad line here".to_string())));
        assert!(e.is_metrics());
        let page = Exposition::parse("<!doctype html>\n<html><body>Not found</body></html>\n");
        assert!(!page.is_metrics());
        assert!(!Exposition::parse("").is_metrics());
    }

    #[test]
    fn any_input_reads_without_panicking() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet = b"ab:_{}=\",\\ #\n\t0.1e+-InfNaN";
        for _ in 0..2_000 {
            let len = rng.gen_range(0..60);
            let text: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect();
            let e = Exposition::parse(&text);
            assert!(e.samples.len() + e.bad_lines <= text.lines().count());
        }
    }
}
