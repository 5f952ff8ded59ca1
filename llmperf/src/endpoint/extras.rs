//! The headers and query parameters a spec adds to every request
//! ([`Endpoint::header`], [`Endpoint::query`]), resolved once per run and
//! applied in the one place every kind's request passes through after
//! [`EndpointKind::build_request`](super::EndpointKind::build_request): the
//! shared reader's [`exchange`](super::reader::exchange), before the send
//! is stamped.

use reqwest::header::{HeaderName, HeaderValue};

use crate::spec::{template, Endpoint, Secret, SpecError};

/// Extra headers and query parameters with every `${NAME}` expanded.
/// Values never print (`Debug` shows names only) and are redacted from
/// error text ([`RequestExtras::redact`]).
///
/// ```
/// use llmperf::endpoint::RequestExtras;
/// use llmperf::Endpoint;
/// let spec = Endpoint::openai_chat().header("X-Team", "blue").query("api-version", "1");
/// let extras = RequestExtras::resolve(&spec).unwrap();
/// let mut request = reqwest::Client::new()
///     .post("http://127.0.0.1:9/v1/chat/completions?api-version=0")
///     .build()
///     .unwrap();
/// extras.apply(&mut request);
/// assert_eq!(request.headers()["x-team"], "blue");
/// assert_eq!(request.url().query(), Some("api-version=1"));
/// ```
#[derive(Clone, Default)]
pub struct RequestExtras {
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, String)>,
    /// Values to cut out of error text: secret-named headers' values, all
    /// query values, and every variable's expansion.
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for RequestExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let query: Vec<&str> = self.query.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RequestExtras")
            .field("headers", &headers)
            .field("query", &query)
            .finish_non_exhaustive()
    }
}

/// Secrets shorter than this are not redacted (they would cut ordinary
/// words out of messages).
const SHORTEST_REDACTED: usize = 4;

impl RequestExtras {
    /// None: requests go out as the kind built them.
    pub fn none() -> RequestExtras {
        RequestExtras::default()
    }

    /// The spec's extra headers and query parameters, with `${NAME}` read
    /// from the environment; an error names a missing variable or a value
    /// a header cannot carry (never the value).
    pub fn resolve(spec: &Endpoint) -> Result<RequestExtras, SpecError> {
        RequestExtras::resolve_with(spec, template::env_lookup)
    }

    pub(crate) fn resolve_with(
        spec: &Endpoint,
        lookup: impl Fn(&str) -> Option<String> + Copy,
    ) -> Result<RequestExtras, SpecError> {
        spec.check()?;
        let mut extras = RequestExtras::default();
        for (name, template) in &spec.headers {
            let what = format!("header {name}");
            let value = template::expand(&what, template, lookup)?;
            extras.remember(template, &value, super::is_secret_setting(name), lookup);
            // The expansion may bring what the template had not.
            crate::spec::check_header_value(
                &format!("{what} (once its variables are read)"),
                &value,
            )?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SpecError::new(format!("`{name}` is not a header name")))?;
            let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                SpecError::new(format!(
                    "{what} cannot be sent: its value is not visible text"
                ))
            })?;
            // Never printed by a Debug of a request.
            value.set_sensitive(true);
            extras.headers.push((name, value));
        }
        for (name, template) in &spec.query {
            let value = template::expand(&format!("query parameter {name}"), template, lookup)?;
            extras.remember(template, &value, true, lookup);
            extras.query.push((name.clone(), value));
        }
        Ok(extras)
    }

    /// Notes what error text must not show: the whole value of a secret,
    /// and each variable's value.
    fn remember(
        &mut self,
        template: &str,
        value: &str,
        secret: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) {
        let mut hidden: Vec<String> = template::variables(template)
            .into_iter()
            .filter_map(lookup)
            .collect();
        if secret {
            hidden.push(value.to_string());
            // A key after a scheme (`Bearer sk-…`) is quoted alone too.
            if let Some((_, credential)) = value.trim().split_once(' ') {
                hidden.push(credential.trim().to_string());
            }
        }
        self.secrets.extend(
            hidden
                .into_iter()
                .filter(|v| v.trim().len() >= SHORTEST_REDACTED)
                .map(Secret::new),
        );
    }

    /// Whether there are query parameters to add.
    pub fn has_query(&self) -> bool {
        !self.query.is_empty()
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.query.is_empty()
    }

    /// Adds the headers, replacing any the kind set of the same name, and
    /// the query parameters, replacing any of the same name in the URL.
    pub fn apply(&self, request: &mut reqwest::Request) {
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        if self.query.is_empty() {
            return;
        }
        let url = request.url_mut();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| !self.query.iter().any(|(given, _)| given == name))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .extend_pairs(&self.query);
    }

    /// `message` with every secret value replaced by `***`.
    pub fn redact(&self, message: &str) -> String {
        let mut message = message.to_string();
        for secret in &self.secrets {
            if message.contains(secret.expose()) {
                message = message.replace(secret.expose(), "***");
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TEAM" => Some("blue".into()),
            "GATEWAY_KEY" => Some("gw-very-secret".into()),
            "BAD" => Some("a\r\nX-Evil: 1".into()),
            _ => None,
        }
    }

    #[test]
    fn headers_replace_the_kinds_and_query_parameters_the_urls() {
        let spec = Endpoint::openai_chat()
            .header("Authorization", "Bearer ${GATEWAY_KEY}")
            .header("X-Team", "${TEAM}")
            .query("api-version", "2")
            .query("route", "a b&c");
        let extras = RequestExtras::resolve_with(&spec, vars).unwrap();
        let mut request = reqwest::Client::new()
            .post("http://h/v1/x?alt=sse&api-version=1")
            .bearer_auth("kind-key")
            .build()
            .unwrap();
        extras.apply(&mut request);
        let authorization: Vec<_> = request.headers().get_all("authorization").iter().collect();
        assert_eq!(authorization, ["Bearer gw-very-secret"]);
        assert_eq!(request.headers()["x-team"], "blue");
        assert_eq!(
            request.url().query(),
            Some("alt=sse&api-version=2&route=a+b%26c")
        );
        let debug = format!("{extras:?} {request:?}");
        assert!(!debug.contains("gw-very-secret"), "{debug}");
        assert_eq!(
            extras.redact("401: key gw-very-secret refused for team blue, route a b&c"),
            "401: key *** refused for team ***, route ***"
        );
    }

    #[test]
    fn a_missing_variable_or_an_expansion_a_header_cannot_carry_is_an_error() {
        let missing = Endpoint::openai_chat().header("X-Team", "${NOPE}");
        let error = RequestExtras::resolve_with(&missing, vars).unwrap_err();
        assert!(error.to_string().contains("variable NOPE"), "{error}");
        let bad = Endpoint::openai_chat().header("X-Team", "${BAD}");
        let error = RequestExtras::resolve_with(&bad, vars).unwrap_err();
        assert!(error.to_string().contains("line break"), "{error}");
        assert!(!error.to_string().contains("X-Evil"), "{error}");
        assert!(RequestExtras::resolve_with(&Endpoint::openai_chat(), vars)
            .unwrap()
            .is_empty());
    }
}
