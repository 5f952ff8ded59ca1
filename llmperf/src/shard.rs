//! One share of a run spread over several processes or machines.
//!
//! A sharded run is N ordinary runs (`llmperf run --shard I/N`), each
//! driving its share of the load the flags describe, so that the union of
//! the shards is that load:
//!
//! - a closed loop of C in flight runs C/N per shard (the first C mod N
//!   shards one more); fewer in flight than shards is refused;
//! - an open loop of R req/s runs an arrival stream of R/N per shard, each
//!   drawn from its own seed and starting I/N of a mean gap in
//!   ([`Shard::arrival_phase`]). Independent Poisson streams add up to a
//!   Poisson stream of R; constant streams interleave into one constant
//!   stream of R; independent gamma streams add up to the rate R but not to
//!   a gamma process: the union of bursty streams is less bursty than one
//!   stream of the same shape (it tends to Poisson as N grows);
//! - request counts are dealt out in turn — warmup, measured, cooldown, in
//!   one continuing round — so the shards' counts add up to the whole's
//!   (whole conversations with several turns); an open loop's in-flight cap
//!   and the error count that stops a level are split like counts, at least
//!   one per shard; a duration, a warmup time and the timeouts are the same
//!   on every shard, which run side by side;
//! - each level of a sweep is split like a single level. An automatic sweep
//!   cannot be sharded: its levels depend on what its first two measured.
//!
//! Prompts come from (seed, shard): lengths and text from the shard's own
//! random streams; a dataset's entries are shuffled by the seed alone and
//! dealt out in turn (entry k to shard k mod N), so no two shards send the
//! same entry; a shared prefix is the seed's, the same on every shard;
//! each shard keeps, from its own stream, the validation numbers that
//! leave remainder I when divided by N, so they are distinct across
//! shards, and an answer that states another shard's number is found when
//! the shards are merged ([`crate::merge`]). Request ids are `k·N + I` for
//! the shard's k-th request, unique across the union. Shard 0 of 1 is
//! exactly an unsharded run.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::spec::{Level, Load, Rate, SpecError, Sweep, Warmup, MAX_REQUESTS};

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, from 0.
    pub index: u32,
    /// How many shards the run has.
    pub count: u32,
}

/// The whole run as one shard: what an unsharded run is.
pub const WHOLE: Shard = Shard { index: 0, count: 1 };

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The most shards a run has: shard 0 of 1,000 would own only multiples of
/// 1,000, which are never validation numbers.
pub const MAX_SHARDS: u32 = 999;

/// Environment variables a scheduler sets, read by [`Shard::from_env`].
pub const ENV_VARIABLES: &str = "JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_MIN/SLURM_ARRAY_TASK_COUNT (a Slurm job array)";

impl Shard {
    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard, SpecError> {
        if count == 0 {
            return Err(SpecError::new("a run has at least one shard"));
        }
        if count > MAX_SHARDS {
            return Err(SpecError::new(format!(
                "{count} shards: at most {MAX_SHARDS} (each shard keeps the validation numbers that leave its index divided by the count)"
            )));
        }
        if index >= count {
            return Err(SpecError::new(format!(
                "shard {index} of {count} does not exist: shards count from 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `I/N` (`--shard 2/8`).
    pub fn parse(text: &str) -> Result<Shard, SpecError> {
        let bad = || SpecError::new(format!("`{text}` is not a shard: write I/N, e.g. 0/4"));
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }

    /// The shard a scheduler's environment names (`lookup` reads a
    /// variable): a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`, or a
    /// Slurm array's `SLURM_ARRAY_TASK_ID` counted from
    /// `SLURM_ARRAY_TASK_MIN`. The count is `count` when given, else
    /// Slurm's `SLURM_ARRAY_TASK_COUNT` (Kubernetes does not tell a pod
    /// its Job's completions); when both are known they must agree.
    pub fn from_env(
        lookup: impl Fn(&str) -> Option<String>,
        count: Option<u32>,
    ) -> Result<Shard, SpecError> {
        let number =
            |name: &str| -> Result<Option<u32>, SpecError> {
                match lookup(name).filter(|v| !v.trim().is_empty()) {
                    None => Ok(None),
                    Some(value) => value.trim().parse().map(Some).map_err(|_| {
                        SpecError::new(format!("{name}={value} is not a whole number"))
                    }),
                }
            };
        let (index, scheduler_count) = if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            (index, None)
        } else if let Some(task) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = task.checked_sub(min).ok_or_else(|| {
                SpecError::new(format!(
                    "SLURM_ARRAY_TASK_ID={task} is below SLURM_ARRAY_TASK_MIN={min}"
                ))
            })?;
            let slurm_count = number("SLURM_ARRAY_TASK_COUNT")?;
            if let (Some(slurm_count), Some(max)) = (slurm_count, number("SLURM_ARRAY_TASK_MAX")?) {
                if max.checked_sub(min).map(|span| span + 1) != Some(slurm_count) {
                    return Err(SpecError::new(format!(
                        "the Slurm array runs tasks {min}..={max} but counts {slurm_count}: shards need a contiguous array with step 1 (--array={min}-{})",
                        min + slurm_count.saturating_sub(1)
                    )));
                }
            }
            (index, slurm_count)
        } else {
            return Err(SpecError::new(format!(
                "no shard index in the environment: pass --shard I/N, or run inside a scheduler that sets {ENV_VARIABLES}"
            )));
        };
        let count = match (count, scheduler_count) {
            (Some(given), Some(scheduler)) if given != scheduler => {
                return Err(SpecError::new(format!(
                    "--shards {given} disagrees with SLURM_ARRAY_TASK_COUNT={scheduler}"
                )))
            }
            (Some(count), _) | (None, Some(count)) => count,
            (None, None) => {
                return Err(SpecError::new(
                    "the shard count is not in the environment (a Kubernetes pod is not told its Job's completions): pass --shards N",
                ))
            }
        };
        Shard::new(index, count)
    }

    /// Whether this is more than the whole run.
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// This shard's part of `total` things dealt out in turn: `total / N`,
    /// one more for the first `total mod N` shards.
    pub fn split(&self, total: u64) -> u64 {
        let count = u64::from(self.count);
        total / count + u64::from(u64::from(self.index) < total % count)
    }

    /// This shard's part of `total` slots, refused when some shard would get none.
    fn split_slots(&self, total: usize, what: &str) -> Result<usize, SpecError> {
        if (total as u64) < u64::from(self.count) {
            return Err(SpecError::new(format!(
                "{what} {total} cannot be split into {} shards: every shard needs at least one; run at most {total} shard{}",
                self.count,
                if total == 1 { "" } else { "s" }
            )));
        }
        Ok(self.split(total as u64) as usize)
    }

    /// The seed of this shard's own random draws (arrival times): the
    /// run's seed for shard 0, a different one for every other shard.
    pub fn seed(&self, seed: u64) -> u64 {
        seed ^ u64::from(self.index).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The random stream `stream` of this shard (ChaCha's 64-bit stream
    /// number): `stream` itself for shard 0.
    pub fn stream(&self, stream: u64) -> u64 {
        stream | (u64::from(self.index) << 32)
    }

    /// The run-wide id of this shard's `local`-th request.
    pub fn request_id(&self, local: u64) -> u64 {
        local
            .saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }

    /// Whether validation number `number` belongs to this shard.
    pub fn owns_number(&self, number: u64) -> bool {
        number % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's share of a level.
    pub fn level(&self, level: &Level) -> Result<Level, SpecError> {
        Ok(match level {
            Level::Concurrency { concurrency } => Level::Concurrency {
                concurrency: self.split_slots(*concurrency, "a concurrency of")?,
            },
            Level::Rate(rate) => Level::Rate(self.rate(rate)?),
        })
    }

    fn rate(&self, rate: &Rate) -> Result<Rate, SpecError> {
        Ok(Rate {
            per_s: rate.per_s / f64::from(self.count),
            max_in_flight: rate
                .max_in_flight
                .map(|cap| self.split_slots(cap, "an in-flight cap of"))
                .transpose()?,
            ..*rate
        })
    }

    /// This shard's share of a load whose conversations have `turns`
    /// turns (see the module docs).
    pub fn load(&self, load: &Load, turns: u32) -> Result<Load, SpecError> {
        if !self.is_sharded() {
            return Ok(load.clone());
        }
        let mut share = load.clone();
        share.sweep = match &load.sweep {
            None => None,
            Some(Sweep::Concurrency { levels }) => Some(Sweep::Concurrency {
                levels: levels
                    .iter()
                    .map(|&c| self.split_slots(c, "a concurrency of"))
                    .collect::<Result<_, _>>()?,
            }),
            Some(Sweep::Rates { levels }) => Some(Sweep::Rates {
                levels: levels
                    .iter()
                    .map(|per_s| per_s / f64::from(self.count))
                    .collect(),
            }),
            Some(Sweep::Auto { .. }) => {
                return Err(SpecError::new(
                    "an automatic sweep (--rate auto) cannot be sharded: its open-loop levels come from what its first two levels measured, which no shard knows alone; run it once unsharded, then shard a sweep of the rates it found (--rate R1,R2,…)",
                ))
            }
        };
        if load.sweep.is_none() {
            match load.rate {
                Some(rate) => share.rate = Some(self.rate(&rate)?),
                None => {
                    share.concurrency = self.split_slots(load.concurrency, "a concurrency of")?
                }
            }
        } else if let Some(rate) = load.rate {
            // A rate sweep's levels carry the template's cap.
            share.rate = Some(self.rate(&rate)?);
        }
        // Requests are dealt out in turn — the warmup, then the measured
        // ones, then the cooldown, in one continuing round — so a shard's
        // three counts add up to its share of all of them (a dataset dealt
        // the same way always holds enough). With conversations, whole
        // conversations are dealt; only the last one may be cut short, as
        // in the whole run.
        let turns = u64::from(turns.max(1));
        let warmup = match load.warmup {
            Some(Warmup::Requests { requests }) => requests,
            _ => 0,
        };
        // "As many as the duration allows" stays that on every shard.
        let duration_only = load.duration.is_some() && load.requests >= MAX_REQUESTS;
        let measured = if duration_only { 0 } else { load.requests };
        let (w, m, c) = (
            warmup.div_ceil(turns),
            measured.div_ceil(turns),
            load.cooldown_requests.div_ceil(turns),
        );
        if !duration_only && m < u64::from(self.count) {
            let what = if turns > 1 {
                "conversations"
            } else {
                "requests"
            };
            return Err(SpecError::new(format!(
                "{m} {what} cannot be split into {} shards: every shard needs at least one",
                self.count
            )));
        }
        let dealt = |before: u64, units: u64, requests: u64| -> u64 {
            let mine = self.dealt(before, units) * turns;
            // The last unit holds what is left of the requests.
            let last_is_mine = units > 0 && self.holds(before + units - 1);
            mine - if last_is_mine {
                units * turns - requests
            } else {
                0
            }
        };
        if let Some(Warmup::Requests { .. }) = load.warmup {
            share.warmup = Some(Warmup::Requests {
                requests: dealt(0, w, warmup),
            });
        }
        if !duration_only {
            share.requests = dealt(w, m, measured);
        }
        share.cooldown_requests = dealt(w + m, c, load.cooldown_requests);
        // At least one: a limit of 0 would stop at the first request.
        share.max_errors = load.max_errors.map(|errors| self.split(errors).max(1));
        Ok(share)
    }

    /// Whether position `position` of a sequence dealt out in turn is this shard's.
    fn holds(&self, position: u64) -> bool {
        position % u64::from(self.count) == u64::from(self.index)
    }

    /// How many of the positions `before..before + count` of a sequence
    /// dealt out in turn are this shard's.
    pub fn dealt(&self, before: u64, count: u64) -> u64 {
        let up_to = |end: u64| self.split(end);
        up_to(before.saturating_add(count)) - up_to(before)
    }

    /// Where this shard's open-loop arrivals start, in mean gaps of its
    /// own stream: shard I of N is I/N of a gap in, so N constant streams
    /// interleave into one constant stream of the whole rate, and no two
    /// shards send their first requests at the same instant.
    pub fn arrival_phase(&self) -> f64 {
        f64::from(self.index) / f64::from(self.count)
    }
}

/// Waits until the wall clock reaches `at`, or `stop` is set (Ctrl-C);
/// returns how late the caller already was (zero when it was early).
pub fn wait_until(at: SystemTime, stop: &AtomicBool) -> Duration {
    if let Err(late) = at.duration_since(SystemTime::now()) {
        return late.duration();
    }
    // A scheduled start, not synchronisation: sleep in short steps, reading
    // the wall clock again each time (a sleep can end early, the clock be
    // stepped) and giving way to Ctrl-C.
    while !stop.load(Ordering::Relaxed) {
        match at.duration_since(SystemTime::now()) {
            Ok(rest) if !rest.is_zero() => std::thread::sleep(rest.min(WAIT_STEP)),
            _ => break,
        }
    }
    Duration::ZERO
}

/// The longest sleep between two looks at the clock and at Ctrl-C.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// What a shard's `summary.json` says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Which shard, from 0.
    pub index: u32,
    /// How many shards the run has.
    pub count: u32,
    /// The start every shard was given (`--start-at`, RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How late this shard was ready for that start, in ms (it started
    /// at once, this late): its load overlapped the others' less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_late_ms: Option<f64>,
}

/// Parses an RFC 3339 wall-clock time (`2026-12-03T10:00:00Z`, fractions
/// of a second allowed, UTC or an offset).
pub fn parse_start_at(text: &str) -> Result<SystemTime, SpecError> {
    let trimmed = text.trim();
    humantime::parse_rfc3339_weak(trimmed)
        .ok()
        .or_else(|| with_offset(trimmed))
        .ok_or_else(|| {
            SpecError::new(format!(
                "`{text}` is not an RFC 3339 time: write e.g. 2026-12-03T10:00:00Z (UTC)"
            ))
        })
}

/// An RFC 3339 time with a `±HH:MM` offset, as UTC.
fn with_offset(text: &str) -> Option<SystemTime> {
    let split = text.len().checked_sub(6)?;
    let (local, offset) = text.split_at(split);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let seconds = sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let shift = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_and_refuses_shards() {
        assert_eq!(Shard::parse("2/8").unwrap(), Shard { index: 2, count: 8 });
        for bad in ["8/8", "1/0", "a/2", "2", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_schedulers_environment() {
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(
            Shard::from_env(env(&k8s), Some(4)).unwrap(),
            Shard { index: 3, count: 4 }
        );
        // Kubernetes does not say how many.
        assert!(Shard::from_env(env(&k8s), None).is_err());
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::from_env(env(&slurm), None).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!(Shard::from_env(env(&slurm), Some(3)).is_err());
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        let error = Shard::from_env(env(&stepped), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("contiguous"), "{error}");
        assert!(Shard::from_env(env(&[]), Some(2)).is_err());
    }

    #[test]
    fn the_shares_add_up_to_the_whole() {
        for count in 1..=7u32 {
            for total in [7u64, 8, 100, 1001] {
                let sum: u64 = (0..count)
                    .map(|index| Shard { index, count }.split(total))
                    .sum();
                assert_eq!(sum, total);
            }
        }
        let load = Load::closed(10).requests(103).warmup_requests(5);
        let shares: Vec<Load> = (0..4)
            .map(|index| Shard { index, count: 4 }.load(&load, 1).unwrap())
            .collect();
        assert_eq!(
            shares.iter().map(|l| l.concurrency).collect::<Vec<_>>(),
            [3, 3, 2, 2]
        );
        assert_eq!(shares.iter().map(|l| l.requests).sum::<u64>(), 103);
        let mut open = Load::rate(20.0).requests(40);
        if let Some(rate) = open.rate.as_mut() {
            rate.max_in_flight = Some(9);
        }
        let share = Shard { index: 0, count: 4 }.load(&open, 1).unwrap();
        let rate = share.rate.unwrap();
        assert_eq!((rate.per_s, rate.max_in_flight), (5.0, Some(3)));
    }

    #[test]
    fn refuses_what_cannot_be_split() {
        let shard = Shard { index: 0, count: 4 };
        let error = shard.load(&Load::closed(3), 1).unwrap_err().to_string();
        assert!(error.contains("at most 3 shards"), "{error}");
        assert!(shard.load(&Load::closed(8).requests(3), 1).is_err());
        assert!(shard.load(&Load::auto_sweep(3, 8), 1).is_err());
        // The whole run is never refused.
        assert!(WHOLE.load(&Load::closed(1).requests(1), 1).is_ok());
    }

    #[test]
    fn ids_and_numbers_never_meet_across_shards() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut ids: Vec<u64> = shards
            .iter()
            .flat_map(|s| (0..5).map(|k| s.request_id(k)))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..15).collect::<Vec<_>>());
        assert!(shards[1].owns_number(10_003) && !shards[0].owns_number(10_003));
        assert_eq!(WHOLE.seed(42), 42);
        assert_ne!(shards[1].seed(42), 42);
        assert_eq!(WHOLE.stream(3), 3);
    }

    #[test]
    fn parses_start_times() {
        let utc = parse_start_at("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(parse_start_at("2026-12-03T11:00:00+01:00").unwrap(), utc);
        assert_eq!(parse_start_at("2026-12-03T09:30:00-00:30").unwrap(), utc);
        assert!(parse_start_at("2026-12-03T10:00:00.250Z").unwrap() > utc);
        assert!(parse_start_at("tomorrow").is_err());
    }

    #[test]
    fn counts_are_dealt_in_one_round_so_the_union_is_the_whole() {
        // Warmup, measured and cooldown dealt in turn: each shard's total is
        // its share of all of them, so 12 dataset entries serve 4 shards.
        let load = Load::closed(4)
            .requests(10)
            .warmup_requests(1)
            .cooldown_requests(1);
        let shares: Vec<Load> = (0..4)
            .map(|index| Shard { index, count: 4 }.load(&load, 1).unwrap())
            .collect();
        let total = |l: &Load| {
            let warmup = match l.warmup {
                Some(Warmup::Requests { requests }) => requests,
                _ => 0,
            };
            warmup + l.requests + l.cooldown_requests
        };
        assert_eq!(shares.iter().map(total).collect::<Vec<_>>(), [3, 3, 3, 3]);
        assert_eq!(shares.iter().map(|l| l.requests).sum::<u64>(), 10);
        assert_eq!(shares.iter().map(|l| l.cooldown_requests).sum::<u64>(), 1);

        // Conversations of 3 turns: whole ones are dealt, and the open
        // loop's shards start as many conversations as the whole run.
        let open = Load::rate(4.0)
            .requests(6)
            .warmup_requests(2)
            .cooldown_requests(2);
        let conversations = |load: &Load| {
            let phases = crate::load::Phases::of(load, &load.single_level(), 3);
            phases.measured_end_index() + load.cooldown_requests.div_ceil(3)
        };
        let union: u64 = (0..2)
            .map(|index| conversations(&Shard { index, count: 2 }.load(&open, 3).unwrap()))
            .sum();
        assert_eq!(union, conversations(&open));
        let closed = Load::closed(8).requests(1000);
        let union: u64 = (0..8)
            .map(|index| Shard { index, count: 8 }.load(&closed, 4).unwrap().requests)
            .sum();
        assert_eq!(union, 1000, "only the last conversation is cut short");

        // An explicit count is split even at the largest; "as many as the
        // duration allows" is not.
        let shard = Shard { index: 0, count: 4 };
        let million = Load::closed(8).requests(MAX_REQUESTS);
        assert_eq!(shard.load(&million, 1).unwrap().requests, MAX_REQUESTS / 4);
        let mut timed = million.clone();
        timed.duration = Some(Duration::from_secs(60));
        assert_eq!(shard.load(&timed, 1).unwrap().requests, MAX_REQUESTS);

        // The error limit is split too, never to 0.
        let mut limited = Load::closed(8).requests(40);
        limited.max_errors = Some(5);
        let limits: Vec<Option<u64>> = (0..4)
            .map(|index| {
                Shard { index, count: 4 }
                    .load(&limited, 1)
                    .unwrap()
                    .max_errors
            })
            .collect();
        assert_eq!(limits, [Some(2), Some(1), Some(1), Some(1)]);
        limited.max_errors = Some(2);
        assert_eq!(shard.load(&limited, 1).unwrap().max_errors, Some(1));
        assert_eq!(
            Shard { index: 3, count: 4 }
                .load(&limited, 1)
                .unwrap()
                .max_errors,
            Some(1)
        );
        assert!(Shard::new(0, MAX_SHARDS + 1).is_err());
    }

    #[test]
    fn constant_streams_of_shards_interleave_into_one() {
        let whole = Load::rate(40.0).rate.unwrap();
        let mut constant = whole;
        constant.arrival = crate::spec::Arrival::Constant;
        let mut union: Vec<Duration> = (0..4)
            .flat_map(|index| {
                let shard = Shard { index, count: 4 };
                let rate = shard.rate(&constant).unwrap();
                crate::load::arrival::schedule_phased(
                    &rate,
                    10,
                    None,
                    0,
                    shard.seed(7),
                    shard.arrival_phase(),
                )
            })
            .collect();
        union.sort();
        let alone = crate::load::arrival::schedule(&constant, 40, None, 0, 7);
        for (a, b) in union.iter().zip(&alone) {
            assert!(a.abs_diff(*b) < Duration::from_micros(1), "{a:?} vs {b:?}");
        }
    }
}
