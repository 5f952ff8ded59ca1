//! When requests are sent.
//!
//! The closed loop keeps exactly `concurrency` requests in flight: each
//! slot takes the next planned request the moment its previous one ends
//! (after the optional sleep), so there are no waves. The instant a slot
//! decides to send is the request's scheduled time; the reader stamps the
//! actual send.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `count` requests with `concurrency` in flight. `issue(index,
/// scheduled_at)` performs one request. Setting `stop` ends the loop
/// after the requests in flight.
pub async fn closed_loop<F, Fut>(
    count: usize,
    concurrency: usize,
    sleep: Duration,
    stop: Arc<AtomicBool>,
    issue: F,
) where
    F: Fn(usize, Instant) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut slots = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count) {
        let next = Arc::clone(&next);
        let stop = Arc::clone(&stop);
        let issue = issue.clone();
        slots.spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                issue(index, Instant::now()).await;
                if !sleep.is_zero() {
                    tokio::time::sleep(sleep).await;
                }
            }
        });
    }
    while let Some(joined) = slots.join_next().await {
        if let Err(error) = joined {
            if error.is_panic() {
                // A panicking slot is a bug; hiding it would quietly lower
                // the concurrency the run reports.
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn the_closed_loop_never_exceeds_its_concurrency_and_runs_every_request() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Mutex::new(Vec::new()));
        let (f, p, d) = (in_flight.clone(), peak.clone(), done.clone());
        closed_loop(
            50,
            4,
            Duration::ZERO,
            Arc::new(AtomicBool::new(false)),
            move |i, _| {
                let (f, p, d) = (f.clone(), p.clone(), d.clone());
                async move {
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    d.lock().unwrap().push(i);
                }
            },
        )
        .await;
        let mut done = done.lock().unwrap().clone();
        done.sort_unstable();
        assert_eq!(done, (0..50).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }
}
