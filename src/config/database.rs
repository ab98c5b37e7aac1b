//! `database_url` and `[database]` → storage's connection settings.

use std::time::Duration;

use super::{ConfigError, duration::parse_duration, file::FileDatabase};
use crate::storage::DatabaseSettings;

/// Shortest acquire or statement timeout: below it a healthy database under load would
/// already fail calls.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The database URL, if it names a backend this build serves.
pub(super) fn database_url(url: String) -> Result<String, ConfigError> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(url)
    } else {
        Err(ConfigError::Invalid {
            key: "database_url",
            reason: "must start with sqlite: or postgres://".into(),
        })
    }
}

/// The pool and timeouts of `[database]`; absent keys keep storage's defaults.
pub(super) fn database(file: FileDatabase) -> Result<DatabaseSettings, ConfigError> {
    let defaults = DatabaseSettings::default();
    let pool_size = file.pool_size.unwrap_or(defaults.pool_size);
    if !(2..=1_000).contains(&pool_size) {
        return Err(ConfigError::Invalid {
            key: "database.pool_size",
            reason: format!("{pool_size}: must be 2..=1000 (one connection is the writer's)"),
        });
    }
    let acquire_timeout = parse_duration("database.acquire_timeout", file.acquire_timeout)?
        .unwrap_or(defaults.acquire_timeout);
    let statement_timeout = parse_duration("database.statement_timeout", file.statement_timeout)?
        .unwrap_or(defaults.statement_timeout);
    for (key, value) in [
        ("database.acquire_timeout", acquire_timeout),
        ("database.statement_timeout", statement_timeout),
    ] {
        if value < MIN_TIMEOUT {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be at least 100ms".into(),
            });
        }
    }
    Ok(DatabaseSettings {
        pool_size,
        acquire_timeout,
        statement_timeout,
    })
}
