//! The options of `#[llmperf::bench(...)]`, as one struct.
//!
//! The attribute turns each `key = value` into the field of the same name
//! of [`BenchOptions`]; the rest of the struct is [`BenchOptions::DEFAULT`].
//! An option is a field here and a line of [`BenchOptions::apply`] (and, in
//! `llmperf-macros`, the check of its value's form).

use crate::spec::{Arrival, Benchmark, Rate, Sweep};

/// Open-loop levels of `sweep = "auto"`.
pub const AUTO_SWEEP_RATES: usize = 5;
/// Least concurrency of the max-throughput level of `sweep = "auto"`
/// (the spec's concurrency when higher).
pub const AUTO_SWEEP_MAX_CONCURRENCY: usize = 64;

/// What `#[llmperf::bench(...)]` sets on top of the function's spec: one
/// field per option of the attribute, `None` where it was not given.
///
/// ```
/// use llmperf::registry::{BenchOptions, ConcurrencyOption};
///
/// let options = BenchOptions {
///     requests: Some(20),
///     concurrency: Some(ConcurrencyOption::Levels(&[1, 4])),
///     ..BenchOptions::DEFAULT
/// };
/// let bench = options.apply(llmperf::Benchmark::new());
/// assert_eq!(bench.load_spec().requests, 20);
/// assert!(bench.load_spec().sweep.is_some());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BenchOptions {
    /// `name = "…"`: the benchmark's name instead of the function's.
    pub name: Option<&'static str>,
    /// `group = "…"`: the group, the first part of the id (`group/name`).
    pub group: Option<&'static str>,
    /// `requests = N`: requests per level.
    pub requests: Option<u64>,
    /// `concurrency = N`, or a concurrency sweep `concurrency = [1, 4, 16]`.
    pub concurrency: Option<ConcurrencyOption>,
    /// `rates = [1, 2.5, 5]`: a rate sweep (requests per second).
    pub rates: Option<&'static [f64]>,
    /// `sweep = "auto"`: a sweep chosen by name.
    pub sweep: Option<NamedSweep>,
}

/// The value of `concurrency = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyOption {
    /// `concurrency = N`: requests in flight.
    Fixed(usize),
    /// `concurrency = [..]`: a concurrency sweep over these levels.
    Levels(&'static [usize]),
}

/// The value of `sweep = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedSweep {
    /// `sweep = "auto"`: the automatic sweep.
    Auto,
}

impl BenchOptions {
    /// No option given: the function's spec as it is (usable in a `static`,
    /// where `Default::default()` is not).
    pub const DEFAULT: BenchOptions = BenchOptions {
        name: None,
        group: None,
        requests: None,
        concurrency: None,
        rates: None,
        sweep: None,
    };

    /// `bench` with these options applied on top of the builder's settings.
    pub fn apply(&self, mut bench: Benchmark) -> Benchmark {
        if let Some(requests) = self.requests {
            bench = bench.requests(requests);
        }
        if let Some(ConcurrencyOption::Fixed(concurrency)) = self.concurrency {
            bench = bench.concurrency(concurrency);
        }
        let mut load = bench.load_spec().clone();
        let rates = self.rates.unwrap_or_default();
        match self.concurrency {
            Some(ConcurrencyOption::Levels(levels)) if !levels.is_empty() => {
                load.sweep = Some(Sweep::Concurrency {
                    levels: levels.to_vec(),
                });
                load.rate = None;
            }
            _ if !rates.is_empty() => {
                load.rate.get_or_insert(Rate {
                    per_s: rates[0],
                    arrival: Arrival::Poisson,
                    max_in_flight: None,
                    ramp_up: None,
                });
                load.sweep = Some(Sweep::Rates {
                    levels: rates.to_vec(),
                });
            }
            _ if self.sweep == Some(NamedSweep::Auto) => {
                load.sweep = Some(Sweep::Auto {
                    rates: AUTO_SWEEP_RATES,
                    max_concurrency: load.concurrency.max(AUTO_SWEEP_MAX_CONCURRENCY),
                });
            }
            _ => return bench,
        }
        bench.load(load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_change_only_what_they_name_and_sweeps_replace_the_single_level() {
        let bench = Benchmark::new().concurrency(3);
        assert_eq!(
            BenchOptions::DEFAULT.apply(bench.clone()).load_spec(),
            bench.load_spec()
        );
        let fixed = BenchOptions {
            requests: Some(7),
            concurrency: Some(ConcurrencyOption::Fixed(5)),
            ..BenchOptions::DEFAULT
        }
        .apply(bench.clone());
        assert_eq!(
            (fixed.load_spec().requests, fixed.load_spec().concurrency),
            (7, 5)
        );
        assert_eq!(fixed.load_spec().sweep, None);
        let rates = BenchOptions {
            rates: Some(&[2.0, 8.0]),
            ..BenchOptions::DEFAULT
        }
        .apply(bench.clone());
        assert_eq!(rates.load_spec().rate.map(|r| r.per_s), Some(2.0));
        assert_eq!(
            rates.load_spec().sweep,
            Some(Sweep::Rates {
                levels: vec![2.0, 8.0]
            })
        );
        let auto = BenchOptions {
            sweep: Some(NamedSweep::Auto),
            ..BenchOptions::DEFAULT
        }
        .apply(bench);
        assert_eq!(
            auto.load_spec().sweep,
            Some(Sweep::Auto {
                rates: AUTO_SWEEP_RATES,
                max_concurrency: AUTO_SWEEP_MAX_CONCURRENCY
            })
        );
    }
}
