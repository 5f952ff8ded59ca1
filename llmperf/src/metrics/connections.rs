//! How a level's requests got their connections: new or reused, how long
//! connecting took, how many were re-sent after a kept connection turned out
//! closed (see [`crate::transport`]).

use serde::{Deserialize, Serialize};

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
}

impl ConnectionStats {
    /// The statistics of `records` (one level's measured requests).
    pub fn of(records: &[&RequestRecord]) -> ConnectionStats {
        let connections: Vec<_> = records
            .iter()
            .filter_map(|r| r.connection.as_ref())
            .collect();
        let requests = connections.len() as u64;
        let new_connections = connections.iter().filter(|c| !c.reused).count() as u64;
        let ms = |us: u64| us as f64 / 1e3;
        ConnectionStats {
            requests,
            new_connections,
            new_share: if requests > 0 {
                new_connections as f64 / requests as f64
            } else {
                0.0
            },
            resent: connections.iter().filter(|c| c.resent).count() as u64,
            connect_ms: Stats::of(
                connections
                    .iter()
                    .filter_map(|c| c.connect_us.map(ms))
                    .collect(),
            ),
            tls_ms: Stats::of(
                connections
                    .iter()
                    .filter_map(|c| c.tls_us.map(ms))
                    .collect(),
            ),
        }
    }
}
