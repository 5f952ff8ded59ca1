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
    let key = refreshed::environment(&SOURCE_VARIABLES);
    SHARED
        .get(key, || {
            Refreshed::start("llmperf-google-credentials", keep_fresh)
        })
        .current(refreshed::FIRST_WAIT)
        .map_err(|unavailable| {
            // With the variable set, the library reads that file alone.
            let tried = match env_var("GOOGLE_APPLICATION_CREDENTIALS") {
                Some(path) => format!("from the file GOOGLE_APPLICATION_CREDENTIALS names: {path}"),
                None => "tried: the gcloud user credentials of `gcloud auth \
                         application-default login`, the metadata server"
                    .to_string(),
            };
            RequestError::new(
                ErrorKind::Unauthorized,
                format!(
                    "Application Default Credentials gave no token: {unavailable} ({tried}; \
                     or set VERTEXAI_ACCESS_TOKEN / token_command)"
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
        &SOURCE_VARIABLES,
        || {
            google_cloud_auth::credentials::Builder::default()
                .build_access_token_credentials()
                .map_err(|error| withhold_bodies(&crate::transport::error_chain(&error)))
        },
        |credentials| async move {
            credentials
                .access_token()
                .await
                // The library keeps the token's expiry to itself.
                .map(|token| (token.token, None))
                .map_err(|error| withhold_bodies(&crate::transport::error_chain(&error)))
        },
    )
    .await
}

/// `text` with what the library quotes as `body=<…>` (a token service's
/// answer, or a subject token file it could not read: either may hold a
/// credential) replaced: by its OAuth `error` and `error_description`
/// when it is an OAuth error answer (RFC 6749 §5.2, which holds none),
/// else by `withheld`. A body runs to the last `>` of the text (its own
/// may contain `>`); what follows that is kept.
fn withhold_bodies(text: &str) -> String {
    const OPEN: &str = "body=<";
    let Some(start) = text.find(OPEN) else {
        return text.to_string();
    };
    let rest = &text[start + OPEN.len()..];
    let (body, after) = match rest.rfind('>') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, ""),
    };
    let oauth = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|answer| {
            let field = |name: &str| {
                answer
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(|value| crate::endpoint::excerpt(value, 200))
            };
            let error = field("error")?;
            Some(match field("error_description") {
                Some(description) => format!("error: {error}, error_description: {description}"),
                None => format!("error: {error}"),
            })
        });
    let shown = oauth.unwrap_or_else(|| "withheld".to_string());
    format!("{}{OPEN}{shown}>{after}", &text[..start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_bodies_are_withheld_unless_they_are_oauth_errors() {
        assert_eq!(
            withhold_bodies(
                "failed to read subject token field `id_token` as string, \
                 body=<{\"access_token\":\"sk-secret\"}>"
            ),
            "failed to read subject token field `id_token` as string, body=<withheld>"
        );
        assert_eq!(
            withhold_bodies(
                "cannot exchange the token, body=<{\"error\":\"invalid_grant\",\
                 \"error_description\":\"The audience does not match\"}>: \
                 HTTP status client error (400 Bad Request)"
            ),
            "cannot exchange the token, body=<error: invalid_grant, error_description: \
             The audience does not match>: HTTP status client error (400 Bad Request)"
        );
        assert_eq!(
            withhold_bodies("an HTML page, body=<<html>sk-secret</html>"),
            "an HTML page, body=<withheld>"
        );
        assert_eq!(withhold_bodies("no body here"), "no body here");
    }
}
