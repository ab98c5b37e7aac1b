//! The one configuration: defaults, then the TOML file, then environment variables and flags
//! (clap reads `ACCESSGRANT_*` for each flag, so a flag beats its variable, which beats the
//! file). Validated once, at start; a bad value stops the process with a clear message.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{
    auth::{Principal, token},
    domain::permission::Permission,
    storage::DatabaseSettings,
};

/// Default gRPC listen address (loopback: safe without authentication).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default Prometheus listener (loopback: metrics name no accounts, but stay private by
/// default).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
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
    /// `--metrics-listen` / `ACCESSGRANT_METRICS_LISTEN` (empty: off).
    pub metrics_listen: Option<String>,
}

/// The TOML file, every key optional. Unknown keys are an error, so a typo (or a section this
/// version does not support yet) is never silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    metrics_listen: Option<String>,
    drain_timeout: Option<String>,
    assumptions: Option<FileAssumptions>,
    idempotency: Option<FileIdempotency>,
    #[serde(default)]
    principals: Vec<FilePrincipal>,
    tls: Option<FileTls>,
    limits: Option<FileLimits>,
    database: Option<FileDatabase>,
    expiry: Option<FileExpiry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    pool_size: Option<u32>,
    acquire_timeout: Option<String>,
    statement_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpiry {
    sweep_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrincipal {
    name: String,
    token_sha256: Option<String>,
    cert_subject: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_request_bytes: Option<usize>,
    max_deadline: Option<String>,
    max_concurrent_requests: Option<usize>,
    max_concurrent_streams_per_connection: Option<u32>,
    http2_keepalive_interval: Option<String>,
    http2_keepalive_timeout: Option<String>,
    tcp_keepalive: Option<String>,
    max_connections: Option<usize>,
    handshake_timeout: Option<String>,
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

/// TLS settings (`[tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that signs client certificates (PEM); when set, client certificates are required.
    pub client_ca: Option<PathBuf>,
}

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

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// sea-orm database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Prometheus listener; `None` when disabled (configured as an empty string).
    pub metrics_listen: Option<SocketAddr>,
    /// Assumption limits.
    pub assumptions: AssumptionSettings,
    /// How long shutdown waits for in-flight requests and open streams (`drain_timeout`,
    /// default 15 s) before closing them: a watch stream never ends by itself.
    pub drain_timeout: Duration,
    /// How long `request_id` responses are kept (`[idempotency] retention`, default 48 h,
    /// never below 24 h).
    pub idempotency_retention: Duration,
    /// Service principals; empty means development mode (loopback only).
    pub principals: Vec<Principal>,
    /// TLS, if enabled.
    pub tls: Option<TlsSettings>,
    /// Request limits.
    pub limits: Limits,
    /// Connection pool and timeouts.
    pub database: DatabaseSettings,
    /// How often lapsed grants are looked for, to audit their expiry.
    pub expiry_sweep_interval: Duration,
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

/// Longest `[assumptions]` lifetime the config accepts.
const MAX_ASSUMPTION_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

fn parse_duration(
    key: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let duration = humantime::parse_duration(&text).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("{text:?}: {e} (use e.g. \"8h\" or \"30m\")"),
    })?;
    // Timers and deadlines add durations to "now"; beyond a few hundred years that overflows
    // (a panic in a background task). No setting here needs more than ten years.
    if duration > MAX_DURATION {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{text:?}: at most 10 years"),
        });
    }
    Ok(duration)
}

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

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
            // An assumption is a support session; no grant lasts longer than a year, and a
            // larger cap would put expiry times past what timestamps (and clients) hold.
            if value > MAX_ASSUMPTION_LIFETIME {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at most 366d".into(),
                });
            }
        }
        if emergency_lifetime > max_lifetime {
            return Err(ConfigError::Invalid {
                key: "assumptions.emergency_lifetime",
                reason:
                    "must not exceed assumptions.max_lifetime (emergencies get the shorter one)"
                        .into(),
            });
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
        let tls = file.tls.map(|t| TlsSettings {
            cert: t.cert,
            key: t.key,
            client_ca: t.client_ca,
        });
        let principals = principals(file.principals, tls.as_ref())?;
        if principals.is_empty() && !listen_is_loopback(&listen) {
            return Err(ConfigError::Invalid {
                key: "listen",
                reason: format!(
                    "{listen} is not a loopback address, and no [[principals]] are configured: \
                     without principals every caller would have every permission"
                ),
            });
        }
        let limits = limits(file.limits.unwrap_or_default())?;
        let database = database(file.database.unwrap_or_default())?;
        let expiry_sweep_interval = parse_duration(
            "expiry.sweep_interval",
            file.expiry.unwrap_or_default().sweep_interval,
            Duration::from_secs(10),
        )?;
        if expiry_sweep_interval.is_zero() {
            return Err(ConfigError::Invalid {
                key: "expiry.sweep_interval",
                reason: "must be greater than zero".into(),
            });
        }
        let metrics_text = overrides
            .metrics_listen
            .or(file.metrics_listen)
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned());
        let metrics_listen = if metrics_text.trim().is_empty() {
            None
        } else {
            Some(metrics_text.parse().map_err(|e| ConfigError::Invalid {
                key: "metrics_listen",
                reason: format!("{metrics_text:?}: {e} (use host:port, or empty to disable)"),
            })?)
        };
        Ok(Self {
            database,
            expiry_sweep_interval,
            metrics_listen,
            principals,
            tls,
            limits,
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

fn database(file: FileDatabase) -> Result<DatabaseSettings, ConfigError> {
    let defaults = DatabaseSettings::default();
    let pool_size = file.pool_size.unwrap_or(defaults.pool_size);
    if !(2..=1_000).contains(&pool_size) {
        return Err(ConfigError::Invalid {
            key: "database.pool_size",
            reason: format!("{pool_size}: must be 2..=1000 (one connection is the writer's)"),
        });
    }
    let acquire_timeout = parse_duration(
        "database.acquire_timeout",
        file.acquire_timeout,
        defaults.acquire_timeout,
    )?;
    let statement_timeout = parse_duration(
        "database.statement_timeout",
        file.statement_timeout,
        defaults.statement_timeout,
    )?;
    for (key, value) in [
        ("database.acquire_timeout", acquire_timeout),
        ("database.statement_timeout", statement_timeout),
    ] {
        if value < Duration::from_millis(100) {
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

fn listen_is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

fn principals(
    entries: Vec<FilePrincipal>,
    tls: Option<&TlsSettings>,
) -> Result<Vec<Principal>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "principals",
        reason,
    };
    let mut out: Vec<Principal> = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = entry.name.trim().to_owned();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "principal name {:?} must be 1..128 printable characters",
                entry.name
            )));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(invalid(format!("principal {name:?} is defined twice")));
        }
        let token_sha256 = match entry.token_sha256 {
            None => None,
            Some(hex) => Some(token::parse_sha256_hex(&hex).ok_or_else(|| {
                invalid(format!(
                    "principal {name:?}: token_sha256 must be 64 hex digits (use `accessgrant token hash`)"
                ))
            })?),
        };
        if let Some(hash) = &token_sha256
            && out.iter().any(|p| p.token_sha256.as_ref() == Some(hash))
        {
            return Err(invalid(format!(
                "principal {name:?} reuses another principal's token"
            )));
        }
        if let Some(subject) = &entry.cert_subject {
            if tls.and_then(|t| t.client_ca.as_ref()).is_none() {
                return Err(invalid(format!(
                    "principal {name:?} has cert_subject {subject:?} but [tls] client_ca is not set"
                )));
            }
            if subject.trim().is_empty() {
                return Err(invalid(format!("principal {name:?}: empty cert_subject")));
            }
            // Compared literally with a certificate's names, so anything that can never
            // equal one would silently lock the principal out.
            if subject.trim() != subject
                || subject.starts_with('.')
                || subject.ends_with('.')
                || subject.contains("..")
                || subject.contains('*')
                || subject
                    .chars()
                    .any(|c| c.is_control() || crate::domain::ids::is_invisible(c))
            {
                return Err(invalid(format!(
                    "principal {name:?}: cert_subject {subject:?} can never match a certificate \
                     (no surrounding spaces, wildcards, empty labels, leading or trailing dot, \
                     or invisible characters: it is compared with the certificate's DNS names \
                     literally, ignoring case)"
                )));
            }
            if out.iter().any(|p| {
                p.cert_subject
                    .as_ref()
                    .is_some_and(|other| other.eq_ignore_ascii_case(subject))
            }) {
                return Err(invalid(format!(
                    "principal {name:?} reuses another principal's cert_subject {subject:?}"
                )));
            }
        }
        if token_sha256.is_none() && entry.cert_subject.is_none() {
            return Err(invalid(format!(
                "principal {name:?} needs token_sha256 or cert_subject to authenticate"
            )));
        }
        let mut permissions = std::collections::BTreeSet::new();
        for p in &entry.permissions {
            permissions.insert(Permission::from_name(p).ok_or_else(|| {
                invalid(format!(
                    "principal {name:?}: unknown permission {p:?} (known: {})",
                    Permission::ALL.map(Permission::as_str).join(", ")
                ))
            })?);
        }
        out.push(Principal {
            name,
            token_sha256,
            cert_subject: entry.cert_subject,
            permissions,
        });
    }
    Ok(out)
}

fn limits(file: FileLimits) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let out = Limits {
        max_request_bytes: file.max_request_bytes.unwrap_or(d.max_request_bytes),
        max_deadline: parse_duration("limits.max_deadline", file.max_deadline, d.max_deadline)?,
        max_concurrent_requests: file
            .max_concurrent_requests
            .unwrap_or(d.max_concurrent_requests),
        max_concurrent_streams_per_connection: file
            .max_concurrent_streams_per_connection
            .unwrap_or(d.max_concurrent_streams_per_connection),
        http2_keepalive_interval: parse_duration(
            "limits.http2_keepalive_interval",
            file.http2_keepalive_interval,
            d.http2_keepalive_interval,
        )?,
        http2_keepalive_timeout: parse_duration(
            "limits.http2_keepalive_timeout",
            file.http2_keepalive_timeout,
            d.http2_keepalive_timeout,
        )?,
        tcp_keepalive: parse_duration("limits.tcp_keepalive", file.tcp_keepalive, d.tcp_keepalive)?,
        max_connections: file.max_connections.unwrap_or(d.max_connections),
        handshake_timeout: parse_duration(
            "limits.handshake_timeout",
            file.handshake_timeout,
            d.handshake_timeout,
        )?,
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

    /// Lifetimes that would overflow expiry times, or give emergencies the longer one, stop
    /// the process at start instead of failing every authorization later.
    #[test]
    fn assumption_lifetimes_are_bounded() {
        let load = |max: &str, emergency: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            write!(
                f,
                "[assumptions]\nmax_lifetime = \"{max}\"\nemergency_lifetime = \"{emergency}\""
            )
            .unwrap();
            Config::load(Overrides {
                config: Some(f.path().into()),
                ..Overrides::default()
            })
        };
        let key_of = |r: Result<Config, ConfigError>| match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        assert_eq!(key_of(load("100000000y", "1h")), "assumptions.max_lifetime");
        assert_eq!(key_of(load("9000y", "1h")), "assumptions.max_lifetime");
        assert_eq!(key_of(load("8h", "400d")), "assumptions.emergency_lifetime");
        assert_eq!(key_of(load("1h", "2h")), "assumptions.emergency_lifetime");
        let c = load("366d", "366d").unwrap();
        assert_eq!(
            c.assumptions.max_lifetime,
            Duration::from_secs(366 * 86_400)
        );
    }

    #[test]
    fn principals_are_validated() {
        let load = |text: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            write!(f, "{text}").unwrap();
            Config::load(Overrides {
                config: Some(f.path().into()),
                ..Overrides::default()
            })
        };
        let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let ok = load(&format!(
            "listen = \"0.0.0.0:50051\"\n[[principals]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\npermissions = [\"grants:read\"]"
        ))
        .unwrap();
        assert_eq!(ok.principals.len(), 1);
        assert!(
            ok.principals[0]
                .permissions
                .contains(&Permission::GrantsRead)
        );
        // One certificate identity per principal (compared as DNS names are).
        let mtls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nclient_ca = \"ca.pem\"\n\
                    [[principals]]\nname = \"a\"\ncert_subject = \"a.internal\"\n";
        assert!(load(mtls).is_ok());
        for bad in [
            format!(
                "[[principals]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\npermissions = [\"grants:raed\"]"
            ),
            "[[principals]]\nname = \"a\"\ntoken_sha256 = \"abc\"".to_owned(),
            "[[principals]]\nname = \"a\"\npermissions = []".to_owned(),
            format!(
                "[[principals]]\nname = \"a\"\ntoken_sha256 = \"{hash}\"\n[[principals]]\nname = \"b\"\ntoken_sha256 = \"{hash}\""
            ),
            format!(
                "[[principals]]\nname = \"a\"\ncert_subject = \"x\"\ntoken_sha256 = \"{hash}\""
            ),
            "[limits]\nmax_request_bytes = 0".to_owned(),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \"A.Internal\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \" b.internal\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \"*.internal\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \"b.internal.\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \".b.internal\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \"b..internal\""),
            format!("{mtls}[[principals]]\nname = \"b\"\ncert_subject = \"b\u{200b}.internal\""),
            "[limits]\nmax_connections = 0".to_owned(),
            "[limits]\nmax_connections = 2000000".to_owned(),
            "[limits]\nhandshake_timeout = \"0s\"".to_owned(),
            "[limits]\nhandshake_timeout = \"300000000000years\"".to_owned(),
            "[limits]\nhttp2_keepalive_interval = \"11years\"".to_owned(),
        ] {
            assert!(load(&bad).is_err(), "accepted: {bad}");
        }
        // Without principals, only loopback.
        assert!(load("listen = \"0.0.0.0:50051\"").is_err());
        assert!(load("listen = \"[::1]:50051\"").is_ok());
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

    #[test]
    fn database_and_expiry_settings() {
        let load = |text: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            write!(f, "{text}").unwrap();
            Config::load(Overrides {
                config: Some(f.path().into()),
                ..Overrides::default()
            })
        };
        let defaults = Config::load(Overrides::default()).unwrap();
        assert_eq!(defaults.database, DatabaseSettings::default());
        assert_eq!(defaults.expiry_sweep_interval, Duration::from_secs(10));
        let c = load(
            "[database]\npool_size = 20\nacquire_timeout = \"1s\"\nstatement_timeout = \"3s\"\n\
             [expiry]\nsweep_interval = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(c.database.pool_size, 20);
        assert_eq!(c.database.acquire_timeout, Duration::from_secs(1));
        assert_eq!(c.database.statement_timeout, Duration::from_secs(3));
        assert_eq!(c.expiry_sweep_interval, Duration::from_secs(60));
        for (text, key) in [
            ("[database]\npool_size = 1\n", "database.pool_size"),
            (
                "[database]\nstatement_timeout = \"10ms\"\n",
                "database.statement_timeout",
            ),
            (
                "[database]\nacquire_timeout = \"0s\"\n",
                "database.acquire_timeout",
            ),
            (
                "[expiry]\nsweep_interval = \"0s\"\n",
                "expiry.sweep_interval",
            ),
        ] {
            match load(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
