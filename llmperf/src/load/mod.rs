//! When requests are sent: closed loops, open-loop arrival schedules,
//! and the phases (warmup, measured, cooldown) of a level.
//!
//! A driver hands each unit of work (a request, or a whole multi-turn
//! conversation) to an `issue` callback with the instant it was meant to
//! go out. The endpoint reader stamps the actual send, so the difference
//! (the send lag) and latencies counted from the scheduled send expose a
//! client that fell behind (coordinated omission).

pub mod arrival;
mod closed;
mod feed;
mod open;
mod workers;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use closed::closed_loop;
pub use feed::{Feed, Unit};
pub use open::open_loop;
pub use workers::{default_client_threads, Workers};

use crate::spec::{Level, Load, Warmup};

/// One unit handed to the `issue` callback of a driver.
#[derive(Debug, Clone, Copy)]
pub struct Dispatch {
    /// Index of the unit in the level's plan.
    pub index: usize,
    /// When the driver meant to send it.
    pub scheduled_at: Instant,
    /// How long it waited for an in-flight slot, or in line behind units
    /// waiting for one (open loop with a cap).
    pub queued: Duration,
}

/// Why a level ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// Every planned request was sent.
    Completed,
    /// The level's duration ran out.
    Duration,
    /// Ctrl-C.
    Interrupted,
    /// Too many failed requests: the endpoint looks broken.
    MaxErrors {
        /// Failed requests when it stopped.
        errors: u64,
    },
    /// Too large a share of failed requests.
    MaxErrorRate {
        /// The share when it stopped.
        error_rate: f64,
        /// Finished requests when it stopped.
        finished: u64,
    },
}

impl Stop {
    /// Whether the run should not go on to further levels.
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            Stop::Interrupted | Stop::MaxErrors { .. } | Stop::MaxErrorRate { .. }
        )
    }

    /// A sentence for people when a stop condition tripped; `None` for an
    /// ordinary end or an interruption (a run reports that once, not per level).
    pub fn message(&self) -> Option<String> {
        match self {
            Stop::Completed | Stop::Duration | Stop::Interrupted => None,
            Stop::MaxErrors { errors } => Some(format!(
                "stopped early: {errors} requests failed (the --max-errors limit); the endpoint looks broken"
            )),
            Stop::MaxErrorRate {
                error_rate,
                finished,
            } => Some(format!(
                "stopped early: {:.1}% of {finished} finished requests failed (over --max-error-rate); the endpoint looks broken",
                error_rate * 100.0
            )),
        }
    }
}

/// Which part of a level a request belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Sent before the measurement: excluded from the statistics.
    Warmup,
    /// Counted.
    #[default]
    Measured,
    /// Sent after the measured requests so they end under load: excluded.
    Cooldown,
}

/// The boundaries of a level's phases, by request index and by time since
/// the level started.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    warmup_requests: u64,
    warmup_time: Option<Duration>,
    measured_end_index: u64,
    measured_end_time: Option<Duration>,
}

impl Phases {
    /// The phases `load` sets for `level`, counted in units of `per_unit`
    /// requests (an open loop of `n`-turn conversations phases whole
    /// conversations: `per_unit` = n; otherwise 1).
    pub fn of(load: &Load, level: &Level, per_unit: u64) -> Phases {
        let per_unit = per_unit.max(1);
        let (warmup_requests, warmup_time) = match load.warmup {
            Some(Warmup::Requests { requests }) => (requests.div_ceil(per_unit), None),
            Some(Warmup::Duration { duration }) => (0, Some(duration)),
            None => (0, None),
        };
        Phases {
            warmup_requests,
            warmup_time,
            measured_end_index: warmup_requests
                .saturating_add(load.level_requests(level).div_ceil(per_unit)),
            measured_end_time: load
                .duration
                .map(|d| d + warmup_time.unwrap_or(Duration::ZERO)),
        }
    }

    /// The phase of request `index`, scheduled `since_start` after the level began.
    pub fn phase(&self, index: u64, since_start: Duration) -> Phase {
        if index < self.warmup_requests || self.warmup_time.is_some_and(|w| since_start < w) {
            Phase::Warmup
        } else if index >= self.measured_end_index
            || self.measured_end_time.is_some_and(|end| since_start >= end)
        {
            Phase::Cooldown
        } else {
            Phase::Measured
        }
    }

    /// Index from which requests are cooldown requests.
    pub fn measured_end_index(&self) -> u64 {
        self.measured_end_index
    }

    /// Time after which no measured request is sent (warmup included).
    pub fn measured_end_time(&self) -> Option<Duration> {
        self.measured_end_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_counts_and_times() {
        let closed = Load::closed(1).requests(10).warmup_requests(2);
        let by_count = Phases::of(&closed, &closed.single_level(), 1);
        assert_eq!(by_count.phase(1, Duration::ZERO), Phase::Warmup);
        assert_eq!(by_count.phase(2, Duration::ZERO), Phase::Measured);
        assert_eq!(by_count.phase(11, Duration::ZERO), Phase::Measured);
        assert_eq!(by_count.phase(12, Duration::ZERO), Phase::Cooldown);
        let open = Load::rate(5.0)
            .duration(Duration::from_secs(10))
            .warmup_duration(Duration::from_secs(2));
        let by_time = Phases::of(&open, &open.single_level(), 1);
        // Conversations of 3 turns: 10 requests are 4 conversations.
        let by_conversation = Phases::of(&closed, &closed.single_level(), 3);
        assert_eq!(by_conversation.phase(0, Duration::ZERO), Phase::Warmup);
        assert_eq!(by_conversation.phase(4, Duration::ZERO), Phase::Measured);
        assert_eq!(by_conversation.phase(5, Duration::ZERO), Phase::Cooldown);
        assert_eq!(by_time.phase(50, Duration::from_secs(1)), Phase::Warmup);
        assert_eq!(by_time.phase(50, Duration::from_secs(11)), Phase::Measured);
        assert_eq!(by_time.phase(50, Duration::from_secs(12)), Phase::Cooldown);
    }
}
