//! Results on disk: `summary.json` and `requests.jsonl`.
//!
//! These files are the interface between a run and everything after it
//! (reports, baselines, comparisons). `summary.json` carries
//! [`SCHEMA_VERSION`]; readers refuse a newer version with a clear error.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::metrics::server::ScrapeLine;
use crate::metrics::{LevelResult, Summary, SweepSummary};
use crate::record::RequestRecord;
use crate::shard::ShardInfo;
use crate::spec::BenchmarkConfig;

/// Version of the `summary.json` / `requests.jsonl` schema.
pub const SCHEMA_VERSION: u32 = 1;
/// File name of the summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// File name of the per-request records.
pub const REQUESTS_FILE: &str = "requests.jsonl";
/// File name of the server's metrics, scrape by scrape ([`ScrapeLine`]).
pub const SERVER_METRICS_FILE: &str = "server_metrics.jsonl";

/// A results file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
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
    /// The file is not a valid file of its kind.
    #[error("{path} is not a valid llmperf {what}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should have been (`results file`, `baseline`).
        what: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The file was written by a newer llmperf.
    #[error("{path} has {schema} version {found}, newer than this llmperf understands ({supported}): upgrade llmperf")]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Which schema (`schema`, `baseline schema`).
        schema: &'static str,
        /// Its version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
}

/// A versioned JSON file llmperf reads: what it is called in errors, and
/// where its schema versions stand (a JSON pointer, the schema's name, the
/// newest version this build reads) — a baseline holds a results file, so
/// it has two.
pub(crate) struct Versioned {
    pub(crate) what: &'static str,
    pub(crate) versions: &'static [(&'static str, &'static str, u32)],
}

/// `summary.json`.
const SUMMARY_KIND: Versioned = Versioned {
    what: "results file",
    versions: &[("/schema_version", "schema", SCHEMA_VERSION)],
};

impl Versioned {
    /// Reads the JSON file at `path`, refusing a version newer than this
    /// build reads; `parse` turns the checked value into its type.
    pub(crate) fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<T, ResultsError> {
        let text = fs::read_to_string(path).map_err(|source| ResultsError::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| self.corrupt(path, e.to_string()))?;
        for &(pointer, schema, supported) in self.versions {
            let found = value
                .pointer(pointer)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| {
                    let field = pointer.trim_start_matches('/').replace('/', ".");
                    self.corrupt(path, format!("no {field}"))
                })?;
            if found > u64::from(supported) {
                return Err(ResultsError::NewerSchema {
                    path: path.to_path_buf(),
                    schema,
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    supported,
                });
            }
        }
        serde_json::from_value(value).map_err(|e| self.corrupt(path, e.to_string()))
    }

    /// The error for a file of this kind that is not valid.
    pub(crate) fn corrupt(&self, path: &Path, message: String) -> ResultsError {
        ResultsError::Corrupt {
            path: path.to_path_buf(),
            what: self.what,
            message,
        }
    }
}

/// The tool that wrote a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `llmperf`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Default for ToolInfo {
    fn default() -> Self {
        ToolInfo {
            name: "llmperf".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// `cargo bench` (measuring).
    Bench,
    /// A smoke test (`cargo test --benches`).
    Test,
    /// `llmperf run`, or the library called directly.
    #[default]
    Run,
}

/// Where a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// What started the run.
    pub mode: RunMode,
}

impl Environment {
    /// This machine, in the given mode.
    pub fn current(mode: RunMode) -> Self {
        Environment {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mode,
        }
    }
}

/// The contents of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryFile {
    /// [`SCHEMA_VERSION`] at writing.
    pub schema_version: u32,
    /// The writer.
    pub tool: ToolInfo,
    /// The benchmark id (`group/name`).
    pub benchmark: String,
    /// Wall-clock start, RFC 3339 UTC (for people; durations use a monotonic clock).
    pub started_at: String,
    /// The wall clock, in µs since the Unix epoch, at the instant record
    /// times count from: how `llmperf merge` lines shards up. Only the
    /// merged throughput window depends on machines' clocks agreeing; every
    /// per-request latency is measured on one machine's monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_unix_us: Option<u64>,
    /// Whether the run was interrupted (Ctrl-C) before all requests ran.
    pub interrupted: bool,
    /// What the run was asked to do (no secrets).
    pub config: BenchmarkConfig,
    /// Where it ran.
    pub environment: Environment,
    /// The headline figures: the only level's, or a sweep's knee (its
    /// first level when no level met the objectives). A copy of
    /// `levels[headline_level].summary`.
    pub summary: Summary,
    /// Which level `summary` is.
    #[serde(default)]
    pub headline_level: u32,
    /// Every level run, in order, with its full summary and objectives.
    #[serde(default)]
    pub levels: Vec<LevelResult>,
    /// The curve across levels and the knee (sweeps only).
    #[serde(default)]
    pub sweep: Option<SweepSummary>,
    /// Which shard of a sharded run this is (`llmperf run --shard I/N`);
    /// `config` is the whole run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The shards this result was merged from (`llmperf merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
}

impl SummaryFile {
    /// Validation cross-overs over every level (warmup and cooldown
    /// included: a cross-over is never excused).
    pub fn cross_overs(&self) -> u64 {
        self.levels
            .iter()
            .filter_map(|level| level.summary.validation.as_ref())
            .map(|validation| validation.cross_overs)
            .sum()
    }
}

/// Appends records to `requests.jsonl` as requests finish, flushing each
/// line so an interrupted run keeps every finished request.
pub struct RecordWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl RecordWriter {
    /// Creates (truncates) `dir/requests.jsonl`, creating `dir` as needed,
    /// and removes an older `summary.json` and `server_metrics.jsonl`
    /// there, so a run killed before its end never leaves new records
    /// beside an old summary or another run's scrapes.
    pub fn create(dir: &Path) -> Result<Self, ResultsError> {
        fs::create_dir_all(dir).map_err(|source| ResultsError::Io {
            action: "cannot create the results directory",
            path: dir.to_path_buf(),
            source,
        })?;
        for stale in [SUMMARY_FILE, SERVER_METRICS_FILE] {
            let stale = dir.join(stale);
            match fs::remove_file(&stale) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ResultsError::Io {
                        action: "cannot remove the previous",
                        path: stale,
                        source,
                    })
                }
            }
        }
        let path = dir.join(REQUESTS_FILE);
        let file = File::create(&path).map_err(|source| ResultsError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        Ok(RecordWriter {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Writes one record as one line.
    pub fn write(&mut self, record: &RequestRecord) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io {
            action: "cannot write",
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, record).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// Appends scrapes to `server_metrics.jsonl`, a line each, flushed.
pub struct ScrapeWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ScrapeWriter {
    /// Creates (truncates) `dir/server_metrics.jsonl`.
    pub fn create(dir: &Path) -> Result<Self, ResultsError> {
        let path = dir.join(SERVER_METRICS_FILE);
        let file = File::create(&path).map_err(|source| ResultsError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        Ok(ScrapeWriter {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Writes one scrape as one line.
    pub fn write(&mut self, line: &ScrapeLine) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io {
            action: "cannot write",
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, line).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// Reads a `server_metrics.jsonl`. A truncated last line (an interrupted
/// write) is skipped; any other bad line is an error naming it.
pub fn read_scrapes(path: &Path) -> Result<Vec<ScrapeLine>, ResultsError> {
    read_lines(path)
}

/// Reads a `server_metrics.jsonl` one line at a time, handing each scrape
/// to `each` in file order, so a long run's scrapes are never all in memory
/// (a truncated last line is skipped; any other bad line is an error
/// naming it).
///
/// ```
/// use llmperf::results::{for_each_scrape, ScrapeLine, ScrapeWriter, SERVER_METRICS_FILE};
/// let dir = tempfile::tempdir()?;
/// let mut writer = ScrapeWriter::create(dir.path())?;
/// for round in 0..3 {
///     writer.write(&ScrapeLine { round, source: 0, t_us: round * 1_000_000, level: Some(0),
///         url: None, duration_ms: None, new: Vec::new(), values: Vec::new(), error: None })?;
/// }
/// let mut rounds = Vec::new();
/// for_each_scrape(&dir.path().join(SERVER_METRICS_FILE), |line| rounds.push(line.round))?;
/// assert_eq!(rounds, [0, 1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn for_each_scrape(path: &Path, each: impl FnMut(ScrapeLine)) -> Result<(), ResultsError> {
    for_each_line(path, each)
}

/// Writes `summary.json` into `dir` (atomically: a temporary file renamed).
pub fn write_summary(dir: &Path, summary: &SummaryFile) -> Result<PathBuf, ResultsError> {
    fs::create_dir_all(dir).map_err(|source| ResultsError::Io {
        action: "cannot create the results directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(SUMMARY_FILE);
    let temporary = dir.join(".summary.json.tmp");
    let text = serde_json::to_string_pretty(summary)
        .map_err(|e| SUMMARY_KIND.corrupt(&path, e.to_string()))?;
    fs::write(&temporary, text + "\n").map_err(|source| ResultsError::Io {
        action: "cannot write",
        path: temporary.clone(),
        source,
    })?;
    fs::rename(&temporary, &path).map_err(|source| ResultsError::Io {
        action: "cannot write",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Reads a `summary.json`, refusing newer schema versions.
pub fn read_summary(path: &Path) -> Result<SummaryFile, ResultsError> {
    SUMMARY_KIND.read(path)
}

/// Reads every record of a `requests.jsonl`. A truncated last line (an
/// interrupted write) is skipped; any other bad line is an error naming it.
pub fn read_records(path: &Path) -> Result<Vec<RequestRecord>, ResultsError> {
    read_lines(path)
}

/// Reads a JSON-lines results file (see [`for_each_line`]).
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, ResultsError> {
    let mut items = Vec::new();
    for_each_line(path, |item| items.push(item))?;
    Ok(items)
}

/// Reads a JSON-lines results file line by line, handing each item to
/// `each`. A truncated last line (an interrupted write) is skipped; any
/// other bad line is an error naming it. A bad line is only known to be
/// the last when the file ends after it, so its error waits for the next
/// line.
fn for_each_line<T: serde::de::DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(T),
) -> Result<(), ResultsError> {
    let file = File::open(path).map_err(|source| ResultsError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut pending: Option<ResultsError> = None;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| ResultsError::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(error) = pending.take() {
            return Err(error);
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(item) => each(item),
            Err(error) => {
                pending = Some(SUMMARY_KIND.corrupt(path, format!("line {}: {error}", number + 1)))
            }
        }
    }
    Ok(())
}

/// What a merged `summary.json` says about its shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// How many shards the run had.
    pub count: u32,
    /// The shards merged, by index.
    pub shards: Vec<MergedShard>,
    /// Shards missing from the merge (`--allow-partial`), by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u32>,
}

/// One shard of a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Its index.
    pub index: u32,
    /// The directory it was read from.
    pub path: String,
    /// When it sent its first request, in ms after the first shard's
    /// first request (by their wall clocks).
    pub first_send_offset_ms: f64,
    /// How late it was ready for `--start-at`, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_late_ms: Option<f64>,
    /// Its records.
    pub requests: u64,
    /// Logical CPUs of its machine.
    pub cpus: usize,
}

/// `file` with `levels` in place: the sweep's curve and knee (a sweep),
/// and the headline level and its summary.
pub(crate) fn assemble(mut file: SummaryFile, levels: Vec<LevelResult>) -> SummaryFile {
    let sweep = file
        .config
        .load
        .sweep
        .as_ref()
        .map(|_| SweepSummary::of(&levels, &file.config.slos));
    let headline = sweep.as_ref().and_then(|s| s.knee).unwrap_or(0);
    file.summary = levels
        .iter()
        .find(|l| l.index == headline)
        .map(|l| l.summary.clone())
        .unwrap_or_else(|| Summary::of(&[]));
    file.headline_level = headline;
    file.levels = levels;
    file.sweep = sweep;
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(round: u64) -> ScrapeLine {
        ScrapeLine {
            round,
            source: 0,
            t_us: round * 250_000,
            level: Some(0),
            url: None,
            duration_ms: None,
            new: Vec::new(),
            values: vec![Some(round as f64)],
            error: None,
        }
    }

    fn rounds_read(path: &Path) -> Result<Vec<u64>, ResultsError> {
        let mut rounds = Vec::new();
        for_each_scrape(path, |line| rounds.push(line.round))?;
        Ok(rounds)
    }

    #[test]
    fn scrapes_stream_in_order_and_a_truncated_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ScrapeWriter::create(dir.path()).unwrap();
        for round in 0..3 {
            writer.write(&scrape(round)).unwrap();
        }
        drop(writer);
        let path = dir.path().join(SERVER_METRICS_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"round":3,"source":0,"t_us":7"#);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(rounds_read(&path).unwrap(), [0, 1, 2]);
        assert_eq!(read_scrapes(&path).unwrap().len(), 3, "the same rules");
    }

    #[test]
    fn a_bad_line_before_the_last_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SERVER_METRICS_FILE);
        let good = serde_json::to_string(&scrape(0)).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let error = rounds_read(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        // A bad line followed by a blank one is not the last either.
        std::fs::write(&path, format!("{good}\nnot json\n\n")).unwrap();
        assert!(rounds_read(&path).is_err());
    }
}
