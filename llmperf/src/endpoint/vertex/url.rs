//! Where Vertex AI requests go: `{base}/v1/projects/{project}/locations/{region}`.
//!
//! The default base URL is the template
//! `https://{region}-aiplatform.googleapis.com`: the provider's URL depends
//! on a setting, so [`About::default_base_url`](crate::endpoint::About::default_base_url)
//! returns the template and every request fills in `{region}`. Any base URL
//! (`VERTEXAI_API_BASE`, `--base-url`) may use the placeholder, e.g. a
//! dedicated endpoint's `https://{id}.{region}-{number}.prediction.vertexai.goog`;
//! region `global` gives `https://aiplatform.googleapis.com`. A base URL
//! that already ends in `/v1` or `/v1beta1` keeps its version; otherwise
//! `/v1` is added. A Google base URL needs a project (and `vertex-raw` an
//! endpoint id); any other (a proxy, the built-in endpoint) gets the
//! placeholder `llmperf` for a missing one. A region, project, endpoint id
//! or model that cannot go into a URL path is a request error.

use super::{env_var, DEFAULT_BASE_URL, DEFAULT_REGION, PLACEHOLDER};
use crate::endpoint::{excerpt, ErrorKind, RequestError, Target, QUOTED_CHARS};

/// `{base}/v1/projects/{project}/locations/{region}` and whether the base
/// is Google's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) prefix: String,
    pub(crate) google: bool,
    /// The environment prefix in force, named in errors.
    pub(crate) env_prefix: String,
}

impl Location {
    pub(crate) fn of(target: &Target) -> Result<Location, RequestError> {
        let region = target
            .setting("region")
            .or_else(|| env_var("GOOGLE_CLOUD_LOCATION"))
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region = region.trim();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(RequestError::new(
                ErrorKind::Request,
                format!(
                    "`{region}` is not a Vertex AI region (e.g. us-central1, europe-west4, global)"
                ),
            ));
        }
        let base = match target.base_url.trim_end_matches('/') {
            "" => DEFAULT_BASE_URL,
            base => base,
        };
        let base = if region == "global" {
            base.replace("{region}-", "").replace("{region}", region)
        } else {
            base.replace("{region}", region)
        };
        let google = base.contains("googleapis.com");
        let versioned = if base.ends_with("/v1") || base.ends_with("/v1beta1") {
            base
        } else {
            format!("{base}/v1")
        };
        let mut location = Location {
            prefix: String::new(),
            google,
            env_prefix: target.env_prefix.clone(),
        };
        let project = target
            .setting("project")
            .or_else(|| env_var("GOOGLE_CLOUD_PROJECT"));
        let project = location.required(project, "project")?;
        location.prefix = format!("{versioned}/projects/{project}/locations/{region}");
        Ok(location)
    }

    /// A setting that goes into the path: required by Google, a placeholder elsewhere.
    pub(crate) fn required(
        &self,
        value: Option<String>,
        key: &str,
    ) -> Result<String, RequestError> {
        match value {
            Some(value) => path_segment(value.trim(), key),
            None if self.google => Err(RequestError::new(
                ErrorKind::Request,
                format!(
                    "no Vertex AI {key}: set it with .option(\"{key}\", …), --option {key}=…, or {}_{}",
                    self.env_prefix,
                    key.to_ascii_uppercase()
                ),
            )),
            None => Ok(PLACEHOLDER.to_string()),
        }
    }
}

/// `value` when it can go into a URL path as one segment.
pub(crate) fn path_segment(value: &str, what: &str) -> Result<String, RequestError> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control());
    if bad {
        return Err(RequestError::new(
            ErrorKind::Request,
            format!(
                "the Vertex AI {what} `{}` cannot go into a URL path",
                excerpt(value, QUOTED_CHARS)
            ),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::vertex::target;

    #[test]
    fn locations_fill_in_region_project_and_version() {
        let google = Location::of(&target(DEFAULT_BASE_URL, &[("project", "p1")])).unwrap();
        assert_eq!(
            google.prefix,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1"
        );
        let global = Location::of(&target(
            DEFAULT_BASE_URL,
            &[("project", "p1"), ("region", "global")],
        ))
        .unwrap();
        assert_eq!(
            global.prefix,
            "https://aiplatform.googleapis.com/v1/projects/p1/locations/global"
        );
        let beta = Location::of(&target(
            "https://europe-west4-aiplatform.googleapis.com/v1beta1/",
            &[("project", "p"), ("region", "europe-west4")],
        ))
        .unwrap();
        assert_eq!(
            beta.prefix,
            "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/p/locations/europe-west4"
        );
        let local = Location::of(&target("http://127.0.0.1:9", &[])).unwrap();
        assert_eq!(
            local.prefix,
            "http://127.0.0.1:9/v1/projects/llmperf/locations/us-central1"
        );
        let missing = Location::of(&target(DEFAULT_BASE_URL, &[])).unwrap_err();
        assert!(missing.message.contains("project"), "{}", missing.message);
        for (key, value) in [("region", "us central1"), ("project", "a/b")] {
            let error = Location::of(&target(DEFAULT_BASE_URL, &[("project", "p"), (key, value)]))
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::Request);
        }
    }
}
