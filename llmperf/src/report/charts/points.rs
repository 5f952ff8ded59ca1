//! One point per request: a scatter, downsampled past a limit and saying so.

use plotters::prelude::*;

use super::{
    axis_range, bounds, chart_builder, format_count, format_value, no_data, render, ChartError,
    ChartStyle, GRID,
};

/// A drawn scatter and how many of its points it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scatter {
    /// The inline `<svg>` element.
    pub svg: String,
    /// Points drawn.
    pub shown: usize,
    /// Finite points given (points with a NaN or infinite coordinate are not counted).
    pub total: usize,
}

/// A scatter of `points` (e.g. end-to-end latency against output tokens, one per request).
///
/// When there are more than `max_points` finite points, the chart shows `max_points` of them,
/// chosen deterministically: sorted by x (then y), evenly spaced by rank, first and last
/// included. The title then says so, e.g. "E2E vs output tokens (2,000 of 100,000 points
/// shown)". A `max_points` of 0 is refused; with no finite point the chart says "no data".
///
/// ```
/// use llmperf::report::charts::{scatter, ChartStyle};
///
/// let points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, (i % 97) as f64)).collect();
/// let drawn = scatter("E2E vs output", "output tokens", "ms", &points, 1_000, &ChartStyle::default())?;
/// assert_eq!((drawn.shown, drawn.total), (1_000, 10_000));
/// assert!(drawn.svg.contains("(1,000 of 10,000 points shown)"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    max_points: usize,
    style: &ChartStyle,
) -> Result<Scatter, ChartError> {
    style.check()?;
    if max_points == 0 {
        return Err(ChartError::NoPointsAllowed);
    }
    let mut finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let total = finite.len();
    if total == 0 {
        return Ok(Scatter {
            svg: no_data(title, style)?,
            shown: 0,
            total: 0,
        });
    }
    finite.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let shown = evenly_spaced(&finite, max_points);
    let title = if shown.len() < total {
        format!(
            "{title} ({} of {} points shown)",
            format_count(shown.len()),
            format_count(total)
        )
    } else {
        title.to_string()
    };
    // Both are Some: `shown` is not empty.
    let (x_low, x_high) = bounds(shown.iter().map(|p| p.0)).unwrap_or((0.0, 0.0));
    let (y_low, y_high) = bounds(shown.iter().map(|p| p.1)).unwrap_or((0.0, 0.0));
    let x = axis_range(&title, x_low, x_high)?;
    let y = axis_range(&title, y_low.min(0.0), y_high)?;
    // Fainter dots for denser charts, so where they pile up still shows.
    let opacity = if shown.len() > 1_000 { 0.35 } else { 0.6 };
    let dot = RGBColor(31, 119, 180).mix(opacity).filled();

    let svg = render(&title, style, |root| {
        let mut chart = chart_builder(root, &title).build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| format_value(*v))
            .y_label_formatter(&|v| format_value(*v))
            .draw()?;
        chart.draw_series(shown.iter().map(|&point| Circle::new(point, 2, dot)))?;
        Ok(())
    })?;
    Ok(Scatter {
        svg,
        shown: shown.len(),
        total,
    })
}

/// At most `limit` (≥ 1) of `items`, evenly spaced by index, the first and last included.
fn evenly_spaced<T: Copy>(items: &[T], limit: usize) -> Vec<T> {
    let n = items.len();
    if n <= limit {
        return items.to_vec();
    }
    if limit == 1 {
        return items.iter().take(1).copied().collect();
    }
    // k·(n-1)/(limit-1) grows by at least 1 per step since n > limit: no index repeats.
    let (last, steps) = ((n - 1) as u128, (limit - 1) as u128);
    (0..limit as u128)
        .filter_map(|k| items.get((k * last / steps) as usize).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::svg_check::Svg;
    use super::*;

    fn points(n: usize) -> Vec<(f64, f64)> {
        // Reversed x, so the downsampling has to sort.
        (0..n)
            .map(|i| ((n - i) as f64, ((i * 7919) % 1000) as f64))
            .collect()
    }

    #[test]
    fn a_large_scatter_is_downsampled_and_says_so() {
        let drawn = scatter(
            "E2E vs output tokens",
            "output tokens",
            "ms",
            &points(100_000),
            2_000,
            &ChartStyle::default(),
        )
        .expect("drawn");
        assert_eq!((drawn.shown, drawn.total), (2_000, 100_000));
        let svg = Svg::parse(&drawn.svg);
        assert!(svg.has_text("E2E vs output tokens (2,000 of 100,000 points shown)"));
        assert_eq!(svg.count("circle"), 2_000);
    }

    #[test]
    fn a_small_scatter_shows_every_point_and_no_statement() {
        let drawn =
            scatter("s", "x", "y", &points(50), 2_000, &ChartStyle::default()).expect("drawn");
        assert_eq!((drawn.shown, drawn.total), (50, 50));
        assert_eq!(Svg::parse(&drawn.svg).count("circle"), 50);
        assert!(!drawn.svg.contains("shown"));
    }

    #[test]
    fn downsampling_keeps_the_extremes_of_x_and_spaces_the_rest_evenly() {
        let items: Vec<usize> = (0..10).collect();
        assert_eq!(evenly_spaced(&items, 4), vec![0, 3, 6, 9]);
        assert_eq!(evenly_spaced(&items, 9).len(), 9);
        assert_eq!(evenly_spaced(&items, 1), vec![0]);
        assert_eq!(evenly_spaced(&items, 20), items);
    }

    #[test]
    fn non_finite_points_are_not_counted() {
        let given = [
            (1.0, 2.0),
            (f64::NAN, 1.0),
            (3.0, f64::INFINITY),
            (4.0, 5.0),
        ];
        let drawn = scatter("s", "x", "y", &given, 10, &ChartStyle::default()).expect("drawn");
        assert_eq!((drawn.shown, drawn.total), (2, 2));
    }

    #[test]
    fn no_point_draws_a_no_data_chart_and_zero_allowed_is_refused() {
        let style = ChartStyle::default();
        let drawn = scatter("s", "x", "y", &[], 10, &style).expect("drawn");
        assert_eq!((drawn.shown, drawn.total), (0, 0));
        assert!(Svg::parse(&drawn.svg).has_text("no data"));
        assert_eq!(
            scatter("s", "x", "y", &points(3), 0, &style),
            Err(ChartError::NoPointsAllowed)
        );
    }
}
