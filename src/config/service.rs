//! `[assumptions]` and `[idempotency]` → the use cases' settings.

use std::time::Duration;

use chrono::TimeDelta;

use super::{
    ConfigError,
    duration::parse_duration,
    file::{FileAccessRequests, FileAssumptions, FileIdempotency},
};
use crate::{domain::assumption::Lifetimes, service::Settings};

/// Longest `[assumptions]` lifetime accepted. An assumption is a support session; no grant
/// lasts longer than a year, and a larger cap would put expiry times past what timestamps
/// (and clients) hold.
const MAX_ASSUMPTION_LIFETIME: TimeDelta = TimeDelta::days(366);

/// Shortest `[idempotency] retention`: clients may retry a request for a day.
const MIN_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The service settings; absent keys keep the service's defaults.
pub(super) fn settings(
    assumptions: FileAssumptions,
    idempotency: FileIdempotency,
    access_requests: FileAccessRequests,
) -> Result<Settings, ConfigError> {
    let defaults = Settings::default();
    // Both parsed before either is checked, so a malformed value is reported first.
    let max = parse_duration("assumptions.max_lifetime", assumptions.max_lifetime)?;
    let emergency = parse_duration(
        "assumptions.emergency_lifetime",
        assumptions.emergency_lifetime,
    )?;
    let lifetimes = Lifetimes {
        max: lifetime("assumptions.max_lifetime", max, defaults.lifetimes.max)?,
        emergency: lifetime(
            "assumptions.emergency_lifetime",
            emergency,
            defaults.lifetimes.emergency,
        )?,
    };
    if lifetimes.emergency > lifetimes.max {
        return Err(ConfigError::Invalid {
            key: "assumptions.emergency_lifetime",
            reason: "must not exceed assumptions.max_lifetime (emergencies get the shorter one)"
                .into(),
        });
    }
    let idempotency_retention = parse_duration("idempotency.retention", idempotency.retention)?
        .unwrap_or(defaults.idempotency_retention);
    if idempotency_retention < MIN_IDEMPOTENCY_RETENTION {
        return Err(ConfigError::Invalid {
            key: "idempotency.retention",
            reason: "must be at least 24h: clients may retry for a day".into(),
        });
    }
    let pending = parse_duration(
        "access_requests.pending_lifetime",
        access_requests.pending_lifetime,
    )?;
    // Like an assumption cap: more than zero, and bounded so expiry times stay representable.
    let pending_request_lifetime = lifetime(
        "access_requests.pending_lifetime",
        pending,
        defaults.pending_request_lifetime,
    )?;
    Ok(Settings {
        idempotency_retention,
        lifetimes,
        pending_request_lifetime,
    })
}

/// One lifetime cap (`default` when absent): more than zero, at most 366 days.
fn lifetime(
    key: &'static str,
    value: Option<Duration>,
    default: TimeDelta,
) -> Result<TimeDelta, ConfigError> {
    let too_long = || ConfigError::Invalid {
        key,
        reason: "must be at most 366d".into(),
    };
    let lifetime = match value {
        None => default,
        Some(value) => TimeDelta::from_std(value).map_err(|_| too_long())?,
    };
    if lifetime <= TimeDelta::zero() {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be greater than zero".into(),
        });
    }
    if lifetime > MAX_ASSUMPTION_LIFETIME {
        return Err(too_long());
    }
    Ok(lifetime)
}
