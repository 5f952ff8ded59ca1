//! What the harness does with baselines around each benchmark: keep the
//! previous run, save and load named baselines, compare, gate, and hand
//! the comparison to the chosen format's reporter.

use std::path::{Path, PathBuf};

use crate::baseline::{compare, Baseline, BaselineError, BaselineStore, Comparison};
use crate::report::export::GateOutcome;
use crate::report::reporter::{Compared, Reporter};
use crate::report::terminal::Palette;
use crate::run::RunOutcome;
use crate::spec::Benchmark;

use super::BenchArgs;

/// The directory of the run before this one, beside `new/`.
const PREVIOUS_DIR: &str = "previous";
/// The comparison written beside a compared run's `summary.json`.
use crate::report::html::COMPARISON_FILE;

/// Whether a comparison's regressions can fail the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gated {
    /// A named baseline (`--baseline`).
    Yes,
    /// The previous run: for information.
    No,
}

/// Baseline work for one harness process.
pub(super) struct Baselines<'a> {
    args: &'a BenchArgs,
    store: BaselineStore,
    palette: Palette,
}

impl<'a> Baselines<'a> {
    /// Checks the baseline names given before anything runs.
    pub(super) fn new(args: &'a BenchArgs, palette: Palette) -> Result<Self, BaselineError> {
        for name in [&args.save_baseline, &args.baseline, &args.load_baseline]
            .into_iter()
            .flatten()
        {
            crate::baseline::check_name(name)?;
        }
        args.compare
            .settings(&crate::spec::RegressionPolicy::default())
            .map_err(|error| BaselineError::Settings(error.to_string()))?;
        let store = match &args.baselines_dir {
            Some(dir) => BaselineStore::new(dir),
            None => BaselineStore::default_location(),
        };
        Ok(Baselines {
            args,
            store,
            palette,
        })
    }

    /// Checks a benchmark's own comparison settings before it runs.
    pub(super) fn check(&self, bench: &Benchmark) -> Result<(), String> {
        self.args
            .compare
            .settings(bench.regression_policy())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    /// Moves the last run's `new/` to `previous/` (replacing an older one)
    /// before `new/` is rewritten; returns `previous/` when it holds a run.
    pub(super) fn keep_previous(&self, new_dir: &Path) -> Option<PathBuf> {
        let previous = new_dir.with_file_name(PREVIOUS_DIR);
        if new_dir.join(crate::results::SUMMARY_FILE).exists() {
            let _ = std::fs::remove_dir_all(&previous);
            if let Err(error) = std::fs::rename(new_dir, &previous) {
                eprintln!(
                    "{} cannot keep the previous run ({}): {error}",
                    self.palette.yellow("warning:"),
                    previous.display()
                );
                return None;
            }
        }
        previous
            .join(crate::results::SUMMARY_FILE)
            .exists()
            .then_some(previous)
    }

    /// Saves, compares and reports a finished run; returns the failures
    /// to count (a missing or unreadable baseline, a failed gate).
    pub(super) fn after_run(
        &self,
        reporter: &mut dyn Reporter,
        id: &str,
        bench: &Benchmark,
        outcome: &RunOutcome,
        previous: Option<&Path>,
        results_dir: Option<&Path>,
    ) -> usize {
        let current = Baseline::of_run("new", &outcome.summary, &outcome.records);
        // Loaded before saving: `--save-baseline main --baseline main`
        // compares with the old `main`, then replaces it.
        let against = match &self.args.baseline {
            Some(name) => match self.named(reporter, id, name) {
                Ok(found) => found.map(|b| (b, Gated::Yes, self.store.path(id, name).ok())),
                Err(error) => {
                    eprintln!("{} {id}: {error}", self.palette.red("error:"));
                    return 1;
                }
            },
            // Without --baseline, the previous run is shown for information.
            None => previous.and_then(|dir| match Baseline::load(dir) {
                Ok(mut found) => {
                    found.name = "the previous run".to_string();
                    Some((found, Gated::No, Some(dir.to_path_buf())))
                }
                Err(error) => {
                    eprintln!(
                        "{} cannot compare with the previous run: {error}",
                        self.palette.yellow("warning:")
                    );
                    None
                }
            }),
        };
        let mut failures = 0;
        if let Some(name) = &self.args.save_baseline {
            match self.store.save(id, name, &current) {
                Ok(path) => {
                    reporter.note(&format!("  saved baseline {name}: {}", path.display()));
                }
                Err(error) => {
                    failures += 1;
                    eprintln!("{} {id}: {error}", self.palette.red("error:"));
                }
            }
        }
        failures + self.report(reporter, id, bench, &current, against.as_ref(), results_dir)
    }

    /// `--load-baseline NAME`: reports a stored baseline as if it had just
    /// run (compared with `--baseline` when given).
    pub(super) fn show_stored(
        &self,
        reporter: &mut dyn Reporter,
        id: &str,
        bench: &Benchmark,
        name: &str,
    ) -> usize {
        let current = match self.store.load(id, name) {
            Ok(found) => found,
            Err(error) => {
                eprintln!("{} {id}: {error}", self.palette.red("error:"));
                return 1;
            }
        };
        reporter.result(&current.result);
        let against = match &self.args.baseline {
            Some(other) => match self.named(reporter, id, other) {
                Ok(found) => found.map(|b| (b, Gated::Yes, self.store.path(id, other).ok())),
                Err(error) => {
                    eprintln!("{} {id}: {error}", self.palette.red("error:"));
                    return 1;
                }
            },
            None => None,
        };
        self.report(reporter, id, bench, &current, against.as_ref(), None)
    }

    /// Baseline `name` of `id`; `None` when it is missing and
    /// `--baseline-lenient` allows that.
    fn named(
        &self,
        reporter: &dyn Reporter,
        id: &str,
        name: &str,
    ) -> Result<Option<Baseline>, BaselineError> {
        match self.store.load(id, name) {
            Ok(found) => Ok(Some(found)),
            Err(BaselineError::Missing { .. }) if self.args.baseline_lenient => {
                reporter.note(&format!(
                    "  no baseline {name} for {id} yet: nothing to compare with"
                ));
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    fn report(
        &self,
        reporter: &mut dyn Reporter,
        id: &str,
        bench: &Benchmark,
        current: &Baseline,
        against: Option<&(Baseline, Gated, Option<PathBuf>)>,
        results_dir: Option<&Path>,
    ) -> usize {
        let policy = bench.regression_policy();
        let settings = match self.args.compare.settings(policy) {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("{} {id}: {error}", self.palette.red("error:"));
                return 1;
            }
        };
        let comparison: Option<Comparison> = against.map(|(baseline, _, source)| {
            let mut c = compare(baseline, current, &settings);
            c.baseline_source = source.as_ref().map(|p| p.display().to_string());
            c
        });
        let gated = matches!(against, Some((_, Gated::Yes, _)));
        let cross_overs = current.result.cross_overs();
        if let (Some(dir), Some((baseline, _, _))) = (results_dir, against) {
            // The baseline as compared, for the report's overlays: the file
            // it came from may be replaced (`--save-baseline` of one name).
            let copy = dir.join(crate::report::html::BASELINE_COPY_FILE);
            if let Err(error) = baseline.write(&copy) {
                eprintln!("{} {error}", self.palette.yellow("warning:"));
            }
        }
        if let (Some(dir), Some(c)) = (results_dir, &comparison) {
            // Beside summary.json, for reports and CI scripts to read.
            let path = dir.join(COMPARISON_FILE);
            let written = serde_json::to_string_pretty(c)
                .map_err(std::io::Error::other)
                .and_then(|text| std::fs::write(&path, text + "\n"));
            if let Err(error) = written {
                eprintln!(
                    "{} cannot write {}: {error}",
                    self.palette.yellow("warning:"),
                    path.display()
                );
            }
        }
        // Cross-overs fail the run unless allowed, with or without a
        // baseline; regressions only with the regression gate, and only
        // against a named baseline (the previous run is shown for
        // information, and may have run with other flags).
        let regression_gate = self.args.compare.gate(policy);
        let fail_on_cross_over = bench.fails_on_cross_over() && !self.args.allow_cross_overs;
        let mut failures = match &comparison {
            Some(c) if gated && regression_gate => c.regression_failures(),
            _ => Vec::new(),
        };
        if cross_overs > 0 && fail_on_cross_over {
            failures.push(crate::baseline::compare::cross_over_failure(cross_overs));
        }
        let gate = GateOutcome {
            enabled: regression_gate || fail_on_cross_over,
            failures,
        };
        if let (false, Some(c)) = (reporter.shows_comparison(), &comparison) {
            // The block below is not shown: warn on stderr instead.
            if !c.differences.is_empty() {
                eprintln!(
                    "{} {id}: the runs differ ({}), so changes may not be the endpoint's",
                    self.palette.yellow("warning:"),
                    c.differences.join("; ")
                );
            }
            let regressed = c.regression_failures();
            if !regressed.is_empty() && !regression_gate {
                eprintln!(
                    "{} {id} against {}: {}",
                    self.palette.yellow("regressed (not gated):"),
                    c.baseline,
                    regressed.join(", ")
                );
            }
        }
        reporter.compared(Compared {
            file: &current.result,
            comparison: comparison.as_ref(),
            gate: &gate,
            results_dir,
        });
        if !self.args.quiet {
            // A blank line ends the benchmark's block.
            reporter.note("");
        }
        if gate.fails() {
            eprintln!(
                "{} {id} failed its gate: {}{}",
                self.palette.red("error:"),
                gate.failures.join(", "),
                if cross_overs > 0 && fail_on_cross_over {
                    " (a cross-over is a response that answered another request; --allow-cross-overs only reports them)"
                } else {
                    ""
                }
            );
            1
        } else {
            0
        }
    }
}
