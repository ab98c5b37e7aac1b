//! Loading through real files: defaults, overlay order, and every refusal.

use std::io::Write;

use chrono::TimeDelta;
use clap::ValueEnum;

use super::*;
use crate::{domain::permission::Permission, service::Settings};

#[test]
fn defaults() {
    let c = Config::load(Overrides::default()).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
    assert_eq!(c.service.lifetimes, Settings::default().lifetimes);
}

/// The default cell of `key`'s row in docs/configuration.md (the text of its first code span).
fn documented_default(key: &str) -> String {
    const DOCS: &str = include_str!("../../docs/configuration.md");
    let row = DOCS
        .lines()
        .find(|line| line.starts_with(&format!("| `{key}` |")))
        .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{key}`"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // Top-level rows have a flag / env column (possibly empty) before the default.
    let cell = if cells[2].is_empty() || cells[2].starts_with("`--") {
        cells[3]
    } else {
        cells[2]
    };
    cell.split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("`{key}`: no default in {cell:?}"))
        .to_owned()
}

/// Every default docs/configuration.md states is the one a configuration loaded from nothing
/// gets, so the docs cannot drift from the one place each default is written.
#[test]
fn documented_defaults_are_the_applied_ones() {
    let c = Config::load(Overrides::default()).unwrap();
    let duration = |key: &str| humantime::parse_duration(&documented_default(key)).unwrap();
    assert_eq!(documented_default("listen"), c.listen.to_string());
    assert_eq!(documented_default("database_url"), c.database_url);
    assert_eq!(
        documented_default("log_format"),
        c.log_format.to_possible_value().unwrap().get_name()
    );
    assert_eq!(
        documented_default("metrics_listen"),
        c.metrics_listen.unwrap().to_string()
    );
    assert_eq!(documented_default("origin"), c.audit.origin);
    let durations = [
        ("drain_timeout", c.drain_timeout),
        ("max_lifetime", c.service.lifetimes.max.to_std().unwrap()),
        (
            "emergency_lifetime",
            c.service.lifetimes.emergency.to_std().unwrap(),
        ),
        ("retention", c.service.idempotency_retention),
        (
            "pending_lifetime",
            c.service.pending_request_lifetime.to_std().unwrap(),
        ),
        ("acquire_timeout", c.database.acquire_timeout),
        ("statement_timeout", c.database.statement_timeout),
        ("sweep_interval", c.expiry_sweep_interval),
        ("checkpoint_interval", c.audit.checkpoint_interval),
        ("max_deadline", c.limits.max_deadline),
        (
            "http2_keepalive_interval",
            c.limits.http2_keepalive_interval,
        ),
        ("http2_keepalive_timeout", c.limits.http2_keepalive_timeout),
        ("tcp_keepalive", c.limits.tcp_keepalive),
        ("handshake_timeout", c.limits.handshake_timeout),
    ];
    for (key, applied) in durations {
        assert_eq!(duration(key), applied, "`{key}`");
    }
    let counts = [
        ("pool_size", c.database.pool_size as usize),
        ("max_request_bytes", c.limits.max_request_bytes),
        ("max_concurrent_requests", c.limits.max_concurrent_requests),
        (
            "max_concurrent_streams_per_connection",
            c.limits.max_concurrent_streams_per_connection as usize,
        ),
        ("max_connections", c.limits.max_connections),
    ];
    for (key, applied) in counts {
        assert_eq!(documented_default(key), applied.to_string(), "`{key}`");
    }
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
    assert_eq!(c.service.lifetimes.max, TimeDelta::hours(2));
    assert_eq!(c.service.lifetimes.emergency, TimeDelta::minutes(30));
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
    assert_eq!(c.service.lifetimes.max, TimeDelta::days(366));
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
        format!("[[principals]]\nname = \"a\"\ncert_subject = \"x\"\ntoken_sha256 = \"{hash}\""),
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
    assert_eq!(
        defaults.expiry_sweep_interval,
        DEFAULT_EXPIRY_SWEEP_INTERVAL
    );
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
        ("[audit]\norigin = \"a+b\"\n", "audit.origin"),
        ("[audit]\norigin = \"a b\"\n", "audit.origin"),
        ("[audit]\norigin = \"\"\n", "audit.origin"),
        (
            "[audit]\ncheckpoint_interval = \"0s\"\n",
            "audit.checkpoint_interval",
        ),
    ] {
        match load(text) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}
