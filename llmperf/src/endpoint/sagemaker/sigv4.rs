//! Signature Version 4 for SageMaker requests, and the built-in endpoint's
//! test key pair.
//!
//! Which credentials sign is [`credentials`](super::credentials)' choice.
//!
//! [`sign`] signs with the `aws-sigv4` crate (service
//! [`SIGNING_SERVICE`]); the built-in endpoint verifies with the same
//! function. Secrets never appear in error messages.

use std::time::SystemTime;

use crate::spec::Secret;

/// The access key id the built-in endpoint accepts (a public test value).
pub const TEST_ACCESS_KEY_ID: &str = "AKIDLLMPERFTEST";
/// The secret access key the built-in endpoint verifies signatures with (a
/// public test value, not a secret).
pub const TEST_SECRET_ACCESS_KEY: &str = "llmperf-test-secret";
/// The SigV4 service name.
pub const SIGNING_SERVICE: &str = "sagemaker";

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
