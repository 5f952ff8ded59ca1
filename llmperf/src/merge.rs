//! `llmperf merge`: the shards of one run ([`crate::shard`]) as one result.
//!
//! The shards must belong together: the same benchmark, the same whole-run
//! configuration, the same shard count, each index exactly once (a missing
//! shard, or one without a `summary.json` because it did not finish, is an
//! error unless partial merges are allowed; the result then names what is
//! missing). Their records are put on one timeline, by the wall clock each
//! shard noted at its start (`started_at_unix_us`), and every level's
//! figures are computed from the union of its records by the same code as
//! a single run's ([`crate::run`]): percentiles are never averaged, and
//! the merge of one shard is that shard's result.
//!
//! An answer that states another shard's validation number is a mismatch
//! in its own shard (which cannot know the other shard's requests); the
//! merge looks the number up among all shards' requests of the level and,
//! found, makes it the cross-over it is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::load::Stop;
use crate::record::{RequestRecord, ValidationOutcome};
use crate::results::{
    self, MergeInfo, MergedShard, RecordWriter, ResultsError, SummaryFile, REQUESTS_FILE,
    SUMMARY_FILE,
};

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A results file could not be read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The shards do not make one run.
    #[error("{0}")]
    Mismatched(String),
}

fn mismatched(message: impl Into<String>) -> MergeError {
    MergeError::Mismatched(message.into())
}

/// The results directories among `paths`: each path that holds a
/// `summary.json` or `requests.jsonl` is one; any other directory stands
/// for those of its subdirectories that are (a parent holding the shards),
/// leaving out `out` and earlier merges.
pub fn find_shards(paths: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, MergeError> {
    let is_results =
        |dir: &Path| dir.join(SUMMARY_FILE).exists() || dir.join(REQUESTS_FILE).exists();
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let mut dirs = Vec::new();
    for path in paths {
        if same(path, out) {
            return Err(mismatched(format!(
                "--out {} is one of the paths to merge: write the merge elsewhere (e.g. {}/merged)",
                out.display(),
                path.display()
            )));
        }
        if !path.is_dir() {
            return Err(mismatched(format!(
                "{} is not a directory: give shards' results directories (llmperf run --shard I/N --results-dir DIR) or a directory holding them",
                path.display()
            )));
        }
        if is_results(path) {
            dirs.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| ResultsError::Io {
            action: "cannot read",
            path: path.clone(),
            source,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|dir| dir.is_dir() && is_results(dir) && !same(dir, out) && !is_merge(dir))
            .collect();
        if found.is_empty() {
            return Err(mismatched(format!(
                "{} holds no results ({SUMMARY_FILE}), nor do its subdirectories",
                path.display()
            )));
        }
        found.sort();
        dirs.extend(found);
    }
    if dirs.iter().any(|dir| same(dir, out)) {
        return Err(mismatched(format!(
            "--out {} is one of the shards: write the merge elsewhere",
            out.display()
        )));
    }
    Ok(dirs)
}

/// Whether `dir` holds an earlier merge (skipped in a parent directory).
fn is_merge(dir: &Path) -> bool {
    results::read_summary(&dir.join(SUMMARY_FILE)).is_ok_and(|summary| summary.merged.is_some())
}

/// One shard as read.
struct ShardResult {
    dir: PathBuf,
    summary: SummaryFile,
    records: Vec<RequestRecord>,
}

/// Merges the shards in `dirs` (see the module docs); `allow_partial`
/// accepts missing or unfinished shards. Returns the merged summary and
/// records, ordered by level and id.
pub fn merge(
    dirs: &[PathBuf],
    allow_partial: bool,
) -> Result<(SummaryFile, Vec<RequestRecord>), MergeError> {
    let mut shards: Vec<ShardResult> = Vec::new();
    let mut unfinished = Vec::new();
    for dir in dirs {
        let summary_path = dir.join(SUMMARY_FILE);
        if !summary_path.exists() {
            unfinished.push(dir.display().to_string());
            continue;
        }
        let summary = results::read_summary(&summary_path)?;
        let records_path = dir.join(REQUESTS_FILE);
        let records = if records_path.exists() {
            results::read_records(&records_path)?
        } else {
            Vec::new()
        };
        shards.push(ShardResult {
            dir: dir.clone(),
            summary,
            records,
        });
    }
    if !unfinished.is_empty() && !allow_partial {
        return Err(mismatched(format!(
            "{} without {SUMMARY_FILE}: the shard did not finish (--allow-partial merges the rest)",
            unfinished.join(", ")
        )));
    }
    if shards.is_empty() {
        return Err(mismatched("no finished shard to merge"));
    }
    for shard in &shards {
        if shard.summary.shard.is_none() {
            return Err(mismatched(format!(
                "{} is not a shard (its {SUMMARY_FILE} names none): merge the results of `llmperf run --shard I/N`",
                shard.dir.display()
            )));
        }
    }
    shards.sort_by_key(|s| s.summary.shard.as_ref().map_or(0, |info| info.index));
    let count = shards[0].summary.shard.as_ref().map_or(1, |s| s.count);
    check_together(&shards, count)?;
    let mut by_index: BTreeMap<u32, &ShardResult> = BTreeMap::new();
    for shard in &shards {
        let index = shard.summary.shard.as_ref().map_or(0, |s| s.index);
        if let Some(other) = by_index.insert(index, shard) {
            return Err(mismatched(format!(
                "{} and {} are both shard {index}/{count}",
                other.dir.display(),
                shard.dir.display()
            )));
        }
    }
    let missing: Vec<u32> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() && !allow_partial {
        let list: Vec<String> = missing.iter().map(|i| format!("{i}/{count}")).collect();
        return Err(mismatched(format!(
            "shard{} {} missing (--allow-partial merges the rest, and says which are missing)",
            if missing.len() > 1 { "s" } else { "" },
            list.join(", ")
        )));
    }
    let starts: Vec<u64> = shards
        .iter()
        .map(|s| {
            s.summary.started_at_unix_us.ok_or_else(|| {
                mismatched(format!(
                    "{} has no start time to line it up by (written by an older llmperf): run the shards again",
                    s.dir.display()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let origin = starts.iter().copied().min().unwrap_or(0);

    // Every shard's records on the earliest shard's timeline.
    let mut records: Vec<RequestRecord> = Vec::new();
    let mut merged_shards = Vec::new();
    for (shard, start) in shards.iter().zip(&starts) {
        let offset = start - origin;
        let info = shard.summary.shard.as_ref();
        let first_send = shard.records.iter().map(|r| r.sent_us).min().unwrap_or(0);
        merged_shards.push(MergedShard {
            index: info.map_or(0, |s| s.index),
            path: shard.dir.display().to_string(),
            first_send_offset_ms: (offset + first_send) as f64 / 1e3,
            ready_late_ms: info.and_then(|s| s.ready_late_ms),
            requests: shard.records.len() as u64,
            cpus: shard.summary.environment.cpus,
        });
        let index = info.map_or(0, |s| s.index);
        records.extend(
            shard
                .records
                .iter()
                .cloned()
                .map(|r| shifted(r, offset, index, count)),
        );
    }
    let first = merged_shards
        .iter()
        .map(|s| s.first_send_offset_ms)
        .fold(f64::INFINITY, f64::min);
    for shard in &mut merged_shards {
        shard.first_send_offset_ms -= first;
    }
    settle_cross_overs(&mut records);
    records.sort_by_key(|r| (r.level, r.id));

    let first = &shards[0];
    let config = first.summary.config.clone();
    let whole_levels = config.load.fixed_levels();
    let level_count = shards
        .iter()
        .map(|s| s.summary.levels.len())
        .max()
        .unwrap_or(0);
    let mut levels = Vec::with_capacity(level_count);
    for index in 0..level_count {
        let level_records: Vec<RequestRecord> = records
            .iter()
            .filter(|r| r.level as usize == index)
            .cloned()
            .collect();
        let parts: Vec<(u32, &crate::metrics::LevelResult)> = shards
            .iter()
            .filter_map(|s| {
                let shard_index = s.summary.shard.as_ref().map_or(0, |i| i.index);
                s.summary.levels.get(index).map(|l| (shard_index, l))
            })
            .collect();
        let Some((_, template)) = parts.first() else {
            continue;
        };
        let level = whole_levels.get(index).copied().unwrap_or(template.level);
        let mut result = crate::metrics::level_result(
            index as u32,
            level,
            merged_stop(&parts),
            &level_records,
            &config.slos,
        );
        for (shard_index, part) in &parts {
            if count == 1 {
                result.notes.extend(part.notes.iter().cloned());
            } else {
                result.notes.extend(
                    part.notes
                        .iter()
                        .map(|n| format!("shard {shard_index}: {n}")),
                );
            }
            if count > 1 && part.stop != result.stop {
                result.notes.push(format!(
                    "shard {shard_index} ended this level otherwise: {}",
                    stop_words(&part.stop)
                ));
            }
        }
        // Every shard scraped the same server over about the same window:
        // the first shard's digest stands for the level, its figures held
        // against the merged client's.
        if let Some((shard_index, part)) = parts.iter().find(|(_, p)| p.server.is_some()) {
            result.server = part.server.clone().map(|mut digest| {
                let received = level_records
                    .iter()
                    .map(|r| u64::from(r.output_tokens()))
                    .sum();
                digest.compare_with(&result.summary, received);
                digest
            });
            if count > 1 {
                result.notes.push(format!(
                    "server metrics: shard {shard_index}'s scrapes (its server_metrics.jsonl stays in its directory)"
                ));
            }
        }
        if parts.len() < shards.len() {
            result.notes.push(format!(
                "only {} of the {} shards merged ran this level",
                parts.len(),
                shards.len()
            ));
        }
        levels.push(result);
    }
    let earliest = shards
        .iter()
        .zip(&starts)
        .min_by_key(|(_, start)| **start)
        .map(|(s, _)| s.summary.started_at.clone())
        .unwrap_or_default();
    // The first shard's machine; each shard's CPUs are in `merged.shards`.
    let environment = first.summary.environment.clone();
    let summary = results::assemble(
        SummaryFile {
            schema_version: results::SCHEMA_VERSION,
            tool: results::ToolInfo::default(),
            benchmark: first.summary.benchmark.clone(),
            started_at: earliest,
            started_at_unix_us: Some(origin),
            interrupted: shards.iter().any(|s| s.summary.interrupted),
            config,
            environment,
            summary: crate::metrics::Summary::of(&[]),
            headline_level: 0,
            levels: Vec::new(),
            sweep: None,
            shard: None,
            merged: Some(MergeInfo {
                count,
                shards: merged_shards,
                missing,
            }),
        },
        levels,
    );
    Ok((summary, records))
}

/// Refuses shards that are not of one run: another benchmark, another
/// count, or another configuration (the built-in endpoint's address aside,
/// when each shard started its own).
fn check_together(shards: &[ShardResult], count: u32) -> Result<(), MergeError> {
    let Some(first) = shards.first() else {
        return Ok(());
    };
    let comparable = |summary: &SummaryFile| -> serde_json::Value {
        let mut value = serde_json::to_value(&summary.config).unwrap_or_default();
        if summary.config.builtin_endpoint {
            if let Some(fields) = value.as_object_mut() {
                fields.remove("base_url");
            }
        }
        value
    };
    let reference = comparable(&first.summary);
    for shard in &shards[1..] {
        let here = shard.summary.shard.as_ref().map_or(1, |s| s.count);
        if here != count {
            return Err(mismatched(format!(
                "{} is a shard of {here}, {} of {count}: shards of different runs",
                shard.dir.display(),
                first.dir.display()
            )));
        }
        if shard.summary.benchmark != first.summary.benchmark {
            return Err(mismatched(format!(
                "{} ran `{}`, {} ran `{}`: shards of different benchmarks",
                shard.dir.display(),
                shard.summary.benchmark,
                first.dir.display(),
                first.summary.benchmark
            )));
        }
        let value = comparable(&shard.summary);
        if value != reference {
            let differing: Vec<String> = match (value.as_object(), reference.as_object()) {
                (Some(a), Some(b)) => a
                    .iter()
                    .filter(|(key, v)| b.get(*key) != Some(*v))
                    .map(|(key, _)| key.clone())
                    .collect(),
                _ => Vec::new(),
            };
            return Err(mismatched(format!(
                "{} and {} ran different configurations ({}): shards of one run share every flag but --shard",
                first.dir.display(),
                shard.dir.display(),
                differing.join(", ")
            )));
        }
    }
    Ok(())
}

/// `record` of shard `index` of `count` with every time moved `offset` µs
/// later, and its connection id made unique across shards (each numbers
/// its connections from 1).
fn shifted(mut record: RequestRecord, offset: u64, index: u32, count: u32) -> RequestRecord {
    if let Some(connection) = record.connection.as_mut() {
        connection.id = connection
            .id
            .saturating_mul(u64::from(count))
            .saturating_add(u64::from(index));
    }
    if offset == 0 {
        return record;
    }
    let later = |at: u64| at.saturating_add(offset);
    record.scheduled_us = later(record.scheduled_us);
    record.sent_us = later(record.sent_us);
    record.headers_us = record.headers_us.map(later);
    record.first_token_us = record.first_token_us.map(later);
    record.first_reasoning_us = record.first_reasoning_us.map(later);
    record.end_us = later(record.end_us);
    for at in &mut record.content_events_us {
        *at = later(*at);
    }
    record
}

/// Makes each shard's mismatch or truncation that states another shard's
/// validation number a cross-over when a request of the same level drew
/// that number (else it stays what it was, as in an unsharded run).
fn settle_cross_overs(records: &mut [RequestRecord]) {
    let numbers: HashMap<(u32, u64), u64> = records
        .iter()
        .filter_map(|r| r.validation.as_ref().map(|v| ((r.level, v.expected), r.id)))
        .collect();
    for record in records.iter_mut() {
        let (level, id) = (record.level, record.id);
        let Some(validation) = record.validation.as_mut() else {
            continue;
        };
        if !matches!(
            validation.outcome,
            ValidationOutcome::Mismatch | ValidationOutcome::Truncated
        ) {
            continue;
        }
        let Some(number) = validation.other_number else {
            continue;
        };
        match numbers.get(&(level, number)) {
            Some(&other) if other != id => {
                validation.outcome = ValidationOutcome::CrossOver;
                validation.other_request_id = Some(other);
            }
            _ => validation.other_number = None,
        }
    }
}

/// How a merged level ended: as every shard's did when they agree, else
/// the first stop that is not completion (the others go into notes).
fn merged_stop(parts: &[(u32, &crate::metrics::LevelResult)]) -> Stop {
    parts
        .iter()
        .map(|(_, part)| &part.stop)
        .find(|stop| **stop != Stop::Completed)
        .or_else(|| parts.first().map(|(_, part)| &part.stop))
        .cloned()
        .unwrap_or(Stop::Completed)
}

fn stop_words(stop: &Stop) -> String {
    match stop {
        Stop::Completed => "every planned request was sent".to_string(),
        Stop::Duration => "its duration ran out".to_string(),
        Stop::Interrupted => "interrupted".to_string(),
        other => other.message().unwrap_or_default(),
    }
}

/// Writes a merge into `out`: `requests.jsonl`, then `summary.json`.
pub fn write(
    out: &Path,
    summary: &SummaryFile,
    records: &[RequestRecord],
) -> Result<PathBuf, ResultsError> {
    let mut writer = RecordWriter::create(out)?;
    for record in records {
        writer.write(record)?;
    }
    results::write_summary(out, summary)
}
