//! The run over time: series with shaded phases, and one bar per request.

use plotters::prelude::*;

use super::{
    axis_range, bounds, chart_builder, format_count, format_value, label_font, no_data, render,
    series_colour, ChartError, ChartStyle, GRID, MUTED,
};

/// The most requests [`request_gantt`] draws; past it, it draws the first ones sent and says so.
pub const GANTT_MAX_REQUESTS: usize = 1_000;

const TIME_AXIS: &str = "seconds since start";

/// Step series over the run's time, e.g. requests in flight or output tokens/s, with `shaded`
/// time ranges labelled on the chart (e.g. `("warmup", 0.0, 5.0)`).
///
/// Each series is `(name, points)` with points `(seconds since start, value)`; a value holds
/// until the next point (a step), which is exact for counts in flight and for per-interval
/// rates stamped at the interval's start. All series share one axis labelled `y_label`, so
/// give each unit its own chart. Points need not be sorted; non-finite ones are left out. A
/// series with more points than the plot has pixel columns is reduced to each column's first,
/// lowest, highest and last point, which looks the same. With no finite point the chart says
/// "no data".
///
/// ```
/// use llmperf::report::charts::{timeline, ChartStyle};
///
/// let in_flight = [(0.0, 0.0), (0.5, 8.0), (9.5, 3.0), (10.0, 0.0)];
/// let svg = timeline(
///     "Requests in flight",
///     &[("in flight", &in_flight[..])],
///     &[("warmup", 0.0, 2.0)],
///     "requests",
///     &ChartStyle::default(),
/// )?;
/// assert!(svg.contains("warmup"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn timeline(
    title: &str,
    series: &[(&str, &[(f64, f64)])],
    shaded: &[(&str, f64, f64)],
    y_label: &str,
    style: &ChartStyle,
) -> Result<String, ChartError> {
    style.check()?;
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|&(name, points)| {
            let mut finite: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|(t, v)| t.is_finite() && v.is_finite())
                .collect();
            finite.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name, finite)
        })
        .collect();
    let shaded: Vec<(&str, f64, f64)> = shaded
        .iter()
        .copied()
        .filter(|(_, from, to)| from.is_finite() && to.is_finite())
        .map(|(label, from, to)| (label, from.min(to), from.max(to)))
        .collect();
    let all_points = || series.iter().flat_map(|(_, points)| points.iter());
    let Some((t_low, t_high)) = bounds(all_points().map(|p| p.0)) else {
        return no_data(title, style);
    };
    let (v_low, v_high) = bounds(all_points().map(|p| p.1)).unwrap_or((0.0, 0.0));
    let (t_low, t_high) = bounds(shaded.iter().flat_map(|s| [s.1, s.2]))
        .map_or((t_low, t_high), |(low, high)| {
            (t_low.min(low), t_high.max(high))
        });
    let t = axis_range(title, t_low, t_high)?;
    let v_low = v_low.min(0.0);
    // A series flat at zero (an idle queue) sits on the axis, not mid-chart.
    let v_high = if v_low == 0.0 && v_high <= 0.0 {
        1.0
    } else {
        v_high
    };
    // Headroom for the shaded ranges' labels.
    let v = axis_range(title, v_low, v_high + (v_high - v_low) * 0.12)?;
    let columns = style.width as usize;
    let steps: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, points)| (*name, step_path(&envelope(points, &t, columns))))
        .collect();

    render(title, style, |root| {
        let mut chart = chart_builder(root, title).build_cartesian_2d(t.clone(), v.clone())?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc(TIME_AXIS)
            .y_desc(y_label)
            .x_label_formatter(&|x| format_value(*x))
            .y_label_formatter(&|y| format_value(*y))
            .draw()?;
        for &(label, from, to) in &shaded {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(from, v.start), (to, v.end)],
                SHADE.filled(),
            )))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((from, v.end))
                    + Text::new(label.to_string(), (4, 4), label_font().color(&MUTED)),
            ))?;
        }
        for (i, (name, path)) in steps.iter().enumerate() {
            let colour = series_colour(i);
            chart
                .draw_series(LineSeries::new(
                    path.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        if steps.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(MUTED)
                .label_font(label_font())
                .draw()?;
        }
        Ok(())
    })
}

/// One horizontal bar per request, in the order sent (first at the top): from send to first
/// token in one colour, from first token to end in another.
///
/// `requests` are `(send, first token, end)` in seconds since the run started. A request with a
/// non-finite first token, or one outside send..=end (it failed before streaming), is one grey
/// bar from send to end; one with a non-finite send or end, or ending before it was sent, is
/// left out. Meant for small runs: past [`GANTT_MAX_REQUESTS`] it draws the first ones sent and
/// the title says e.g. "(first 1,000 of 100,000 requests shown)".
///
/// ```
/// use llmperf::report::charts::{request_gantt, ChartStyle};
///
/// let requests = [(0.0, 0.2, 1.5), (0.1, 0.35, 1.2), (0.4, f64::NAN, 0.6)];
/// let svg = request_gantt("Requests", &requests, &ChartStyle::default())?;
/// assert!(svg.contains("no first token"));
/// # Ok::<(), llmperf::report::charts::ChartError>(())
/// ```
pub fn request_gantt(
    title: &str,
    requests: &[(f64, f64, f64)],
    style: &ChartStyle,
) -> Result<String, ChartError> {
    style.check()?;
    let mut valid: Vec<(f64, f64, f64)> = requests
        .iter()
        .copied()
        .filter(|(send, _, end)| send.is_finite() && end.is_finite() && end >= send)
        .collect();
    if valid.is_empty() {
        return no_data(title, style);
    }
    valid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = valid.len();
    valid.truncate(GANTT_MAX_REQUESTS);
    let rows = valid.len();
    let title = if rows < total {
        format!(
            "{title} (first {} of {} requests shown)",
            format_count(rows),
            format_count(total)
        )
    } else {
        title.to_string()
    };
    let (t_low, t_high) = bounds(valid.iter().flat_map(|r| [r.0, r.2])).unwrap_or((0.0, 0.0));
    let t = axis_range(&title, t_low, t_high)?;
    // Row i (0 = first sent) spans y in (rows - i - 1, rows - i), so the first is on top.
    let bar = |i: usize, from: f64, to: f64| {
        let top = (rows - i) as f64;
        [(from, top - 0.9), (to, top - 0.1)]
    };
    let mut waiting = Vec::with_capacity(rows);
    let mut streaming = Vec::with_capacity(rows);
    let mut failed = Vec::new();
    for (i, &(send, first, end)) in valid.iter().enumerate() {
        if first.is_finite() && (send..=end).contains(&first) {
            waiting.push(bar(i, send, first));
            streaming.push(bar(i, first, end));
        } else {
            failed.push(bar(i, send, end));
        }
    }

    render(&title, style, |root| {
        let mut chart = chart_builder(root, &title).build_cartesian_2d(t, 0.0..rows as f64)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .disable_y_mesh()
            .x_desc(TIME_AXIS)
            .y_desc("request, in order sent")
            .x_label_formatter(&|x| format_value(*x))
            .y_label_formatter(&|y| format_value((rows as f64 - *y).round()))
            .draw()?;
        let kinds = [
            ("waiting for first token", WAITING, &waiting),
            ("streaming", STREAMING, &streaming),
            ("no first token", FAILED, &failed),
        ];
        for (label, colour, bars) in kinds {
            if bars.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    bars.iter()
                        .map(|&corners| Rectangle::new(corners, colour.filled())),
                )?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(MUTED)
            .label_font(label_font())
            .draw()?;
        Ok(())
    })
}

const SHADE: RGBAColor = RGBAColor(128, 128, 128, 0.15);
const WAITING: RGBColor = RGBColor(255, 127, 14);
const STREAMING: RGBColor = RGBColor(31, 119, 180);
const FAILED: RGBColor = RGBColor(160, 160, 160);

/// Points sorted by time reduced to at most four per pixel column (the column's first, lowest,
/// highest and last, in time order), so the drawn line looks the same with far fewer points.
fn envelope(points: &[(f64, f64)], time: &std::ops::Range<f64>, columns: usize) -> Vec<(f64, f64)> {
    let columns = columns.max(1);
    if points.len() <= columns * 4 {
        return points.to_vec();
    }
    let span = time.end - time.start;
    let column_of = |t: f64| (((t - time.start) / span * columns as f64) as usize).min(columns - 1);
    let mut kept = Vec::with_capacity(columns * 4);
    let mut start = 0;
    while start < points.len() {
        let column = column_of(points[start].0);
        let mut end = start + 1;
        while end < points.len() && column_of(points[end].0) == column {
            end += 1;
        }
        let group = &points[start..end];
        let lowest = (0..group.len()).min_by(|&a, &b| group[a].1.total_cmp(&group[b].1));
        let highest = (0..group.len()).max_by(|&a, &b| group[a].1.total_cmp(&group[b].1));
        let mut picks = [Some(0), lowest, highest, Some(group.len() - 1)];
        picks.sort();
        let mut previous = None;
        for pick in picks.into_iter().flatten() {
            if previous != Some(pick) {
                kept.push(group[pick]);
                previous = Some(pick);
            }
        }
        start = end;
    }
    kept
}

/// The path of a step function through sorted points: each value holds until the next time.
fn step_path(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut path = Vec::with_capacity(points.len() * 2);
    for (i, &(t, v)) in points.iter().enumerate() {
        if let Some(&(_, previous)) = i.checked_sub(1).and_then(|p| points.get(p)) {
            path.push((t, previous));
        }
        path.push((t, v));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::super::svg_check::Svg;
    use super::*;

    fn fill_count(svg: &Svg, colour: &str) -> usize {
        svg.count_where("rect", |tag| tag.attr("fill") == Some(colour))
    }

    #[test]
    fn a_timeline_shades_and_labels_its_phases() {
        let in_flight = [(0.0, 0.0), (1.0, 8.0), (9.0, 2.0), (10.0, 0.0)];
        let tokens = [(0.0, 0.0), (1.0, 900.0), (9.0, 400.0)];
        let svg = timeline(
            "Load",
            &[("in flight", &in_flight[..]), ("tokens/s", &tokens[..])],
            &[("warmup", 0.0, 2.0), ("cooldown", 9.0, 10.0)],
            "value",
            &ChartStyle::default(),
        )
        .expect("drawn");
        let svg = Svg::parse(&svg);
        assert!(svg.has_text("warmup") && svg.has_text("cooldown"));
        assert!(svg.has_text("in flight") && svg.has_text("tokens/s"));
        assert!(svg.has_text(TIME_AXIS));
        assert_eq!(fill_count(&svg, "#808080"), 2);
    }

    #[test]
    fn a_step_holds_each_value_until_the_next_time() {
        assert_eq!(
            step_path(&[(0.0, 1.0), (2.0, 3.0), (5.0, 0.0)]),
            vec![(0.0, 1.0), (2.0, 1.0), (2.0, 3.0), (5.0, 3.0), (5.0, 0.0)]
        );
        assert!(step_path(&[]).is_empty());
    }

    #[test]
    fn a_dense_series_keeps_each_columns_extremes() {
        let points: Vec<(f64, f64)> = (0..100_000)
            .map(|i| {
                (
                    i as f64 / 1000.0,
                    if i == 50_123 { 1e6 } else { (i % 10) as f64 },
                )
            })
            .collect();
        let kept = envelope(&points, &(0.0..100.0), 100);
        assert!(kept.len() <= 400, "{} points kept", kept.len());
        assert!(kept.contains(&(50.123, 1e6)), "the spike is kept");
        assert!(
            kept.windows(2).all(|w| w[0].0 <= w[1].0),
            "still in time order"
        );
    }

    #[test]
    fn a_timeline_without_points_says_no_data() {
        let svg = timeline(
            "Load",
            &[("in flight", &[(f64::NAN, 1.0)][..])],
            &[("warmup", 0.0, 2.0)],
            "requests",
            &ChartStyle::default(),
        )
        .expect("drawn");
        assert!(Svg::parse(&svg).has_text("no data"));
    }

    #[test]
    fn each_request_is_a_waiting_and_a_streaming_bar() {
        let requests = [
            (0.0, 0.2, 1.0),
            (0.1, 0.4, 1.1),
            (0.2, f64::NAN, 0.3),
            (0.3, 0.5, 0.2),
        ];
        let svg = request_gantt("Requests", &requests, &ChartStyle::default()).expect("drawn");
        let svg = Svg::parse(&svg);
        // One bar each plus one legend swatch per kind.
        assert_eq!(fill_count(&svg, "#FF7F0E"), 2 + 1);
        assert_eq!(fill_count(&svg, "#1F77B4"), 2 + 1);
        assert_eq!(fill_count(&svg, "#A0A0A0"), 1 + 1);
        assert!(svg.has_text("no first token"));
    }

    #[test]
    fn a_large_gantt_draws_the_first_requests_sent_and_says_so() {
        let requests: Vec<(f64, f64, f64)> = (0..5_000)
            .rev()
            .map(|i| (i as f64, i as f64 + 0.2, i as f64 + 1.0))
            .collect();
        let svg = request_gantt("Requests", &requests, &ChartStyle::default()).expect("drawn");
        let svg = Svg::parse(&svg);
        assert!(svg.has_text("Requests (first 1,000 of 5,000 requests shown)"));
        assert_eq!(fill_count(&svg, "#1F77B4"), GANTT_MAX_REQUESTS + 1);
    }

    #[test]
    fn a_gantt_without_requests_says_no_data() {
        let svg =
            request_gantt("Requests", &[(1.0, 0.5, 0.0)], &ChartStyle::default()).expect("drawn");
        assert!(Svg::parse(&svg).has_text("no data"));
    }
}
