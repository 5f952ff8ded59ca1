//! The open loop: units sent on a precomputed schedule, whatever the
//! endpoint does.
//!
//! The dispatcher is a plain thread that sleeps until each send time with
//! the operating system's timer (tokio's timer wheel has a 1 ms
//! resolution, too coarse for thousands of requests per second) and
//! spawns the unit onto the runtime. On Linux it sleeps with a timer slack
//! of 1 ns: the default 50 µs, which lets the kernel defer a wake-up to
//! batch it with others, made every send up to 50 µs late, about half the
//! median send lag (`llmperf/benches/arrival_rates.rs`). With a cap on requests in
//! flight, an overdue unit waits for a slot in order; its wait is counted,
//! it is never dropped.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Dispatch, Workers};

/// Longest single sleep, so a stop request is seen promptly at low rates.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

/// Sends unit `i` at `start + offsets[i]` on the next client thread of
/// `workers`, at most `max_in_flight` at once, then waits for every unit
/// to finish. Setting `stop` ends sending; units in flight finish. Call
/// from a thread that is not a client thread: it blocks.
pub fn open_loop<F, Fut>(
    workers: &Workers,
    start: Instant,
    offsets: &[Duration],
    max_in_flight: Option<usize>,
    stop: &AtomicBool,
    issue: F,
) where
    F: Fn(Dispatch) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _slack = FineTimerSlack::set();
    let slots = max_in_flight.map(|cap| Arc::new(Semaphore::new(cap)));
    // When the dispatcher last got a slot it had to wait for. Units go out
    // in order, so a unit due before then waited in line behind the cap
    // too, even if a slot is free by its turn: that wait is queueing, not
    // the client falling behind.
    let mut line_cleared: Option<Instant> = None;
    let mut units = JoinSet::new();
    for (index, offset) in offsets.iter().enumerate() {
        let scheduled_at = start + *offset;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if now >= scheduled_at {
                break;
            }
            std::thread::sleep((scheduled_at - now).min(SLEEP_SLICE));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (permit, queued) = match &slots {
            None => (None, Duration::ZERO),
            Some(slots) => {
                let permit = match Arc::clone(slots).try_acquire_owned() {
                    Ok(permit) => permit,
                    // Over the cap: wait for a slot, counting the wait.
                    Err(_) => match workers.block_on(Arc::clone(slots).acquire_owned()) {
                        Ok(permit) => {
                            line_cleared = Some(Instant::now());
                            permit
                        }
                        Err(_) => break,
                    },
                };
                let queued = line_cleared.map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(scheduled_at)
                });
                (Some(permit), queued)
            }
        };
        if stop.load(Ordering::Relaxed) {
            // Stopped while waiting for a slot: the permit goes back unused.
            break;
        }
        let unit = issue(Dispatch {
            index,
            scheduled_at,
            queued,
        });
        units.spawn_on(
            async move {
                unit.await;
                drop(permit);
            },
            workers.next(),
        );
        // Reap finished units so a long run does not hold every handle.
        while let Some(joined) = units.try_join_next() {
            resume_panic(joined);
        }
    }
    workers.block_on(async {
        while let Some(joined) = units.join_next().await {
            resume_panic(joined);
        }
    });
}

/// The calling thread's timer slack at 1 ns while this lives, then back
/// to what it was (a no-op off Linux).
struct FineTimerSlack {
    #[cfg(target_os = "linux")]
    previous: Option<libc::c_ulong>,
}

impl FineTimerSlack {
    fn set() -> FineTimerSlack {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: these prctl options only read or set the calling
            // thread's timer slack.
            let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
            let set = previous > 0
                && unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) }
                    == 0;
            FineTimerSlack {
                previous: set.then_some(previous as libc::c_ulong),
            }
        }
        #[cfg(not(target_os = "linux"))]
        FineTimerSlack {}
    }
}

impl Drop for FineTimerSlack {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous {
            // SAFETY: as in `set`.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, previous, 0, 0, 0) };
        }
    }
}

fn resume_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        if error.is_panic() {
            // A unit that panicked is a bug; hiding it would lose requests silently.
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    #[test]
    fn units_go_out_on_schedule_and_the_cap_queues_the_overdue_ones() {
        let workers = Workers::start(2).unwrap();
        let offsets: Vec<Duration> = (0..20).map(|i| Duration::from_millis(i * 2)).collect();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (f, p, s) = (in_flight.clone(), peak.clone(), seen.clone());
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        // Units 0 and 1 hold their slots until the gate opens, so with a cap
        // of 2 every later unit queues behind them.
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            g.notify_waiters();
        });
        open_loop(&workers, start, &offsets, Some(2), &stop, move |d| {
            let (f, p, s, gate) = (f.clone(), p.clone(), s.clone(), gate.clone());
            let sent = Instant::now();
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                if d.index < 2 {
                    gate.notified().await;
                }
                f.fetch_sub(1, Ordering::SeqCst);
                s.lock()
                    .unwrap()
                    .push((d.index, d.scheduled_at, d.queued, sent));
            }
        });
        opener.join().unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 20, "no unit dropped");
        assert_eq!(peak.load(Ordering::SeqCst), 2, "the cap held");
        for (index, scheduled_at, queued, sent) in seen {
            assert_eq!(scheduled_at, start + offsets[index]);
            assert!(sent >= scheduled_at, "unit {index} went out early");
            if index < 2 {
                assert_eq!(queued, Duration::ZERO);
            } else {
                // Due before the gate opened at 60 ms, each waited in line
                // until then, even those that found a slot free at their turn.
                assert!(
                    offsets[index] + queued >= Duration::from_millis(60),
                    "unit {index} queued {queued:?}"
                );
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_dispatcher_sleeps_with_fine_timer_slack_and_restores_it() {
        // SAFETY: reads the calling thread's timer slack.
        let slack = || unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
        let before = slack();
        let guard = FineTimerSlack::set();
        assert_eq!(slack(), 1);
        drop(guard);
        assert_eq!(slack(), before);
    }

    #[test]
    fn stop_ends_sending() {
        let workers = Workers::start(1).unwrap();
        let offsets: Vec<Duration> = (0..100).map(|i| Duration::from_millis(i * 10)).collect();
        let stop = AtomicBool::new(false);
        let sent = AtomicUsize::new(0);
        open_loop(&workers, Instant::now(), &offsets, None, &stop, |d| {
            sent.fetch_add(1, Ordering::SeqCst);
            if d.index == 4 {
                stop.store(true, Ordering::SeqCst);
            }
            async {}
        });
        assert_eq!(sent.load(Ordering::SeqCst), 5);
    }
}
