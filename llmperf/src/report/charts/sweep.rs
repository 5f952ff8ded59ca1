//! A sweep's curve: throughput against latency percentiles, level by level.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    axis_range, bounds, chart_builder, format_value, label_font, no_data, render, series_colour,
    ChartError, ChartStyle, GRID, LIMIT, MUTED,
};

/// One level of a sweep, as [`curve`] plots it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepLevel<'a> {
    /// What the level was, written beside its points (e.g. "c=16" or "20/s").
    pub label: &'a str,
    /// The throughput it achieved, in the unit [`SweepCurve::throughput_label`] names.
    pub throughput: f64,
    /// One latency per name in [`SweepCurve::percentiles`], in the same order and in the unit
    /// [`SweepCurve::latency_label`] names; NaN where the level has none.
    pub latencies: &'a [f64],
}

/// What [`curve`] draws: a line per latency percentile through the sweep's levels, in order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepCurve<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The horizontal axis, with its unit (e.g. "output tokens/s").
    pub throughput_label: &'a str,
    /// The vertical axis, with its unit (e.g. "TTFT (ms)").
    pub latency_label: &'a str,
    /// The percentiles plotted, one line each (e.g. `["p50", "p99"]`).
    pub percentiles: &'a [&'a str],
    /// The levels, in the order the sweep ran them.
    pub levels: &'a [SweepLevel<'a>],
    /// The index in `levels` of the knee, circled and labelled "knee".
    pub knee: Option<usize>,
    /// Horizontal limit lines, each labelled (e.g. `("SLO: TTFT p99 ≤ 500 ms", 500.0)`).
    pub limits: &'a [(&'a str, f64)],
}

/// Throughput (x) against latency percentiles (y) for each level of a sweep, each level's
/// points labelled, the knee circled, and the SLO limits as horizontal lines.
///
/// Levels with a non-finite throughput and non-finite latencies are left out (a line skips
/// them); with nothing left the chart says "no data". A level whose latency count differs
/// from the percentile names, or a knee past the last level, is an error.
///
/// ```
/// use llmperf::report::charts::{curve, ChartStyle, SweepCurve, SweepLevel};
///
/// let levels = [
///     SweepLevel { label: "c=1", throughput: 40.0, latencies: &[80.0, 120.0] },
///     SweepLevel { label: "c=8", throughput: 290.0, latencies: &[95.0, 180.0] },
///     SweepLevel { label: "c=32", throughput: 310.0, latencies: &[400.0, 900.0] },
/// ];
/// let sweep = SweepCurve {
///     title: "TTFT against throughput",
///     throughput_label: "output tokens/s",
///     latency_label: "TTFT (ms)",
///     percentiles: &["p50", "p99"],
///     levels: &levels,
///     knee: Some(1),
///     limits: &[("SLO p99 ≤ 500 ms", 500.0)],
/// };
/// let svg = curve(&sweep, &ChartStyle::default())?;
/// assert!(svg.contains("knee") && svg.contains("c=32"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn curve(sweep: &SweepCurve<'_>, style: &ChartStyle) -> Result<String, ChartError> {
    style.check()?;
    let title = sweep.title;
    for (level, at) in sweep.levels.iter().enumerate() {
        if at.latencies.len() != sweep.percentiles.len() {
            return Err(ChartError::SweepShape {
                level,
                expected: sweep.percentiles.len(),
                found: at.latencies.len(),
            });
        }
    }
    if let Some(knee) = sweep.knee.filter(|&knee| knee >= sweep.levels.len()) {
        return Err(ChartError::KneeOutOfRange {
            knee,
            levels: sweep.levels.len(),
        });
    }
    // Per percentile, its finite points in level order, each with its level's index.
    let lines: Vec<Vec<(usize, (f64, f64))>> = (0..sweep.percentiles.len())
        .map(|p| {
            sweep
                .levels
                .iter()
                .enumerate()
                .map(|(i, level)| (i, (level.throughput, level.latencies[p])))
                .filter(|(_, (x, y))| x.is_finite() && y.is_finite())
                .collect()
        })
        .collect();
    let all_points = || lines.iter().flatten().map(|&(_, point)| point);
    let Some((x_low, x_high)) = bounds(all_points().map(|p| p.0)) else {
        return no_data(title, style);
    };
    let limits: Vec<(&str, f64)> = sweep
        .limits
        .iter()
        .copied()
        .filter(|l| l.1.is_finite())
        .collect();
    let (y_low, y_high) =
        bounds(all_points().map(|p| p.1).chain(limits.iter().map(|l| l.1))).unwrap_or((0.0, 0.0));
    let x = axis_range(
        title,
        x_low.min(0.0),
        x_high + (x_high - x_low.min(0.0)) * 0.1,
    )?;
    let y_low = y_low.min(0.0);
    let y = axis_range(title, y_low, y_high + (y_high - y_low) * 0.12)?;
    // Each level's label goes beside its highest point.
    let label_at: Vec<(&str, (f64, f64))> = sweep
        .levels
        .iter()
        .enumerate()
        .filter_map(|(i, level)| {
            let top = lines
                .iter()
                .flatten()
                .filter(|(at, _)| *at == i)
                .map(|&(_, point)| point)
                .max_by(|a, b| a.1.total_cmp(&b.1))?;
            Some((level.label, top))
        })
        .collect();
    let knee_points: Vec<(f64, f64)> = lines
        .iter()
        .flatten()
        .filter(|(at, _)| Some(*at) == sweep.knee)
        .map(|&(_, point)| point)
        .collect();

    render(title, style, |root| {
        let mut chart = chart_builder(root, title).build_cartesian_2d(x.clone(), y)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc(sweep.throughput_label)
            .y_desc(sweep.latency_label)
            .x_label_formatter(&|v| format_value(*v))
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        for &(label, at) in &limits {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x.start, at), (x.end, at)],
                LIMIT.stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((x.end, at))
                    + Text::new(
                        label.to_string(),
                        (-4, -4),
                        label_font()
                            .color(&LIMIT)
                            .pos(Pos::new(HPos::Right, VPos::Bottom)),
                    ),
            ))?;
        }
        for (p, (name, line)) in sweep.percentiles.iter().zip(&lines).enumerate() {
            let colour = series_colour(p);
            let points = || line.iter().map(|&(_, point)| point);
            chart
                .draw_series(LineSeries::new(points(), colour.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart.draw_series(points().map(|point| Circle::new(point, 3, colour.filled())))?;
        }
        chart.draw_series(
            knee_points
                .iter()
                .map(|&point| Circle::new(point, 8, LIMIT.stroke_width(2))),
        )?;
        if let Some(&top) = knee_points.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            chart.draw_series(std::iter::once(
                EmptyElement::at(top)
                    + Text::new(
                        "knee",
                        (0, -12),
                        label_font()
                            .color(&LIMIT)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ),
            ))?;
        }
        chart.draw_series(label_at.iter().map(|&(label, point)| {
            // Beside the point, on the side with more room.
            let right_half = point.0 > (x.start + x.end) / 2.0;
            let (dx, side) = if right_half {
                (-6, HPos::Right)
            } else {
                (6, HPos::Left)
            };
            EmptyElement::at(point)
                + Text::new(
                    label.to_string(),
                    (dx, 2),
                    label_font().color(&MUTED).pos(Pos::new(side, VPos::Top)),
                )
        }))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(MUTED)
            .label_font(label_font())
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::svg_check::Svg;
    use super::*;

    const LEVELS: [SweepLevel<'static>; 3] = [
        SweepLevel {
            label: "c=1",
            throughput: 40.0,
            latencies: &[80.0, 120.0],
        },
        SweepLevel {
            label: "c=8",
            throughput: 290.0,
            latencies: &[95.0, 180.0],
        },
        SweepLevel {
            label: "c=32",
            throughput: 310.0,
            latencies: &[400.0, f64::NAN],
        },
    ];

    fn sweep<'a>(levels: &'a [SweepLevel<'a>], knee: Option<usize>) -> SweepCurve<'a> {
        SweepCurve {
            title: "TTFT against throughput",
            throughput_label: "output tokens/s",
            latency_label: "TTFT (ms)",
            percentiles: &["p50", "p99"],
            levels,
            knee,
            limits: &[("SLO p99 <= 500 ms", 500.0)],
        }
    }

    #[test]
    fn a_sweep_labels_its_levels_knee_and_limits() {
        let svg = curve(&sweep(&LEVELS, Some(1)), &ChartStyle::default()).expect("drawn");
        let svg = Svg::parse(&svg);
        for text in [
            "c=1",
            "c=8",
            "c=32",
            "knee",
            "p50",
            "p99",
            "SLO p99 <= 500 ms",
        ] {
            assert!(svg.has_text(text), "{text} missing");
        }
        // Dots: 3 for p50 and 2 for p99 (its NaN skipped), and the knee's two rings.
        assert_eq!(svg.count_where("circle", |c| c.attr("r") == Some("3")), 5);
        assert_eq!(svg.count_where("circle", |c| c.attr("r") == Some("8")), 2);
    }

    #[test]
    fn a_sweep_without_a_knee_has_no_ring() {
        let svg = curve(&sweep(&LEVELS, None), &ChartStyle::default()).expect("drawn");
        assert!(!Svg::parse(&svg).has_text("knee"));
    }

    #[test]
    fn a_misshapen_sweep_is_refused() {
        let levels = [SweepLevel {
            label: "c=1",
            throughput: 1.0,
            latencies: &[1.0],
        }];
        assert_eq!(
            curve(&sweep(&levels, None), &ChartStyle::default()),
            Err(ChartError::SweepShape {
                level: 0,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            curve(&sweep(&LEVELS, Some(3)), &ChartStyle::default()),
            Err(ChartError::KneeOutOfRange { knee: 3, levels: 3 })
        );
    }

    #[test]
    fn a_sweep_that_measured_nothing_says_no_data() {
        let levels = [SweepLevel {
            label: "c=1",
            throughput: f64::NAN,
            latencies: &[1.0, 2.0],
        }];
        let svg = curve(&sweep(&levels, None), &ChartStyle::default()).expect("drawn");
        assert!(Svg::parse(&svg).has_text("no data"));
        let svg = curve(&sweep(&[], None), &ChartStyle::default()).expect("drawn");
        assert!(Svg::parse(&svg).has_text("no data"));
    }
}
