//! `[audit]` → the transparency log's settings.

use super::{ConfigError, duration::parse_duration, file::FileAudit};
use crate::{service::transparency::AuditSettings, transparency::note::valid_key_name};

/// The audit settings; absent keys keep the defaults.
pub(super) fn settings(file: FileAudit) -> Result<AuditSettings, ConfigError> {
    let defaults = AuditSettings::default();
    let origin = file.origin.unwrap_or(defaults.origin);
    // The origin is the signing key's name in every signed note.
    if !valid_key_name(&origin) {
        return Err(ConfigError::Invalid {
            key: "audit.origin",
            reason: "must be 1-255 characters without '+', spaces or control characters".into(),
        });
    }
    let checkpoint_interval =
        parse_duration("audit.checkpoint_interval", file.checkpoint_interval)?
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
        signed_checkpoint_file: file.signed_checkpoint_file,
    })
}
