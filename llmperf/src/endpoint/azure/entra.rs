//! Microsoft Entra ID bearer tokens for Azure OpenAI, through the Azure
//! SDK's `azure_identity`, when no `api-key` is set.
//!
//! The source is the first that applies (the Rust SDK has no
//! `DefaultAzureCredential`; this is its usual order):
//!
//! 1. a service principal's secret: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!    `AZURE_CLIENT_SECRET` (`AZURE_AUTHORITY_HOST` for another cloud);
//! 2. workload identity (AKS): `AZURE_FEDERATED_TOKEN_FILE` with
//!    `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`;
//! 3. managed identity: `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` (App
//!    Service, Functions, Container Apps), or the instance metadata service
//!    of a VM when the `entra` setting is `managed`;
//! 4. the Azure CLI (`az login`), otherwise.
//!
//! The SDK reads `AZURE_AUTHORITY_HOST` itself (service principal and
//! workload identity) and refuses one that is not `https://`. Its HTTPS
//! client (azure_core's reqwest) trusts the platform's certificate store,
//! or `SSL_CERT_FILE` / `SSL_CERT_DIR` in its place, and follows the proxy
//! variables (`HTTPS_PROXY`, `NO_PROXY`): `--ca-cert`, `--insecure` and
//! `--proxy` are llmperf's transport's and do not reach it.
//!
//! The scope is `https://cognitiveservices.azure.com/.default`. As for AWS
//! and Google, one thread with its own runtime owns the credential, whose
//! cache renews the token before it expires; the thread takes the current
//! one every [`POLL_EVERY`] and requests copy it from a mutex (the first
//! requests of a process wait for the first token, at most
//! [`FIRST_TOKEN_WAIT`]). Errors are the SDK's, which never hold a token
//! or a secret.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;

use crate::endpoint::{env_var, ErrorKind, RequestError, Target};
use crate::spec::Secret;

/// The Azure OpenAI (Cognitive Services) scope.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The longest a request waits for the first token.
pub const FIRST_TOKEN_WAIT: Duration = Duration::from_secs(30);
/// How often the thread takes the credential's current (cached) token.
pub const POLL_EVERY: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the token comes from (see the module docs for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity,
    /// `IDENTITY_ENDPOINT`, or IMDS.
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
}

impl Source {
    /// The source the environment points at, if any; `entra` (the setting:
    /// `managed` or `cli`) forces one.
    pub fn pointed_at(entra: Option<&str>) -> Option<Source> {
        let set = |name: &str| env_var(name).is_some();
        match entra.map(str::trim) {
            Some("managed") => return Some(Source::ManagedIdentity),
            Some("cli") => return Some(Source::AzureCli),
            _ => {}
        }
        if set("AZURE_TENANT_ID") && set("AZURE_CLIENT_ID") && set("AZURE_CLIENT_SECRET") {
            Some(Source::ClientSecret)
        } else if set("AZURE_FEDERATED_TOKEN_FILE") {
            Some(Source::WorkloadIdentity)
        } else if set("IDENTITY_ENDPOINT") {
            Some(Source::ManagedIdentity)
        } else {
            None
        }
    }
}

/// The Entra token for a request to `target` when no key is set: from the
/// source the environment points at, else the Azure CLI for a non-loopback
/// base URL; `None` (no header) against a loopback base URL with nothing
/// pointed at.
pub(super) fn token(target: &Target, loopback: bool) -> Result<Option<Secret>, RequestError> {
    let source = match Source::pointed_at(target.setting("entra").as_deref()) {
        Some(source) => source,
        None if loopback => return Ok(None),
        None => Source::AzureCli,
    };
    EntraToken::shared(source).token(FIRST_TOKEN_WAIT).map(Some)
}

/// The latest token of one source, kept fresh by its own thread.
#[derive(Clone)]
pub struct EntraToken(Arc<Shared>);

struct Shared {
    source: Source,
    state: Mutex<State>,
    fetched: Condvar,
}

#[derive(Default)]
struct State {
    first_done: bool,
    token: Option<Secret>,
    last_error: Option<String>,
}

impl EntraToken {
    /// The token of `source` for the process's environment (the variables
    /// the source reads), its thread started on first use.
    pub fn shared(source: Source) -> EntraToken {
        type Key = (Source, Vec<Option<String>>);
        static SHARED: OnceLock<Mutex<HashMap<Key, EntraToken>>> = OnceLock::new();
        let environment = [
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
        ]
        .iter()
        .map(|name| std::env::var(name).ok())
        .collect();
        lock(SHARED.get_or_init(Default::default))
            .entry((source, environment))
            .or_insert_with(|| EntraToken::start(source))
            .clone()
    }

    fn start(source: Source) -> EntraToken {
        let token = EntraToken(Arc::new(Shared {
            source,
            state: Mutex::new(State::default()),
            fetched: Condvar::new(),
        }));
        let shared = Arc::clone(&token.0);
        let spawned = std::thread::Builder::new()
            .name("llmperf-azure-credentials".to_string())
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
            token.0.failed(format!("cannot start its thread: {error}"));
        }
        token
    }

    /// The current token, waiting at most `wait` for the first one.
    pub fn token(&self, wait: Duration) -> Result<Secret, RequestError> {
        let deadline = Instant::now() + wait;
        let mut state = lock(&self.0.state);
        while !state.first_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.error(format!("no token within {}s", wait.as_secs())));
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
            (None, error) => {
                Err(self.error(error.clone().unwrap_or_else(|| "no token".to_string())))
            }
        }
    }

    fn error(&self, why: String) -> RequestError {
        RequestError::new(
            ErrorKind::Unauthorized,
            format!(
                "no Microsoft Entra ID token for Azure OpenAI from {:?}: {why} (set \
                 AZURE_OPENAI_API_KEY, or AZURE_TENANT_ID / AZURE_CLIENT_ID / \
                 AZURE_CLIENT_SECRET, a managed identity, or run `az login`)",
                self.0.source
            ),
        )
    }
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
        state.first_done = true;
        self.fetched.notify_all();
    }
}

fn credential(source: Source) -> azure_core::Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential,
        WorkloadIdentityCredential,
    };
    let var = |name: &str| env_var(name).unwrap_or_default();
    Ok(match source {
        Source::ClientSecret => ClientSecretCredential::new(
            &var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            var("AZURE_CLIENT_SECRET").into(),
            None,
        )?,
        Source::WorkloadIdentity => WorkloadIdentityCredential::new(None)?,
        Source::ManagedIdentity => ManagedIdentityCredential::new(None)?,
        Source::AzureCli => AzureCliCredential::new(None)?,
    })
}

async fn keep_fresh(shared: &Shared) {
    // azure_core's HTTPS uses the process's default rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut failures = 0u32;
    loop {
        match credential(shared.source) {
            Ok(credential) => loop {
                match tokio::time::timeout(FETCH_TIMEOUT, credential.get_token(&[SCOPE], None))
                    .await
                {
                    Ok(Ok(token)) => {
                        failures = 0;
                        shared.succeeded(token.token.secret());
                        tokio::time::sleep(POLL_EVERY).await;
                    }
                    Ok(Err(error)) => break shared.failed(error.to_string()),
                    Err(_) => {
                        break shared
                            .failed(format!("no answer within {}s", FETCH_TIMEOUT.as_secs()))
                    }
                }
            },
            Err(error) => shared.failed(error.to_string()),
        }
        failures += 1;
        let pause = Duration::from_secs(1 << failures.saturating_sub(1).min(5));
        tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
    }
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
    fn the_entra_setting_forces_a_source() {
        assert_eq!(
            Source::pointed_at(Some("managed")),
            Some(Source::ManagedIdentity)
        );
        assert_eq!(Source::pointed_at(Some(" cli ")), Some(Source::AzureCli));
    }
}
