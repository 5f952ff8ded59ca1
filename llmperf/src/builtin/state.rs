//! What a running endpoint shares between requests: the script, counters,
//! concurrency slots, fault dice and the memory cross-over faults draw on,
//! and the figures `GET /metrics` serves ([`Served`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::generate::FinishReason;
use super::histogram::Histogram;
use super::lateness::SendLateness;
use super::metrics::Buckets;
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
    /// What `GET /metrics` reports.
    pub(crate) served: Served,
}

/// The endpoint's own truth for `GET /metrics`: counted as requests are
/// served, in whatever style the script names. Requests running are the
/// ones in flight ([`State::running`]).
pub(crate) struct Served {
    /// Requests waiting for a concurrency slot.
    waiting: AtomicUsize,
    /// Prompt tokens of admitted requests, as their usage reports them.
    pub(crate) prompt_tokens: AtomicU64,
    /// Generated tokens (content and reasoning) handed to connections.
    pub(crate) generation_tokens: AtomicU64,
    /// Requests that sent their whole response, ending with `stop`.
    pub(crate) finished_stop: AtomicU64,
    /// Requests that sent their whole response, ending with `length`.
    pub(crate) finished_length: AtomicU64,
    /// Admitted requests that did not: cut by a fault, or the client left.
    pub(crate) aborted: AtomicU64,
    /// Request received → first generated event handed to the connection.
    pub(crate) time_to_first_token: Histogram,
    /// Gap between consecutive generated events of one request.
    pub(crate) inter_token_latency: Histogram,
    /// Request received → its last event handed over (finished requests).
    pub(crate) e2e_latency: Histogram,
    /// Request received → concurrency slot held (finished requests).
    pub(crate) queue_time: Histogram,
    /// Time from admission to the end over generated tokens (finished
    /// requests; TGI's mean time per token).
    pub(crate) mean_time_per_token: Histogram,
    /// Prompt tokens per finished request (TGI's input length).
    pub(crate) input_length: Histogram,
    /// Generated tokens per finished request.
    pub(crate) generated_per_request: Histogram,
}

impl Served {
    fn new(buckets: Buckets) -> Self {
        Served {
            waiting: AtomicUsize::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            finished_stop: AtomicU64::new(0),
            finished_length: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            time_to_first_token: Histogram::seconds(buckets.time_to_first_token),
            inter_token_latency: Histogram::seconds(buckets.inter_token_latency),
            e2e_latency: Histogram::seconds(buckets.e2e_latency),
            queue_time: Histogram::seconds(buckets.queue_time),
            mean_time_per_token: Histogram::seconds(buckets.mean_time_per_token),
            input_length: Histogram::counts(buckets.input_length),
            generated_per_request: Histogram::counts(buckets.generated_tokens),
        }
    }

    /// Requests waiting for a concurrency slot now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Counts a request waiting for a concurrency slot until dropped (also
/// when the wait is abandoned because the client went away).
pub(crate) struct Waiting<'a>(&'a Served);

impl<'a> Waiting<'a> {
    pub(crate) fn new(served: &'a Served) -> Self {
        served.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(served)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// When a generation request came and got its slot, and what its response
/// reports, for [`State::enter`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    /// Its body was read.
    pub(crate) arrived: Instant,
    /// It held a concurrency slot.
    pub(crate) admitted: Instant,
    /// The prompt tokens its usage reports.
    pub(crate) prompt_tokens: usize,
}

impl Admission {
    /// A request arriving and admitted now, without a prompt (tests).
    #[cfg(test)]
    pub(crate) fn now() -> Self {
        let now = Instant::now();
        Admission {
            arrived: now,
            admitted: now,
            prompt_tokens: 0,
        }
    }
}

/// A generation request being served: holds its concurrency slot (if any),
/// counts it in flight until dropped, and feeds its events to [`Served`].
pub(crate) struct Slot {
    state: Arc<State>,
    _permit: Option<OwnedSemaphorePermit>,
    admission: Admission,
    /// When its last generated event was handed over.
    last_generated_at: Option<Instant>,
    /// When its last frame of any kind was handed over.
    last_sent_at: Option<Instant>,
    generated: u64,
    /// Set when the whole response has gone out.
    finished: Option<FinishReason>,
}

impl Slot {
    /// Counts a frame handed to the connection at `now`, carrying
    /// `generated` tokens (0 for frames without generated content).
    pub(crate) fn frame_sent(&mut self, now: Instant, generated: usize) {
        self.last_sent_at = Some(now);
        if generated == 0 {
            return;
        }
        let served = &self.state.served;
        served
            .generation_tokens
            .fetch_add(generated as u64, Ordering::Relaxed);
        match self.last_generated_at {
            None => served
                .time_to_first_token
                .observe_duration(now.saturating_duration_since(self.admission.arrived)),
            Some(previous) => served
                .inter_token_latency
                .observe_duration(now.saturating_duration_since(previous)),
        }
        self.last_generated_at = Some(now);
        self.generated += generated as u64;
    }

    /// Marks the whole response sent; counted as finished for `reason`
    /// when the slot drops (otherwise it counts as aborted).
    pub(crate) fn finished(&mut self, reason: FinishReason) {
        self.finished = Some(reason);
    }

    /// Counts a scripted event handed out `late` after its deadline.
    pub(crate) fn record_lateness(&self, late: Duration) {
        self.state.lateness.record(late);
    }

    /// Counts how late a response's first generated event went out.
    pub(crate) fn record_first_event_lateness(&self, late: Duration) {
        self.state.first_event_lateness.record(late);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let served = &self.state.served;
        match self.finished {
            Some(reason) => {
                let counter = match reason {
                    FinishReason::Stop => &served.finished_stop,
                    FinishReason::Length => &served.finished_length,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let Admission {
                    arrived,
                    admitted,
                    prompt_tokens,
                } = self.admission;
                let ended = self.last_sent_at.unwrap_or_else(Instant::now);
                served
                    .e2e_latency
                    .observe_duration(ended.saturating_duration_since(arrived));
                served
                    .queue_time
                    .observe_duration(admitted.saturating_duration_since(arrived));
                served.input_length.observe(prompt_tokens as u64);
                served.generated_per_request.observe(self.generated);
                if self.generated > 0 {
                    let generating = ended.saturating_duration_since(admitted);
                    served.mean_time_per_token.observe_duration(
                        generating / u32::try_from(self.generated).unwrap_or(u32::MAX),
                    );
                }
            }
            None => {
                served.aborted.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Last, so a request no longer running has been counted as ended.
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
            served: Served::new(Buckets::of(script.metrics)),
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

    /// Counts an admitted request in flight (running) until the returned
    /// slot drops, and its prompt tokens.
    pub(crate) fn enter(
        self: &Arc<Self>,
        permit: Option<OwnedSemaphorePermit>,
        admission: Admission,
    ) -> Slot {
        self.served
            .prompt_tokens
            .fetch_add(admission.prompt_tokens as u64, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Slot {
            state: Arc::clone(self),
            _permit: permit,
            admission,
            last_generated_at: None,
            last_sent_at: None,
            generated: 0,
            finished: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Generation requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Generation requests holding a concurrency slot and being served.
    pub(crate) fn running(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The share of concurrency slots in use (the endpoint's stand-in for
    /// KV-cache usage): running / limit, 0 without a limit.
    pub(crate) fn slot_usage(&self) -> f64 {
        match self.script.concurrency_limit {
            Some(limit) if limit > 0 => self.running() as f64 / limit as f64,
            _ => 0.0,
        }
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
