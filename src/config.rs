//! The one configuration: defaults, then the TOML file, then environment variables and flags
//! (clap reads `ACCESSGRANT_*` for each flag, so a flag beats its variable, which beats the
//! file). Validated once, at start; a bad value stops the process with a clear message.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

/// Default gRPC listen address (loopback: safe without authentication).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default database: an embedded SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://accessgrant.db?mode=rwc";

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Values given on the command line or in the environment; `None` when absent.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `ACCESSGRANT_LISTEN`.
    pub listen: Option<String>,
    /// `--database-url` / `ACCESSGRANT_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--config` / `ACCESSGRANT_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--log-format` / `ACCESSGRANT_LOG_FORMAT`.
    pub log_format: Option<LogFormat>,
}

/// The TOML file, every key optional. Unknown keys are an error, so a typo (or a section this
/// version does not support yet) is never silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    drain_timeout: Option<String>,
    assumptions: Option<FileAssumptions>,
    idempotency: Option<FileIdempotency>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAssumptions {
    max_lifetime: Option<String>,
    emergency_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIdempotency {
    retention: Option<String>,
}

/// Limits on assumptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumptionSettings {
    /// Cap on an assumption's lifetime (`[assumptions] max_lifetime`, default 8 h).
    pub max_lifetime: Duration,
    /// Cap for emergency assumptions (`[assumptions] emergency_lifetime`, default 1 h).
    pub emergency_lifetime: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// sea-orm database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Assumption limits.
    pub assumptions: AssumptionSettings,
    /// How long shutdown waits for in-flight requests and open streams (`drain_timeout`,
    /// default 15 s) before closing them: a watch stream never ends by itself.
    pub drain_timeout: Duration,
    /// How long `request_id` responses are kept (`[idempotency] retention`, default 48 h,
    /// never below 24 h).
    pub idempotency_retention: Duration,
}

/// A configuration problem, reported before the server starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for {key}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

fn parse_duration(
    key: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => humantime::parse_duration(&text).map_err(|e| ConfigError::Invalid {
            key,
            reason: format!("{text:?}: {e} (use e.g. \"8h\" or \"30m\")"),
        }),
    }
}

impl Config {
    /// Defaults ← file ← environment/flags.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
        };
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|e| ConfigError::Invalid {
            key: "listen",
            reason: format!("{listen_text:?}: {e} (use host:port, e.g. 127.0.0.1:50051)"),
        })?;
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                key: "database_url",
                reason: "must start with sqlite: or postgres://".into(),
            });
        }
        let assumptions = file.assumptions.unwrap_or_default();
        let max_lifetime = parse_duration(
            "assumptions.max_lifetime",
            assumptions.max_lifetime,
            Duration::from_secs(8 * 3600),
        )?;
        let emergency_lifetime = parse_duration(
            "assumptions.emergency_lifetime",
            assumptions.emergency_lifetime,
            Duration::from_secs(3600),
        )?;
        for (key, value) in [
            ("assumptions.max_lifetime", max_lifetime),
            ("assumptions.emergency_lifetime", emergency_lifetime),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        let idempotency_retention = parse_duration(
            "idempotency.retention",
            file.idempotency.unwrap_or_default().retention,
            Duration::from_secs(48 * 3600),
        )?;
        if idempotency_retention < Duration::from_secs(24 * 3600) {
            return Err(ConfigError::Invalid {
                key: "idempotency.retention",
                reason: "must be at least 24h: clients may retry for a day".into(),
            });
        }
        let drain_timeout =
            parse_duration("drain_timeout", file.drain_timeout, Duration::from_secs(15))?;
        Ok(Self {
            drain_timeout,
            listen,
            database_url,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            assumptions: AssumptionSettings {
                max_lifetime,
                emergency_lifetime,
            },
            idempotency_retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn defaults() {
        let c = Config::load(Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.assumptions.max_lifetime, Duration::from_secs(8 * 3600));
    }

    #[test]
    fn file_then_overrides() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "listen = \"127.0.0.1:6000\"\nlog_format = \"json\"\n[assumptions]\nmax_lifetime = \"2h\"\nemergency_lifetime = \"30m\""
        )
        .unwrap();
        let c = Config::load(Overrides {
            config: Some(f.path().into()),
            listen: Some("127.0.0.1:7000".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.assumptions.max_lifetime, Duration::from_secs(7200));
        assert_eq!(c.assumptions.emergency_lifetime, Duration::from_secs(1800));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "lisen = \"x\"").unwrap();
        assert!(matches!(
            Config::load(Overrides {
                config: Some(f.path().into()),
                ..Overrides::default()
            }),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::load(Overrides {
                listen: Some("nope".into()),
                ..Overrides::default()
            }),
            Err(ConfigError::Invalid { key: "listen", .. })
        ));
    }
}
