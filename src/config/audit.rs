//! `[audit]` → the transparency log's settings.

use super::{ConfigError, duration::parse_duration, file::FileAudit};
use crate::service::transparency::AuditSettings;

/// Longest origin accepted (the checkpoints table's column).
const MAX_ORIGIN_LEN: usize = 255;

/// The audit settings; absent keys keep the defaults.
pub(super) fn settings(file: FileAudit) -> Result<AuditSettings, ConfigError> {
    let defaults = AuditSettings::default();
    let origin = file.origin.unwrap_or(defaults.origin);
    // A signed-note key name: non-empty, no '+' (it separates the verifier key's parts), no
    // whitespace or control characters (the note's lines are separated by them).
    if origin.is_empty()
        || origin.len() > MAX_ORIGIN_LEN
        || origin.contains('+')
        || origin.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::Invalid {
            key: "audit.origin",
            reason: "must be 1-255 characters without '+', spaces or control characters".into(),
        });
    }
    let checkpoint_interval = parse_duration("audit.checkpoint_interval", file.checkpoint_interval)?
        .unwrap_or(defaults.checkpoint_interval);
    if checkpoint_interval.is_zero() {
        return Err(ConfigError::Invalid {
            key: "audit.checkpoint_interval",
            reason: "must be greater than zero".into(),
        });
    }
    Ok(AuditSettings {
        signing_key_file: file.signing_key_file,
        origin,
        checkpoint_interval,
    })
}
