//! The one configuration: defaults, then the TOML file, then environment variables and flags
//! (clap reads `ACCESSGRANT_*` for each flag, so a flag beats its variable, which beats the
//! file). Validated once, at start; a bad value stops the process with a clear message.
//!
//! Configuration flows one way: this module sits beside [`crate::server`] and builds each
//! layer's own settings type ([`crate::service::Settings`], [`DatabaseSettings`],
//! [`Principal`]s, [`TlsSettings`], [`LogFormat`]); nothing below the server imports it. A
//! layer's default lives with its settings type, or here as one named constant for settings
//! the server itself applies, and is written nowhere else.
//!
//! - `file` — the TOML schema and reading it;
//! - `addresses`, `database`, `service`, `principals`, `limits` — one key or section each,
//!   validated and turned into its layer's settings;
//! - `duration` — the duration syntax every duration key shares;
//! - this file — the overlay (flag or variable ← file ← default) and the checks that span
//!   sections.

mod addresses;
mod audit;
mod database;
mod duration;
mod error;
mod file;
mod limits;
mod principals;
mod service;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

pub use error::ConfigError;
pub use limits::Limits;

use crate::{
    auth::Principal, connections::TlsSettings, storage::DatabaseSettings, telemetry::LogFormat,
};

/// Default gRPC listen address (loopback: safe without authentication).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default Prometheus listener (loopback: metrics name no accounts, but stay private by
/// default).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Default database: an embedded SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://accessgrant.db?mode=rwc";
/// Default `drain_timeout`: long enough for in-flight unary calls, short enough for a
/// rolling update.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Default `[expiry] sweep_interval`: a lapse is audited within seconds; reads never wait
/// for it.
pub const DEFAULT_EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

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

/// The validated configuration: the server's own settings, and each layer's settings built
/// and ready to hand over.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// sea-orm database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Prometheus listener; `None` when disabled (configured as an empty string).
    pub metrics_listen: Option<SocketAddr>,
    /// How long shutdown waits for in-flight requests and open streams (`drain_timeout`)
    /// before closing them: a watch stream never ends by itself.
    pub drain_timeout: Duration,
    /// The use cases' settings: assumption lifetime caps (`[assumptions]`) and how long
    /// `request_id` responses are kept (`[idempotency] retention`, never below 24 h).
    pub service: crate::service::Settings,
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
    /// `[audit]`: the checkpoint signing key, the log's name, the signing cadence.
    pub audit: crate::service::transparency::AuditSettings,
}

impl Config {
    /// Defaults ← file ← environment/flags. Keys are checked in a fixed order, so a file with
    /// several mistakes always reports the same one first.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        let file = file::read(overrides.config.as_deref())?;
        let listen = addresses::listen(
            &overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        )?;
        let database_url = database::database_url(
            overrides
                .database_url
                .or(file.database_url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        )?;
        let service = service::settings(
            file.assumptions.unwrap_or_default(),
            file.idempotency.unwrap_or_default(),
            file.access_requests.unwrap_or_default(),
        )?;
        let drain_timeout = duration::parse_duration("drain_timeout", file.drain_timeout)?
            .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        let tls = file.tls.map(TlsSettings::from);
        let principals = principals::principals(file.principals, tls.as_ref())?;
        addresses::require_loopback_without_principals(listen, !principals.is_empty())?;
        let limits = limits::limits(file.limits.unwrap_or_default())?;
        let database = database::database(file.database.unwrap_or_default())?;
        let expiry_sweep_interval = duration::parse_duration(
            "expiry.sweep_interval",
            file.expiry.unwrap_or_default().sweep_interval,
        )?
        .unwrap_or(DEFAULT_EXPIRY_SWEEP_INTERVAL);
        if expiry_sweep_interval.is_zero() {
            return Err(ConfigError::Invalid {
                key: "expiry.sweep_interval",
                reason: "must be greater than zero".into(),
            });
        }
        let audit = audit::settings(file.audit.unwrap_or_default())?;
        let metrics_listen = addresses::metrics_listen(
            &overrides
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned()),
        )?;
        Ok(Self {
            listen,
            database_url,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            metrics_listen,
            drain_timeout,
            service,
            principals,
            tls,
            limits,
            database,
            expiry_sweep_interval,
            audit,
        })
    }
}
