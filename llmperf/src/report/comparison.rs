//! The terminal block of a comparison with a baseline: per level, each
//! metric's baseline and current figures, the change with its interval,
//! and the verdict, coloured on a terminal.

use std::fmt::Write as _;

use super::terminal::{format_ms, Palette};
use crate::baseline::{ChangeUnit, Comparison, MetricChange, Verdict};

/// Config differences shown before "… and N more".
const SHOWN_DIFFERENCES: usize = 12;

/// A figure in its unit.
pub fn format_value(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".to_string(),
        Some(v) => match unit {
            "ms" => format_ms(v),
            "share" => format!("{:.2}%", v * 100.0),
            "tokens/s" => format!("{v:.1} tok/s"),
            "requests/min" => format!("{v:.1} req/min"),
            "requests" => format!("{} req", crate::spec::trim_float(v)),
            _ => crate::spec::trim_float(v),
        },
    }
}

/// A change: `+10.2%` (relative) or `+1.50 pt` (a share's points).
pub fn format_change(change: f64, unit: ChangeUnit) -> String {
    match unit {
        ChangeUnit::Relative => format!("{:+.1}%", change * 100.0),
        ChangeUnit::Absolute => format!("{:+.2} pt", change * 100.0),
    }
}

fn verdict_text(verdict: Verdict, palette: Palette) -> String {
    match verdict {
        Verdict::Regressed => palette.red("regressed"),
        Verdict::Improved => palette.green("improved"),
        Verdict::Inconclusive => palette.yellow("inconclusive"),
        Verdict::NoChange => "no change".to_string(),
    }
}

fn metric_line(out: &mut String, m: &MetricChange, width: usize, palette: Palette) {
    let change = m
        .change
        .map_or("-".to_string(), |c| format_change(c, m.change_unit));
    let interval = m.interval.map_or(String::new(), |[low, high]| {
        format!(
            "[{}, {}]",
            format_change(low, m.change_unit),
            format_change(high, m.change_unit)
        )
    });
    let mut why = if m.verdict == Verdict::NoChange && m.p_adjusted.is_some() {
        String::new()
    } else {
        format!("({})", m.reason)
    };
    if !m.gated {
        why.push_str(" not gated");
    }
    let line = format!(
        "  {:<width$} {:>14} → {:<14} {:>9} {:<20} {}  {}",
        m.metric,
        format_value(m.baseline, &m.unit),
        format_value(m.current, &m.unit),
        change,
        interval,
        verdict_text(m.verdict, palette),
        why.trim_start()
    );
    let _ = writeln!(out, "{}", line.trim_end());
}

/// The block for one comparison.
pub fn render(comparison: &Comparison, palette: Palette) -> String {
    let mut out = String::new();
    let s = &comparison.settings;
    let _ = writeln!(
        out,
        "  compared with {} (noise ±{}%, significance {}, {}% intervals, {} resamples)",
        palette.bold(&comparison.baseline),
        crate::spec::trim_float(s.noise_threshold * 100.0),
        s.significance_level,
        crate::spec::trim_float(s.confidence_level * 100.0),
        s.nresamples
    );
    if !comparison.differences.is_empty() {
        let _ = writeln!(
            out,
            "  {} the runs differ, so changes may not be the endpoint's:",
            palette.yellow("warning:")
        );
        for line in comparison.differences.iter().take(SHOWN_DIFFERENCES) {
            let _ = writeln!(out, "    {line}");
        }
        if comparison.differences.len() > SHOWN_DIFFERENCES {
            let _ = writeln!(
                out,
                "    … and {} more",
                comparison.differences.len() - SHOWN_DIFFERENCES
            );
        }
    }
    for line in &comparison.unmatched_levels {
        let _ = writeln!(out, "  {} level {line}", palette.yellow("warning:"));
    }
    let single = comparison.levels.len() == 1;
    // The client's names fit in 22; the server's are longer.
    let width = comparison
        .levels
        .iter()
        .flat_map(|l| &l.metrics)
        .map(|m| m.metric.chars().count())
        .max()
        .unwrap_or(0)
        .max(22);
    for level in &comparison.levels {
        if !single {
            let _ = writeln!(out, "  level {}", palette.bold(&level.level));
        }
        for metric in &level.metrics {
            // Metrics neither side measured (validation off) say nothing.
            if metric.baseline.is_none() && metric.current.is_none() {
                continue;
            }
            metric_line(&mut out, metric, width, palette);
        }
    }
    if comparison.cross_overs > 0 {
        let _ = writeln!(
            out,
            "  {} {} validation cross-over(s): responses went to the wrong requests",
            palette.red("error:"),
            comparison.cross_overs
        );
    }
    let _ = writeln!(out, "  {}", verdict_line(comparison, palette));
    out
}

fn verdict_line(comparison: &Comparison, palette: Palette) -> String {
    let regressed = comparison.gate_failures();
    if regressed.is_empty() {
        palette.green("no regression")
    } else {
        format!("{} {}", palette.red("regressed:"), regressed.join(", "))
    }
}

/// One line for `--quiet`: the baseline and the regressions, if any.
pub fn one_line(comparison: &Comparison, palette: Palette) -> String {
    format!(
        "vs {}: {}",
        comparison.baseline,
        verdict_line(comparison, palette)
    )
}
