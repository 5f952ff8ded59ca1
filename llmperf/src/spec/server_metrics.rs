//! Scraping the server's own Prometheus metrics while a run measures it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration_ms;

/// Scrapes between which a scraper waits by default: four a second.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_millis(250);

/// The shortest interval accepted: scraping faster measures the scraper.
pub const MIN_SCRAPE_INTERVAL: Duration = Duration::from_millis(20);

/// Where and how often the server's metrics are scraped during a run
/// (on by default; see [`crate::metrics::server`] for what is kept).
///
/// ```
/// use std::time::Duration;
/// use llmperf::spec::ServerMetrics;
///
/// // Two replicas behind a gateway, scraped twice a second.
/// let metrics = ServerMetrics::default()
///     .url("http://10.0.0.1:8000/metrics")
///     .url("http://10.0.0.2:8000/metrics")
///     .interval(Duration::from_millis(500));
/// assert_eq!(metrics.urls.len(), 2);
/// assert!(!ServerMetrics::off().enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// Whether to scrape at all.
    pub enabled: bool,
    /// The metrics endpoints. Empty: `/metrics` at the origin of the
    /// endpoint's base URL (`http://host:8000/v1` → `http://host:8000/metrics`),
    /// for endpoint kinds a server of one's own answers (not the managed
    /// clouds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Time between scrapes.
    #[serde(with = "duration_ms", rename = "interval_ms")]
    pub interval: Duration,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            enabled: true,
            urls: Vec::new(),
            interval: DEFAULT_SCRAPE_INTERVAL,
        }
    }
}

impl ServerMetrics {
    /// No scraping.
    pub fn off() -> Self {
        ServerMetrics {
            enabled: false,
            ..ServerMetrics::default()
        }
    }

    /// Adds a metrics endpoint (repeat for replicas); the discovered one is
    /// then not scraped.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Sets the time between scrapes (at least [`MIN_SCRAPE_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}
