//! # accessgrant
//!
//! A customer account can let the vendor's support staff *assume the role of an agent* in it
//! without credentials. This service keeps that setting (the **access grant**), decides every
//! assumption request, and writes each decision and change to a per-account, hash-chained
//! **audit log** the customer can read. The API contract is `proto/accessgrant/v1/`.
//!
//! ## Layout
//!
//! - [`cli`] — the `accessgrant` command line (`serve`, `migrate`, `audit verify` (chains,
//!   and with a verifier key the Merkle tree rebuilt from the event rows against every stored
//!   and given checkpoint), `audit key generate|show`, `audit monitor` (an auditor's client:
//!   signature, consistency with the kept checkpoint, one account's log re-verified, newest
//!   event proven included), `token hash|generate`; `cli::verify` the chains, `cli::verify_tree`
//!   the tree rebuilt from the rows, `cli::key`, `cli::monitor`). The benchmark tools of `scripts/bench` and `scripts/growth`
//!   (`loadgen`, `fsync_probe`) are the workspace member `loadgen/`, not this crate.
//! - [`config`] — the one configuration: defaults ← TOML file ← env/flags, validated once;
//!   builds each layer's own settings (`service::Settings`, `storage::DatabaseSettings`,
//!   `auth::Principal`, `connections::TlsSettings`, `telemetry::LogFormat`) and hands them to
//!   [`server`]. Nothing below the server imports it; each default is written once. One file
//!   per section: `config::file` (the TOML schema), `addresses`, `database`, `duration`,
//!   `limits`, `principals`, `service` (`[assumptions]`, `[idempotency]`,
//!   `[access_requests]`), `audit`, `error`; `config::tests` loads real files.
//! - [`connections`] — accepts the gRPC port's connections: caps how many are open (at the
//!   cap the oldest never-authenticated connection makes room), closes those that do not
//!   finish the TLS handshake and HTTP/2 preface in time (and, at shutdown, those still
//!   handshaking), terminates TLS (start-up errors name the file), raises the open-files
//!   limit (`connections::activity`: what each connection is doing, for eviction; `io`: the
//!   admitted connection and the preface deadline; `tls`; `open_files`).
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
//! - [`clock`] — the `Clock` trait, system and manual clocks; the only source of "now" and
//!   of the timers periodic work waits on (a manual clock fires them when moved).
//! - [`proto`] — generated protobuf/gRPC code and the reflection descriptor set.
//! - [`domain`] — pure rules — ids, actors, durations, the grant state machine, plan changes,
//!   assumption decisions, access requests (`domain::access_request`: states evaluated at read
//!   time, the quorum, the account's access policy, deciding on a request alone),
//!   permissions, the error type. No I/O, no tonic, no sea-orm.
//! - [`audit`] — audit event model, the filter a page of the log is read by, the canonical
//!   encoding (v1) and the SHA-256 hash chain.
//! - [`transparency`] — tamper evidence against whoever runs the database, pure: the RFC 9162
//!   Merkle tree over every event (append by right edge, roots, inclusion and consistency
//!   proofs over stored complete subtrees, read in two phases so a proof is one O(log n)
//!   query; the client-side proof checks), C2SP signed-note checkpoints and verifier keys,
//!   the Ed25519 PKCS#8 key file (`ring`) — `transparency::merkle` (+ `merkle_tests`), `proof`,
//!   `note`, `key`.
//! - [`checkpoints`] — the signer's life in a server: which key (configured, or created beside
//!   a SQLite database; required on PostgreSQL), the record of the last checkpoint signed
//!   kept outside the database (`checkpoints::memory`), and the round that signs a
//!   checkpoint every `[audit] checkpoint_interval`, counting and logging refusals.
//! - [`service`] — use cases, one method per request: check the permission, build a
//!   **command** (`service::commands`: every mutating use case as a value with a pure
//!   `apply`, unit-tested without a database) and submit it to the write loop; the audit
//!   log's reads (pages bounded in count and bytes, watch streams that refuse positions from
//!   another history); the transparency reads (latest checkpoint, proofs only at signed
//!   sizes) and the `SignCheckpoint` command, which refuses when the stored tree no longer
//!   extends a signed checkpoint; the expiry sweep (one `RecordLapse` command per due lapse, recorded
//!   exactly once across replicas; damaged accounts fail alone; likewise one
//!   `RecordRequestLapse` per pending access request that lapsed unreviewed). Access requests
//!   (`service::access_requests`: create, review to a quorum, cancel/revoke ending the
//!   assumptions made under them), the access policy (`service::policy`), "who is in my
//!   account now" (`ListAssumptions`, `RevokeAssumption` in `service::support_access`), and the
//!   opaque, filter-bound page tokens of those lists (`service::page_token`).
//! - [`storage`] — sea-orm entities, migrations and reads (`storage::tree`: the Merkle
//!   tree's nodes, leaves and checkpoints, a proof's nodes in one query;
//!   `storage::access_requests`: requests by id, newest-first pages filtered by the state
//!   evaluated now, the sweep's lapsed pending requests; `storage::page`: the keyset cursor
//!   of newest-first pages); `storage::write`, the **one
//!   group-commit loop** every write goes through (load what a batch announced, apply each
//!   command against the batch's view, write every changed row, commit once, answer after
//!   the durable commit; a batch's events become the Merkle tree's next leaves in the same
//!   transaction, `storage::write::tree`) with one `Backend` per database: SQLite (rusqlite on the writer's
//!   own thread, raised above request handling when permitted) and PostgreSQL (sea-orm, the
//!   write fence that serializes writers across replicas); `storage::error`, the one
//!   classifier of database errors; the SQLite read cache of accounts and grants
//!   (invalidated from the rows a commit wrote), the SQLite file watch (checked before and
//!   after every commit: fail closed if the file, its WAL or the serve lock file vanishes)
//!   and the serve lock (one server per SQLite file). Files: `storage::accounts`, `grants`,
//!   `assumptions`, `access_requests`, `audit_log` (pages, chain verification, the watch's
//!   reads), `tree`, `page`, `entities`, `migrations` (one file per migration), `error`,
//!   `grant_cache`, `sqlite_file`, `thread_priority` (the writer thread's priority), `write`
//!   (`command`, `keys`, `view`, `draft`, `rows`, `columns`, `backend`, `group_commit`,
//!   `tree`, `sqlite`, `postgres`).
//! - [`grpc`] — one folder per service: its thin handler and its request/response conversions
//!   with validation (the conversions every service shares in `grpc::fields`); the one
//!   `Error` → `Status` mapping, and the protobuf codec that answers undecodable request
//!   bodies with `INVALID_ARGUMENT` instead of prost's `INTERNAL`. Folders `grpc::access_grant`
//!   (grant and access policy), `account`, `support_access` (decisions, assumptions, who is
//!   in), `audit`, `access_request`, each with `convert`; `grpc::status` (the mapping),
//!   `permissions` (each RPC's permission), `fields`, `codec`.

#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod checkpoints;
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
pub mod transparency;
