//! # accessgrant
//!
//! A customer account can let the vendor's support staff *assume the role of an agent* in it
//! without credentials. This service keeps that setting (the **access grant**), decides every
//! assumption request, and writes each decision and change to a per-account, hash-chained
//! **audit log** the customer can read. The API contract is `proto/accessgrant/v1/`.
//!
//! ## Layout
//!
//! - [`cli`] — the `accessgrant` command line (`serve`, `migrate`, `audit verify`).
//! - [`config`] — the one configuration: defaults ← TOML file ← env/flags, validated once.
//! - [`server`] — assembles services, health, reflection; runs until shutdown, then drains.
//! - [`shutdown`] — SIGTERM/SIGINT.
//! - [`telemetry`] — logging (text or JSON) and OpenTelemetry traces (OTLP/gRPC, W3C
//!   `traceparent` continued).
//! - [`auth`] — service principals: bearer tokens (SHA-256 in config, constant-time
//!   compare), client-certificate identities, and the admission layer that authenticates,
//!   checks each RPC's permission and sheds load before any handler runs.
//! - [`metrics`] — Prometheus metric names (declared once), the recorder and the
//!   `--metrics-listen` HTTP listener.
//! - [`clock`] — the `Clock` trait, system and manual clocks; the only source of "now".
//! - [`proto`] — generated protobuf/gRPC code and the reflection descriptor set.
//! - [`domain`] — pure rules — ids, actors, durations, the grant state machine, plan changes,
//!   the error type. No I/O, no tonic, no sea-orm.
//! - [`audit`] — audit event model, the canonical encoding (v1) and the SHA-256 hash chain.
//! - [`service`] — use cases — one method per request, one transaction per change, the
//!   idempotency (`request_id`) wrapper.
//! - [`storage`] — sea-orm entities, migrations and repositories; the write path
//!   (`BEGIN IMMEDIATE`, single writer on SQLite) and the one audit appender.
//! - [`grpc`] — thin handlers per service, request/response conversions with validation, and
//!   the one `Error` → `Status` mapping.

#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
