//! Precise wake-ups for event deadlines.
//!
//! tokio's timer has a 1 ms resolution and its runtime parks in `epoll_wait`
//! with a millisecond timeout, so a `sleep_until` fires 0–1 ms (sometimes
//! 2 ms) late in a sawtooth pattern: the median inter-token gap of a 5 ms
//! script comes out near 5.2 ms. The pacer is one thread per server that
//! sleeps on a futex with a nanosecond timeout (about 50 µs of slack on
//! Linux) until the earliest registered deadline, then wakes the tasks that
//! are due; a woken runtime worker leaves `epoll_wait` at once. Deadlines stay
//! absolute, so lateness never accumulates.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

/// The pacer thread; stopping it (on drop) wakes everything still waiting.
pub(crate) struct Pacer {
    handle: PacerHandle,
    thread: Option<JoinHandle<()>>,
}

/// Registers wake-ups with a [`Pacer`]; cheap to clone.
#[derive(Clone)]
pub(crate) struct PacerHandle {
    shared: Arc<Mutex<Queue>>,
    /// Set once the pacer has stopped: every deadline counts as come, so
    /// nothing waits forever on a pacer that will not wake it.
    stopped: Arc<AtomicBool>,
    thread: Thread,
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Orders entries with equal deadlines, so `Entry` needs no `Ord` on wakers.
    next_seq: u64,
    stopped: bool,
}

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Wakers never panic while the lock is held; stay usable regardless.
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pacer {
    pub(crate) fn start() -> std::io::Result<Pacer> {
        let shared = Arc::new(Mutex::new(Queue::default()));
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("llmperf-builtin-pacer".to_string())
                .spawn(move || run(&shared))?
        };
        Ok(Pacer {
            handle: PacerHandle {
                shared,
                stopped: Arc::new(AtomicBool::new(false)),
                thread: thread.thread().clone(),
            },
            thread: Some(thread),
        })
    }

    pub(crate) fn handle(&self) -> PacerHandle {
        self.handle.clone()
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.handle.stopped.store(true, Ordering::SeqCst);
        lock(&self.handle.shared).stopped = true;
        self.handle.thread.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Mutex<Queue>) {
    let mut due = Vec::new();
    loop {
        let (wait, stopped) = {
            let mut queue = lock(shared);
            let now = Instant::now();
            while let Some(Reverse(entry)) = queue.heap.peek() {
                if entry.at > now && !queue.stopped {
                    break;
                }
                if let Some(Reverse(entry)) = queue.heap.pop() {
                    due.push(entry.waker);
                }
            }
            let wait = queue.heap.peek().map(|Reverse(entry)| entry.at - now);
            (wait, queue.stopped)
        };
        // Wake outside the lock: a waker may run code that registers again.
        due.drain(..).for_each(Waker::wake);
        if stopped {
            return;
        }
        match wait {
            Some(wait) => std::thread::park_timeout(wait),
            None => std::thread::park(),
        }
    }
}

impl PacerHandle {
    /// Wakes `waker` at `at` (at once if the pacer has stopped).
    pub(crate) fn wake_at(&self, at: Instant, waker: &Waker) {
        let earliest = {
            let mut queue = lock(&self.shared);
            if queue.stopped {
                drop(queue);
                waker.wake_by_ref();
                return;
            }
            let seq = queue.next_seq;
            queue.next_seq += 1;
            let earliest = queue.heap.peek().is_none_or(|Reverse(first)| at < first.at);
            queue.heap.push(Reverse(Entry {
                at,
                seq,
                waker: waker.clone(),
            }));
            earliest
        };
        if earliest {
            // The pacer may be sleeping towards a later deadline.
            self.thread.unpark();
        }
    }

    /// A future that completes at `at`.
    pub(crate) fn sleep_until(&self, at: Instant) -> PacedSleep {
        PacedSleep {
            alarm: Alarm::new(self.clone()),
            at,
        }
    }
}

/// Remembers the wake-up last registered, so a task polled again (hyper
/// polls a body whenever its connection wakes) does not register twice.
pub(crate) struct Alarm {
    pacer: PacerHandle,
    registered: Option<(Instant, Waker)>,
}

impl Alarm {
    pub(crate) fn new(pacer: PacerHandle) -> Self {
        Alarm {
            pacer,
            registered: None,
        }
    }

    /// Whether `at` has come; if not, arranges for the task to be woken then.
    pub(crate) fn due(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        if Instant::now() >= at || self.pacer.stopped.load(Ordering::SeqCst) {
            return true;
        }
        let same = self
            .registered
            .as_ref()
            .is_some_and(|(when, waker)| *when == at && waker.will_wake(cx.waker()));
        if !same {
            self.pacer.wake_at(at, cx.waker());
            self.registered = Some((at, cx.waker().clone()));
        }
        false
    }
}

/// See [`PacerHandle::sleep_until`].
pub(crate) struct PacedSleep {
    alarm: Alarm,
    at: Instant,
}

impl Future for PacedSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.alarm.due(this.at, cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_close_to_the_deadline_in_any_order() {
        let pacer = Pacer::start().unwrap();
        let start = Instant::now();
        let late = pacer
            .handle()
            .sleep_until(start + Duration::from_millis(30));
        let early = pacer
            .handle()
            .sleep_until(start + Duration::from_millis(10));
        let (early_at, late_at) = tokio::join!(
            async {
                early.await;
                start.elapsed()
            },
            async {
                late.await;
                start.elapsed()
            }
        );
        assert!(early_at >= Duration::from_millis(10) && early_at < Duration::from_millis(25));
        assert!(late_at >= Duration::from_millis(30) && late_at < Duration::from_millis(45));
    }

    #[tokio::test]
    async fn stopping_wakes_every_waiter() {
        let pacer = Pacer::start().unwrap();
        let far = pacer
            .handle()
            .sleep_until(Instant::now() + Duration::from_secs(3600));
        let waiter = tokio::spawn(far);
        tokio::task::yield_now().await;
        drop(pacer);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
