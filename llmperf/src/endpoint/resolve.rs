//! Resolving an endpoint spec into the [`Target`] a run talks to: which
//! kind, which environment prefix, which base URL (the spec's, the
//! environment's, the provider's own when a key is set for it, or none: the
//! built-in endpoint serves), which key and which model.

use serde_json::Value;

use super::{env_var, EndpointKind, Target};
use crate::spec::{Endpoint, Secret, SpecError};

/// Model name used against the built-in endpoint when none is set.
pub const BUILTIN_MODEL: &str = "llmperf-builtin";

/// The endpoint kind `spec` names; an error listing the known ones.
pub fn find_kind(spec: &Endpoint) -> Result<&'static dyn EndpointKind, SpecError> {
    super::find(&spec.kind).ok_or_else(|| {
        let known: Vec<&str> = super::kinds().map(|k| k.name()).collect();
        SpecError::new(format!(
            "unknown endpoint kind `{}`: use one of {} (llmperf list-apis)",
            spec.kind,
            known.join(", ")
        ))
    })
}

/// The environment prefix in force, and the base URL the spec and the
/// environment configure (`None`: the built-in endpoint will serve).
pub(crate) fn configured_base_url(
    spec: &Endpoint,
    kind: &dyn EndpointKind,
) -> (String, Option<String>) {
    let prefix = spec
        .env_prefix
        .as_deref()
        .unwrap_or(kind.about().env_prefix)
        .to_ascii_uppercase();
    if spec.builtin {
        return (prefix, None);
    }
    let base_env = format!("{prefix}_API_BASE");
    // A provider's public URL counts as configured only with a key for it;
    // otherwise an unconfigured benchmark runs against the built-in endpoint.
    let url = spec
        .base_url
        .clone()
        .or_else(|| env_var(&base_env))
        .or_else(|| {
            (spec.api_key.is_some() || kind.credentials(&spec.options, &prefix).configured)
                .then(|| kind.about().default_base_url.map(str::to_string))
                .flatten()
        });
    (prefix, url)
}

/// The environment variable prefix `spec` reads (`OPENAI`, `TOGETHER`, …);
/// `Err` for an unknown kind.
pub fn env_prefix(spec: &Endpoint) -> Result<String, SpecError> {
    let kind = find_kind(spec)?;
    Ok(configured_base_url(spec, kind).0)
}

/// Whether `spec` reaches a real endpoint (from the spec or the
/// environment) rather than the built-in one; `Err` for an unknown kind.
pub fn configured_endpoint(spec: &Endpoint) -> Result<Option<String>, SpecError> {
    let kind = find_kind(spec)?;
    Ok(configured_base_url(spec, kind).1)
}

/// The target `spec` resolves to at `base_url`: the configured one, or the
/// built-in endpoint's (`builtin`, which takes only the spec's own key and
/// serves [`BUILTIN_MODEL`] when no model is named).
pub(crate) fn target(
    spec: &Endpoint,
    kind: &dyn EndpointKind,
    prefix: String,
    base_url: String,
    builtin: bool,
    extra_body: serde_json::Map<String, Value>,
) -> Result<Target, SpecError> {
    let api_key = match builtin {
        true => spec.api_key.clone(),
        false => spec
            .api_key
            .clone()
            .or_else(|| env_var(&format!("{prefix}_API_KEY")).map(Secret::new)),
    };
    let api_key_source = if spec.api_key.is_some() {
        "the API key given in the spec".to_string()
    } else {
        kind.credentials(&spec.options, &prefix).source
    };
    let model = spec
        .model
        .clone()
        .or_else(|| env_var("LLMPERF_MODEL"))
        .or_else(|| builtin.then(|| BUILTIN_MODEL.to_string()))
        .ok_or_else(|| {
            SpecError::new(format!(
                "no model for {}: set it with .model(\"…\") in the spec, --model, or LLMPERF_MODEL",
                crate::spec::display_url(&base_url)
            ))
        })?;
    Ok(Target {
        base_url: base_url.trim_end_matches('/').to_string(),
        model,
        api_key,
        api_key_source,
        options: spec.options.clone(),
        env_prefix: prefix,
        extra_body,
    })
}

/// The proxy `spec` names ([`Endpoint::proxy`]), `${NAME}` read from the
/// environment.
pub(crate) fn explicit_proxy(spec: &Endpoint) -> Result<Option<String>, SpecError> {
    spec.proxy
        .as_deref()
        .map(|url| {
            crate::spec::template::expand(
                "the proxy (--proxy)",
                url,
                crate::spec::template::env_lookup,
            )
        })
        .transpose()
}

/// Hosts of managed services, which publish no Prometheus metrics of
/// their own: the clouds' API domains (by suffix).
const MANAGED_HOST_SUFFIXES: &[&str] = &[
    ".googleapis.com",
    ".amazonaws.com",
    ".azure.com",
    ".azure-api.net",
];

/// Where a server's Prometheus metrics are looked for when none are
/// named: `/metrics` at the origin of `base_url` (`http://h:8000/v1` →
/// `http://h:8000/metrics`), as vLLM, SGLang, TGI, llama.cpp and Dynamo's
/// frontend serve them; `None` for a managed service (the kind's own
/// public host, or a cloud API domain), whose operator keeps them.
///
/// ```
/// use llmperf::endpoint::{discovered_metrics_url, find_kind};
/// use llmperf::Endpoint;
/// let chat = find_kind(&Endpoint::openai_chat()).unwrap();
/// assert_eq!(
///     discovered_metrics_url(chat, "http://10.0.0.5:8000/v1").as_deref(),
///     Some("http://10.0.0.5:8000/metrics")
/// );
/// let openai = find_kind(&Endpoint::kind("openai")).unwrap();
/// assert_eq!(discovered_metrics_url(openai, "https://api.openai.com/v1"), None);
/// ```
pub fn discovered_metrics_url(kind: &dyn EndpointKind, base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let own_host = kind
        .about()
        .default_base_url
        .and_then(|default| reqwest::Url::parse(default).ok())
        .and_then(|default| default.host_str().map(str::to_ascii_lowercase));
    if own_host.as_deref() == Some(host.as_str())
        || MANAGED_HOST_SUFFIXES
            .iter()
            .any(|suffix| host.ends_with(suffix))
    {
        return None;
    }
    let mut metrics = url;
    metrics.set_path("/metrics");
    metrics.set_query(None);
    metrics.set_fragment(None);
    Some(metrics.to_string())
}
