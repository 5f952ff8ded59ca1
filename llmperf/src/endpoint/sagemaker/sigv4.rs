//! AWS credentials and Signature Version 4 for SageMaker requests.
//!
//! Credentials come from the spec's options (`aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token`), else `SAGEMAKER_AWS_*`,
//! else the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`, read when each request is built (environment and
//! options only: no `~/.aws` profiles or instance roles). With none at all,
//! a loopback base URL (the built-in endpoint) is signed with the published
//! test key pair ([`TEST_ACCESS_KEY_ID`], [`TEST_SECRET_ACCESS_KEY`]); any
//! other is a per-request [`ErrorKind::Unauthorized`] naming the variables.
//!
//! [`sign`] signs with the `aws-sigv4` crate (service
//! [`SIGNING_SERVICE`]); the built-in endpoint verifies with the same
//! function. Secrets never appear in error messages.

use std::time::SystemTime;

use super::{env_var, is_loopback_host};
use crate::endpoint::{ErrorKind, RequestError, Target};
use crate::spec::Secret;

/// The access key id the built-in endpoint accepts (a public test value).
pub const TEST_ACCESS_KEY_ID: &str = "AKIDLLMPERFTEST";
/// The secret access key the built-in endpoint verifies signatures with (a
/// public test value, not a secret).
pub const TEST_SECRET_ACCESS_KEY: &str = "llmperf-test-secret";
/// The SigV4 service name.
pub const SIGNING_SERVICE: &str = "sagemaker";

/// Where to look when AWS refuses the credentials.
pub(super) const CREDENTIAL_SOURCE: &str =
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN \
     (or the aws_access_key_id / aws_secret_access_key / aws_session_token options)";

/// AWS credentials; the secret parts are never shown.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    /// The access key id (an identifier, but kept out of messages anyway).
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// The credentials for `target`: the spec's options, `SAGEMAKER_AWS_*`, then
/// the standard `AWS_*` variables; the test pair for a loopback URL when
/// nothing is configured.
pub(super) fn credentials(
    target: &Target,
    url: &reqwest::Url,
) -> Result<AwsCredentials, RequestError> {
    let get = |key: &str, env: &str| target.setting(key).or_else(|| env_var(env));
    let id = get("aws_access_key_id", "AWS_ACCESS_KEY_ID");
    let secret = get("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY");
    let token = get("aws_session_token", "AWS_SESSION_TOKEN");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(AwsCredentials {
            access_key_id: Secret::new(id.trim()),
            secret_access_key: Secret::new(secret.trim()),
            session_token: token.map(|t| Secret::new(t.trim())),
        }),
        (None, None) if url.host_str().is_some_and(is_loopback_host) => Ok(AwsCredentials {
            access_key_id: Secret::new(TEST_ACCESS_KEY_ID),
            secret_access_key: Secret::new(TEST_SECRET_ACCESS_KEY),
            session_token: None,
        }),
        (id, _) => Err(RequestError::new(
            ErrorKind::Unauthorized,
            format!(
                "no AWS {} for SageMaker: set {CREDENTIAL_SOURCE}",
                if id.is_some() {
                    "secret access key"
                } else {
                    "credentials"
                }
            ),
        )),
    }
}

/// Signs a request with SigV4 (service `sagemaker`) and returns the headers
/// to add (`x-amz-date`, `authorization`, and `x-amz-security-token` for
/// temporary credentials). `headers` are the ones to sign besides `host`;
/// they must be sent exactly as given, and `body` must be the exact bytes
/// sent. Errors never contain the secret parts.
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    credentials: &AwsCredentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};

    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.expose(),
        credentials.secret_access_key.expose(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "llmperf",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| format!("cannot sign the request: {error}"))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (*n, v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|error| format!("cannot sign the request: {error}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| format!("cannot sign the request: {error}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_name_the_variables_for_a_remote_endpoint() {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some()
        {
            return;
        }
        let target = Target {
            base_url: "https://runtime.sagemaker.us-east-1.amazonaws.com".into(),
            model: "m".into(),
            api_key: None,
            api_key_source: String::new(),
            extra_body: Default::default(),
            options: Default::default(),
            env_prefix: "LLMPERF_SAGEMAKER_TEST".into(),
        };
        let url = reqwest::Url::parse(&target.base_url).unwrap();
        let error = credentials(&target, &url).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unauthorized);
        assert!(
            error.message.contains("AWS_ACCESS_KEY_ID"),
            "{}",
            error.message
        );
        let local = reqwest::Url::parse("http://127.0.0.1:1").unwrap();
        let pair = credentials(&target, &local).unwrap();
        assert_eq!(pair.access_key_id.expose(), TEST_ACCESS_KEY_ID);
    }

    #[test]
    fn signing_matches_aws_and_keeps_secrets_out_of_errors() {
        let credentials = AwsCredentials {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        };
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign(
            "POST",
            "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/ep/invocations-response-stream",
            &[("content-type", "application/json".to_string())],
            b"{}",
            &credentials,
            "us-east-1",
            time,
        )
        .unwrap();
        let auth = &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sagemaker/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ), "{auth}");
        assert!(headers
            .iter()
            .any(|(n, v)| n == "x-amz-date" && v == "20150830T123600Z"));
        assert!(!auth.contains("wJalr"));
    }
}
