//! Charts for the HTML report, drawn with `plotters` as inline SVG strings.
//!
//! Every function takes plain numbers and labels (no llmperf types), so the module stands on
//! its own, and returns a standalone `<svg …>…</svg>` element (no XML prolog) ready to be
//! pasted into an HTML page:
//!
//! - [`distribution`]: a histogram with its empirical CDF and marked percentiles;
//! - [`cdf_overlay`]: several empirical CDFs on one chart (current run against a baseline);
//! - [`scatter`]: points, downsampled deterministically past a limit, saying so in the title;
//! - [`timeline`]: step series over the run's time, with shaded phases (warmup);
//! - [`request_gantt`]: one bar per request (waiting for the first token, then streaming);
//! - [`curve`]: a sweep's throughput against its latency percentiles, with the knee and SLOs.
//!
//! # Fonts
//!
//! No font is read. `plotters` is built without its `ttf` and `ab_glyph` features, so it lays
//! text out with its built-in estimate (a fixed width per byte of text) instead of measuring
//! glyphs from system fonts; the SVG backend writes text as `<text>` elements that the browser
//! sets in its own `sans-serif`. The same input gives the same bytes on any machine, fonts or
//! none (a test guards the estimate, so a dependency that turns `ttf` on is noticed).
//!
//! # Data
//!
//! Non-finite values (NaN, ±∞) are left out. A chart with nothing left to draw is still a chart:
//! the title and the words "no data", so a report page never has a hole. Errors are kept for
//! what the caller can fix ([`ChartError`]). Large inputs are reduced before drawing (CDFs to
//! evenly spaced ranks, time series to a per-pixel envelope, scatters and request bars to a
//! stated share), so a chart of 100,000 samples stays small and fast.
//!
//! ```
//! use llmperf::report::charts::{distribution, ChartStyle};
//!
//! let ttft_ms = [12.0, 15.0, 14.0, 40.0, 13.5];
//! let svg = distribution("TTFT", "ms", &ttft_ms, &[("p50", 14.0)], &ChartStyle::default())?;
//! assert!(svg.starts_with("<svg") && svg.contains("p50"));
//! # Ok::<(), llmperf::report::charts::ChartError>(())
//! ```

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod distributions;
mod over_time;
mod points;
#[cfg(test)]
mod svg_check;
mod sweep;

pub use distributions::{cdf_overlay, distribution};
pub use over_time::{request_gantt, timeline, GANTT_MAX_REQUESTS};
pub use points::{scatter, Scatter};
pub use sweep::{curve, SweepCurve, SweepLevel};

/// The size of a chart, in SVG user units (CSS pixels when inlined at its natural size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartStyle {
    /// Width of the whole chart, title and axes included.
    pub width: u32,
    /// Height of the whole chart, title and axes included.
    pub height: u32,
}

impl ChartStyle {
    /// The smallest width that leaves room for axes and a plot.
    pub const MIN_WIDTH: u32 = 200;
    /// The smallest height that leaves room for a title, axes and a plot.
    pub const MIN_HEIGHT: u32 = 120;

    fn check(&self) -> Result<(), ChartError> {
        if self.width < Self::MIN_WIDTH || self.height < Self::MIN_HEIGHT {
            return Err(ChartError::TooSmall {
                width: self.width,
                height: self.height,
            });
        }
        Ok(())
    }
}

impl Default for ChartStyle {
    /// 640 × 320: two charts side by side on a laptop screen, one per row on a phone.
    fn default() -> Self {
        ChartStyle {
            width: 640,
            height: 320,
        }
    }
}

/// Why a chart could not be drawn. Empty data is not an error: it draws a "no data" chart.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChartError {
    /// The requested size leaves no room for the plot.
    #[error(
        "a chart of {width}×{height} is too small: use at least {}×{}",
        ChartStyle::MIN_WIDTH,
        ChartStyle::MIN_HEIGHT
    )]
    TooSmall {
        /// The width asked for.
        width: u32,
        /// The height asked for.
        height: u32,
    },
    /// The values span more than a 64-bit float can hold (e.g. from -1e308 to 1e308).
    #[error("the values of \"{chart}\" span too wide a range to draw")]
    RangeTooWide {
        /// The chart's title.
        chart: String,
    },
    /// A scatter was asked to show at most zero points.
    #[error("a scatter must be allowed to show at least one point (max_points is 0)")]
    NoPointsAllowed,
    /// A sweep level has a different number of latencies than the sweep has percentile names.
    #[error(
        "sweep level {level} has {found} latencies but the sweep names {expected} percentiles"
    )]
    SweepShape {
        /// Index of the offending level.
        level: usize,
        /// Number of percentile names.
        expected: usize,
        /// Number of latencies at that level.
        found: usize,
    },
    /// The knee names a level the sweep does not have.
    #[error("the knee is level {knee} but the sweep has {levels} levels")]
    KneeOutOfRange {
        /// The knee's index.
        knee: usize,
        /// Number of levels.
        levels: usize,
    },
    /// `plotters` failed to draw (it writes to memory, so this should not happen).
    #[error("drawing the chart failed: {0}")]
    Drawing(String),
}

/// A drawing failure from `plotters`, carried out of the drawing closure as text.
///
/// It deliberately does not implement `Error`, so that any error converts into it with `?`.
struct DrawFailure(String);

impl<E: std::error::Error> From<E> for DrawFailure {
    fn from(error: E) -> Self {
        DrawFailure(error.to_string())
    }
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws on a white SVG canvas of `style`'s size and returns the inline `<svg>` element.
fn render(
    title: &str,
    style: &ChartStyle,
    draw: impl FnOnce(&Root<'_>) -> Result<(), DrawFailure>,
) -> Result<String, ChartError> {
    style.check()?;
    let mut buffer = String::new();
    {
        let root =
            SVGBackend::with_string(&mut buffer, (style.width, style.height)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(DrawFailure::from)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(DrawFailure::from));
        drawn.map_err(|DrawFailure(message)| ChartError::Drawing(message))?;
    }
    Ok(inline_svg(&buffer, title))
}

/// Drops anything before `<svg` (an XML prolog) and adds a `<title>` for screen readers.
fn inline_svg(document: &str, title: &str) -> String {
    let document = document.find("<svg").map_or(document, |at| &document[at..]);
    let document = document.trim_end();
    let Some(open_end) = document.find('>') else {
        return document.to_string();
    };
    let mut out = String::with_capacity(document.len() + title.len() + 20);
    out.push_str(&document[..=open_end]);
    out.push_str("\n<title>");
    push_escaped(&mut out, title);
    out.push_str("</title>");
    out.push_str(&document[open_end + 1..]);
    out.push('\n');
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
}

/// The chart drawn when there is nothing to plot: the title and "no data".
fn no_data(title: &str, style: &ChartStyle) -> Result<String, ChartError> {
    render(title, style, |root| {
        let root = root.titled(title, title_font())?;
        let (width, height) = root.dim_in_pixel();
        let centre = (width as i32 / 2, height as i32 / 2);
        root.draw(&Text::new(
            "no data",
            centre,
            label_font()
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        Ok(())
    })
}

/// A chart builder with the title and the axis areas every chart here uses.
fn chart_builder<'a, 'b>(root: &'a Root<'b>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, title_font())
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60);
    builder
}

fn title_font() -> TextStyle<'static> {
    ("sans-serif", 18).into_font().into()
}

fn label_font() -> TextStyle<'static> {
    ("sans-serif", 13).into_font().into()
}

/// The finite values of `values`, sorted.
fn finite_sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// An axis range covering `low..=high`, widened when it is a single value.
fn axis_range(chart: &str, low: f64, high: f64) -> Result<std::ops::Range<f64>, ChartError> {
    let too_wide = || ChartError::RangeTooWide {
        chart: chart.to_string(),
    };
    let span = high - low;
    if !span.is_finite() {
        return Err(too_wide());
    }
    if span > 0.0 {
        return Ok(low..high);
    }
    let half = if low == 0.0 { 1.0 } else { low.abs() * 0.05 };
    let range = (low - half)..(high + half);
    if (range.end - range.start).is_finite() {
        Ok(range)
    } else {
        Err(too_wide())
    }
}

/// How to anchor a label at `at` on an axis spanning `range` so that it stays inside the plot:
/// centred, or towards the middle when near either end.
fn anchor_inside(at: f64, range: &std::ops::Range<f64>) -> HPos {
    let share = (at - range.start) / (range.end - range.start);
    if share < 0.08 {
        HPos::Left
    } else if share > 0.92 {
        HPos::Right
    } else {
        HPos::Center
    }
}

/// The smallest and largest of some finite values, `None` when there are none.
fn bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })
}

/// A tick label: few digits, grouped thousands, scientific notation past 10⁷ or under 10⁻³.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() {
        return if value.is_finite() {
            "0".to_string()
        } else {
            value.to_string()
        };
    }
    if !(1e-3..1e7).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let decimals = (2 - magnitude.log10().floor() as i32).clamp(0, 4) as usize;
    let text = format!("{value:.decimals$}");
    if decimals == 0 {
        return group_thousands(&text);
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A count with thousands separators: 100000 → "100,000".
fn format_count(count: usize) -> String {
    group_thousands(&count.to_string())
}

fn group_thousands(integer: &str) -> String {
    let (sign, digits) = match integer.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", integer),
    };
    let mut out = String::with_capacity(integer.len() + digits.len() / 3);
    out.push_str(sign);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Series colours (the Tableau 10 palette: distinct, and readable by most colour-blind people).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn series_colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The grid: faint, so that it guides the eye without competing with the data.
const GRID: RGBAColor = RGBAColor(0, 0, 0, 0.12);
/// Text and lines that annotate rather than show data.
const MUTED: RGBColor = RGBColor(90, 90, 90);
/// Limits that must not be crossed (SLOs).
const LIMIT: RGBColor = RGBColor(200, 30, 30);

#[cfg(test)]
mod tests {
    use super::svg_check::Svg;
    use super::*;

    #[test]
    fn text_is_laid_out_without_fonts() {
        // plotters' built-in estimate: 0.7 em per byte, em = size / 1.24². A font backend
        // (the `ttf` or `ab_glyph` feature, turned on by any crate in the build) would
        // measure glyphs from font files instead and change every chart's layout.
        let font = FontDesc::new(FontFamily::SansSerif, 20.0, FontStyle::Normal);
        assert_eq!(font.box_size("abcd").ok(), Some((36, 16)));
        assert_eq!(font.box_size("WWWW").ok(), Some((36, 16)));
    }

    #[test]
    fn an_empty_chart_says_no_data_under_its_title() {
        let svg = no_data("TTFT", &ChartStyle::default()).expect("drawn");
        let parsed = Svg::parse(&svg);
        assert!(parsed.has_text("no data"));
        assert!(parsed.has_text("TTFT"));
    }

    #[test]
    fn a_chart_too_small_to_hold_a_plot_is_refused() {
        let tiny = ChartStyle {
            width: 10,
            height: 10,
        };
        assert_eq!(
            no_data("x", &tiny),
            Err(ChartError::TooSmall {
                width: 10,
                height: 10
            })
        );
    }

    #[test]
    fn the_svg_is_inline_ready_with_an_escaped_title() {
        let svg = inline_svg(
            "<?xml version=\"1.0\"?>\n<svg width=\"1\">\n</svg>\n",
            "a < b & c",
        );
        assert_eq!(
            svg,
            "<svg width=\"1\">\n<title>a &lt; b &amp; c</title>\n</svg>\n"
        );
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(0.30000000000000004), "0.3");
        assert_eq!(format_value(12.25), "12.2");
        assert_eq!(format_value(1500.0), "1,500");
        assert_eq!(format_value(-2_500_000.0), "-2,500,000");
        assert_eq!(format_value(1.5e9), "1.50e9");
        assert_eq!(format_value(0.0001), "1.00e-4");
        assert_eq!(format_count(100_000), "100,000");
        assert_eq!(format_count(999), "999");
    }

    /// A made-up run of `n` requests, with what each kind of chart plots.
    struct Run {
        ttft: Vec<f64>,
        baseline: Vec<f64>,
        points: Vec<(f64, f64)>,
        in_flight: Vec<(f64, f64)>,
        requests: Vec<(f64, f64, f64)>,
    }

    type Draw<'a> = Box<dyn Fn() -> Result<String, ChartError> + 'a>;

    impl Run {
        fn new(n: usize) -> Run {
            let ttft: Vec<f64> = (0..n)
                .map(|i| 40.0 + ((i * 7919) % 1000) as f64 * 0.3)
                .collect();
            Run {
                baseline: ttft.iter().map(|v| v * 0.95).collect(),
                points: ttft
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| ((i % 500) as f64, v * 10.0))
                    .collect(),
                in_flight: (0..n)
                    .map(|i| (i as f64 / 100.0, (i % 64) as f64))
                    .collect(),
                requests: (0..n)
                    .map(|i| {
                        let send = i as f64 / 100.0;
                        (send, send + 0.05, send + 0.5)
                    })
                    .collect(),
                ttft,
            }
        }

        /// One chart of each kind, titled `title`, drawn when called.
        fn charts<'a>(&'a self, title: &'a str) -> Vec<(&'static str, Draw<'a>)> {
            let style = ChartStyle::default();
            vec![
                (
                    "distribution",
                    Box::new(move || {
                        let marks = [("p50", 100.0), ("p99", 330.0)];
                        distribution(title, "ms", &self.ttft, &marks, &style)
                    }),
                ),
                (
                    "cdf_overlay",
                    Box::new(move || {
                        let series = [
                            ("current", &self.ttft[..]),
                            ("baseline", &self.baseline[..]),
                        ];
                        cdf_overlay(title, "ms", &series, &style)
                    }),
                ),
                (
                    "scatter",
                    Box::new(move || {
                        scatter(title, "tokens", "ms", &self.points, 2_000, &style).map(|s| s.svg)
                    }),
                ),
                (
                    "timeline",
                    Box::new(move || {
                        let series = [("in flight", &self.in_flight[..])];
                        timeline(title, &series, &[("warmup", 0.0, 1.0)], "requests", &style)
                    }),
                ),
                (
                    "request_gantt",
                    Box::new(move || request_gantt(title, &self.requests, &style)),
                ),
                (
                    "curve",
                    Box::new(move || {
                        let levels = [
                            SweepLevel {
                                label: "c=1",
                                throughput: 40.0,
                                latencies: &[80.0, 120.0],
                            },
                            SweepLevel {
                                label: "c=8 <fast>",
                                throughput: 290.0,
                                latencies: &[95.0, 180.0],
                            },
                        ];
                        let sweep = SweepCurve {
                            title,
                            throughput_label: "tokens/s",
                            latency_label: "ms",
                            percentiles: &["p50", "p99"],
                            levels: &levels,
                            knee: Some(1),
                            limits: &[("p99 < 500 & more", 500.0)],
                        };
                        curve(&sweep, &style)
                    }),
                ),
            ]
        }
    }

    #[test]
    fn every_chart_escapes_hostile_text() {
        let hostile = "<script>alert('x')</script> & \"co\"";
        let run = Run::new(300);
        for (kind, draw) in run.charts(hostile) {
            let svg = draw().unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(!svg.contains("<script"), "{kind} lets <script> through");
            let parsed = Svg::parse(&svg);
            let title = parsed.elements.iter().find(|e| e.name == "title");
            assert_eq!(title.map(|t| t.text.as_str()), Some(hostile), "{kind}");
            assert_eq!(
                parsed.count_where("text", |t| t.text.starts_with(hostile)),
                1,
                "{kind} has no caption"
            );
        }
    }

    #[test]
    fn every_chart_is_the_same_bytes_for_the_same_input() {
        let render_all = || -> Vec<(&str, Result<String, ChartError>)> {
            let run = Run::new(300);
            let charts = run.charts("TTFT");
            charts
                .into_iter()
                .map(|(kind, draw)| (kind, draw()))
                .collect()
        };
        let (first, second) = (render_all(), render_all());
        assert_eq!(first.len(), 6);
        for ((kind, a), (_, b)) in first.into_iter().zip(second) {
            assert!(a.is_ok(), "{kind}: {a:?}");
            assert!(a == b, "{kind} differs between two renders");
        }
    }

    #[test]
    fn every_chart_is_a_standalone_svg_element() {
        let run = Run::new(50);
        for (kind, draw) in run.charts("TTFT") {
            let svg = draw().unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(
                svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
                "{kind}"
            );
            assert!(!svg.contains("<?xml"), "{kind}");
            let parsed = Svg::parse(&svg);
            let root = &parsed.elements[0];
            assert_eq!(root.attr("width"), Some("640"), "{kind}");
            assert_eq!(root.attr("height"), Some("320"), "{kind}");
        }
    }

    /// `cargo test --release -p llmperf --lib report::charts::tests::render_times -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement to read, not a check"]
    fn render_times_for_100k_samples() {
        let run = Run::new(100_000);
        let mut total = std::time::Duration::ZERO;
        for (kind, draw) in run.charts("TTFT") {
            // The best of five, to leave out first-touch page faults.
            let mut best = std::time::Duration::MAX;
            let mut bytes = 0;
            for _ in 0..5 {
                let started = std::time::Instant::now();
                let svg = draw().unwrap_or_else(|e| panic!("{kind}: {e}"));
                best = best.min(started.elapsed());
                bytes = svg.len();
            }
            total += best;
            println!("{kind:>14}: {best:>10.2?}, {bytes:>7} bytes");
        }
        println!("{:>14}: {total:>10.2?}", "all six");
    }

    #[test]
    fn awkward_values_draw_or_fail_cleanly() {
        let style = ChartStyle::default();
        let awkward: [&[f64]; 8] = [
            &[1.0],
            &[-5.0, -5.0, -5.0],
            &[0.0, 5e-324],
            &[1e300, 1.0000001e300],
            &[-1e308, 1e308],
            &[f64::MAX, f64::MIN_POSITIVE],
            &[1e15, 1e15 + 1.0],
            &[-0.0, 0.0, f64::NAN],
        ];
        for values in awkward {
            let pairs: Vec<(f64, f64)> = values.iter().map(|&v| (v, v)).collect();
            let triples: Vec<(f64, f64, f64)> = values.iter().map(|&v| (v, v, v)).collect();
            let latencies = [values.first().copied().unwrap_or(0.0)];
            let levels = [SweepLevel {
                label: "l",
                throughput: values.last().copied().unwrap_or(0.0),
                latencies: &latencies,
            }];
            let sweep = SweepCurve {
                title: "t",
                throughput_label: "x",
                latency_label: "y",
                percentiles: &["p"],
                levels: &levels,
                knee: Some(0),
                limits: &[("l", values[0])],
            };
            let outcomes = [
                distribution("t", "u", values, &[("m", values[0])], &style),
                cdf_overlay("t", "u", &[("a", values)], &style),
                scatter("t", "x", "y", &pairs, 1, &style).map(|s| s.svg),
                timeline(
                    "t",
                    &[("a", &pairs[..])],
                    &[("w", values[0], 0.0)],
                    "y",
                    &style,
                ),
                request_gantt("t", &triples, &style),
                curve(&sweep, &style),
            ];
            for outcome in outcomes {
                match outcome {
                    Ok(svg) => drop(Svg::parse(&svg)),
                    Err(error) => assert!(
                        matches!(error, ChartError::RangeTooWide { .. }),
                        "{values:?}: {error}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_single_value_gets_a_range_around_it() {
        assert_eq!(axis_range("t", 5.0, 5.0), Ok(4.75..5.25));
        assert_eq!(axis_range("t", 0.0, 0.0), Ok(-1.0..1.0));
        assert!(matches!(
            axis_range("t", -1e308, 1e308),
            Err(ChartError::RangeTooWide { .. })
        ));
    }
}
