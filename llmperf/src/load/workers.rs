//! The threads requests run on: one single-threaded tokio runtime per
//! client thread.
//!
//! A request's task reads its stream, stamps each read and decodes it,
//! all on one thread, and nothing else competes for that thread: no work
//! stealing between workers, no worker woken to find nothing to do. With a
//! multi-threaded runtime each event cost a few more futex calls and
//! context switches than it needs (`llmperf/benches/client_cost.rs`). Several
//! client threads share the requests round-robin, for loads one thread
//! cannot read in time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Client threads by default: one per two cores (at least one), since a
/// load test often shares its machine with the server or other shards;
/// one thread reads tens of thousands of events per second.
pub fn default_client_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

/// Client threads, each running a single-threaded runtime until dropped.
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` client threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut workers = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
            next: AtomicUsize::new(0),
        };
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            workers.threads.push(
                std::thread::Builder::new()
                    .name(format!("llmperf-client-{index}"))
                    .spawn(move || {
                        // Drives the runtime's tasks, timers and sockets
                        // until the workers are dropped; tasks still
                        // running then are cancelled.
                        let _ = runtime.block_on(stopped);
                    })?,
            );
        }
        Ok(workers)
    }

    /// The runtime of the next client thread, round-robin.
    pub fn next(&self) -> &Handle {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[index]
    }

    /// Runs `future` on the calling thread (which must not be a client
    /// thread), its timers and sockets driven by the first client thread.
    /// A future that needs the runtime when it is created (a timer) must
    /// be created inside it: pass an `async` block.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handles[0].block_on(future)
    }

    /// Spawns `future` on the next client thread.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.next().spawn(future)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_every_client_thread_and_block_on_drives_timers() {
        let workers = Workers::start(2).unwrap();
        let names: Vec<String> = (0..4)
            .map(|_| {
                let task = workers.spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    std::thread::current().name().unwrap_or("").to_string()
                });
                workers.block_on(task).unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "llmperf-client-0",
                "llmperf-client-1",
                "llmperf-client-0",
                "llmperf-client-1"
            ]
        );
        // A timer awaited on the calling thread fires too.
        workers.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        });
    }
}
