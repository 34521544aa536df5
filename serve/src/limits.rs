//! `Limits`: what one server allows a connection, with the defaults and their validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sparkgang_common::durations::serde_duration;

/// What one listener allows its connections. Every field has a default (see [`Limits::default`]);
/// the config key of each is its camelCase name under `connections:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A TLS handshake must complete within this.
    #[serde(with = "serde_duration")]
    pub tls_handshake_timeout: Duration,
    /// After the connection is up (TLS included), its first request's headers must arrive
    /// within this, HTTP/1 and HTTP/2 alike (a connection that never asks is closed).
    #[serde(with = "serde_duration")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed; an
    /// HTTP/1 connection must also send each later request's headers within this.
    #[serde(with = "serde_duration")]
    pub idle_timeout: Duration,
    /// A request body must arrive within this (408 otherwise).
    #[serde(with = "serde_duration")]
    pub body_read_timeout: Duration,
    /// The largest HTTP/1 request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// HTTP/2: streams (requests) in flight at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the largest header list of one request, in bytes.
    pub http2_max_header_list_size: u32,
}

impl Default for Limits {
    /// Sized for kube-apiserver and kube-scheduler as clients: a handful of long-lived
    /// connections, requests of a few hundred KiB answered in milliseconds.
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(45),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            http2_max_concurrent_streams: 100,
            http2_max_header_list_size: 64 * 1024,
        }
    }
}

impl Limits {
    /// The listen backlog that goes with these limits: room for a burst of new connections.
    pub fn backlog(&self) -> u32 {
        u32::try_from(self.max_connections)
            .unwrap_or(u32::MAX)
            .clamp(128, 4096)
    }
}

/// A limit that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connections.{key}: {message}")]
pub struct LimitsError {
    pub key: &'static str,
    pub message: String,
}

impl Limits {
    /// Rejects limits that would refuse every client or never time out.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let positive = |key: &'static str, d: Duration| {
            if d.is_zero() {
                Err(LimitsError {
                    key,
                    message: "must be a positive duration such as 10s".to_owned(),
                })
            } else {
                Ok(())
            }
        };
        positive("tlsHandshakeTimeout", self.tls_handshake_timeout)?;
        positive("headerReadTimeout", self.header_read_timeout)?;
        positive("idleTimeout", self.idle_timeout)?;
        positive("bodyReadTimeout", self.body_read_timeout)?;
        let at_least = |key: &'static str, value: u64, min: u64, what: &str| {
            if value < min {
                Err(LimitsError {
                    key,
                    message: format!("{value} is too small: at least {min} {what}"),
                })
            } else {
                Ok(())
            }
        };
        at_least(
            "maxConnections",
            self.max_connections as u64,
            1,
            "connection",
        )?;
        at_least(
            "maxHeaderBytes",
            self.max_header_bytes as u64,
            8192,
            "bytes (hyper's minimum)",
        )?;
        at_least(
            "http2MaxConcurrentStreams",
            u64::from(self.http2_max_concurrent_streams),
            1,
            "stream",
        )?;
        at_least(
            "http2MaxHeaderListSize",
            u64::from(self.http2_max_header_list_size),
            1024,
            "bytes",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keys_are_camel_case() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let limits: Limits = serde_json::from_str(
            r#"{"maxConnections": 10, "idleTimeout": "1m", "http2MaxConcurrentStreams": 8}"#,
        )
        .unwrap();
        assert_eq!(limits.max_connections, 10);
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unusable_limits_name_their_key() {
        let zero = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "idleTimeout");
        let tiny = Limits {
            max_header_bytes: 100,
            ..Limits::default()
        };
        let e = tiny.validate().unwrap_err();
        assert_eq!(e.key, "maxHeaderBytes");
        assert!(e.to_string().contains("connections.maxHeaderBytes"), "{e}");
        let unknown = serde_json::from_str::<Limits>(r#"{"maxConns": 1}"#).unwrap_err();
        assert!(unknown.to_string().contains("maxConns"), "{unknown}");
    }
}
