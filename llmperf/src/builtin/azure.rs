//! Azure OpenAI's route: `POST /openai/deployments/{deployment}/chat/completions?api-version=…`
//! with the key in an `api-key` header or, as Azure also accepts a
//! Microsoft Entra ID token, in `Authorization: Bearer`. The body and the
//! stream are the OpenAI chat format.

use hyper::header::AUTHORIZATION;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::body::ResponseBody;
use super::protocol::{has_key, json_response};
use super::state::State;

/// Whether `path` is a deployment's chat completions path.
pub(crate) fn is_chat_path(path: &str) -> bool {
    path.strip_prefix("/openai/deployments/")
        .and_then(|rest| rest.strip_suffix("/chat/completions"))
        .is_some_and(|deployment| !deployment.is_empty() && !deployment.contains('/'))
}

/// What Azure checks before generating: the `api-version` query parameter,
/// and, when the script requires a key, that key in the `api-key` header or
/// as `Authorization: Bearer` (where a client with no key sends its Entra
/// token: a script playing Azure with Entra ID requires the token).
pub(crate) fn check(head: &Parts, state: &State) -> Option<Response<ResponseBody>> {
    let has_version = head.uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    });
    if !has_version {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Missing required query parameter: api-version (the built-in endpoint serves Azure OpenAI's deployment path)",
        ));
    }
    let authorized = has_key(head, state, "api-key", "")
        || has_key(head, state, AUTHORIZATION.as_str(), "Bearer ");
    (!authorized).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint (the built-in endpoint requires the scripted key in the `api-key` header or as `Authorization: Bearer`)",
        )
    })
}

/// Azure's error body: `{"error":{"code","message"}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    json_response(status, body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deployments_chat_path_matches() {
        assert!(is_chat_path("/openai/deployments/gpt-4o/chat/completions"));
        assert!(!is_chat_path("/openai/deployments//chat/completions"));
        assert!(!is_chat_path("/openai/deployments/a/b/chat/completions"));
        assert!(!is_chat_path("/openai/deployments/a/completions"));
        assert!(!is_chat_path("/chat/completions"));
    }
}
