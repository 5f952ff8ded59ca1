//! The closed loop: exactly `concurrency` units in flight. Each slot takes
//! the next unit the moment its previous one ends (after the optional
//! sleep), so there are no waves. The instant a slot decides to send is
//! the unit's scheduled time.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Dispatch, Workers};

/// Runs up to `count` units with `concurrency` in flight, the slots spread
/// over the client threads of `workers`. Past `deadline` only
/// `after_deadline` more units are sent (cooldown). Setting `stop` ends the
/// loop after the units in flight, and so does an `issue` whose future
/// says it had nothing left to send (`false`): `count` is then an upper
/// bound. Returns whether the deadline cut the planned units short. Blocks
/// the calling thread (not a client thread).
#[allow(clippy::too_many_arguments)]
pub fn closed_loop<F, Fut>(
    workers: &Workers,
    count: usize,
    concurrency: usize,
    sleep: Duration,
    deadline: Option<Instant>,
    after_deadline: usize,
    stop: Arc<AtomicBool>,
    issue: F,
) -> bool
where
    F: Fn(Dispatch) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(AtomicUsize::new(count));
    let cut = Arc::new(AtomicBool::new(false));
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count) {
        let (next, limit, cut) = (Arc::clone(&next), Arc::clone(&limit), Arc::clone(&cut));
        let stop = Arc::clone(&stop);
        let issue = issue.clone();
        let slot = async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let now = Instant::now();
                let index = next.fetch_add(1, Ordering::Relaxed);
                if deadline.is_some_and(|d| now >= d) {
                    // The first slot past the deadline fixes the last index.
                    let last = index.saturating_add(after_deadline);
                    if last < limit.fetch_min(last, Ordering::Relaxed) {
                        cut.store(true, Ordering::Relaxed);
                    }
                }
                if index >= limit.load(Ordering::Relaxed) {
                    break;
                }
                let sent = issue(Dispatch {
                    index,
                    scheduled_at: now,
                    queued: Duration::ZERO,
                })
                .await;
                if !sent {
                    // Nothing was left to send.
                    break;
                }
                if !sleep.is_zero() {
                    tokio::time::sleep(sleep).await;
                }
            }
        };
        slots.spawn_on(slot, workers.next());
    }
    workers.block_on(async {
        while let Some(joined) = slots.join_next().await {
            if let Err(error) = joined {
                if error.is_panic() {
                    // A panicking slot is a bug; hiding it would quietly lower
                    // the concurrency the run reports.
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        }
    });
    cut.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn counting(
        in_flight: &Arc<AtomicUsize>,
        peak: &Arc<AtomicUsize>,
        done: &Arc<Mutex<Vec<usize>>>,
    ) -> impl Fn(Dispatch) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Clone {
        let (f, p, d) = (in_flight.clone(), peak.clone(), done.clone());
        move |dispatch: Dispatch| {
            let (f, p, d) = (f.clone(), p.clone(), d.clone());
            Box::pin(async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                // Long enough for every slot's unit to be in flight at
                // once, on whichever client thread it runs.
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                d.lock().unwrap().push(dispatch.index);
                true
            })
        }
    }

    #[test]
    fn the_closed_loop_never_exceeds_its_concurrency_and_runs_every_request() {
        let workers = Workers::start(2).unwrap();
        let (in_flight, peak) = (Arc::default(), Arc::default());
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let issue = counting(&in_flight, &peak, &done);
        let cut = closed_loop(&workers, 50, 4, Duration::ZERO, None, 0, stop, issue);
        assert!(!cut);
        let mut done = done.lock().unwrap().clone();
        done.sort_unstable();
        assert_eq!(done, (0..50).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn past_the_deadline_only_the_cooldown_units_are_sent() {
        let workers = Workers::start(1).unwrap();
        let (in_flight, peak) = (Arc::default(), Arc::default());
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let issue = counting(&in_flight, &peak, &done);
        // A deadline already passed: the loop sends the 3 cooldown units.
        let cut = closed_loop(
            &workers,
            50,
            2,
            Duration::ZERO,
            Some(Instant::now()),
            3,
            stop,
            issue,
        );
        assert_eq!(done.lock().unwrap().len(), 3);
        assert!(cut, "the deadline cut 50 units to 3");
    }
}
