//! `listen` and `metrics_listen`: socket addresses, and who may reach them.

use std::net::SocketAddr;

use super::ConfigError;

/// The gRPC address.
pub(super) fn listen(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        key: "listen",
        reason: format!("{text:?}: {e} (use host:port, e.g. 127.0.0.1:50051)"),
    })
}

/// Without principals every caller holds every permission, so only this host may call.
pub(super) fn require_loopback_without_principals(
    listen: SocketAddr,
    has_principals: bool,
) -> Result<(), ConfigError> {
    if has_principals || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key: "listen",
        reason: format!(
            "{listen} is not a loopback address, and no [[principals]] are configured: \
             without principals every caller would have every permission"
        ),
    })
}

/// The Prometheus address; `None` when configured as an empty string (metrics off).
pub(super) fn metrics_listen(text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| ConfigError::Invalid {
        key: "metrics_listen",
        reason: format!("{text:?}: {e} (use host:port, or empty to disable)"),
    })
}
