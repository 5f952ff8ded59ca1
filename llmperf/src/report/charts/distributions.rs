//! The shape of one sample set: histogram, empirical CDF, percentile marks; and CDFs compared.

use plotters::prelude::*;
use plotters::style::text_anchor::{Pos, VPos};

use super::{
    anchor_inside, axis_range, bounds, chart_builder, finite_sorted, format_value, label_font,
    no_data, render, series_colour, ChartError, ChartStyle, GRID, MUTED,
};

/// Histograms have at least this many bins, so a small sample still shows a shape.
const MIN_BINS: usize = 10;
/// Histograms have at most this many bins, so each stays several pixels wide.
const MAX_BINS: usize = 60;

/// A histogram of `samples` with their empirical CDF on a second 0–100 % axis, and a labelled
/// vertical line at each of `marks` (e.g. `("p99", 812.0)`).
///
/// `unit` names the samples' unit and labels the horizontal axis. The bin count follows the
/// Freedman–Diaconis rule, clamped to 10..=60. Non-finite samples and marks are left out; with
/// no finite sample the chart says "no data".
///
/// ```
/// use llmperf::report::charts::{distribution, ChartStyle};
///
/// let itl_ms: Vec<f64> = (0..1000).map(|i| 20.0 + (i % 37) as f64).collect();
/// let marks = [("p50", 38.0), ("p99", 56.0)];
/// let svg = distribution("Inter-token latency", "ms", &itl_ms, &marks, &ChartStyle::default())?;
/// assert!(svg.contains("p99"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn distribution(
    title: &str,
    unit: &str,
    samples: &[f64],
    marks: &[(&str, f64)],
    style: &ChartStyle,
) -> Result<String, ChartError> {
    style.check()?;
    let sorted = finite_sorted(samples);
    let Some(histogram) = Histogram::freedman_diaconis(title, &sorted)? else {
        return no_data(title, style);
    };
    let marks: Vec<(&str, f64)> = marks.iter().copied().filter(|m| m.1.is_finite()).collect();
    let (low, high) = bounds(marks.iter().map(|m| m.1))
        .map_or((histogram.low, histogram.high()), |(low, high)| {
            (low.min(histogram.low), high.max(histogram.high()))
        });
    let x = axis_range(title, low, high)?;
    let tallest = histogram.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    // Headroom above the tallest bar for the marks' labels.
    let y_top = tallest * 1.25;
    let cdf = ecdf_points(&sorted, cdf_resolution(style));

    render(title, style, |root| {
        let mut chart = chart_builder(root, title)
            .right_y_label_area_size(50)
            .build_cartesian_2d(x.clone(), 0.0..y_top)?
            .set_secondary_coord(x.clone(), 0.0..100.0);
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .disable_x_mesh()
            .x_desc(unit)
            .y_desc("count")
            .x_label_formatter(&|v| format_value(*v))
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("cumulative %")
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        chart.draw_series(histogram.bins().map(|(low, high, count)| {
            Rectangle::new([(low, 0.0), (high, count as f64)], BAR.filled())
        }))?;
        chart.draw_secondary_series(LineSeries::new(cdf, CDF.stroke_width(2)))?;
        for (i, &(label, at)) in marks.iter().enumerate() {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(at, 0.0), (at, tallest * 1.05)],
                MUTED.stroke_width(1),
            )))?;
            // Three label rows, so close percentiles (p90 and p99 often are) stay readable.
            let row = (i % 3) as f64;
            chart.draw_series(std::iter::once(Text::new(
                label.to_string(),
                (at, y_top * (0.99 - 0.065 * row)),
                label_font()
                    .color(&MUTED)
                    .pos(Pos::new(anchor_inside(at, &x), VPos::Top)),
            )))?;
        }
        Ok(())
    })
}

/// Empirical CDFs of several sample sets on one chart, with a legend (e.g. `[("current", …),
/// ("baseline", …)]`).
///
/// `unit` labels the horizontal axis. A series with no finite sample is left out of the plot
/// and named "(no data)" in the legend; with none at all the chart says "no data".
///
/// ```
/// use llmperf::report::charts::{cdf_overlay, ChartStyle};
///
/// let current = [10.0, 11.0, 12.5, 30.0];
/// let baseline = [9.0, 10.0, 11.0, 12.0];
/// let series = [("current", &current[..]), ("baseline", &baseline[..])];
/// let svg = cdf_overlay("TTFT", "ms", &series, &ChartStyle::default())?;
/// assert!(svg.contains("baseline"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn cdf_overlay(
    title: &str,
    unit: &str,
    series: &[(&str, &[f64])],
    style: &ChartStyle,
) -> Result<String, ChartError> {
    style.check()?;
    let sorted: Vec<(&str, Vec<f64>)> = series
        .iter()
        .map(|&(name, samples)| (name, finite_sorted(samples)))
        .collect();
    let ends = sorted
        .iter()
        .filter_map(|(_, s)| Some([*s.first()?, *s.last()?]))
        .flatten();
    let Some((low, high)) = bounds(ends) else {
        return no_data(title, style);
    };
    let x = axis_range(title, low, high)?;
    let resolution = cdf_resolution(style);

    render(title, style, |root| {
        let mut chart = chart_builder(root, title).build_cartesian_2d(x, 0.0..100.0)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc(unit)
            .y_desc("cumulative %")
            .x_label_formatter(&|v| format_value(*v))
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        for (i, (name, samples)) in sorted.iter().enumerate() {
            let colour = series_colour(i);
            let label = if samples.is_empty() {
                format!("{name} (no data)")
            } else {
                name.to_string()
            };
            chart
                .draw_series(LineSeries::new(
                    ecdf_points(samples, resolution),
                    colour.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(MUTED)
            .label_font(label_font())
            .draw()?;
        Ok(())
    })
}

const BAR: RGBAColor = RGBAColor(31, 119, 180, 0.7);
const CDF: RGBColor = RGBColor(255, 127, 14);

/// Equal-width bins over sorted finite samples.
struct Histogram {
    low: f64,
    width: f64,
    counts: Vec<u64>,
}

impl Histogram {
    /// Bins of width 2·IQR/∛n (Freedman–Diaconis), their count clamped to 10..=60.
    /// `None` for no samples.
    fn freedman_diaconis(chart: &str, sorted: &[f64]) -> Result<Option<Self>, ChartError> {
        let (Some(&min), Some(&max)) = (sorted.first(), sorted.last()) else {
            return Ok(None);
        };
        let range = axis_range(chart, min, max)?;
        let span = range.end - range.start;
        let n = sorted.len() as f64;
        let iqr = quantile(sorted, 0.75) - quantile(sorted, 0.25);
        let bins = if iqr > 0.0 {
            (span / (2.0 * iqr / n.cbrt())).ceil()
        } else {
            // Most samples are one value: as fine as allowed, to show the rest.
            MAX_BINS as f64
        };
        let bins = if bins.is_finite() {
            (bins as usize).clamp(MIN_BINS, MAX_BINS)
        } else {
            MAX_BINS
        };
        let width = span / bins as f64;
        let mut counts = vec![0_u64; bins];
        for &sample in sorted {
            let index = ((sample - range.start) / width) as usize;
            counts[index.min(bins - 1)] += 1;
        }
        Ok(Some(Histogram {
            low: range.start,
            width,
            counts,
        }))
    }

    fn high(&self) -> f64 {
        self.low + self.width * self.counts.len() as f64
    }

    /// Each bin's `(low, high, count)`.
    fn bins(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.counts.iter().enumerate().map(|(i, &count)| {
            let low = self.low + self.width * i as f64;
            (low, low + self.width, count)
        })
    }
}

/// The `q` quantile of sorted samples, interpolating linearly (as numpy does).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = q * last as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = rank - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// How many points a CDF line gets: two per horizontal pixel is finer than the eye can see.
fn cdf_resolution(style: &ChartStyle) -> usize {
    (style.width as usize * 2).max(100)
}

/// The empirical CDF of sorted samples as (value, cumulative %) points: an exact staircase
/// for small sets, points at evenly spaced ranks (always the first and last) for large ones.
fn ecdf_points(sorted: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let Some(&first) = sorted.first() else {
        return Vec::new();
    };
    let percent = |rank: usize| rank as f64 * 100.0 / n as f64;
    if n * 2 <= max_points {
        let mut points = Vec::with_capacity(n * 2);
        for (i, &value) in sorted.iter().enumerate() {
            points.push((value, percent(i)));
            points.push((value, percent(i + 1)));
        }
        return points;
    }
    let steps = max_points.max(2) - 1;
    let mut points = Vec::with_capacity(steps + 2);
    points.push((first, 0.0));
    for k in 0..=steps {
        let i = k * (n - 1) / steps;
        points.push((sorted[i], percent(i + 1)));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::super::svg_check::Svg;
    use super::*;

    /// A deterministic skewed sample, like latencies: most fast, a long slow tail.
    fn latencies(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = (i as f64 + 0.5) / n as f64;
                50.0 - 20.0 * (1.0 - u).ln()
            })
            .collect()
    }

    fn bar_count(svg: &Svg) -> usize {
        svg.count_where("rect", |tag| tag.attr("fill") == Some("#1F77B4"))
    }

    #[test]
    fn the_histogram_has_one_bar_per_freedman_diaconis_bin() {
        let samples = latencies(1000);
        let sorted = finite_sorted(&samples);
        let bins = Histogram::freedman_diaconis("t", &sorted)
            .expect("in range")
            .expect("samples")
            .counts;
        assert!((MIN_BINS..=MAX_BINS).contains(&bins.len()));
        assert_eq!(bins.iter().sum::<u64>(), 1000);

        let svg = distribution("TTFT", "ms", &samples, &[], &ChartStyle::default()).expect("drawn");
        assert_eq!(bar_count(&Svg::parse(&svg)), bins.len());
    }

    #[test]
    fn bin_counts_stay_within_ten_and_sixty() {
        let few = Histogram::freedman_diaconis("t", &[1.0, 2.0, 3.0]).expect("ok");
        assert_eq!(few.map(|h| h.counts.len()), Some(MIN_BINS));
        let mut spread: Vec<f64> = (0..100_000).map(|i| i as f64).collect();
        spread.push(1e9);
        let many = Histogram::freedman_diaconis("t", &spread).expect("ok");
        assert_eq!(many.map(|h| h.counts.len()), Some(MAX_BINS));
        let same = Histogram::freedman_diaconis("t", &[7.0; 50]).expect("ok");
        assert_eq!(same.map(|h| h.counts.iter().sum::<u64>()), Some(50));
    }

    #[test]
    fn percentile_marks_are_labelled_lines() {
        let samples = latencies(500);
        let marks = [("p50", 64.0), ("p90", 96.0), ("p99", 142.0)];
        let svg =
            distribution("TTFT", "ms", &samples, &marks, &ChartStyle::default()).expect("drawn");
        let svg = Svg::parse(&svg);
        for label in ["p50", "p90", "p99"] {
            assert!(svg.has_text(label), "{label} missing");
        }
        assert!(svg.has_text("cumulative %"));
        assert!(svg.has_text("ms"));
    }

    #[test]
    fn no_finite_sample_draws_a_no_data_chart() {
        let style = ChartStyle::default();
        for samples in [&[][..], &[f64::NAN, f64::INFINITY][..]] {
            let svg = distribution("TTFT", "ms", samples, &[("p99", 1.0)], &style).expect("drawn");
            assert!(Svg::parse(&svg).has_text("no data"));
        }
        let svg =
            cdf_overlay("TTFT", "ms", &[("current", &[f64::NAN][..])], &style).expect("drawn");
        assert!(Svg::parse(&svg).has_text("no data"));
    }

    #[test]
    fn non_finite_samples_and_marks_are_left_out() {
        let mut samples = latencies(200);
        samples.extend([f64::NAN, f64::NEG_INFINITY, f64::INFINITY]);
        let svg = distribution(
            "TTFT",
            "ms",
            &samples,
            &[("p50", f64::NAN), ("p90", 90.0)],
            &ChartStyle::default(),
        )
        .expect("drawn");
        let svg = Svg::parse(&svg);
        assert!(!svg.has_text("p50"));
        assert!(svg.has_text("p90"));
    }

    #[test]
    fn overlaid_cdfs_have_a_legend_entry_each() {
        let current = latencies(300);
        let baseline: Vec<f64> = current.iter().map(|v| v * 0.9).collect();
        let series = [
            ("current", &current[..]),
            ("baseline", &baseline[..]),
            ("older", &[][..]),
        ];
        let svg = cdf_overlay("TTFT", "ms", &series, &ChartStyle::default()).expect("drawn");
        let svg = Svg::parse(&svg);
        assert!(svg.has_text("current"));
        assert!(svg.has_text("baseline"));
        assert!(svg.has_text("older (no data)"));
        // One CDF line per series with samples, each with at least its 300 steps.
        let long_lines = svg.count_where("polyline", |tag| {
            tag.attr("points")
                .is_some_and(|p| p.split_whitespace().count() >= 300)
        });
        assert_eq!(long_lines, 2);
    }

    #[test]
    fn a_large_cdf_is_reduced_to_evenly_spaced_ranks() {
        let sorted: Vec<f64> = (0..100_000).map(f64::from).collect();
        let points = ecdf_points(&sorted, 1000);
        assert_eq!(points.len(), 1001);
        assert_eq!(points.first(), Some(&(0.0, 0.0)));
        assert_eq!(points.last(), Some(&(99_999.0, 100.0)));
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn a_small_cdf_is_an_exact_staircase() {
        assert_eq!(
            ecdf_points(&[1.0, 2.0], 100),
            vec![(1.0, 0.0), (1.0, 50.0), (2.0, 50.0), (2.0, 100.0)]
        );
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&sorted, 0.25), 1.75);
        assert_eq!(quantile(&sorted, 0.75), 3.25);
        assert_eq!(quantile(&[5.0], 0.5), 5.0);
    }
}
