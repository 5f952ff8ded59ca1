//! A credential kept fresh by a thread of its own: the one home of the
//! plumbing the cloud credential sources share (AWS's default chain,
//! Google's Application Default Credentials, Microsoft Entra ID).
//!
//! # Why a thread of its own
//!
//! Requests are built synchronously on the client threads
//! ([`EndpointKind::build_request`](crate::endpoint::EndpointKind::build_request)),
//! inside their event loops, while the cloud SDKs are asynchronous and may
//! call a token service, a metadata server or a command. So each source
//! gets one thread with its own single-threaded tokio runtime, which runs
//! the source's *keeper* (an async loop that fetches and renews the
//! credential and reports each outcome through a [`Keeper`]); a request
//! only copies the latest value out of a mutex ([`Refreshed::current`]).
//! Only the first requests of a process wait, at most the time they are
//! given, for the first outcome — before their clock starts: a request's
//! timing begins once it is built.
//!
//! A value reported with an expiry is never handed out past it: requests
//! then fail with the keeper's last error. Errors are the SDKs' own, which
//! name sources, profiles and files, never a secret.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::spec::Secret;

/// The longest a request waits for a source's first outcome.
pub const FIRST_WAIT: Duration = Duration::from_secs(30);
/// The longest one fetch may take before it counts as failed.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How often [`poll_tokens`] copies the current token of a library that
/// keeps its expiry to itself (it renews and caches it): a renewed token
/// reaches requests at most this late.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long before its expiry a credential is fetched again (at most:
/// half its life when that is shorter).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The shortest pause between two fetches.
const MIN_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between retries of a failing source.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// The latest value of one credential source, kept by its thread.
/// Cloning shares it.
pub struct Refreshed<T>(Arc<Shared<T>>);

impl<T> Clone for Refreshed<T> {
    fn clone(&self) -> Self {
        Refreshed(Arc::clone(&self.0))
    }
}

/// How a keeper reports: each fetched value, or why a fetch failed.
pub struct Keeper<T>(Arc<Shared<T>>);

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    /// Whether the first fetch has ended (either way).
    first_done: bool,
    current: Option<(T, Option<SystemTime>)>,
    /// Why the last fetch failed (kept until one succeeds).
    last_error: Option<String>,
    /// Fetches that succeeded.
    successes: u64,
    /// Whether the keeper gave up for good (its environment changed).
    stopped: bool,
}

/// Why [`Refreshed::current`] has no value to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The first fetch did not end within the wait.
    NoAnswer(Duration),
    /// The value expired and no renewal succeeded (the last error, if one
    /// was reported since).
    Expired(Option<String>),
    /// No fetch has succeeded (the last error).
    Missing(Option<String>),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoAnswer(wait) => write!(f, "no answer within {}s", wait.as_secs()),
            Unavailable::Expired(Some(error)) => {
                write!(f, "expired and could not be renewed: {error}")
            }
            Unavailable::Expired(None) => f.write_str("expired"),
            Unavailable::Missing(error) => {
                f.write_str(error.as_deref().unwrap_or("no source answered"))
            }
        }
    }
}

impl<T: Clone + Send + 'static> Refreshed<T> {
    /// A new source whose keeper runs on a thread named `thread`, in a
    /// single-threaded tokio runtime of its own.
    pub fn start<F, Fut>(thread: &str, keeper: F) -> Refreshed<T>
    where
        F: FnOnce(Keeper<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let refreshed = Refreshed(Arc::new(Shared {
            state: Mutex::new(State {
                first_done: false,
                current: None,
                last_error: None,
                successes: 0,
                stopped: false,
            }),
            changed: Condvar::new(),
        }));
        let keep = Keeper(Arc::clone(&refreshed.0));
        let spawned = std::thread::Builder::new()
            .name(thread.to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => return keep.failed(format!("cannot start its runtime: {error}")),
                };
                let report = Keeper(Arc::clone(&keep.0));
                // A library that panics (one that finds no certificate
                // store, say) is an error requests report, not a silent
                // thread they wait for.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    runtime.block_on(keeper(keep))
                }));
                if let Err(panic) = ran {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|text| text.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    report.failed(format!("the credential library failed: {what}"));
                }
            });
        if let Err(error) = spawned {
            Keeper(Arc::clone(&refreshed.0)).failed(format!("cannot start its thread: {error}"));
        }
        refreshed
    }

    /// The current value, waiting at most `wait` for the first fetch.
    pub fn current(&self, wait: Duration) -> Result<T, Unavailable> {
        let deadline = Instant::now() + wait;
        let mut state = lock(&self.0.state);
        while !state.first_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Unavailable::NoAnswer(wait));
            }
            state = self
                .0
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        match &state.current {
            Some((value, expiry)) if expiry.is_none_or(|expiry| expiry > SystemTime::now()) => {
                Ok(value.clone())
            }
            Some(_) => Err(Unavailable::Expired(state.last_error.clone())),
            None => Err(Unavailable::Missing(state.last_error.clone())),
        }
    }

    /// How many fetches have succeeded so far (the first, then each
    /// renewal or poll).
    pub fn successes(&self) -> u64 {
        lock(&self.0.state).successes
    }
}

impl<T> Refreshed<T> {
    fn stopped(&self) -> bool {
        lock(&self.0.state).stopped
    }
}

impl<T> Keeper<T> {
    /// The keeper ends for good: the [`Registry`] starts a new one for the
    /// next request that asks (its environment changed: see
    /// [`poll_tokens`]).
    pub fn stop(&self) {
        lock(&self.0.state).stopped = true;
    }

    /// A fetch succeeded: `value`, good until `expiry` (`None`: no expiry).
    pub fn fresh(&self, value: T, expiry: Option<SystemTime>) {
        let mut state = lock(&self.0.state);
        state.current = Some((value, expiry));
        state.last_error = None;
        state.successes += 1;
        state.first_done = true;
        self.0.changed.notify_all();
    }

    /// A fetch failed: the last value (if any) serves until its expiry.
    pub fn failed(&self, error: String) {
        let mut state = lock(&self.0.state);
        state.last_error = Some(error);
        state.first_done = true;
        self.0.changed.notify_all();
    }
}

/// Started sources by key (one per profile, environment…), so that all the
/// requests of a process share one thread per source.
pub struct Registry<K, T>(OnceLock<Mutex<HashMap<K, Refreshed<T>>>>);

impl<K: Eq + Hash, T: Clone + Send + 'static> Registry<K, T> {
    /// An empty registry (for a `static`).
    pub const fn new() -> Self {
        Registry(OnceLock::new())
    }

    /// The source for `key`, started by `start` the first time (and again
    /// if its keeper stopped).
    pub fn get(&self, key: K, start: impl FnOnce() -> Refreshed<T>) -> Refreshed<T> {
        let mut sources = lock(self.0.get_or_init(Default::default));
        match sources.get(&key) {
            Some(source) if !source.stopped() => source.clone(),
            _ => {
                let source = start();
                sources.insert(key, source.clone());
                source
            }
        }
    }
}

impl<K: Eq + Hash, T: Clone + Send + 'static> Default for Registry<K, T> {
    fn default() -> Self {
        Registry::new()
    }
}

/// The values of the environment variables `names` (a [`Registry`] key).
pub fn environment(names: &[&str]) -> Vec<Option<String>> {
    names.iter().map(|name| std::env::var(name).ok()).collect()
}

/// A keeper for token libraries (Google's, Azure's): builds the
/// credentials, then asks them for a token again — when the last one nears
/// its expiry ([`renewal_pause`]), or every [`POLL_EVERY`] when the library
/// keeps the expiry to itself (it then renews and caches the token, and
/// asking is a cache read). After a failure it builds them again (their
/// credentials may keep answering an error once they have met one) after
/// 1, 2, 4 … 30 s, while the last token serves until its expiry — unless
/// the `variables` that chose the source have changed since it started:
/// the libraries read the environment as they build, so it would then
/// fetch another source's token; it stops instead, and the [`Registry`]
/// starts one for the new environment when a request asks.
pub async fn poll_tokens<C, Fut>(
    keeper: Keeper<Secret>,
    variables: &[&str],
    build: impl Fn() -> Result<C, String>,
    fetch: impl Fn(C) -> Fut,
) where
    C: Clone,
    Fut: Future<Output = Result<(String, Option<SystemTime>), String>>,
{
    let started_with = environment(variables);
    let mut failures = 0u32;
    loop {
        if failures > 0 && environment(variables) != started_with {
            return keeper.stop();
        }
        match build() {
            Ok(credentials) => loop {
                match tokio::time::timeout(FETCH_TIMEOUT, fetch(credentials.clone())).await {
                    Ok(Ok((token, expiry))) => {
                        failures = 0;
                        keeper.fresh(Secret::new(token), expiry);
                        let pause = match expiry {
                            Some(expiry) => renewal_pause(SystemTime::now(), expiry),
                            None => POLL_EVERY,
                        };
                        tokio::time::sleep(pause).await;
                    }
                    Ok(Err(error)) => break keeper.failed(error),
                    Err(_) => break keeper.failed(no_answer()),
                }
            },
            Err(error) => keeper.failed(error),
        }
        failures += 1;
        tokio::time::sleep(retry_pause(failures)).await;
    }
}

/// How long to wait, at `now`, before fetching again a credential that
/// expires at `expiry`: until [`REFRESH_BEFORE_EXPIRY`] before it, or
/// halfway when the life left is shorter than twice that; never less than
/// a second.
pub fn renewal_pause(now: SystemTime, expiry: SystemTime) -> Duration {
    let life = expiry.duration_since(now).unwrap_or_default();
    let margin = REFRESH_BEFORE_EXPIRY.min(life / 2);
    (life - margin).max(MIN_PAUSE)
}

/// A fetch's timeout, as an error.
pub fn no_answer() -> String {
    format!("no answer within {}s", FETCH_TIMEOUT.as_secs())
}

/// The pause before retry number `failures` (1, 2, 4, … 30 s).
pub fn retry_pause(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(5)).min(MAX_RETRY_PAUSE)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_fetched_again_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let minutes = |m: u64| Duration::from_secs(60 * m);
        // An hour's session: renewed five minutes before its end.
        assert_eq!(renewal_pause(now, now + minutes(60)), minutes(55));
        // Short lives: halfway.
        assert_eq!(renewal_pause(now, now + minutes(6)), minutes(3));
        assert_eq!(
            renewal_pause(now, now + Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        // Already expired or about to: a second, never a busy loop.
        assert_eq!(renewal_pause(now, now), MIN_PAUSE);
        assert_eq!(renewal_pause(now, now - minutes(1)), MIN_PAUSE);
    }

    #[test]
    fn a_keeper_that_panics_is_an_error_not_a_wait() {
        let refreshed: Refreshed<&str> = Refreshed::start("llmperf-test-keeper", |_keeper| async {
            panic!("no CA certificates were loaded");
        });
        let error = refreshed.current(Duration::from_secs(30)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the credential library failed: no CA certificates were loaded"
        );
    }

    #[test]
    fn a_stopped_source_is_started_again_by_the_registry() {
        static SOURCES: Registry<&str, u32> = Registry::new();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let first = SOURCES.get("key", || {
            Refreshed::start("llmperf-test-keeper", move |keeper| async move {
                keeper.fresh(1, None);
                keeper.stop();
                let _ = done.send(());
            })
        });
        finished.recv().unwrap();
        assert_eq!(first.current(Duration::ZERO), Ok(1));
        let second = SOURCES.get("key", || {
            Refreshed::start("llmperf-test-keeper", |keeper| async move {
                keeper.fresh(2, None);
            })
        });
        assert_eq!(second.current(Duration::from_secs(30)), Ok(2));
        // A live source is shared, not started again.
        let third = SOURCES.get("key", || unreachable!("started twice"));
        assert_eq!(third.current(Duration::ZERO), Ok(2));
    }

    #[test]
    fn retries_back_off_to_half_a_minute() {
        let pauses: Vec<u64> = (1..=8).map(|n| retry_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn requests_wait_for_the_first_fetch_and_never_get_an_expired_value() {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (renewed, renewals) = std::sync::mpsc::channel::<()>();
        let refreshed = Refreshed::start("llmperf-test-keeper", move |keeper| async move {
            // Wait until the test asks, so the first fetch is not done yet.
            let _ = wait.recv();
            let past = SystemTime::now() - Duration::from_secs(1);
            keeper.fresh("first", Some(past));
            keeper.failed("the token service said no".to_string());
            let _ = wait.recv();
            keeper.fresh("second", None);
            let _ = renewed.send(());
        });
        assert_eq!(
            refreshed.current(Duration::ZERO),
            Err(Unavailable::NoAnswer(Duration::ZERO))
        );
        go.send(()).unwrap();
        // Blocks until the keeper reports; the first value is already
        // past its expiry, so the error is what requests get.
        let error = refreshed.current(Duration::from_secs(30)).unwrap_err();
        match &error {
            Unavailable::Expired(_) => {}
            other => panic!("{other:?}"),
        }
        // Both outcomes may have landed, or only the first: either way no
        // expired value is handed out.
        go.send(()).unwrap();
        renewals.recv().unwrap();
        assert_eq!(refreshed.current(Duration::ZERO), Ok("second"));
        assert_eq!(refreshed.successes(), 2);
    }

    #[test]
    fn a_source_that_never_succeeds_reports_its_last_error() {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let refreshed: Refreshed<&str> =
            Refreshed::start("llmperf-test-keeper", |keeper| async move {
                keeper.failed("no credentials file".to_string());
                let _ = done.send(());
            });
        finished.recv().unwrap();
        assert_eq!(
            refreshed.current(Duration::ZERO),
            Err(Unavailable::Missing(Some(
                "no credentials file".to_string()
            )))
        );
        assert_eq!(
            refreshed.current(Duration::ZERO).unwrap_err().to_string(),
            "no credentials file"
        );
    }
}
