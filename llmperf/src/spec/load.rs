//! The load part of a spec: when requests are sent, how many, for how
//! long, at which levels, and when a run stops on its own.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{duration_ms, option_duration_ms, SpecError};

/// Requests a duration-limited closed loop sends at most when no request
/// count is given: a closed loop cannot know ahead how many it will send,
/// and plans them as it sends, so this only ends a run whose duration
/// would outlast them (5,000,000 requests take over eight minutes at
/// 10,000 a second).
pub const DURATION_REQUEST_CAP: u64 = 5_000_000;

/// How open-loop send times are spaced.
///
/// ```
/// use llmperf::spec::Arrival;
/// let bursty = Arrival::Gamma { burstiness: 0.5 };
/// # let _ = bursty;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "process", rename_all = "snake_case")]
pub enum Arrival {
    /// Exponential gaps: a Poisson process, the usual model of independent users.
    #[default]
    Poisson,
    /// Equal gaps of 1/rate.
    Constant,
    /// Gamma-distributed gaps with shape `burstiness` and mean 1/rate (as
    /// vLLM's benchmark): 1 is Poisson, below 1 burstier, above 1 more even.
    Gamma {
        /// The shape parameter (positive).
        burstiness: f64,
    },
}

impl Arrival {
    /// `poisson`, `constant` or `gamma(B)`.
    pub fn label(&self) -> String {
        match self {
            Arrival::Poisson => "poisson".to_string(),
            Arrival::Constant => "constant".to_string(),
            Arrival::Gamma { burstiness } => format!("gamma({burstiness})"),
        }
    }
}

/// An open-loop load: requests sent on a schedule, whatever the endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Target requests per second.
    pub per_s: f64,
    /// How the gaps between sends are drawn.
    pub arrival: Arrival,
    /// A cap on requests in flight; sends past it wait (and are counted as
    /// queued), they are never dropped. `None`: no cap.
    pub max_in_flight: Option<usize>,
    /// Rise linearly from 0 to the rate over this time (open loop only).
    #[serde(with = "option_duration_ms", default)]
    pub ramp_up: Option<Duration>,
}

/// Levels a sweep runs, one result per level in the same benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sweep {
    /// Closed loops at these concurrency levels.
    Concurrency {
        /// The levels, in the order run.
        levels: Vec<usize>,
    },
    /// Open loops at these rates (arrival process and cap from the load's rate).
    Rates {
        /// Requests per second, in the order run.
        levels: Vec<f64>,
    },
    /// Find the range: a synchronous level (concurrency 1), a
    /// max-throughput level (closed loop at `max_concurrency`), then `rates`
    /// open-loop levels spread evenly between the two measured rates.
    Auto {
        /// Open-loop levels between the synchronous and the maximum rate.
        rates: usize,
        /// Concurrency of the max-throughput level.
        max_concurrency: usize,
    },
}

/// One level of a run: a closed loop at a concurrency, or an open loop at a rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Level {
    /// A closed loop keeping this many requests in flight.
    Concurrency {
        /// Requests in flight.
        concurrency: usize,
    },
    /// An open loop at this rate.
    Rate(Rate),
}

impl Level {
    /// A short label: `c=16`, `5 req/s`.
    pub fn label(&self) -> String {
        match self {
            Level::Concurrency { concurrency } => format!("c={concurrency}"),
            Level::Rate(rate) => format!("{} req/s", trim_float(rate.per_s)),
        }
    }

    /// The level as a number on a curve: concurrency, or requests per second.
    pub fn value(&self) -> f64 {
        match self {
            Level::Concurrency { concurrency } => *concurrency as f64,
            Level::Rate(rate) => rate.per_s,
        }
    }

    /// Most requests in flight this level can have (`None`: unbounded).
    pub fn max_in_flight(&self) -> Option<usize> {
        match self {
            Level::Concurrency { concurrency } => Some(*concurrency),
            Level::Rate(rate) => rate.max_in_flight,
        }
    }
}

/// A number without trailing zeros (3 decimals at most): `0.5`, `100`.
pub(crate) fn trim_float(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Requests at the start of a level that are sent but left out of its
/// statistics (kept in `requests.jsonl`, flagged `warmup`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Warmup {
    /// The first N requests sent.
    Requests {
        /// How many.
        requests: u64,
    },
    /// Requests scheduled within this time from the level's start.
    Duration {
        /// How long.
        #[serde(with = "duration_ms", rename = "duration_ms")]
        duration: Duration,
    },
}

/// When requests are sent, how many, and when a run stops.
///
/// ```
/// use std::time::Duration;
/// use llmperf::Load;
/// let closed = Load::closed(8).requests(200).timeout(Duration::from_secs(60));
/// let open = Load::rate(20.0).duration(Duration::from_secs(60)).warmup_requests(10);
/// let sweep = Load::concurrency_sweep([1, 4, 16, 64]).requests(100);
/// # let _ = (closed, open, sweep);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Closed loop: requests kept in flight (a finished request is replaced at once).
    pub concurrency: usize,
    /// Open loop: the rate and arrival process. Set, it replaces the closed loop.
    #[serde(default)]
    pub rate: Option<Rate>,
    /// Several levels in one benchmark.
    #[serde(default)]
    pub sweep: Option<Sweep>,
    /// Measured requests per level (warmup and cooldown come on top).
    pub requests: u64,
    /// Stop sending measured requests after this long per level (the
    /// requests in flight finish). With a request count too, whichever
    /// comes first.
    #[serde(with = "option_duration_ms", default)]
    pub duration: Option<Duration>,
    /// Requests left out of the statistics at the start of each level.
    #[serde(default)]
    pub warmup: Option<Warmup>,
    /// Requests sent after the measured ones so that those end under the
    /// same load (left out of the statistics, flagged `cooldown`).
    #[serde(default)]
    pub cooldown_requests: u64,
    /// Stop a level (and the sweep) after this many failed requests.
    #[serde(default)]
    pub max_errors: Option<u64>,
    /// Stop a level (and the sweep) once this share of finished requests
    /// failed (checked from [`MIN_REQUESTS_FOR_ERROR_RATE`] finished requests on).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    /// Limit on one request, from send to the end of its stream.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Limit on silence within a stream (no bytes for this long is a `stall`).
    #[serde(with = "option_duration_ms", default)]
    pub stall_timeout: Option<Duration>,
    /// Pause a slot takes after each request before sending the next, for
    /// rate-limited providers (closed loop).
    #[serde(with = "duration_ms")]
    pub sleep: Duration,
    /// Largest event a stream may send, in bytes: an event still
    /// incomplete past it ends the request as `event_too_large` (written
    /// only when not the default).
    #[serde(
        default = "default_max_event_bytes",
        skip_serializing_if = "is_default_max_event_bytes"
    )]
    pub max_event_bytes: usize,
}

/// The default largest event, in bytes: far beyond any token, usage or
/// final event a real server sends, small enough that thousands of streams
/// stay bounded.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

fn default_max_event_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

fn is_default_max_event_bytes(bytes: &usize) -> bool {
    *bytes == default_max_event_bytes()
}

/// Finished requests needed before the error-rate stop condition applies
/// (so two early failures do not stop a run at 100%).
pub const MIN_REQUESTS_FOR_ERROR_RATE: u64 = 20;

impl Default for Load {
    fn default() -> Self {
        Load::closed(1)
    }
}

impl Load {
    /// A closed loop keeping `concurrency` requests in flight.
    pub fn closed(concurrency: usize) -> Self {
        Load {
            concurrency,
            rate: None,
            sweep: None,
            requests: 10,
            duration: None,
            warmup: None,
            cooldown_requests: 0,
            max_errors: None,
            max_error_rate: None,
            timeout: Duration::from_secs(90),
            stall_timeout: None,
            sleep: Duration::ZERO,
            max_event_bytes: default_max_event_bytes(),
        }
    }

    /// An open loop sending `per_s` requests per second, Poisson arrivals,
    /// no cap on requests in flight.
    pub fn rate(per_s: f64) -> Self {
        Load {
            rate: Some(Rate {
                per_s,
                arrival: Arrival::Poisson,
                max_in_flight: None,
                ramp_up: None,
            }),
            ..Load::closed(1)
        }
    }

    /// Closed loops at each concurrency level, in order.
    pub fn concurrency_sweep(levels: impl IntoIterator<Item = usize>) -> Self {
        let levels: Vec<usize> = levels.into_iter().collect();
        Load {
            sweep: Some(Sweep::Concurrency { levels }),
            ..Load::closed(1)
        }
    }

    /// Open loops at each rate, in order (Poisson unless [`Load::arrival`] says otherwise).
    pub fn rate_sweep(levels: impl IntoIterator<Item = f64>) -> Self {
        let levels: Vec<f64> = levels.into_iter().collect();
        let first = levels.first().copied().unwrap_or(1.0);
        Load {
            sweep: Some(Sweep::Rates { levels }),
            ..Load::rate(first)
        }
    }

    /// The automatic sweep: synchronous, max throughput (closed loop at
    /// `max_concurrency`), then `rates` open-loop levels between the two.
    pub fn auto_sweep(rates: usize, max_concurrency: usize) -> Self {
        Load {
            sweep: Some(Sweep::Auto {
                rates,
                max_concurrency,
            }),
            ..Load::rate(1.0)
        }
    }

    /// Measured requests per level.
    pub fn requests(mut self, requests: u64) -> Self {
        self.requests = requests;
        self
    }

    /// Per-level time limit on sending measured requests. This also raises
    /// the request count to a cap: [`DURATION_REQUEST_CAP`] for a closed
    /// loop, the largest run for an open loop (whose schedule decides); a
    /// [`Load::requests`] after it sets another cap.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        let cap = if self.rate.is_some() {
            super::MAX_REQUESTS
        } else {
            DURATION_REQUEST_CAP
        };
        self.requests = self.requests.max(cap);
        self
    }

    /// The arrival process of an open loop (no effect on a closed loop).
    pub fn arrival(mut self, arrival: Arrival) -> Self {
        if let Some(rate) = &mut self.rate {
            rate.arrival = arrival;
        }
        self
    }

    /// Caps requests in flight of an open loop; overdue sends queue.
    pub fn max_in_flight(mut self, cap: usize) -> Self {
        if let Some(rate) = &mut self.rate {
            rate.max_in_flight = Some(cap);
        }
        self
    }

    /// Ramps an open loop's rate up linearly from 0 over `ramp`.
    pub fn ramp_up(mut self, ramp: Duration) -> Self {
        if let Some(rate) = &mut self.rate {
            rate.ramp_up = Some(ramp);
        }
        self
    }

    /// Leaves the first `requests` of each level out of the statistics.
    pub fn warmup_requests(mut self, requests: u64) -> Self {
        self.warmup = Some(Warmup::Requests { requests });
        self
    }

    /// Leaves requests scheduled in the first `duration` of each level out
    /// of the statistics.
    pub fn warmup_duration(mut self, duration: Duration) -> Self {
        self.warmup = Some(Warmup::Duration { duration });
        self
    }

    /// Sends `requests` more after the measured ones, left out of the statistics.
    pub fn cooldown_requests(mut self, requests: u64) -> Self {
        self.cooldown_requests = requests;
        self
    }

    /// Stops after `errors` failed requests.
    pub fn max_errors(mut self, errors: u64) -> Self {
        self.max_errors = Some(errors);
        self
    }

    /// Stops once more than `share` (0–1) of finished requests failed.
    pub fn max_error_rate(mut self, share: f64) -> Self {
        self.max_error_rate = Some(share);
        self
    }

    /// Per-request timeout (default 90 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest silence allowed inside a stream (default: none).
    pub fn stall_timeout(mut self, stall: Duration) -> Self {
        self.stall_timeout = Some(stall);
        self
    }

    /// Pause after each request, per slot.
    pub fn sleep(mut self, sleep: Duration) -> Self {
        self.sleep = sleep;
        self
    }

    /// Largest event a stream may send (default 1 MiB): a longer one
    /// (a line that never ends, a giant event) ends the request as
    /// `event_too_large` and drops its connection, so no server can make
    /// a stream hold more memory than this.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// The level of a load without a sweep.
    pub fn single_level(&self) -> Level {
        match self.rate {
            Some(rate) => Level::Rate(rate),
            None => Level::Concurrency {
                concurrency: self.concurrency,
            },
        }
    }

    /// The levels known before the run: every level of a list sweep, the
    /// single level otherwise, and the first two of an automatic sweep
    /// (the rest depend on what those measure).
    pub fn fixed_levels(&self) -> Vec<Level> {
        let template = self.rate.unwrap_or(Rate {
            per_s: 1.0,
            arrival: Arrival::Poisson,
            max_in_flight: None,
            ramp_up: None,
        });
        match &self.sweep {
            None => vec![self.single_level()],
            Some(Sweep::Concurrency { levels }) => levels
                .iter()
                .map(|&concurrency| Level::Concurrency { concurrency })
                .collect(),
            Some(Sweep::Rates { levels }) => levels
                .iter()
                .map(|&per_s| Level::Rate(Rate { per_s, ..template }))
                .collect(),
            Some(Sweep::Auto {
                max_concurrency, ..
            }) => vec![
                Level::Concurrency { concurrency: 1 },
                Level::Concurrency {
                    concurrency: *max_concurrency,
                },
            ],
        }
    }

    /// Checks values that can never work, with a message naming the fix.
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        if self.concurrency == 0 {
            return Err(SpecError::new(
                "concurrency is 0: set it to 1 or more (--concurrency N)",
            ));
        }
        if self.requests == 0 {
            return Err(SpecError::new(
                "requests is 0: set it to 1 or more (--requests N)",
            ));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(SpecError::new(
                "the duration is 0: give a positive duration (--duration 60s)",
            ));
        }
        if let Some(rate) = &self.rate {
            check_rate(rate.per_s)?;
            if let Arrival::Gamma { burstiness } = rate.arrival {
                if !(burstiness.is_finite() && burstiness > 0.0) {
                    return Err(SpecError::new(format!(
                        "burstiness {burstiness} is not positive: use e.g. 1 (Poisson), 0.5 (burstier) or 4 (more even) (--burstiness)"
                    )));
                }
            }
            if rate.max_in_flight == Some(0) {
                return Err(SpecError::new(
                    "the in-flight cap is 0: allow at least 1 request in flight (--max-in-flight)",
                ));
            }
        }
        match &self.sweep {
            Some(Sweep::Concurrency { levels }) if levels.is_empty() || levels.contains(&0) => {
                return Err(SpecError::new(
                    "a concurrency sweep needs levels of 1 or more, e.g. --concurrency 1,4,16,64",
                ));
            }
            Some(Sweep::Rates { levels }) => {
                if levels.is_empty() {
                    return Err(SpecError::new(
                        "a rate sweep needs at least one rate, e.g. --rate 1,2,4,8",
                    ));
                }
                for &rate in levels {
                    check_rate(rate)?;
                }
            }
            Some(Sweep::Auto {
                rates,
                max_concurrency,
            }) if *rates == 0 || *max_concurrency == 0 => {
                return Err(SpecError::new(
                    "an automatic sweep needs at least 1 rate level and a max concurrency of 1 or more",
                ));
            }
            _ => {}
        }
        if let Some(share) = self.max_error_rate {
            if !(0.0..=1.0).contains(&share) {
                return Err(SpecError::new(format!(
                    "max error rate {share} is not a share between 0 and 1 (--max-error-rate 0.1 for 10%)"
                )));
            }
        }
        if matches!(self.warmup, Some(Warmup::Duration { .. })) && self.duration.is_none() {
            return Err(SpecError::new(
                "a warmup by time needs a duration-limited level (--duration D), which it precedes; with a request count, warm up by count (--warmup N)",
            ));
        }
        if self.max_errors == Some(0) {
            return Err(SpecError::new(
                "max errors is 0: allow at least 1 (--max-errors N)",
            ));
        }
        if self.timeout.is_zero() {
            return Err(SpecError::new(
                "the request timeout is 0: give a positive duration (--timeout 90s)",
            ));
        }
        Ok(())
    }

    /// Measured requests a level plans at most: `requests`, except that a
    /// closed level of a duration-limited load whose count was raised for
    /// an open loop (an automatic sweep, or `--concurrency` overriding a
    /// rate benchmark) plans [`DURATION_REQUEST_CAP`].
    pub(crate) fn level_requests(&self, level: &Level) -> u64 {
        match level {
            Level::Concurrency { .. }
                if self.duration.is_some() && self.requests >= super::MAX_REQUESTS =>
            {
                DURATION_REQUEST_CAP
            }
            _ => self.requests,
        }
    }

    /// An upper bound on the requests one level plans: warmup, measured
    /// and cooldown requests; an open loop with a duration plans what its
    /// schedule holds, bounded here by the expected arrivals plus a wide
    /// margin.
    pub(crate) fn planned_requests(&self) -> u64 {
        let warmup = match self.warmup {
            Some(Warmup::Requests { requests }) => requests,
            _ => 0,
        };
        let fastest = self
            .fixed_levels()
            .iter()
            .filter_map(|level| match level {
                Level::Rate(rate) => Some(rate.per_s),
                Level::Concurrency { .. } => None,
            })
            .fold(None, |max: Option<f64>, r| {
                Some(max.map_or(r, |m| m.max(r)))
            });
        let measured = match (fastest, self.duration) {
            (Some(per_s), Some(duration))
                if self.sweep.is_none() || matches!(self.sweep, Some(Sweep::Rates { .. })) =>
            {
                let seconds = duration.as_secs_f64()
                    + match self.warmup {
                        Some(Warmup::Duration { duration }) => duration.as_secs_f64(),
                        _ => 0.0,
                    };
                let expected = per_s * seconds;
                let bound = (expected + 6.0 * expected.sqrt() + 16.0).ceil();
                self.requests.min(bound.min(u64::MAX as f64) as u64)
            }
            _ => self
                .fixed_levels()
                .iter()
                .map(|level| self.level_requests(level))
                .max()
                .unwrap_or(self.requests),
        };
        warmup
            .saturating_add(measured)
            .saturating_add(self.cooldown_requests)
    }
}

fn check_rate(per_s: f64) -> Result<(), SpecError> {
    if per_s.is_finite() && per_s > 0.0 && per_s <= 1e6 {
        Ok(())
    } else {
        Err(SpecError::new(format!(
            "rate {per_s} is not a positive number of requests per second up to 1,000,000 (--rate R)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_lists_its_levels_and_an_auto_sweep_starts_synchronous() {
        let levels = Load::concurrency_sweep([1, 4]).fixed_levels();
        assert_eq!(levels[1], Level::Concurrency { concurrency: 4 });
        let rates = Load::rate_sweep([2.0, 8.0])
            .arrival(Arrival::Constant)
            .fixed_levels();
        assert!(
            matches!(rates[1], Level::Rate(r) if r.per_s == 8.0 && r.arrival == Arrival::Constant)
        );
        let auto = Load::auto_sweep(4, 32).fixed_levels();
        assert_eq!(auto[0], Level::Concurrency { concurrency: 1 });
        assert_eq!(auto[1], Level::Concurrency { concurrency: 32 });
    }

    #[test]
    fn impossible_load_values_name_the_flag_to_fix() {
        let gamma = Load::rate(5.0).arrival(Arrival::Gamma { burstiness: 0.0 });
        assert!(gamma
            .check()
            .unwrap_err()
            .to_string()
            .contains("--burstiness"));
        assert!(Load::rate(0.0)
            .check()
            .unwrap_err()
            .to_string()
            .contains("--rate"));
        let sweep = Load::concurrency_sweep([1, 0]);
        assert!(sweep.check().is_err());
        let share = Load::closed(1).max_error_rate(1.5);
        assert!(share
            .check()
            .unwrap_err()
            .to_string()
            .contains("--max-error-rate"));
    }
}
