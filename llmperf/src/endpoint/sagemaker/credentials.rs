//! Which AWS credentials sign a SageMaker request.
//!
//! 1. Keys given to llmperf itself: the options `aws_access_key_id`,
//!    `aws_secret_access_key`, `aws_session_token` (or `SAGEMAKER_AWS_*`),
//!    used as given.
//! 2. Against a loopback base URL (the built-in endpoint) with no AWS
//!    source pointed at (no `profile` setting, `AWS_PROFILE`,
//!    `AWS_ACCESS_KEY_ID`, `AWS_WEB_IDENTITY_TOKEN_FILE` or
//!    `AWS_CONTAINER_CREDENTIALS_*`), the built-in endpoint's published
//!    test pair ([`TEST_ACCESS_KEY_ID`]).
//! 3. Otherwise the AWS SDK's default credential chain for the `profile`
//!    setting ([`chain`](super::chain)): environment, shared files and
//!    profiles (with SSO, assume role, `credential_process`), web identity,
//!    container and instance credentials, renewed before they expire.
//!
//! A base URL counts as configured (so `--api sagemaker` alone goes to
//! AWS rather than to the built-in endpoint) when any of these sources is
//! pointed at, or the `region` setting is given; on an EC2 instance whose
//! role is its only credential, say `--option region=…` (or give the base
//! URL).

use std::collections::BTreeMap;

use super::chain::{ChainCredentials, ChainKey, CredentialChain};
use super::sigv4::{AwsCredentials, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use super::{env_var, is_loopback_host};
use crate::endpoint::{setting, Credentials, ErrorKind, RequestError, Target};
use crate::spec::Secret;

/// Where to look when AWS refuses the credentials.
pub(super) const CREDENTIAL_SOURCE: &str =
    "the AWS credential chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, \
     the profile option or AWS_PROFILE in ~/.aws/config and ~/.aws/credentials, SSO, \
     web identity, container or instance credentials), or the aws_access_key_id / \
     aws_secret_access_key / aws_session_token options";

/// The environment variables that point the default chain at a source.
const CHAIN_VARIABLES: &[&str] = &[
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// The credentials of one request and the region its profile names.
pub(super) struct Signing {
    pub credentials: AwsCredentials,
    pub profile_region: Option<String>,
}

/// The kind's [`Credentials`]: configured when keys are given, a chain
/// source is pointed at, or a region is set.
pub(super) fn describe(options: &BTreeMap<String, String>, env_prefix: &str) -> Credentials {
    let given = |key: &str| setting(options, env_prefix, key).is_some();
    Credentials {
        source: CREDENTIAL_SOURCE.to_string(),
        configured: (given("aws_access_key_id") && given("aws_secret_access_key"))
            || given("profile")
            || given("region")
            || chain_pointed_at(),
    }
}

fn chain_pointed_at() -> bool {
    CHAIN_VARIABLES.iter().any(|name| env_var(name).is_some())
}

/// The credentials for a request to `host` (see the module docs for the
/// order); `region` is the one found before any profile's, for the
/// chain's own calls (STS, SSO).
pub(super) fn for_request(
    target: &Target,
    host: &str,
    region: Option<&str>,
) -> Result<Signing, RequestError> {
    let id = target.setting("aws_access_key_id");
    let secret = target.setting("aws_secret_access_key");
    let profile = target.setting("profile").map(|p| p.trim().to_string());
    match (id, secret) {
        (Some(id), Some(secret)) => {
            return Ok(Signing {
                credentials: AwsCredentials {
                    access_key_id: Secret::new(id.trim()),
                    secret_access_key: Secret::new(secret.trim()),
                    session_token: target
                        .setting("aws_session_token")
                        .map(|t| Secret::new(t.trim())),
                },
                profile_region: None,
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(RequestError::new(
                ErrorKind::Unauthorized,
                "the aws_access_key_id and aws_secret_access_key options (or SAGEMAKER_AWS_*) \
                 go together: give both, or neither to use the AWS credential chain",
            ))
        }
        (None, None) => {}
    }
    if profile.is_none() && !chain_pointed_at() && is_loopback_host(host) {
        return Ok(Signing {
            credentials: AwsCredentials {
                access_key_id: Secret::new(TEST_ACCESS_KEY_ID),
                secret_access_key: Secret::new(TEST_SECRET_ACCESS_KEY),
                session_token: None,
            },
            profile_region: None,
        });
    }
    let chain = CredentialChain::shared(ChainKey {
        profile,
        region: region.map(str::to_string),
    });
    let ChainCredentials {
        credentials,
        profile_region,
    } = chain.current()?;
    Ok(Signing {
        credentials,
        profile_region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(options: &[(&str, &str)]) -> Target {
        Target {
            base_url: "http://127.0.0.1:9".into(),
            model: "m".into(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: Default::default(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env_prefix: "LLMPERF_SAGEMAKER_TEST".into(),
        }
    }

    #[test]
    fn given_keys_sign_as_given_and_the_builtin_endpoint_gets_the_test_pair() {
        let given = for_request(
            &target(&[
                ("aws_access_key_id", " AKIDGIVEN "),
                ("aws_secret_access_key", "s"),
                ("aws_session_token", "t"),
            ]),
            "runtime.sagemaker.us-east-1.amazonaws.com",
            None,
        )
        .unwrap();
        assert_eq!(given.credentials.access_key_id.expose(), "AKIDGIVEN");
        assert_eq!(
            given
                .credentials
                .session_token
                .map(|t| t.expose().to_string()),
            Some("t".to_string())
        );
        let half = for_request(&target(&[("aws_access_key_id", "AKID")]), "x", None)
            .err()
            .unwrap();
        assert_eq!(half.kind, ErrorKind::Unauthorized);
        assert!(half.message.contains("go together"), "{}", half.message);

        if chain_pointed_at() {
            return; // this machine's AWS variables would sign instead
        }
        let local = for_request(&target(&[]), "127.0.0.1", None).unwrap();
        assert_eq!(local.credentials.access_key_id.expose(), TEST_ACCESS_KEY_ID);
        let describe =
            |options: &[(&str, &str)]| describe(&target(options).options, "LLMPERF_SAGEMAKER_TEST");
        assert!(!describe(&[]).configured);
        assert!(describe(&[("profile", "bench")]).configured);
        assert!(describe(&[("region", "eu-west-1")]).configured);
        assert!(describe(&[]).source.contains("AWS_PROFILE"));
    }
}
