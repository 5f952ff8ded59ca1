//! AWS credentials from the SDK's default chain, resolved off the client
//! threads and renewed before they expire.
//!
//! The chain is `aws-config`'s [`DefaultCredentialsChain`], tried in its
//! order: the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN` variables; the shared config and credentials files
//! (`~/.aws/config`, `~/.aws/credentials`, or `AWS_CONFIG_FILE` /
//! `AWS_SHARED_CREDENTIALS_FILE`) for the profile named by the `profile`
//! setting, else `AWS_PROFILE`, else `default` — with everything a profile
//! can say: keys, `role_arn` (assume role), `sso_session` / `sso_*` (IAM
//! Identity Center, after `aws sso login`), `credential_process`,
//! `web_identity_token_file`; web identity from `AWS_WEB_IDENTITY_TOKEN_FILE`
//! and `AWS_ROLE_ARN` (Kubernetes service accounts, EKS IRSA); container
//! credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`:
//! ECS tasks, EKS Pod Identity); the EC2 instance metadata service (IMDSv2,
//! off with `AWS_EC2_METADATA_DISABLED=true`).
//!
//! # Why a thread of its own
//!
//! Requests are built synchronously on the client threads
//! ([`EndpointKind::build_request`](crate::endpoint::EndpointKind::build_request)),
//! inside their event loops, while the chain is asynchronous and may call
//! STS, SSO, a container agent or the instance metadata service. So one
//! thread per chain (per profile and region), with its own single-threaded
//! tokio runtime, resolves the credentials and keeps the latest in a
//! [`CredentialChain`]; a request only copies them out of a mutex. Only
//! the first requests of a process wait, at most [`FIRST_RESOLUTION_WAIT`],
//! for the first resolution (before their clock starts: a request's timing
//! begins once it is built).
//!
//! Temporary credentials (those with an expiry: SSO, assumed roles, web
//! identity, container and instance credentials) are fetched again before
//! they expire: five minutes before, or halfway through their life when it
//! is shorter than ten. A failed refresh is retried with a growing pause
//! (1 s, 2 s, … at most 30 s) while the old credentials serve; credentials
//! past their expiry are never used: requests then fail as `unauthorized`
//! with the refresh's error. Credentials without an expiry (keys in the
//! environment or a file) are resolved once.
//!
//! Neither the credentials nor the signature ever appear in an error: the
//! errors are the chain's own, which name sources, profiles and files,
//! never values.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::sigv4::AwsCredentials;
use crate::endpoint::{ErrorKind, RequestError};
use crate::spec::Secret;

/// The longest a request waits for a chain's first resolution.
pub const FIRST_RESOLUTION_WAIT: Duration = Duration::from_secs(30);
/// The longest one resolution may take before it counts as failed.
const RESOLUTION_TIMEOUT: Duration = Duration::from_secs(20);
/// How long before their expiry temporary credentials are renewed (at
/// most: half their life when that is shorter).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The shortest pause between two resolutions.
const MIN_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between retries of a failing refresh.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// Which chain: the profile asked for (`None`: `AWS_PROFILE`, else
/// `default`) and the region its STS or SSO calls use (`None`: the
/// profile's, else `us-east-1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainKey {
    /// The `profile` setting.
    pub profile: Option<String>,
    /// The region found before the profile (setting, environment, base URL).
    pub region: Option<String>,
}

/// The latest credentials of one default chain, kept fresh by its own
/// thread (see the module docs). Cloning shares it.
#[derive(Clone)]
pub struct CredentialChain(Arc<Shared>);

struct Shared {
    key: ChainKey,
    state: Mutex<State>,
    resolved: Condvar,
}

#[derive(Default)]
struct State {
    /// Whether the first resolution has ended (either way).
    first_done: bool,
    credentials: Option<Current>,
    /// The region in the profile, once read.
    profile_region: Option<String>,
    /// Why the last resolution failed (kept until one succeeds).
    last_error: Option<String>,
    /// Resolutions that succeeded.
    resolutions: u64,
}

struct Current {
    credentials: AwsCredentials,
    expiry: Option<SystemTime>,
}

/// What a request signs with: the chain's current credentials and the
/// region the profile names, if any.
pub struct ChainCredentials {
    /// The credentials.
    pub credentials: AwsCredentials,
    /// The profile's `region`, for when nothing before it names one.
    pub profile_region: Option<String>,
}

impl CredentialChain {
    /// The process-wide chain for `key`, started (its thread spawned) on
    /// first use.
    pub fn shared(key: ChainKey) -> CredentialChain {
        static CHAINS: OnceLock<Mutex<HashMap<ChainKey, CredentialChain>>> = OnceLock::new();
        let mut chains = lock(CHAINS.get_or_init(Default::default));
        chains
            .entry(key.clone())
            .or_insert_with(|| CredentialChain::start(key))
            .clone()
    }

    /// A new chain for `key`, its thread started.
    pub fn start(key: ChainKey) -> CredentialChain {
        let chain = CredentialChain(Arc::new(Shared {
            key,
            state: Mutex::new(State::default()),
            resolved: Condvar::new(),
        }));
        let shared = Arc::clone(&chain.0);
        let spawned = std::thread::Builder::new()
            .name("llmperf-aws-credentials".to_string())
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
            chain.0.failed(format!("cannot start its thread: {error}"));
        }
        chain
    }

    /// The current credentials, waiting at most `wait` for the first
    /// resolution. An `unauthorized` error when the chain found none, or
    /// only expired ones.
    pub fn current(&self, wait: Duration) -> Result<ChainCredentials, RequestError> {
        let deadline = Instant::now() + wait;
        let mut state = lock(&self.0.state);
        while !state.first_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!(
                    "no answer from the AWS credential chain within {}s",
                    wait.as_secs()
                )));
            }
            state = self
                .0
                .resolved
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let fresh = state.credentials.as_ref().filter(|current| {
            current
                .expiry
                .is_none_or(|expiry| expiry > SystemTime::now())
        });
        match fresh {
            Some(current) => Ok(ChainCredentials {
                credentials: current.credentials.clone(),
                profile_region: state.profile_region.clone(),
            }),
            None => {
                let why = match (&state.credentials, &state.last_error) {
                    (Some(_), Some(error)) => {
                        format!("the AWS credentials expired and could not be renewed: {error}")
                    }
                    (Some(_), None) => "the AWS credentials expired".to_string(),
                    (None, error) => format!(
                        "the AWS credential chain found no credentials: {}",
                        error.as_deref().unwrap_or("no source answered")
                    ),
                };
                Err(self.error(why))
            }
        }
    }

    /// How many resolutions have succeeded so far (the first, then each
    /// renewal).
    pub fn resolutions(&self) -> u64 {
        lock(&self.0.state).resolutions
    }

    fn error(&self, why: String) -> RequestError {
        let profile = match &self.0.key.profile {
            Some(profile) => format!("profile `{profile}`"),
            None => "AWS_PROFILE or the default profile".to_string(),
        };
        RequestError::new(
            ErrorKind::Unauthorized,
            format!(
                "{why} (tried: the AWS_* variables, {profile} in the shared config files, \
                 web identity, container and instance credentials; set the profile option, \
                 or run `aws sso login` / `aws configure`)"
            ),
        )
    }
}

impl Shared {
    fn failed(&self, error: String) {
        let mut state = lock(&self.state);
        state.last_error = Some(error);
        state.first_done = true;
        self.resolved.notify_all();
    }

    fn succeeded(&self, credentials: &aws_credential_types::Credentials) {
        let mut state = lock(&self.state);
        state.credentials = Some(Current {
            credentials: AwsCredentials {
                access_key_id: Secret::new(credentials.access_key_id()),
                secret_access_key: Secret::new(credentials.secret_access_key()),
                session_token: credentials.session_token().map(Secret::new),
            },
            expiry: credentials.expiry(),
        });
        state.last_error = None;
        state.resolutions += 1;
        state.first_done = true;
        self.resolved.notify_all();
    }
}

/// The chain's thread: reads the profile's region, builds the chain,
/// resolves, and resolves again before each expiry.
async fn keep_fresh(shared: &Shared) {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = ProviderConfig::without_region().with_http_client(http);
    let key = &shared.key;
    let mut region = ProfileFileRegionProvider::builder().configure(&config);
    if let Some(profile) = &key.profile {
        region = region.profile_name(profile);
    }
    let profile_region = region.build().region().await.map(|r| r.to_string());
    lock(&shared.state).profile_region = profile_region.clone();
    let sts_region = key
        .region
        .clone()
        .or(profile_region)
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut builder = DefaultCredentialsChain::builder()
        .configure(config)
        .region(Region::new(sts_region));
    if let Some(profile) = &key.profile {
        builder = builder.profile_name(profile);
    }
    let chain = builder.build().await;

    let mut failures = 0u32;
    loop {
        let outcome = tokio::time::timeout(RESOLUTION_TIMEOUT, chain.provide_credentials()).await;
        let pause = match outcome {
            Ok(Ok(credentials)) => {
                failures = 0;
                shared.succeeded(&credentials);
                match credentials.expiry() {
                    Some(expiry) => renewal_pause(SystemTime::now(), expiry),
                    // Long-term keys: nothing to renew.
                    None => return,
                }
            }
            Ok(Err(error)) => {
                failures += 1;
                shared.failed(DisplayErrorContext(&error).to_string());
                retry_pause(failures)
            }
            Err(_) => {
                failures += 1;
                shared.failed(format!(
                    "the credential chain gave no answer within {}s",
                    RESOLUTION_TIMEOUT.as_secs()
                ));
                retry_pause(failures)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// How long to wait, at `now`, before renewing credentials that expire at
/// `expiry`: until [`REFRESH_BEFORE_EXPIRY`] before it, or halfway when
/// the life left is shorter than twice that; never less than a second.
fn renewal_pause(now: SystemTime, expiry: SystemTime) -> Duration {
    let life = expiry.duration_since(now).unwrap_or_default();
    let margin = REFRESH_BEFORE_EXPIRY.min(life / 2);
    (life - margin).max(MIN_PAUSE)
}

/// The pause before retry number `failures` (1, 2, 4, … 30 s).
fn retry_pause(failures: u32) -> Duration {
    MIN_PAUSE
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(MAX_RETRY_PAUSE)
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
    fn temporary_credentials_are_renewed_before_they_expire() {
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
        let pauses: Vec<u64> = (1..=8).map(|n| retry_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
