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
//! The chain runs on a thread of its own
//! ([`refreshed`] says why), one per profile
//! and region; requests copy its latest credentials.
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

use std::time::SystemTime;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;

use super::sigv4::AwsCredentials;
use crate::endpoint::refreshed::{self, Keeper, Refreshed, Registry, Unavailable};
use crate::endpoint::{ErrorKind, RequestError};
use crate::spec::Secret;

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

/// What a request signs with: the chain's current credentials and the
/// region the profile names, if any.
#[derive(Clone)]
pub struct ChainCredentials {
    /// The credentials.
    pub credentials: AwsCredentials,
    /// The profile's `region`, for when nothing before it names one.
    pub profile_region: Option<String>,
}

/// The latest credentials of one default chain, kept fresh by its own
/// thread. Cloning shares it.
#[derive(Clone)]
pub struct CredentialChain {
    key: ChainKey,
    latest: Refreshed<ChainCredentials>,
}

impl CredentialChain {
    /// The process-wide chain for `key`, started (its thread spawned) on
    /// first use.
    pub fn shared(key: ChainKey) -> CredentialChain {
        static CHAINS: Registry<ChainKey, ChainCredentials> = Registry::new();
        let latest = CHAINS.get(key.clone(), || start(key.clone()));
        CredentialChain { key, latest }
    }

    /// The current credentials, waiting at most
    /// [`FIRST_WAIT`](refreshed::FIRST_WAIT) for the first resolution. An
    /// `unauthorized` error when the chain found none, or only expired ones.
    pub fn current(&self) -> Result<ChainCredentials, RequestError> {
        self.latest
            .current(refreshed::FIRST_WAIT)
            .map_err(|unavailable| self.error(&unavailable))
    }

    fn error(&self, unavailable: &Unavailable) -> RequestError {
        let why = match unavailable {
            Unavailable::NoAnswer(_) => format!("the AWS credential chain: {unavailable}"),
            Unavailable::Expired(_) => format!("the AWS credentials {unavailable}"),
            Unavailable::Missing(_) => {
                format!("the AWS credential chain found no credentials: {unavailable}")
            }
        };
        let profile = match &self.key.profile {
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

fn start(key: ChainKey) -> Refreshed<ChainCredentials> {
    Refreshed::start("llmperf-aws-credentials", move |keeper| async move {
        keep_fresh(&key, keeper).await
    })
}

/// The chain's thread: reads the profile's region, builds the chain,
/// resolves, and resolves again before each expiry.
async fn keep_fresh(key: &ChainKey, keeper: Keeper<ChainCredentials>) {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = ProviderConfig::without_region().with_http_client(http.clone());
    let mut region = ProfileFileRegionProvider::builder().configure(&config);
    if let Some(profile) = &key.profile {
        region = region.profile_name(profile);
    }
    let profile_region = region.build().region().await.map(|r| r.to_string());
    let sts_region = key
        .region
        .clone()
        .or(profile_region.clone())
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut failures = 0u32;
    let mut chain = None;
    loop {
        // Built again after a failure: aws-config's profile provider keeps
        // the outcome of building itself, and after one failure answers
        // only "initialization error already taken". Kept while it works
        // (the instance metadata client keeps its session token).
        let provider = match &chain {
            Some(provider) => provider,
            None => chain.insert(build_chain(key, &http, &sts_region).await),
        };
        let outcome =
            tokio::time::timeout(refreshed::FETCH_TIMEOUT, provider.provide_credentials()).await;
        let pause = match outcome {
            Ok(Ok(credentials)) => {
                failures = 0;
                let expiry = credentials.expiry();
                keeper.fresh(
                    ChainCredentials {
                        credentials: AwsCredentials {
                            access_key_id: Secret::new(credentials.access_key_id()),
                            secret_access_key: Secret::new(credentials.secret_access_key()),
                            session_token: credentials.session_token().map(Secret::new),
                        },
                        profile_region: profile_region.clone(),
                    },
                    expiry,
                );
                match expiry {
                    Some(expiry) => refreshed::renewal_pause(SystemTime::now(), expiry),
                    // Long-term keys: nothing to renew.
                    None => return,
                }
            }
            Ok(Err(error)) => {
                failures += 1;
                chain = None;
                // The messages alone: DisplayErrorContext's Debug tail
                // quotes raw HTTP answers, credentials included.
                keeper.failed(crate::transport::error_chain(&error));
                refreshed::retry_pause(failures)
            }
            Err(_) => {
                failures += 1;
                chain = None;
                keeper.failed(refreshed::no_answer());
                refreshed::retry_pause(failures)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// The SDK's default credential chain for `key`, through its config loader
/// (not `DefaultCredentialsChain::builder`, whose profile name does not
/// reach the instance metadata client: a named profile's
/// `ec2_metadata_service_endpoint[_mode]` would be read from the default
/// profile instead).
async fn build_chain(
    key: &ChainKey,
    http: &aws_smithy_runtime_api::client::http::SharedHttpClient,
    sts_region: &str,
) -> aws_credential_types::provider::SharedCredentialsProvider {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http.clone())
        .region(Region::new(sts_region.to_string()));
    if let Some(profile) = &key.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    match config.credentials_provider() {
        Some(provider) => provider,
        // The loader always sets the default chain; should it not, the
        // chain itself (as built before the loader was used).
        None => {
            let mut builder =
                DefaultCredentialsChain::builder().region(Region::new(sts_region.to_string()));
            if let Some(profile) = &key.profile {
                builder = builder.profile_name(profile);
            }
            aws_credential_types::provider::SharedCredentialsProvider::new(builder.build().await)
        }
    }
}
