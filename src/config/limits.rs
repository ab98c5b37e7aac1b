//! `[limits]`: what one caller can make the server do. The server applies them to the
//! transport and the admission layer, and hands `connections` its share.

use std::time::Duration;

use super::{ConfigError, duration::parse_duration, file::FileLimits};
use crate::connections::ConnectionLimits;

/// Bounds on what one caller can make the server do (`[limits]`, see docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest decoded request message (default 64 KiB).
    pub max_request_bytes: usize,
    /// Longest a unary call may run; a shorter client `grpc-timeout` wins (default 30 s).
    pub max_deadline: Duration,
    /// Calls in flight across all connections before new ones are shed with
    /// `RESOURCE_EXHAUSTED` (default 512).
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams one connection may open at once (default 128).
    pub max_concurrent_streams_per_connection: u32,
    /// HTTP/2 PING interval to detect dead peers (default 30 s).
    pub http2_keepalive_interval: Duration,
    /// How long to wait for a PING ack before closing (default 10 s).
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive (default 60 s).
    pub tcp_keepalive: Duration,
    /// Connections open at once; one more is closed when accepted (default 1024).
    pub max_connections: usize,
    /// From accept until the TLS handshake and the HTTP/2 preface are done (default 10 s).
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024,
            max_deadline: Duration::from_secs(30),
            max_concurrent_requests: 512,
            max_concurrent_streams_per_connection: 128,
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The share `connections` enforces while accepting and handshaking.
    pub fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            tcp_keepalive: self.tcp_keepalive,
        }
    }
}

/// The limits of `[limits]`; absent keys keep [`Limits::default`].
pub(super) fn limits(file: FileLimits) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let out = Limits {
        max_request_bytes: file.max_request_bytes.unwrap_or(d.max_request_bytes),
        max_deadline: parse_duration("limits.max_deadline", file.max_deadline)?
            .unwrap_or(d.max_deadline),
        max_concurrent_requests: file
            .max_concurrent_requests
            .unwrap_or(d.max_concurrent_requests),
        max_concurrent_streams_per_connection: file
            .max_concurrent_streams_per_connection
            .unwrap_or(d.max_concurrent_streams_per_connection),
        http2_keepalive_interval: parse_duration(
            "limits.http2_keepalive_interval",
            file.http2_keepalive_interval,
        )?
        .unwrap_or(d.http2_keepalive_interval),
        http2_keepalive_timeout: parse_duration(
            "limits.http2_keepalive_timeout",
            file.http2_keepalive_timeout,
        )?
        .unwrap_or(d.http2_keepalive_timeout),
        tcp_keepalive: parse_duration("limits.tcp_keepalive", file.tcp_keepalive)?
            .unwrap_or(d.tcp_keepalive),
        max_connections: file.max_connections.unwrap_or(d.max_connections),
        handshake_timeout: parse_duration("limits.handshake_timeout", file.handshake_timeout)?
            .unwrap_or(d.handshake_timeout),
    };
    let positive = [
        ("limits.max_request_bytes", out.max_request_bytes == 0),
        ("limits.max_deadline", out.max_deadline.is_zero()),
        (
            "limits.max_concurrent_requests",
            out.max_concurrent_requests == 0,
        ),
        (
            "limits.max_concurrent_streams_per_connection",
            out.max_concurrent_streams_per_connection == 0,
        ),
        (
            "limits.http2_keepalive_interval",
            out.http2_keepalive_interval.is_zero(),
        ),
        (
            "limits.http2_keepalive_timeout",
            out.http2_keepalive_timeout.is_zero(),
        ),
        ("limits.tcp_keepalive", out.tcp_keepalive.is_zero()),
        ("limits.max_connections", out.max_connections == 0),
        ("limits.handshake_timeout", out.handshake_timeout.is_zero()),
    ];
    for (key, zero) in positive {
        if zero {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be greater than zero".into(),
            });
        }
    }
    if out.max_connections > 1_000_000 {
        return Err(ConfigError::Invalid {
            key: "limits.max_connections",
            reason: "at most 1000000 (each one is a file descriptor)".into(),
        });
    }
    if out.max_request_bytes > 4 * 1024 * 1024 {
        return Err(ConfigError::Invalid {
            key: "limits.max_request_bytes",
            reason: "at most 4 MiB".into(),
        });
    }
    Ok(out)
}
