//! How a level's requests got their connections: new or reused, how long
//! connecting took, how many were re-sent after a kept connection turned out
//! closed (see [`crate::transport`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::column::Column;
use super::Stats;
use crate::record::RequestRecord;

/// Connections of a level's measured requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Requests that got a connection.
    pub requests: u64,
    /// Of those, requests on a new connection (a TTFT that includes a
    /// handshake).
    pub new_connections: u64,
    /// `new_connections / requests`.
    pub new_share: f64,
    /// Requests sent a second time, on a new connection, because a kept one
    /// had been closed by the server before any byte of the answer came.
    pub resent: u64,
    /// Connecting (name resolution, TCP, any proxy tunnel) of new connections, ms.
    pub connect_ms: Option<Stats>,
    /// TLS handshakes of new HTTPS connections, ms.
    pub tls_ms: Option<Stats>,
    /// New HTTPS connections by the protocol version negotiated
    /// (`{"TLS 1.3": 12}`); empty without HTTPS.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tls_versions: BTreeMap<String, u64>,
    /// New HTTPS connections by the application protocol the server chose
    /// by ALPN (`{"http/1.1": 12}`); empty when none chose one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alpn: BTreeMap<String, u64>,
}

impl ConnectionStats {
    /// The statistics of `records` (one level's measured requests).
    pub fn of(records: &[&RequestRecord]) -> ConnectionStats {
        let mut builder = ConnectionBuilder::default();
        for record in records {
            builder.add(record);
        }
        builder.finish()
    }
}

/// A level's [`ConnectionStats`], built one measured record at a time.
#[derive(Debug, Default)]
pub(crate) struct ConnectionBuilder {
    requests: u64,
    new_connections: u64,
    resent: u64,
    connect_ms: Column,
    tls_ms: Column,
    tls_versions: BTreeMap<String, u64>,
    alpn: BTreeMap<String, u64>,
}

impl ConnectionBuilder {
    pub(crate) fn add(&mut self, record: &RequestRecord) {
        let Some(connection) = &record.connection else {
            return;
        };
        let ms = |us: u64| us as f64 / 1e3;
        self.requests += 1;
        self.new_connections += u64::from(!connection.reused);
        self.resent += u64::from(connection.resent);
        if let Some(us) = connection.connect_us {
            self.connect_ms.push(ms(us));
        }
        if let Some(us) = connection.tls_us {
            self.tls_ms.push(ms(us));
        }
        if let Some(version) = &connection.tls_version {
            *self.tls_versions.entry(version.clone()).or_default() += 1;
        }
        if let Some(alpn) = &connection.alpn {
            *self.alpn.entry(alpn.clone()).or_default() += 1;
        }
    }

    pub(crate) fn finish(&self) -> ConnectionStats {
        ConnectionStats {
            requests: self.requests,
            new_connections: self.new_connections,
            new_share: if self.requests > 0 {
                self.new_connections as f64 / self.requests as f64
            } else {
                0.0
            },
            resent: self.resent,
            connect_ms: self.connect_ms.stats(),
            tls_ms: self.tls_ms.stats(),
            tls_versions: self.tls_versions.clone(),
            alpn: self.alpn.clone(),
        }
    }
}
