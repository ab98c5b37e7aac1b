//! # accessgrant
//!
//! A customer account can let the vendor's support staff *assume the role of an agent* in it
//! without credentials. This service keeps that setting (the **access grant**), decides every
//! assumption request, and writes each decision and change to a per-account, hash-chained
//! **audit log** the customer can read. The API contract is `proto/accessgrant/v1/`.
//!
//! ## Layout
//!
//! - [`cli`] — the `accessgrant` command line (`serve`, `migrate`, `audit verify`,
//!   `token hash|generate`). The `loadgen` and `fsync_probe` binaries (`src/bin/`) are the
//!   benchmark tools of `scripts/bench` and `scripts/growth`.
//! - [`config`] — the one configuration: defaults ← TOML file ← env/flags, validated once.
//! - [`connections`] — accepts the gRPC port's connections: caps how many are open (at the
//!   cap the oldest never-authenticated connection makes room), closes those that do not
//!   finish the TLS handshake and HTTP/2 preface in time (and, at shutdown, those still
//!   handshaking), terminates TLS (start-up errors name the file), raises the open-files
//!   limit.
//! - [`server`] — assembles services, health, reflection; background upkeep (readiness,
//!   pruning) and the expiry sweep task; runs until shutdown, then drains.
//! - [`shutdown`] — SIGTERM/SIGINT.
//! - [`telemetry`] — logging (text or JSON) and OpenTelemetry traces (OTLP/gRPC, W3C
//!   `traceparent` continued).
//! - [`auth`] — service principals: bearer tokens (SHA-256 in config, constant-time
//!   compare), client-certificate identities, and the admission layer that authenticates,
//!   checks each RPC's permission and sheds load before any handler runs, and marks the
//!   connection authenticated (never closed to make room).
//! - [`metrics`] — every Prometheus metric's name, type and HELP text (declared once, in one
//!   table), the recorder and the `--metrics-listen` HTTP listener (one request per
//!   connection, at most 16 connections: one more closes the oldest).
//! - [`rpc_metrics`] — the standard gRPC server metrics (`grpc_server_*`, named, labelled and
//!   spelled as go-grpc-prometheus does, so stock dashboards work), recorded by a layer
//!   around every service on the port.
//! - [`clock`] — the `Clock` trait, system and manual clocks; the only source of "now".
//! - [`proto`] — generated protobuf/gRPC code and the reflection descriptor set.
//! - [`domain`] — pure rules — ids, actors, durations, the grant state machine, plan changes,
//!   assumption decisions, permissions, the error type. No I/O, no tonic, no sea-orm.
//! - [`audit`] — audit event model, the canonical encoding (v1) and the SHA-256 hash chain.
//! - [`service`] — use cases — one method per request; each change is a job for the
//!   group-commit writer, with its `request_id` replay and its audit event; the audit log's
//!   reads (pages bounded in count and bytes, watch streams that refuse positions from
//!   another history); and the expiry sweep that audits lapsed grants exactly once across
//!   replicas (damaged accounts fail alone: a failed batch is retried lapse by lapse).
//! - [`storage`] — sea-orm entities, migrations and repositories; the group-commit writer
//!   (one transaction and one fsync per batch; a failed job is rolled back without sinking the
//!   others; on a SQLite file a thread of its own, ahead of request handling: raised when
//!   permitted, else the request workers step down), the write batch (announced rows read up front, new rows buffered and written together), the
//!   SQLite decision connection (plain SQLite, prepared statements, no async hops), the write
//!   fence that serializes writers across PostgreSQL replicas, the one audit appender, the
//!   SQLite read cache of accounts and grants, the SQLite file watch (checked before and
//!   after every commit: fail closed if the file, its WAL or the serve lock file vanishes)
//!   and the serve lock (one server per SQLite file).
//! - [`grpc`] — thin handlers per service, request/response conversions with validation, the
//!   one `Error` → `Status` mapping, and the protobuf codec that answers undecodable request
//!   bodies with `INVALID_ARGUMENT` instead of prost's `INTERNAL`.

#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod domain;
pub mod grpc;
pub mod metrics;
pub mod proto;
pub mod rpc_metrics;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
