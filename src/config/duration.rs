//! Durations as the file writes them (humantime: `500ms`, `30s`, `8h`, `1h 30m`).

use std::time::Duration;

use super::ConfigError;

/// The longest duration any setting accepts. Timers and deadlines add durations to "now";
/// beyond a few hundred years that overflows (a panic in a background task), and no setting
/// needs more than ten years.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The duration written for `key`, `None` when the key is absent (the caller picks the
/// layer's default).
pub(super) fn parse_duration(
    key: &'static str,
    value: Option<String>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = value else {
        return Ok(None);
    };
    let duration = humantime::parse_duration(&text).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("{text:?}: {e} (use e.g. \"8h\" or \"30m\")"),
    })?;
    if duration > MAX_DURATION {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{text:?}: at most 10 years"),
        });
    }
    Ok(Some(duration))
}
