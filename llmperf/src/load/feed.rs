//! The units a level sends, planned ahead on a thread of their own.
//!
//! A [`Feed`] runs a [`Planner`] on its own thread and keeps up to
//! `ahead` units (a request, or every turn of a conversation) ready in a
//! bounded queue; the load driver takes them in plan order as it sends.
//! A level therefore holds only the units it is about to send, not every
//! request it will make, and its first request waits only for the first
//! `ahead` units to be planned. Planning stays off the client threads and
//! runs only when they leave the CPU idle (on Linux): a driver that
//! outruns the planner waits for the next unit without holding up the
//! streams being read.

use std::iter::Peekable;
use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, Mutex};

use crate::workload::{Planner, RequestPlan};

/// A unit of load: one plan, or the consecutive turns of a conversation
/// (see [`RequestPlan::turn`]).
#[derive(Debug)]
pub struct Unit {
    /// The index of its first plan in the level's plan order.
    pub first: usize,
    /// Its plans, in turn order.
    pub plans: Vec<RequestPlan>,
}

/// Planned units, ready to send: see the module `load::feed`.
#[derive(Debug)]
pub struct Feed {
    units: Mutex<mpsc::Receiver<Unit>>,
    planner: Option<std::thread::JoinHandle<()>>,
}

impl Feed {
    /// Starts planning `planner`'s units on their own thread and returns
    /// once `ahead` of them (or all, if fewer) are ready. The thread stops
    /// when the planner is done or the feed is dropped.
    pub fn start(planner: Planner<'static>, ahead: usize) -> std::io::Result<Feed> {
        let ahead = ahead.max(1);
        let (sender, receiver) = mpsc::channel(ahead);
        let (ready, is_ready) = std_mpsc::channel::<()>();
        let planner = std::thread::Builder::new()
            .name("llmperf-planner".into())
            .spawn(move || {
                yield_to_the_client();
                let mut plans = planner.peekable();
                let (mut planned, mut units) = (0usize, 0usize);
                let mut ready = Some(ready);
                while let Some(unit) = next_unit(&mut plans, &mut planned) {
                    if sender.blocking_send(unit).is_err() {
                        // The level ended (or stopped) before using them all.
                        return;
                    }
                    units += 1;
                    if units == ahead {
                        ready.take();
                    }
                }
            })?;
        // The planner thread drops its end of `ready` once `ahead` units
        // are queued or when it has planned them all (or failed).
        let _ = is_ready.recv();
        Ok(Feed {
            units: Mutex::new(receiver),
            planner: Some(planner),
        })
    }

    /// The next unit, waiting for it from a thread that is not a client
    /// thread (an open loop's dispatcher): units go out exactly in plan
    /// order. `None` when every unit was taken.
    pub fn take_blocking(&self) -> Option<Unit> {
        self.units.blocking_lock().blocking_recv()
    }

    /// The next unit, waiting for it without blocking the client thread.
    /// `None` when every unit was taken.
    pub async fn take(&self) -> Option<Unit> {
        self.units.lock().await.recv().await
    }
}

/// Lets the calling thread (the planner) run only when no other thread
/// wants the CPU (Linux's `SCHED_IDLE`): the queue planned ahead covers
/// bursts, and planning never takes time from reading the streams. A
/// no-op elsewhere, or where the policy cannot be set.
fn yield_to_the_client() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; SCHED_IDLE takes priority 0
        // and only lowers this thread's claim on the CPU.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
    }
}

impl Drop for Feed {
    /// Stops the planner: it ends at once if it waits for room in the
    /// queue, or after the unit it is planning. A planner that panicked is
    /// a bug that would have ended the level early: its panic goes on.
    fn drop(&mut self) {
        self.units.get_mut().close();
        if let Some(planner) = self.planner.take() {
            if let Err(panic) = planner.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

/// The next unit of `plans`: a plan, and the later turns of its
/// conversation that follow it.
fn next_unit(plans: &mut Peekable<Planner<'static>>, planned: &mut usize) -> Option<Unit> {
    let first = plans.next()?;
    let index = *planned;
    let mut unit = vec![first];
    while let Some(next) = plans.next_if(|plan| plan.turn.is_some_and(|turn| turn.index > 0)) {
        unit.push(next);
    }
    *planned += unit.len();
    Some(Unit {
        first: index,
        plans: unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::WHOLE;
    use crate::spec::Workload;
    use crate::Tokenizer;

    fn planner(workload: &Workload, count: u64) -> Planner<'static> {
        Planner::new(workload, true, count, 3, WHOLE, Tokenizer::bundled())
            .unwrap()
            .0
    }

    #[test]
    fn units_come_in_plan_order_with_each_conversation_whole() {
        let workload = Workload::lines(1, 2, 1).multi_turn(3);
        let all =
            crate::workload::plan_requests(&workload, true, 10, 3, Tokenizer::bundled()).unwrap();
        let feed = Feed::start(planner(&workload, 10), 2).unwrap();
        let mut units = Vec::new();
        while let Some(unit) = feed.take_blocking() {
            units.push(unit);
        }
        let firsts: Vec<usize> = units.iter().map(|u| u.first).collect();
        assert_eq!(firsts, [0, 3, 6, 9]);
        let plans: Vec<RequestPlan> = units.into_iter().flat_map(|u| u.plans).collect();
        assert_eq!(plans, all, "the feed's plans are the ones planned at once");
        // A client thread waits for units without blocking.
        let feed = Feed::start(planner(&workload, 4), 8).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let sizes = runtime.block_on(async {
            let mut sizes = Vec::new();
            while let Some(unit) = feed.take().await {
                sizes.push(unit.plans.len());
            }
            sizes
        });
        assert_eq!(sizes, [3, 1], "the last conversation is cut at the count");
    }

    #[test]
    fn a_feed_plans_only_a_little_ahead_of_what_is_taken() {
        let workload = Workload::lines(1, 2, 1);
        let planner = planner(&workload, 1_000_000);
        let numbers = planner.numbers();
        let feed = Feed::start(planner, 16).unwrap();
        assert!(numbers.len() >= 16, "ready means `ahead` units are planned");
        for _ in 0..100 {
            assert!(feed.take_blocking().is_some());
        }
        drop(feed);
        // The planner thread has ended: what it planned is final, and it
        // is at most the taken units, the queue and the one in hand.
        let planned = numbers.len();
        assert!(
            (100..=100 + 16 + 1).contains(&planned),
            "{planned} planned for 100 taken"
        );
    }
}
