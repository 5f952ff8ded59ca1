//! The Prometheus text exposition format (version 0.0.4) as a server
//! writes it: `# HELP` and `# TYPE` lines, `name{label="value"} value`
//! samples, histograms as cumulative `_bucket{le=…}` lines ending at
//! `+Inf`, then `_sum` and `_count`; numbers the way the server's library
//! prints them ([`Numbers`]).

use std::fmt::Write;

use super::histogram::HistogramSnapshot;

/// How a server writes numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Numbers {
    /// prometheus_client's `floatToGoString`: Python's `repr`, with Go's
    /// earlier switch to an exponent (`3.0`, `0.001`, `8.128902e+06`).
    Python,
    /// Rust's `Display` (`metrics-exporter-prometheus`): `3`, `0.5`.
    Rust,
    /// A C++ stream's default for a double: 6 significant digits, `%g`.
    Cpp,
}

impl Numbers {
    pub(crate) fn format(self, value: f64) -> String {
        if value.is_infinite() {
            return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
        }
        if value.is_nan() {
            return "NaN".to_string();
        }
        match self {
            Numbers::Python => go_float(value),
            Numbers::Rust => format!("{value}"),
            Numbers::Cpp => cpp_double(value),
        }
    }
}

/// Python's `repr` of a float.
fn python_repr(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        // `{:e}` is the shortest round trip, as repr: `1e-5` → `1e-05`.
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// prometheus_client's `floatToGoString`.
fn go_float(value: f64) -> String {
    let repr = python_repr(value);
    match repr.find('.') {
        Some(dot) if value > 0.0 && dot > 6 => {
            let digits = format!("{}.{}{}", &repr[..1], &repr[1..dot], &repr[dot + 1..]);
            let mantissa = digits.trim_end_matches(['0', '.']);
            format!("{mantissa}e+0{}", dot - 1)
        }
        _ => repr,
    }
}

/// A double as `std::ostream << double` writes it (`%g`, precision 6).
fn cpp_double(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let scientific = format!("{value:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |text: &str| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exponent.abs());
    }
    let decimals = usize::try_from(5 - exponent).unwrap_or(0);
    trim(&format!("{value:.decimals$}"))
}

/// A Prometheus text exposition being written.
pub(crate) struct Exposition {
    pub(crate) text: String,
    numbers: Numbers,
    /// Labels written sorted by name, as prometheus_client writes them.
    sorted_labels: bool,
    /// A blank line before each family after the first.
    pub(crate) blank_lines: bool,
}

impl Exposition {
    pub(crate) fn new(numbers: Numbers, sorted_labels: bool) -> Self {
        Exposition {
            text: String::with_capacity(8 * 1024),
            numbers,
            sorted_labels,
            blank_lines: false,
        }
    }

    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.blank_lines && !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        let mut labels = labels.to_vec();
        if self.sorted_labels {
            labels.sort_by_key(|(label, _)| *label);
        }
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", self.numbers.format(value));
    }

    pub(crate) fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        snapshot: &HistogramSnapshot,
    ) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let bounds = snapshot
            .buckets
            .iter()
            .map(|&(bound, count)| (bound, count))
            .chain([(f64::INFINITY, snapshot.count)]);
        for (bound, count) in bounds {
            let le = self.numbers.format(bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, count as f64);
        }
        self.sample(&format!("{name}_sum"), labels, snapshot.sum);
        self.sample(&format!("{name}_count"), labels, snapshot.count as f64);
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_each_server_writes_them() {
        assert_eq!(go_float(3.0), "3.0");
        assert_eq!(go_float(0.001), "0.001");
        assert_eq!(go_float(2560.0), "2560.0");
        assert_eq!(go_float(8_128_902.0), "8.128902e+06");
        assert_eq!(go_float(0.0), "0.0");
        assert_eq!(go_float(1e-5), "1e-05");
        assert_eq!(Numbers::Python.format(f64::INFINITY), "+Inf");
        assert_eq!(Numbers::Rust.format(5.0), "5");
        assert_eq!(Numbers::Rust.format(0.25), "0.25");
        assert_eq!(cpp_double(6886.0), "6886");
        assert_eq!(cpp_double(0.5), "0.5");
        assert_eq!(cpp_double(2.371_514), "2.37151");
        assert_eq!(cpp_double(1_234_567.0), "1.23457e+06");
        assert_eq!(cpp_double(0.0), "0");
    }

    #[test]
    fn a_histogram_is_cumulative_buckets_to_inf_then_sum_and_count() {
        let mut out = Exposition::new(Numbers::Python, true);
        let snapshot = HistogramSnapshot {
            buckets: vec![(0.1, 1), (1.0, 3)],
            count: 4,
            sum: 2.5,
        };
        let labels = [("model_name", "m"), ("engine_type", "unified")];
        out.histogram("x_seconds", "X.", &labels, &snapshot);
        let expected = [
            "# HELP x_seconds X.",
            "# TYPE x_seconds histogram",
            r#"x_seconds_bucket{engine_type="unified",le="0.1",model_name="m"} 1.0"#,
            r#"x_seconds_bucket{engine_type="unified",le="1.0",model_name="m"} 3.0"#,
            r#"x_seconds_bucket{engine_type="unified",le="+Inf",model_name="m"} 4.0"#,
            r#"x_seconds_sum{engine_type="unified",model_name="m"} 2.5"#,
            r#"x_seconds_count{engine_type="unified",model_name="m"} 4.0"#,
        ];
        assert_eq!(out.text.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
