//! HTML reports: an index of every benchmark under a results directory and
//! one self-contained page per benchmark, rendered with tera templates and
//! plotters charts (inline SVG).
//!
//! The templates in the repository's `templates/` are compiled in, so a
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
use crate::results::{self, SummaryFile, REQUESTS_FILE, SUMMARY_FILE};

mod page;

/// The compiled-in templates: (name, text).
const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../../../templates/base.html")),
    ("index.html", include_str!("../../../templates/index.html")),
    (
        "benchmark.html",
        include_str!("../../../templates/benchmark.html"),
    ),
    ("style.css", include_str!("../../../templates/style.css")),
];

/// The comparison file a compared run writes beside its `summary.json`.
pub const COMPARISON_FILE: &str = "comparison.json";

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
        // A comparison that cannot be read is left out, not fatal: the
        // result itself is what the page is about.
        let comparison = std::fs::read_to_string(dir.join(COMPARISON_FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        Ok(StoredResult {
            dir: dir.to_path_buf(),
            summary,
            records,
            comparison,
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
    format!("{}.html", safe.replace('~', "__"))
}

/// Renders one benchmark's page into a string.
pub fn render_page(result: &StoredResult, options: &HtmlOptions) -> Result<String, HtmlError> {
    let tera = templates(options)?;
    render(&tera, "benchmark.html", page::context(result, options))
}

/// Renders the report of every result under `results_root` into `out`:
/// `index.html` (newest first) and one page per benchmark.
pub fn render_report(
    results_root: &Path,
    out: &Path,
    options: &HtmlOptions,
) -> Result<ReportPages, HtmlError> {
    let tera = templates(options)?;
    let mut entries = Vec::new();
    for dir in find_results(results_root)? {
        if dir.starts_with(out) {
            continue;
        }
        let result = StoredResult::read(&dir)?;
        entries.push(result);
    }
    if entries.is_empty() {
        return Err(HtmlError::NoResults(results_root.to_path_buf()));
    }
    // Newest first; RFC 3339 UTC strings sort as times do.
    entries.sort_by(|a, b| {
        b.summary
            .started_at
            .cmp(&a.summary.started_at)
            .then_with(|| a.summary.benchmark.cmp(&b.summary.benchmark))
    });
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
    let mut rows = Vec::new();
    let mut used_names = std::collections::BTreeSet::new();
    for result in &entries {
        let mut name = page_name(&result.summary.benchmark);
        // Two results of one id (two run directories) keep two pages.
        let mut n = 1;
        while !used_names.insert(name.clone()) {
            n += 1;
            name = format!(
                "{}-{n}.html",
                page_name(&result.summary.benchmark).trim_end_matches(".html")
            );
        }
        let path = out.join(&name);
        write(
            &path,
            render(&tera, "benchmark.html", page::context(result, options))?,
        )?;
        rows.push(page::index_row(result, &name));
        pages.push(path);
    }
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
            }),
        )?,
    )?;
    Ok(ReportPages { index, pages })
}
