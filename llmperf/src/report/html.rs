//! HTML reports: an index of every benchmark under a results directory and
//! one self-contained page per benchmark, rendered with tera templates and
//! plotters charts (inline SVG).
//!
//! The templates in the repository's `templates/` are compiled in (through
//! the `llmperf/templates` link, so the published crate carries them), so a
//! report renders with no files at hand; [`HtmlOptions::templates`] points
//! at a directory whose files of the same names replace them. Autoescaping
//! is on for every template, so any text from an endpoint (answers,
//! excerpts, error messages) shows as text; only the charts, which this
//! crate drew and whose text plotters escaped, are inserted raw. Nothing is
//! fetched: styles are inline, there is no script and no web font.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::baseline::Comparison;
use crate::record::RequestRecord;
use crate::results::{self, SummaryFile, REQUESTS_FILE, SERVER_METRICS_FILE, SUMMARY_FILE};

mod page;
mod server;

pub use server::{ServerRound, ServerTimeline};

/// The compiled-in templates: (name, text).
const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("index.html", include_str!("../../templates/index.html")),
    (
        "benchmark.html",
        include_str!("../../templates/benchmark.html"),
    ),
    ("style.css", include_str!("../../templates/style.css")),
];

/// The comparison file a compared run writes beside its `summary.json`.
pub const COMPARISON_FILE: &str = "comparison.json";
/// The baseline a compared run was compared with, copied beside it (the
/// report overlays its distributions).
pub const BASELINE_COPY_FILE: &str = "compared-baseline.json";
/// Marks a directory as an llmperf report, whose stale pages may be removed.
const REPORT_MARKER: &str = ".llmperf-report";

/// How a report is rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlOptions {
    /// A directory of templates replacing the compiled-in ones of the same
    /// names (`base.html`, `index.html`, `benchmark.html`, `style.css`).
    pub templates: Option<PathBuf>,
    /// Skip the charts (as criterion's `--noplot`).
    pub noplot: bool,
}

/// What a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPages {
    /// `index.html`.
    pub index: PathBuf,
    /// One page per benchmark, in the index's order.
    pub pages: Vec<PathBuf>,
}

/// A report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// Nothing to report.
    #[error("no results under {0}: give a results directory (target/llmperf after `cargo bench`, or one written by `llmperf run --results-dir`)")]
    NoResults(PathBuf),
    /// A results file could not be read.
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    /// A template is wrong (a user's override, usually).
    #[error("template error: {0}")]
    Template(String),
    /// Disk I/O failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One benchmark's stored result, as the report reads it.
#[derive(Debug, Clone)]
pub struct StoredResult {
    /// The directory holding `summary.json`.
    pub dir: PathBuf,
    /// The summary.
    pub summary: SummaryFile,
    /// Its records (empty when `requests.jsonl` is missing).
    pub records: Vec<RequestRecord>,
    /// The comparison written beside it, if any.
    pub comparison: Option<Comparison>,
    /// Why a `comparison.json` beside it could not be read.
    pub comparison_error: Option<String>,
    /// The server's metrics round by round, from `server_metrics.jsonl`
    /// (`None` when the run wrote none: scraping off, or an older llmperf).
    pub server: Option<ServerTimeline>,
    /// Why a `server_metrics.jsonl` beside it could not be read.
    pub server_error: Option<String>,
}

impl StoredResult {
    /// Reads the result in `dir`.
    pub fn read(dir: &Path) -> Result<StoredResult, HtmlError> {
        let summary = results::read_summary(&dir.join(SUMMARY_FILE))?;
        let requests = dir.join(REQUESTS_FILE);
        let records = if requests.exists() {
            results::read_records(&requests)?
        } else {
            Vec::new()
        };
        // A comparison that cannot be read is reported, not fatal: the
        // result itself is what the page is about.
        let (comparison, comparison_error) =
            match std::fs::read_to_string(dir.join(COMPARISON_FILE)) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => (None, None),
                Err(error) => (None, Some(error.to_string())),
                Ok(text) => match serde_json::from_str(&text) {
                    Ok(comparison) => (Some(comparison), None),
                    Err(error) => (None, Some(error.to_string())),
                },
            };
        // So is a server metrics file: the page says why it is missing.
        let scrapes = dir.join(SERVER_METRICS_FILE);
        let (server, server_error) = if scrapes.exists() {
            match ServerTimeline::read(&scrapes) {
                Ok(timeline) => (Some(timeline), None),
                Err(error) => (None, Some(error.to_string())),
            }
        } else {
            (None, None)
        };
        Ok(StoredResult {
            dir: dir.to_path_buf(),
            summary,
            records,
            comparison,
            comparison_error,
            server,
            server_error,
        })
    }
}

/// The results under `root`: `root` itself when it holds a `summary.json`
/// (one `llmperf run --results-dir` directory), else every directory below
/// it holding one, except `previous/` runs and the report's own directory.
pub fn find_results(root: &Path) -> Result<Vec<PathBuf>, HtmlError> {
    if root.join(SUMMARY_FILE).is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|error| HtmlError::Io {
            action: "cannot search",
            path: root.to_path_buf(),
            source: error.into(),
        })?;
        if entry.file_name() != SUMMARY_FILE {
            continue;
        }
        let Some(dir) = entry.path().parent() else {
            continue;
        };
        if dir.file_name().is_some_and(|n| n == "previous") {
            continue;
        }
        found.push(dir.to_path_buf());
    }
    if found.is_empty() {
        return Err(HtmlError::NoResults(root.to_path_buf()));
    }
    Ok(found)
}

fn templates(options: &HtmlOptions) -> Result<tera::Tera, HtmlError> {
    let mut tera = tera::Tera::default();
    let mut sources: Vec<(String, String)> = TEMPLATES
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    if let Some(dir) = &options.templates {
        for (name, text) in &mut sources {
            let path = dir.join(&*name);
            if path.exists() {
                *text = std::fs::read_to_string(&path).map_err(|source| HtmlError::Io {
                    action: "cannot read the template",
                    path,
                    source,
                })?;
            }
        }
    }
    tera.add_raw_templates(sources)
        .map_err(|e| HtmlError::Template(error_chain(&e)))?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn render(tera: &tera::Tera, name: &str, context: Value) -> Result<String, HtmlError> {
    let context =
        tera::Context::from_value(context).map_err(|e| HtmlError::Template(error_chain(&e)))?;
    tera.render(name, &context)
        .map_err(|e| HtmlError::Template(error_chain(&e)))
}

/// The file name of a benchmark's page: its id with `/` as `__` and
/// anything unusual replaced, plus `.html`.
pub fn page_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| match c {
            '/' => '~',
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => c,
            _ => '_',
        })
        .collect();
    let safe = safe.replace('~', "__");
    if safe.len() <= 120 {
        return format!("{safe}.html");
    }
    // File names have a length limit: keep the start, and tell ids apart
    // by a hash of the whole (FNV-1a).
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}.html", &safe[..100])
}

/// Renders one benchmark's page into a string.
pub fn render_page(result: &StoredResult, options: &HtmlOptions) -> Result<String, HtmlError> {
    let tera = templates(options)?;
    render(&tera, "benchmark.html", page::context(result, options))
}

/// Removes pages an earlier report wrote into `out` that this one did not
/// (a renamed benchmark's), only in a directory marked as an llmperf
/// report, then marks it.
fn remove_stale_pages(out: &Path, written: &[PathBuf]) {
    let marker = out.join(REPORT_MARKER);
    if marker.exists() {
        if let Ok(entries) = std::fs::read_dir(out) {
            for entry in entries.flatten() {
                let path = entry.path();
                let page = path.extension().is_some_and(|e| e == "html")
                    && path.file_name().is_some_and(|n| n != "index.html");
                if page && !written.contains(&path) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    let _ = std::fs::write(
        &marker,
        "written by llmperf report: stale pages here are removed\n",
    );
}

/// Renders the report of every result under `results_root` into `out`:
/// `index.html` (newest first) and one page per benchmark. A result that
/// cannot be read is left out with a warning, and listed in the index.
pub fn render_report(
    results_root: &Path,
    out: &Path,
    options: &HtmlOptions,
) -> Result<ReportPages, HtmlError> {
    let tera = templates(options)?;
    let dirs = find_results(results_root)?;
    std::fs::create_dir_all(out).map_err(|source| HtmlError::Io {
        action: "cannot create the report directory",
        path: out.to_path_buf(),
        source,
    })?;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| HtmlError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        })
    };
    let mut pages = Vec::new();
    let mut rows: Vec<(String, Value)> = Vec::new();
    let mut unreadable = Vec::new();
    let mut used_names = std::collections::BTreeSet::from(["index.html".to_string()]);
    // One result at a time: its records are dropped once its page is written.
    for dir in dirs {
        let result = match StoredResult::read(&dir) {
            Ok(result) => result,
            Err(error) => {
                // One bad or old result must not hide every other one.
                eprintln!("warning: {} left out of the report: {error}", dir.display());
                unreadable
                    .push(json!({"dir": dir.display().to_string(), "error": error.to_string()}));
                continue;
            }
        };
        if let Some(error) = &result.server_error {
            // Shown on its page too; the rest of the result still is.
            eprintln!(
                "warning: {}: server metrics left out of its page: {error}",
                dir.display()
            );
        }
        let base = page_name(&result.summary.benchmark);
        let mut name = base.clone();
        // Two results of one id (two run directories) keep two pages.
        let mut n = 1;
        while !used_names.insert(name.clone()) {
            n += 1;
            name = format!("{}-{n}.html", base.trim_end_matches(".html"));
        }
        let path = out.join(&name);
        write(
            &path,
            render(&tera, "benchmark.html", page::context(&result, options))?,
        )?;
        rows.push((
            result.summary.started_at.clone(),
            page::index_row(&result, &name),
        ));
        pages.push(path);
    }
    if rows.is_empty() {
        return Err(HtmlError::NoResults(results_root.to_path_buf()));
    }
    // Newest first; RFC 3339 UTC strings sort as times do.
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    let rows: Vec<Value> = rows.into_iter().map(|(_, row)| row).collect();
    remove_stale_pages(out, &pages);
    let index = out.join("index.html");
    write(
        &index,
        render(
            &tera,
            "index.html",
            json!({
                "title": "llmperf report",
                "generated_by": format!("llmperf {}", env!("CARGO_PKG_VERSION")),
                "results_root": results_root.display().to_string(),
                "benchmarks": rows,
                "unreadable": unreadable,
            }),
        )?,
    )?;
    Ok(ReportPages { index, pages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::synthetic::Synthetic;
    use crate::results::{write_summary, RecordWriter};

    fn store(dir: &Path, id: &str) {
        let synthetic = Synthetic::new(30, 100.0, 1);
        let mut writer = RecordWriter::create(dir).unwrap();
        for record in synthetic.records() {
            writer.write(&record).unwrap();
        }
        let mut result = synthetic.baseline("x").result;
        result.benchmark = id.to_string();
        write_summary(dir, &result).unwrap();
    }

    /// A digest holding only gauges: `waiting` and `kv` at their peak.
    fn gauges(waiting: f64, kv: Option<f64>) -> crate::metrics::server::ServerDigest {
        use crate::metrics::server::GaugeDigest;
        let gauge = |metric: &str, max: f64| GaugeDigest {
            metric: metric.to_string(),
            mean: max / 2.0,
            max,
        };
        let mut gauges = std::collections::BTreeMap::from([(
            "waiting_requests".to_string(),
            gauge("w", waiting),
        )]);
        if let Some(kv) = kv {
            gauges.insert("kv_cache_usage".to_string(), gauge("kv", kv));
        }
        crate::metrics::server::ServerDigest {
            sources: vec!["http://127.0.0.1:8000/metrics".to_string()],
            servers: vec!["vllm".to_string()],
            scrapes: 10,
            failed_scrapes: 0,
            window_s: 2.5,
            gauges,
            counters: Default::default(),
            histograms: Default::default(),
            versus_client: None,
        }
    }

    #[test]
    fn a_sweeps_curve_table_has_the_servers_peak_waiting_and_kv_cache() {
        let synthetic = Synthetic::new(20, 100.0, 1);
        let mut summary = synthetic.baseline("x").result;
        let mut second = summary.levels[0].clone();
        second.index = 1;
        second.level = crate::spec::Level::Concurrency { concurrency: 8 };
        summary.levels[0].server = Some(gauges(0.0, Some(0.25)));
        second.server = Some(gauges(14.0, None));
        summary.levels.push(second);
        summary.sweep = Some(crate::metrics::SweepSummary::of(&summary.levels, &[]));
        let result = StoredResult {
            dir: PathBuf::from("/nonexistent"),
            summary,
            records: Vec::new(),
            comparison: None,
            comparison_error: None,
            server: None,
            server_error: None,
        };
        let page = render_page(&result, &HtmlOptions::default()).unwrap();
        let sweep = &page[page.find(r#"<section id="sweep">"#).unwrap()..];
        let sweep = &sweep[..sweep.find("</table>").unwrap()];
        assert!(sweep.contains("<th>peak waiting (server)</th><th>KV cache max</th>"));
        assert!(sweep.contains("<td>0</td><td>25.0%</td>"), "{sweep}");
        assert!(sweep.contains("<td>14</td><td>-</td>"), "{sweep}");

        // Without server figures the columns are not there.
        let mut plain = result.clone();
        plain
            .summary
            .levels
            .iter_mut()
            .for_each(|l| l.server = None);
        let page = render_page(&plain, &HtmlOptions::default()).unwrap();
        assert!(!page.contains("peak waiting") && !page.contains("KV cache max"));
    }

    #[test]
    fn page_names_are_safe_short_and_distinct() {
        assert_eq!(page_name("chat/token_lengths"), "chat__token_lengths.html");
        assert_eq!(page_name("a b/<c>"), "a_b___c_.html");
        let long_a = format!("{}/{}", "g".repeat(150), "a".repeat(150));
        let long_b = format!("{}/{}", "g".repeat(150), "b".repeat(150));
        let (a, b) = (page_name(&long_a), page_name(&long_b));
        assert!(a.len() <= 125, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_bad_result_is_left_out_and_listed_and_index_keeps_its_name() {
        let root = tempfile::tempdir().unwrap();
        store(&root.path().join("index/new"), "index");
        store(&root.path().join("report/latency/new"), "report/latency");
        let bad = root.path().join("old/x/new");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(SUMMARY_FILE), r#"{"schema_version":1}"#).unwrap();
        let out = root.path().join("report");
        let pages = render_report(root.path(), &out, &HtmlOptions::default()).unwrap();
        // Both good results have pages; the one named `index` does not
        // overwrite the index, and a group named `report` is not skipped.
        assert_eq!(pages.pages.len(), 2, "{pages:?}");
        assert!(pages.pages.contains(&out.join("index-2.html")), "{pages:?}");
        assert!(pages.pages.contains(&out.join("report__latency.html")));
        let index = std::fs::read_to_string(&pages.index).unwrap();
        assert!(index.contains("index-2.html"));
        assert!(
            index.contains("missing field"),
            "the bad result is listed with why"
        );
        // A page left from an earlier report is removed.
        std::fs::write(out.join("renamed__bench.html"), "old").unwrap();
        render_report(root.path(), &out, &HtmlOptions::default()).unwrap();
        assert!(!out.join("renamed__bench.html").exists());
    }
}
