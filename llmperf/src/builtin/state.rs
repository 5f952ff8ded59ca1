//! What a running endpoint shares between requests: the script, counters,
//! concurrency slots, fault dice and the memory cross-over faults draw on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lateness::SendLateness;
use super::pacer::PacerHandle;
use super::ServerStats;
use crate::spec::{Fault, FaultSchedule, Script};

/// How many recent validated numbers are kept for cross-over faults.
const RECENT_TASKS: usize = 16;

pub(crate) struct State {
    pub(crate) script: Script,
    /// Concurrency slots, when the script limits concurrency.
    pub(crate) slots: Option<Arc<Semaphore>>,
    /// Wakes bodies when their frames are due.
    pub(crate) pacer: PacerHandle,
    requests: AtomicU64,
    faults_injected: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    fault_rng: Mutex<ChaCha8Rng>,
    /// (request number, validated number), most recent last.
    recent_tasks: Mutex<VecDeque<(u64, u64)>>,
    last_model: Mutex<Option<String>>,
    /// How late scripted events go out.
    lateness: SendLateness,
    /// How late each response's first generated event goes out.
    first_event_lateness: SendLateness,
    connections: AtomicU64,
    refused: AtomicU64,
}

/// A generation request being served: holds its concurrency slot (if any)
/// and counts it in flight until dropped.
pub(crate) struct Slot {
    state: Arc<State>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Counts a scripted event handed out `late` after its deadline.
    pub(crate) fn record_lateness(&self, late: std::time::Duration) {
        self.state.lateness.record(late);
    }

    /// Counts how late a response's first generated event went out.
    pub(crate) fn record_first_event_lateness(&self, late: std::time::Duration) {
        self.state.first_event_lateness.record(late);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Locks a mutex even if a holder panicked: the data here (counters, a
/// generator) stays usable, and a built-in endpoint must not fail every later request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    pub(crate) fn new(script: Script, pacer: PacerHandle) -> Self {
        let slots = script
            .concurrency_limit
            .map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))));
        // A different stream from the per-request generators, which use
        // their request number as stream.
        let mut fault_rng = ChaCha8Rng::seed_from_u64(script.seed);
        fault_rng.set_stream(u64::MAX);
        State {
            slots,
            pacer,
            requests: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            fault_rng: Mutex::new(fault_rng),
            recent_tasks: Mutex::new(VecDeque::with_capacity(RECENT_TASKS)),
            last_model: Mutex::new(None),
            lateness: SendLateness::new(),
            first_event_lateness: SendLateness::new(),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            script,
        }
    }

    /// Counts an accepted connection.
    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a request refused by closing its connection.
    pub(crate) fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a generation request; returns its 1-based number.
    pub(crate) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The fault for request `index`: the first rule whose schedule fires
    /// and whose fault `applies` to the request. Counted when returned.
    pub(crate) fn pick_fault(&self, index: u64, applies: impl Fn(Fault) -> bool) -> Option<Fault> {
        let fault = self.script.faults.iter().find_map(|rule| {
            let fires = match rule.schedule {
                // `Every(0)` has no multiples: `checked_rem` is `None`.
                FaultSchedule::Every(n) => index.checked_rem(n) == Some(0),
                FaultSchedule::Probability(p) => {
                    // NaN compares false: never fires.
                    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
                    lock(&self.fault_rng).gen::<f64>() < p
                }
            };
            (fires && applies(rule.fault)).then_some(rule.fault)
        });
        if fault.is_some() {
            self.faults_injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    /// Remembers that request `index` asked to validate `number`.
    pub(crate) fn remember_task(&self, index: u64, number: u64) {
        let mut recent = lock(&self.recent_tasks);
        if recent.len() == RECENT_TASKS {
            recent.pop_front();
        }
        recent.push_back((index, number));
    }

    /// The number a cross-over fault answers request `index` (validating
    /// `number`) with: the most recent other request's number, or number+1
    /// when there is none that differs.
    pub(crate) fn crossover_number(&self, index: u64, number: u64) -> u64 {
        lock(&self.recent_tasks)
            .iter()
            .rev()
            .find(|(other, theirs)| *other != index && *theirs != number)
            .map(|(_, theirs)| *theirs)
            .unwrap_or_else(|| number.wrapping_add(1))
    }

    pub(crate) fn remember_model(&self, model: &str) {
        let mut last = lock(&self.last_model);
        if last.as_deref() != Some(model) {
            *last = Some(model.to_string());
        }
    }

    /// The model `/v1/models` lists: the last one a request named.
    pub(crate) fn model(&self) -> Option<String> {
        lock(&self.last_model).clone()
    }

    /// Counts an admitted request in flight until the returned slot drops.
    pub(crate) fn enter(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> Slot {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Slot {
            state: Arc::clone(self),
            _permit: permit,
        }
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn stats(&self) -> ServerStats {
        let lateness = self.lateness.percentiles();
        let first = self.first_event_lateness.percentiles();
        ServerStats {
            requests: self.requests.load(Ordering::SeqCst),
            faults_injected: self.faults_injected.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            frames_sent: lateness.frames,
            send_lateness_p50_us: lateness.p50_us,
            send_lateness_p99_us: lateness.p99_us,
            send_lateness_max_us: lateness.max_us,
            first_event_lateness_p50_us: first.p50_us,
            first_event_lateness_p99_us: first.p99_us,
            connections: self.connections.load(Ordering::SeqCst),
            refused_requests: self.refused.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::pacer::Pacer;

    /// A state whose pacer is already stopped: these tests never wait.
    fn new_state(script: Script) -> State {
        State::new(script, Pacer::start().unwrap().handle())
    }

    #[test]
    fn first_applicable_rule_wins() {
        let state = new_state(
            Script::new()
                .fault(Fault::CrossOver, FaultSchedule::Every(2))
                .fault(Fault::Status(503), FaultSchedule::Every(3)),
        );
        let all = |_| true;
        let no_crossover = |fault| fault != Fault::CrossOver;
        assert_eq!(state.pick_fault(1, all), None);
        assert_eq!(state.pick_fault(2, all), Some(Fault::CrossOver));
        assert_eq!(state.pick_fault(6, all), Some(Fault::CrossOver));
        assert_eq!(state.pick_fault(6, no_crossover), Some(Fault::Status(503)));
        assert_eq!(state.pick_fault(4, no_crossover), None);
        assert_eq!(state.stats().faults_injected, 3);
    }

    #[test]
    fn probability_is_seeded_and_bounded() {
        let count = |seed, p| {
            let state = new_state(
                Script::new()
                    .seed(seed)
                    .fault(Fault::Stall, FaultSchedule::Probability(p)),
            );
            (1..=1000)
                .filter(|i| state.pick_fault(*i, |_| true).is_some())
                .count()
        };
        assert_eq!(count(1, 0.3), count(1, 0.3));
        assert!((200..400).contains(&count(1, 0.3)));
        assert_eq!(count(1, 0.0), 0);
        assert_eq!(count(1, f64::NAN), 0);
        assert_eq!(count(1, 7.0), 1000);
    }

    #[test]
    fn crossover_takes_another_requests_number() {
        let state = new_state(Script::new());
        assert_eq!(state.crossover_number(1, 41), 42, "none seen yet");
        state.remember_task(1, 41);
        assert_eq!(state.crossover_number(1, 41), 42, "only its own");
        state.remember_task(2, 7);
        state.remember_task(3, 9);
        assert_eq!(state.crossover_number(3, 9), 7);
        assert_eq!(state.crossover_number(4, 5), 9);
    }
}
