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
//! The credentials live on a thread of their own
//! ([`refreshed`] says why): the library caches
//! the token and renews it in the background four minutes before it
//! expires (every ten seconds when a token's life is shorter), and the
//! thread copies the current one every
//! [`POLL_EVERY`](refreshed::POLL_EVERY) for requests to take. After a
//! failure the credentials are built again after 1, 2, 4 … 30 s while the
//! last token serves; with no token at all, requests fail as
//! `unauthorized` with the library's reason, which never holds a token or
//! a key.

use crate::endpoint::refreshed::{self, Refreshed, Registry};
use crate::endpoint::{env_var, ErrorKind, RequestError};
use crate::spec::Secret;

/// The variables that choose a source.
const SOURCE_VARIABLES: [&str; 3] = [
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "HOME",
];

/// Whether anything points at Application Default Credentials (the key
/// file variable or a moved metadata server); the gcloud user file and the
/// real metadata server are tried only for a Google base URL.
pub(crate) fn pointed_at() -> bool {
    SOURCE_VARIABLES[..2]
        .iter()
        .any(|name| env_var(name).is_some())
}

/// The current token of the process's Application Default Credentials
/// (for its environment: the variables that choose a source), their
/// thread started on first use; waits at most
/// [`FIRST_WAIT`](refreshed::FIRST_WAIT) for the first token.
pub(crate) fn token() -> Result<Secret, RequestError> {
    static SHARED: Registry<Vec<Option<String>>, Secret> = Registry::new();
    let key = SOURCE_VARIABLES
        .iter()
        .map(|name| std::env::var(name).ok())
        .collect();
    SHARED
        .get(key, || {
            Refreshed::start("llmperf-google-credentials", keep_fresh)
        })
        .current(refreshed::FIRST_WAIT)
        .map_err(|unavailable| {
            RequestError::new(
                ErrorKind::Unauthorized,
                format!(
                    "Application Default Credentials gave no token: {unavailable} (tried: \
                     GOOGLE_APPLICATION_CREDENTIALS, the gcloud user credentials of \
                     `gcloud auth application-default login`, the metadata server; or set \
                     VERTEXAI_ACCESS_TOKEN / token_command)"
                ),
            )
        })
}

async fn keep_fresh(keeper: refreshed::Keeper<Secret>) {
    // The library signs service-account tokens with the process's default
    // rustls provider; llmperf's TLS is ring. (Already installed: fine.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    refreshed::poll_tokens(
        keeper,
        || {
            google_cloud_auth::credentials::Builder::default()
                .build_access_token_credentials()
                .map_err(|error| crate::transport::error_chain(&error))
        },
        |credentials| async move {
            credentials
                .access_token()
                .await
                // The library keeps the token's expiry to itself.
                .map(|token| (token.token, None))
                .map_err(|error| crate::transport::error_chain(&error))
        },
    )
    .await
}
