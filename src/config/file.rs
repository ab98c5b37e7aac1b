//! The TOML file: its schema (every key optional) and reading it. Unknown keys are an error,
//! so a typo (or a section this version does not support yet) is never silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::{connections::TlsSettings, telemetry::LogFormat};

/// The whole file; an absent file is the empty one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub metrics_listen: Option<String>,
    pub drain_timeout: Option<String>,
    pub assumptions: Option<FileAssumptions>,
    pub idempotency: Option<FileIdempotency>,
    pub access_requests: Option<FileAccessRequests>,
    #[serde(default)]
    pub principals: Vec<FilePrincipal>,
    pub tls: Option<FileTls>,
    pub limits: Option<FileLimits>,
    pub database: Option<FileDatabase>,
    pub expiry: Option<FileExpiry>,
    pub audit: Option<FileAudit>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    pub signing_key_file: Option<PathBuf>,
    pub origin: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub signed_checkpoint_file: Option<PathBuf>,
}

/// `[database]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDatabase {
    pub pool_size: Option<u32>,
    pub acquire_timeout: Option<String>,
    pub statement_timeout: Option<String>,
}

/// `[expiry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileExpiry {
    pub sweep_interval: Option<String>,
}

/// One `[[principals]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePrincipal {
    pub name: String,
    pub token_sha256: Option<String>,
    pub cert_subject: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `[tls]`: the paths are checked when `serve` starts (by `connections`), not here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl From<FileTls> for TlsSettings {
    fn from(file: FileTls) -> Self {
        Self {
            cert: file.cert,
            key: file.key,
            client_ca: file.client_ca,
        }
    }
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub max_request_bytes: Option<usize>,
    pub max_deadline: Option<String>,
    pub max_concurrent_requests: Option<usize>,
    pub max_concurrent_streams_per_connection: Option<u32>,
    pub http2_keepalive_interval: Option<String>,
    pub http2_keepalive_timeout: Option<String>,
    pub tcp_keepalive: Option<String>,
    pub max_connections: Option<usize>,
    pub handshake_timeout: Option<String>,
}

/// `[assumptions]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAssumptions {
    pub max_lifetime: Option<String>,
    pub emergency_lifetime: Option<String>,
}

/// `[access_requests]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAccessRequests {
    pub pending_lifetime: Option<String>,
}

/// `[idempotency]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIdempotency {
    pub retention: Option<String>,
}

/// The file at `path`, or the empty file when no path is given.
pub(super) fn read(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}
