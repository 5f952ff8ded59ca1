//! One trait behind the output formats: what the harness, `llmperf
//! compare` and `llmperf export` tell a format, each format a type.
//!
//! [`OutputFormat::reporter`] is the one place a format is chosen; callers
//! talk to the [`Reporter`] it returns.

use std::path::Path;

use serde_json::Value;

use super::comparison;
use super::export::{self, GateOutcome, OutputFormat};
use super::stdout;
use super::terminal::{self, Palette};
use crate::baseline::{Comparison, Direction};
use crate::results::SummaryFile;

/// Where benchmark results go in one output format.
///
/// The calls for a benchmark come in order: [`result`](Reporter::result),
/// then [`compared`](Reporter::compared); [`finish`](Reporter::finish)
/// once after every benchmark. The defaults are a machine format's: it owns
/// standard output, so lines for people are dropped or go to standard error.
///
/// ```
/// use llmperf::report::export::OutputFormat;
/// use llmperf::report::terminal::Palette;
///
/// let reporter = OutputFormat::Json.reporter(Palette::new(false), false);
/// assert!(!reporter.shows_comparison());
/// ```
pub trait Reporter {
    /// A line for people (a saved baseline, the report's path): printed by
    /// the terminal report, dropped by machine formats.
    fn note(&self, _line: &str) {}

    /// Progress for people (the smoke tests' `Testing … Success`): on
    /// standard output with the terminal report, on standard error beside a
    /// machine format.
    fn progress(&self, text: &str) {
        eprint!("{text}");
    }

    /// Whether a comparison's whole block is printed. When it is not, how
    /// the runs differ and what regressed without a gate deserve a warning
    /// on standard error.
    fn shows_comparison(&self) -> bool {
        false
    }

    /// A benchmark's result, as it ran or as a baseline stored it.
    fn result(&mut self, _file: &SummaryFile) {}

    /// A benchmark's comparison with a baseline and what its gate decided.
    fn compared(&mut self, compared: Compared<'_>);

    /// Every benchmark has been reported: a format holding one value for
    /// them all prints it.
    fn finish(&mut self) {}
}

/// One benchmark as judged: what [`Reporter::compared`] is told.
#[derive(Debug, Clone, Copy)]
pub struct Compared<'a> {
    /// The result.
    pub file: &'a SummaryFile,
    /// Its comparison with a baseline (`None` without one).
    pub comparison: Option<&'a Comparison>,
    /// What its gate decided.
    pub gate: &'a GateOutcome,
    /// Where the result was written (`None` when it was not).
    pub results_dir: Option<&'a Path>,
}

impl OutputFormat {
    /// This format's reporter; `palette` and `quiet` (one line per
    /// benchmark) shape the terminal report only.
    pub fn reporter(self, palette: Palette, quiet: bool) -> Box<dyn Reporter> {
        match self {
            OutputFormat::Terminal => Box::new(Terminal::new(palette, quiet)),
            OutputFormat::Json => Box::new(Json),
            OutputFormat::GithubSmaller => Box::new(Dashboard::new(|files| {
                export::github(files, Direction::LowerIsBetter)
            })),
            OutputFormat::GithubBigger => Box::new(Dashboard::new(|files| {
                export::github(files, Direction::HigherIsBetter)
            })),
            OutputFormat::Bencher => Box::new(Dashboard::new(export::bencher)),
        }
    }
}

/// The human report: a block per benchmark ([`terminal::render`]) and its
/// comparison ([`comparison::render`]), or one line each with `quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    palette: Palette,
    quiet: bool,
}

impl Terminal {
    /// A terminal report in `palette`; `quiet` prints one line per benchmark.
    pub fn new(palette: Palette, quiet: bool) -> Self {
        Terminal { palette, quiet }
    }
}

impl Reporter for Terminal {
    fn note(&self, line: &str) {
        stdout::line(line);
    }

    fn progress(&self, text: &str) {
        stdout::print(text);
    }

    fn shows_comparison(&self) -> bool {
        !self.quiet
    }

    fn result(&mut self, file: &SummaryFile) {
        if self.quiet {
            stdout::line(&terminal::one_line(file));
        } else {
            stdout::print(&terminal::render(file, self.palette));
        }
    }

    fn compared(&mut self, compared: Compared<'_>) {
        match compared.comparison {
            Some(c) if self.quiet => {
                stdout::line(&format!("  {}", comparison::one_line(c, self.palette)));
            }
            Some(c) => {
                stdout::print(&comparison::render(c, self.palette));
            }
            None => {}
        }
    }
}

/// `json`: one [`export::message`] per benchmark per line, with its
/// comparison and gate.
#[derive(Debug, Clone, Copy)]
pub struct Json;

impl Reporter for Json {
    fn compared(&mut self, c: Compared<'_>) {
        stdout::line(&format!(
            "{}",
            export::message(c.file, c.comparison, c.gate, c.results_dir)
        ));
    }
}

/// A dashboard format (`github-smaller`, `github-bigger`, `bencher`): one
/// JSON value over every benchmark, printed at the end.
#[derive(Debug)]
pub struct Dashboard {
    render: fn(&[SummaryFile]) -> Value,
    gathered: Vec<SummaryFile>,
}

impl Dashboard {
    /// A dashboard whose value `render` makes from every benchmark's result.
    pub fn new(render: fn(&[SummaryFile]) -> Value) -> Self {
        Dashboard {
            render,
            gathered: Vec::new(),
        }
    }
}

impl Reporter for Dashboard {
    fn compared(&mut self, compared: Compared<'_>) {
        self.gathered.push(compared.file.clone());
    }

    fn finish(&mut self) {
        stdout::line(&format!("{:#}", (self.render)(&self.gathered)));
    }
}
