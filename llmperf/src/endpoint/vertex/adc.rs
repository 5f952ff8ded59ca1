//! Application Default Credentials: Vertex AI access tokens found the way
//! Google's own tools find them, through Google's `google-cloud-auth`.
//!
//! The search is the library's (and `gcloud`'s): the JSON file named by
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key, an
//! `authorized_user`, an `external_account` for workload identity
//! federation, an `impersonated_service_account`), else the user
//! credentials `gcloud auth application-default login` writes
//! (`~/.config/gcloud/application_default_credentials.json`), else the
//! metadata server (Compute Engine, GKE workload identity, Cloud Run;
//! `GCE_METADATA_HOST` moves it). Scope: `cloud-platform`.
//!
//! As for AWS ([`sagemaker::chain`](crate::endpoint::sagemaker::chain)),
//! requests are built synchronously on the client threads, so one thread
//! with its own single-threaded tokio runtime owns the credentials: the
//! library caches the token and renews it in the background four minutes
//! before it expires, and the thread asks it for the current one every
//! [`POLL_EVERY`], keeping a copy a request takes from a mutex. Only the
//! first requests of a process wait (at most [`FIRST_TOKEN_WAIT`], before
//! their clock starts) for the first token. After a failure the
//! credentials are built again after 1, 2, 4 … 30 s while the last token
//! serves; with no token at all, requests fail as `unauthorized` with the
//! library's reason, which never holds a token or a key.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::endpoint::{env_var, ErrorKind, RequestError};
use crate::spec::Secret;

/// The longest a request waits for the first token.
pub const FIRST_TOKEN_WAIT: Duration = Duration::from_secs(30);
/// How often the thread takes the library's current (cached) token.
pub const POLL_EVERY: Duration = Duration::from_secs(10);
/// The longest one token fetch may take before it counts as failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Whether anything points at Application Default Credentials (the key
/// file variable or a moved metadata server); the gcloud user file and the
/// real metadata server are tried only for a Google base URL.
pub(crate) fn pointed_at() -> bool {
    ["GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST"]
        .iter()
        .any(|name| env_var(name).is_some())
}

/// The process's Application Default Credentials and their latest token.
#[derive(Clone)]
pub struct DefaultCredentials(Arc<Shared>);

struct Shared {
    state: Mutex<State>,
    fetched: Condvar,
}

#[derive(Default)]
struct State {
    first_done: bool,
    token: Option<Secret>,
    last_error: Option<String>,
    fetches: u64,
}

impl DefaultCredentials {
    /// The credentials for the process's environment (the variables that
    /// choose a source: `GOOGLE_APPLICATION_CREDENTIALS`,
    /// `GCE_METADATA_HOST`, `HOME`), their thread started on first use.
    pub fn shared() -> DefaultCredentials {
        static SHARED: OnceLock<Mutex<HashMap<Vec<Option<String>>, DefaultCredentials>>> =
            OnceLock::new();
        let key = [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GCE_METADATA_HOST",
            "HOME",
        ]
        .iter()
        .map(|name| std::env::var(name).ok())
        .collect();
        lock(SHARED.get_or_init(Default::default))
            .entry(key)
            .or_insert_with(DefaultCredentials::start)
            .clone()
    }

    fn start() -> DefaultCredentials {
        let credentials = DefaultCredentials(Arc::new(Shared {
            state: Mutex::new(State::default()),
            fetched: Condvar::new(),
        }));
        let shared = Arc::clone(&credentials.0);
        let spawned = std::thread::Builder::new()
            .name("llmperf-google-credentials".to_string())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(keep_fresh(&shared)),
                    Err(error) => shared.failed(format!("cannot start its runtime: {error}")),
                }
            });
        if let Err(error) = spawned {
            credentials
                .0
                .failed(format!("cannot start its thread: {error}"));
        }
        credentials
    }

    /// The current token, waiting at most `wait` for the first one.
    pub fn token(&self, wait: Duration) -> Result<Secret, RequestError> {
        let deadline = Instant::now() + wait;
        let mut state = lock(&self.0.state);
        while !state.first_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unauthorized(format!(
                    "no token from Application Default Credentials within {}s",
                    wait.as_secs()
                )));
            }
            state = self
                .0
                .fetched
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        match (&state.token, &state.last_error) {
            (Some(token), _) => Ok(token.clone()),
            (None, error) => Err(unauthorized(format!(
                "Application Default Credentials gave no token: {}",
                error.as_deref().unwrap_or("no source answered")
            ))),
        }
    }

    /// How many tokens have been taken from the library so far.
    pub fn fetches(&self) -> u64 {
        lock(&self.0.state).fetches
    }
}

fn unauthorized(why: String) -> RequestError {
    RequestError::new(
        ErrorKind::Unauthorized,
        format!(
            "{why} (tried: GOOGLE_APPLICATION_CREDENTIALS, the gcloud user credentials of \
             `gcloud auth application-default login`, the metadata server; or set \
             VERTEXAI_ACCESS_TOKEN / token_command)"
        ),
    )
}

impl Shared {
    fn failed(&self, error: String) {
        let mut state = lock(&self.state);
        state.last_error = Some(error);
        state.first_done = true;
        self.fetched.notify_all();
    }

    fn succeeded(&self, token: &str) {
        let mut state = lock(&self.state);
        state.token = Some(Secret::new(token));
        state.last_error = None;
        state.fetches += 1;
        state.first_done = true;
        self.fetched.notify_all();
    }
}

async fn keep_fresh(shared: &Shared) {
    // The library signs service-account tokens with the process's default
    // rustls provider; llmperf's TLS is ring. (Already installed: fine.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut failures = 0u32;
    loop {
        // Built again after a failure: the library's credentials keep
        // answering a permanent error once they have met one.
        match google_cloud_auth::credentials::Builder::default().build_access_token_credentials() {
            Ok(credentials) => loop {
                match tokio::time::timeout(FETCH_TIMEOUT, credentials.access_token()).await {
                    Ok(Ok(token)) => {
                        failures = 0;
                        shared.succeeded(&token.token);
                        tokio::time::sleep(POLL_EVERY).await;
                    }
                    Ok(Err(error)) => break shared.failed(causes(&error)),
                    Err(_) => {
                        break shared
                            .failed(format!("no answer within {}s", FETCH_TIMEOUT.as_secs()))
                    }
                }
            },
            Err(error) => shared.failed(causes(&error)),
        }
        failures += 1;
        tokio::time::sleep(retry_pause(failures)).await;
    }
}

/// An error and its sources, `: `-separated (the library's top message
/// alone rarely says what failed). None of them holds a token or a key.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The pause before retry number `failures` (1, 2, 4, … 30 s).
fn retry_pause(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(5)).min(MAX_RETRY_PAUSE)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
