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
//! The scope is `https://cognitiveservices.azure.com/.default`. The
//! credential lives on a thread of its own ([`refreshed`] says why), which
//! asks it for a token again when the last one nears its expiry (see
//! [`poll_tokens`](refreshed::poll_tokens)): the SDK's cache answers or
//! renews it; the Azure CLI, which has no cache, runs `az` then, not more
//! often. A token past its expiry is never sent. The SDK's own retries are
//! capped ([`FETCH_RETRIES`]) so that its error, not a timeout, is what
//! requests report. Errors are the SDK's, which never hold a token or a
//! secret.

use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;

use crate::endpoint::refreshed::{self, Refreshed, Registry};
use crate::endpoint::{env_var, ErrorKind, RequestError, Target};
use crate::spec::Secret;

/// The Azure OpenAI (Cognitive Services) scope.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The variables the sources read: a change starts a new credential.
const SOURCE_VARIABLES: [&str; 8] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    // Where `az` is found.
    "PATH",
];

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
    shared_token(source).map(Some)
}

/// The current token of `source` for the process's environment, its
/// thread started on first use; waits at most
/// [`FIRST_WAIT`](refreshed::FIRST_WAIT) for the first token.
fn shared_token(source: Source) -> Result<Secret, RequestError> {
    type Key = (Source, Vec<Option<String>>);
    static SHARED: Registry<Key, Secret> = Registry::new();
    let environment = refreshed::environment(&SOURCE_VARIABLES);
    SHARED
        .get((source, environment), || {
            Refreshed::start("llmperf-azure-credentials", move |keeper| {
                keep_fresh(source, keeper)
            })
        })
        .current(refreshed::FIRST_WAIT)
        .map_err(|unavailable| {
            RequestError::new(
                ErrorKind::Unauthorized,
                format!(
                    "no Microsoft Entra ID token for Azure OpenAI from {source:?}: {unavailable} \
                     (set AZURE_OPENAI_API_KEY, or AZURE_TENANT_ID / AZURE_CLIENT_ID / \
                     AZURE_CLIENT_SECRET, a managed identity, or run `az login`)"
                ),
            )
        })
}

/// Retries the SDK makes within one token request (its default, 8 over a
/// minute, outlasts [`FETCH_TIMEOUT`](refreshed::FETCH_TIMEOUT) and hides
/// the error behind a timeout); the keeper retries after that.
pub const FETCH_RETRIES: u32 = 2;

fn client_options() -> azure_core::http::ClientOptions {
    use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
    use azure_core::time::Duration;
    ClientOptions {
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            max_retries: FETCH_RETRIES,
            max_total_elapsed: Duration::seconds(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn credential(source: Source) -> azure_core::Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
        ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
        WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
    };
    let var = |name: &str| env_var(name).unwrap_or_default();
    Ok(match source {
        Source::ClientSecret => ClientSecretCredential::new(
            &var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            var("AZURE_CLIENT_SECRET").into(),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(),
            }),
        )?,
        Source::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(),
                },
                ..Default::default()
            }))?
        }
        Source::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                client_options: client_options(),
                ..Default::default()
            }))?
        }
        Source::AzureCli => AzureCliCredential::new(None)?,
    })
}

async fn keep_fresh(source: Source, keeper: refreshed::Keeper<Secret>) {
    // azure_core's HTTPS uses the process's default rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    refreshed::poll_tokens(
        keeper,
        &SOURCE_VARIABLES,
        || credential(source).map_err(|error| crate::transport::error_chain(&error)),
        |credential| async move {
            credential
                .get_token(&[SCOPE], None)
                .await
                .map(|token| {
                    let expiry = SystemTime::from(token.expires_on);
                    (token.token.secret().to_string(), Some(expiry))
                })
                .map_err(|error| crate::transport::error_chain(&error))
        },
    )
    .await
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
