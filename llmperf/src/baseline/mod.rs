//! Baselines: results committed to the repository, and comparisons with
//! them that CI can gate on.
//!
//! A [`Baseline`] is one benchmark's result kept for comparison: its
//! `summary.json` as written, plus per-request [`Samples`] for the
//! statistics. It lives in `benches/baselines/<benchmark id>/<name>.json`
//! ([`BaselineStore`]), written as canonical JSON (sorted keys, numbers
//! rounded to 4 decimals, a versioned schema) so it diffs well in review.
//! It carries the config and environment it was taken under, never a
//! secret (the config holds none).
//!
//! [`compare()`] turns two of them into a [`Comparison`]: per level and
//! metric, the change, its bootstrap confidence interval and a [`Verdict`].
//! Any result can be compared: a baseline file, a `summary.json`, or a
//! results directory (`summary.json` with its `requests.jsonl`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::RequestRecord;
use crate::results::{self, ResultsError, SummaryFile, REQUESTS_FILE, SUMMARY_FILE};

mod bootstrap;
pub mod canonical;
mod catalogue;
pub mod compare;
pub mod samples;
#[doc(hidden)]
pub mod synthetic;

pub use compare::{
    compare, figures, ChangeUnit, CompareSettings, Comparison, Direction, Figure, LevelComparison,
    MetricChange, Verdict,
};
pub use samples::Samples;

/// Version of the baseline file schema.
pub const BASELINE_SCHEMA_VERSION: u32 = 1;

/// A baseline file: its own schema version, and the results file it holds.
const BASELINE_KIND: results::Versioned = results::Versioned {
    what: "baseline",
    versions: &[
        (
            "/schema_version",
            "baseline schema",
            BASELINE_SCHEMA_VERSION,
        ),
        ("/result/schema_version", "schema", results::SCHEMA_VERSION),
    ],
};
/// Where baselines live, relative to the package root, by default.
pub const DEFAULT_BASELINES_DIR: &str = "benches/baselines";
/// The environment variable that moves the baselines directory.
pub const BASELINES_DIR_ENV: &str = "LLMPERF_BASELINES_DIR";

/// A baseline could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// No baseline of that name for that benchmark.
    #[error("no baseline `{name}` for {benchmark} (looked for {path}): save one with `cargo bench -- --save-baseline {name}`, or check --baselines-dir")]
    Missing {
        /// The benchmark id.
        benchmark: String,
        /// The baseline name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A name that cannot be a file name.
    #[error(
        "`{0}` cannot name a baseline: use letters, digits, `.`, `_` and `-` (e.g. main, v1.2)"
    )]
    InvalidName(String),
    /// Comparison settings out of range.
    #[error("{0}")]
    Settings(String),
    /// A baseline or results file that cannot be read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
}

/// One benchmark's result kept for comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`BASELINE_SCHEMA_VERSION`] at writing.
    pub schema_version: u32,
    /// The baseline's name (`main`), or where a result was read from.
    pub name: String,
    /// The run's `summary.json` (config, environment, levels).
    pub result: SummaryFile,
    /// Per level (same order as `result.levels`), the requests behind its
    /// figures; empty when the result came without its `requests.jsonl`.
    pub samples: Vec<Samples>,
}

impl Baseline {
    /// A baseline named `name` of a run's summary and records.
    pub fn of_run(name: &str, result: &SummaryFile, records: &[RequestRecord]) -> Baseline {
        let samples = result
            .levels
            .iter()
            .map(|level| {
                let of_level: Vec<RequestRecord> = records
                    .iter()
                    .filter(|r| r.level == level.index)
                    .cloned()
                    .collect();
                Samples::of(&of_level, level.summary.throughput.window_s)
            })
            .collect();
        Baseline {
            schema_version: BASELINE_SCHEMA_VERSION,
            name: name.to_string(),
            result: result.clone(),
            samples,
        }
    }

    /// Writes the baseline to `path` as canonical JSON (atomically),
    /// creating directories as needed.
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| ResultsError::Io {
                action,
                path,
                source,
            }
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("cannot create the baselines directory", dir))?;
        }
        let text =
            canonical::to_string(self).map_err(|e| BASELINE_KIND.corrupt(path, e.to_string()))?;
        let temporary = path.with_extension("json.tmp");
        fs::write(&temporary, text).map_err(io("cannot write", &temporary))?;
        fs::rename(&temporary, path).map_err(io("cannot write", path))?;
        Ok(())
    }

    /// Reads a baseline file, refusing newer schemas and inconsistent files.
    pub fn read(path: &Path) -> Result<Baseline, BaselineError> {
        let baseline: Baseline = BASELINE_KIND.read(path)?;
        let corrupt = |message: String| BASELINE_KIND.corrupt(path, message);
        if baseline.samples.len() != baseline.result.levels.len() {
            return Err(corrupt(format!(
                "{} levels but samples for {}",
                baseline.result.levels.len(),
                baseline.samples.len()
            ))
            .into());
        }
        if let Some(i) = baseline.samples.iter().position(|s| !s.is_consistent()) {
            return Err(corrupt(format!(
                "the samples of level {i} have columns of different lengths"
            ))
            .into());
        }
        Ok(baseline)
    }

    /// Reads any result: a baseline file, a `summary.json` (with the
    /// `requests.jsonl` beside it when there is one), or a directory
    /// holding them.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let summary_path = if path.is_dir() {
            let summary = path.join(SUMMARY_FILE);
            if !summary.exists() {
                return Err(BASELINE_KIND
                    .corrupt(
                        path,
                        format!(
                            "a directory without {SUMMARY_FILE}: give a results directory (as written by `llmperf run --results-dir` or target/llmperf/<id>/new) or a baseline file"
                        ),
                    )
                    .into());
            }
            summary
        } else {
            let text = fs::read_to_string(path).map_err(|source| ResultsError::Io {
                action: "cannot read",
                path: path.to_path_buf(),
                source,
            })?;
            if looks_like_baseline(&text) {
                return Baseline::read(path);
            }
            path.to_path_buf()
        };
        let result = results::read_summary(&summary_path)?;
        let requests = summary_path.with_file_name(REQUESTS_FILE);
        let name = summary_path
            .parent()
            .unwrap_or(Path::new("."))
            .display()
            .to_string();
        if requests.exists() {
            let records = results::read_records(&requests)?;
            Ok(Baseline::of_run(&name, &result, &records))
        } else {
            Ok(Baseline {
                schema_version: BASELINE_SCHEMA_VERSION,
                name,
                result,
                samples: Vec::new(),
            })
        }
    }
}

fn looks_like_baseline(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|v| v.get("samples").is_some() && v.get("result").is_some())
}

/// Whether `path` holds a baseline file by its shape (an object with
/// `result` and `samples`), valid or not: a JSON file of another kind, or
/// one that is not JSON at all, is not one.
pub fn is_baseline_file(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| looks_like_baseline(&text))
}

/// A directory of baselines: `<dir>/<benchmark id>/<name>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineStore {
    /// The directory.
    pub dir: PathBuf,
}

impl BaselineStore {
    /// The store at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BaselineStore { dir: dir.into() }
    }

    /// The default store: `$LLMPERF_BASELINES_DIR`, else `benches/baselines`
    /// under the package being benchmarked (`CARGO_MANIFEST_DIR`, which
    /// cargo sets for `cargo bench`), else under the working directory.
    pub fn default_location() -> Self {
        if let Some(dir) = std::env::var_os(BASELINES_DIR_ENV) {
            return BaselineStore::new(dir);
        }
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_default();
        BaselineStore::new(root.join(DEFAULT_BASELINES_DIR))
    }

    /// The file of baseline `name` of benchmark `id`.
    pub fn path(&self, id: &str, name: &str) -> Result<PathBuf, BaselineError> {
        check_name(name)?;
        let mut path = self.dir.clone();
        for part in id.split('/') {
            if part.is_empty() || part == "." || part == ".." || part.contains('\\') {
                return Err(BaselineError::InvalidName(id.to_string()));
            }
            path.push(part);
        }
        Ok(path.join(format!("{name}.json")))
    }

    /// Saves `baseline` as `name` for benchmark `id`; returns the file.
    pub fn save(
        &self,
        id: &str,
        name: &str,
        baseline: &Baseline,
    ) -> Result<PathBuf, BaselineError> {
        let path = self.path(id, name)?;
        let mut named = baseline.clone();
        named.name = name.to_string();
        named.write(&path)?;
        Ok(path)
    }

    /// Loads baseline `name` of benchmark `id`.
    pub fn load(&self, id: &str, name: &str) -> Result<Baseline, BaselineError> {
        let path = self.path(id, name)?;
        if !path.exists() {
            return Err(BaselineError::Missing {
                benchmark: id.to_string(),
                name: name.to_string(),
                path,
            });
        }
        Baseline::read(&path)
    }
}

/// Checks a baseline name: letters, digits, `.`, `_`, `-`; not starting
/// with `.`; at most 100 characters.
pub fn check_name(name: &str) -> Result<(), BaselineError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BaselineError::InvalidName(name.to_string()))
    }
}

/// Lines differing between two results' configs, environments and tool
/// versions (`config.load.concurrency: 4 → 8`), empty when alike. The
/// built-in endpoint's address (a new port each run) is not a difference.
pub fn differences(baseline: &Baseline, current: &Baseline) -> Vec<String> {
    let flat = |b: &Baseline| {
        let mut out = Vec::new();
        let r = &b.result;
        let mut config = serde_json::to_value(&r.config).unwrap_or_default();
        if let Some(map) = config.as_object_mut() {
            // How to judge a comparison, and where the server's metrics
            // were read, are not part of what was measured.
            map.remove("regression");
            map.remove("server_metrics");
            if r.config.builtin_endpoint {
                map.remove("base_url");
            }
        }
        flatten("config", &config, &mut out);
        let mut environment = serde_json::to_value(&r.environment).unwrap_or_default();
        if let Some(map) = environment.as_object_mut() {
            // Bench, run or test: how it was started, not what it measured.
            map.remove("mode");
        }
        flatten("environment", &environment, &mut out);
        out.push(("llmperf".to_string(), r.tool.version.clone()));
        out
    };
    let (old, new) = (flat(baseline), flat(current));
    let old_map: std::collections::BTreeMap<_, _> = old.into_iter().collect();
    let new_map: std::collections::BTreeMap<_, _> = new.into_iter().collect();
    let mut keys: Vec<&String> = old_map.keys().chain(new_map.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (old_map.get(key), new_map.get(key));
            (a != b).then(|| {
                let show = |v: Option<&String>| v.map_or("(none)".to_string(), Clone::clone);
                format!("{key}: {} → {}", show(a), show(b))
            })
        })
        .collect()
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                flatten(&format!("{prefix}.{key}"), item, out);
            }
        }
        // Short arrays read best whole (`[1, 4, 16]`); long ones item by item.
        serde_json::Value::Array(items) if value.to_string().len() > 100 => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests;
