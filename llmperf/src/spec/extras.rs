//! What a spec adds to every request besides what its endpoint kind
//! builds: extra headers and query parameters ([`Endpoint::header`],
//! [`Endpoint::query`]), checked here before a run; resolving them is
//! [`crate::endpoint::RequestExtras`]'s job.
//!
//! [`Endpoint::header`]: super::Endpoint::header
//! [`Endpoint::query`]: super::Endpoint::query

use super::{template, SpecError};

/// Headers llmperf's transport owns: the body's framing and the
/// connection's management, which a user's value would break.
const TRANSPORT_HEADERS: [&str; 7] = [
    "connection",
    "content-length",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Checks an extra header: `name` must be an RFC 9110 token (letters,
/// digits and ``!#$%&'*+-.^_`|~``) and not one the transport owns
/// (`Content-Length`, `Transfer-Encoding`, `Connection`, …); `value` a
/// well-formed template ([`Endpoint::header`](super::Endpoint::header))
/// without line breaks or other control characters (tabs are fine).
/// Errors name the header, never its value.
///
/// ```
/// use llmperf::spec::check_header;
/// assert!(check_header("X-Team", "${TEAM}").is_ok());
/// assert!(check_header("X Team", "blue").unwrap_err().to_string().contains("not a header name"));
/// assert!(check_header("X-Team", "blue\r\nX-Evil: 1").unwrap_err().to_string().contains("line break"));
/// ```
pub fn check_header(name: &str, value: &str) -> Result<(), SpecError> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(SpecError::new(format!(
            "`{}` is not a header name: use letters, digits and -, e.g. X-Team (RFC 9110 token characters)",
            name.escape_debug()
        )));
    }
    if TRANSPORT_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(SpecError::new(format!(
            "header {name} cannot be set: llmperf's transport frames bodies and manages connections itself"
        )));
    }
    let what = format!("header {name}");
    check_header_value(&what, value)?;
    template::check(&what, value)
}

/// Checks an extra query parameter: a non-empty `name` and a well-formed
/// value template ([`Endpoint::query`](super::Endpoint::query)); both are
/// percent-encoded as they go out, so any other text is fine.
///
/// ```
/// use llmperf::spec::check_query;
/// assert!(check_query("api-version", "2024-10-21").is_ok());
/// assert!(check_query("", "x").is_err());
/// ```
pub fn check_query(name: &str, value: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::new(
            "a query parameter needs a name: write NAME=VALUE, e.g. api-version=2024-10-21",
        ));
    }
    template::check(&format!("query parameter {name}"), value)
}

/// Checks a header value (a template, or its expansion) for characters a
/// header cannot carry; `what` names it.
pub(crate) fn check_header_value(what: &str, value: &str) -> Result<(), SpecError> {
    if value.contains(['\r', '\n']) {
        return Err(SpecError::new(format!(
            "{what} has a line break in its value: a header value is one line"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(SpecError::new(format!(
            "{what} has a control character in its value: a header value is visible text, spaces and tabs"
        )));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_tokens_and_values_one_line() {
        for name in ["X-Team", "authorization", "x_api_key", "A!#$%&'*+-.^_`|~9"] {
            assert!(check_header(name, "v").is_ok(), "{name}");
        }
        for name in ["", "X Team", "X:Team", "Ä", "X-Team\n"] {
            let error = check_header(name, "v").unwrap_err().to_string();
            assert!(error.contains("not a header name"), "{error}");
        }
        for value in [
            "sk-secret\r",
            "sk-secret\nX: 1",
            "sk-secret\u{0}",
            "sk-secret\u{7f}",
        ] {
            let error = check_header("X-Team", value).unwrap_err().to_string();
            assert!(error.contains("header X-Team"), "{error}");
            assert!(!error.contains("sk-secret"), "{error}");
        }
        assert!(check_header("X-Team", "a\tb c").is_ok());
        assert!(check_header("X-Team", "").is_ok());
        let error = check_header("Content-Length", "1").unwrap_err().to_string();
        assert!(error.contains("transport"), "{error}");
        assert!(check_header("X-Team", "${TEAM").is_err());
    }
}
