//! Prometheus metrics: one process-wide recorder (`metrics` + `metrics-exporter-prometheus`
//! renders the exposition format) and a small HTTP/1.1 listener serving it on
//! `--metrics-listen` (default `127.0.0.1:9464`). Every metric is declared here, once, in the
//! [`families!`] table: its name, type and HELP text side by side. The HELP text is both the
//! constant's documentation and the exposition's `# HELP` line, so the two cannot drift, and
//! `promtool check metrics` finds every family described. Labels never carry account or staff
//! ids (unbounded cardinality).
//!
//! The `grpc_server_*` families are the ones grpc-ecosystem's go-grpc-prometheus exports
//! (same names, labels, label values and HELP), so dashboards and alerts written for any gRPC
//! server work here unchanged; `rpc_metrics` records them. Everything this service knows
//! beyond the transport is `accessgrant_*`.

use std::{convert::Infallible, net::SocketAddr, sync::OnceLock, time::Duration};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// A metric family's Prometheus type (its `# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

/// One exported metric family, as declared in the table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The metric name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its `# HELP` text.
    pub help: &'static str,
}

/// Declares each metric once: a `pub const` for its name, documented with its HELP text, and
/// its row in [`FAMILIES`] (name, type, HELP), which [`install`] describes to the recorder.
macro_rules! families {
    ($($konst:ident: $kind:ident = $name:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            #[doc = ""]
            #[doc = concat!("`", $name, "` (", stringify!($kind), ").")]
            pub const $konst: &str = $name;
        )*

        /// Every metric family this service exports, with its type and HELP text.
        pub const FAMILIES: &[Family] = &[$(Family { name: $name, kind: Kind::$kind, help: $help }),*];
    };
}

families! {
    // The standard gRPC server metrics, as go-grpc-prometheus names and describes them. Labels:
    // `grpc_type` (`unary`, `server_stream`, `bidi_stream`), `grpc_service` (full name, such as
    // `accessgrant.v1.AccessGrantService`), `grpc_method`, and on `handled` `grpc_code` (`OK`,
    // `InvalidArgument`, `Canceled`, …, spelled as grpc-go does).
    GRPC_STARTED: Counter = "grpc_server_started_total",
        "Total number of RPCs started on the server.";
    GRPC_HANDLED: Counter = "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.";
    GRPC_HANDLING_SECONDS: Histogram = "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.";

    DECISIONS: Counter = "accessgrant_decisions_total",
        "Assumption decisions, by decision, basis and deny_reason.";
    EMERGENCY_ASSUMPTIONS: Counter = "accessgrant_emergency_assumptions_total",
        "Emergency assumptions allowed, by reason. Every one should page someone.";
    AUDIT_WRITE_DURATION: Histogram = "accessgrant_audit_write_duration_seconds",
        "Time to commit one group-commit batch of changes and their audit events, in seconds.";
    AUDIT_BATCH_SIZE: Histogram = "accessgrant_audit_batch_size",
        "Changes per group-commit batch.";
    AUDIT_WRITE_FAILURES: Counter = "accessgrant_audit_write_failures_total",
        "Changes whose audit write failed (the request failed closed), by stage (begin, change, commit).";
    AUDIT_EVENTS: Counter = "accessgrant_audit_events_total",
        "Committed audit events, by kind (GRANT_ENABLED, ASSUMPTION_ALLOWED, ...).";
    DB_CONNECTIONS: Gauge = "accessgrant_db_connections",
        "Database pool connections, by state (in_use, idle).";
    DB_ERRORS: Counter = "accessgrant_db_errors_total",
        "Database statements that failed.";
    WATCH_STREAMS: Gauge = "accessgrant_watch_streams",
        "Open WatchAuditEvents streams.";
    CONNECTIONS_OPEN: Gauge = "accessgrant_connections_open",
        "Open connections on the gRPC port, handshaking or serving.";
    CONNECTIONS_REFUSED: Counter = "accessgrant_connections_refused_total",
        "Connections closed at accept because [limits] max_connections were open, all of them authenticated.";
    CONNECTIONS_EVICTED: Counter = "accessgrant_connections_evicted_total",
        "Never-authenticated connections closed to make room for a new one at [limits] max_connections.";
    HANDSHAKE_FAILURES: Counter = "accessgrant_connection_handshake_failures_total",
        "Connections closed before serving: TLS handshake failed, or no TLS handshake and HTTP/2 preface within [limits] handshake_timeout.";
    EXPIRY_SWEEP_FAILURES: Counter = "accessgrant_expiry_sweep_failures_total",
        "Expiry-sweep write transactions that failed (a damaged account fails its own on every sweep).";
    ACCESS_REQUEST_TRANSITIONS: Counter = "accessgrant_access_request_transitions_total",
        "Access requests moved into a state, by `to` (PENDING on creation, APPROVED, DENIED, CANCELLED, REVOKED, EXPIRED).";
    ACCESS_REQUESTS_PENDING: Gauge = "accessgrant_access_requests_pending",
        "Access requests waiting for reviews (not lapsed), as counted by this replica's last expiry sweep.";
    CHECKPOINTS_SIGNED: Counter = "accessgrant_checkpoints_signed_total",
        "Audit checkpoints this replica signed and stored.";
    CHECKPOINT_REFUSALS: Counter = "accessgrant_checkpoint_refusals_total",
        "Signing rounds refused because the stored Merkle tree no longer extends a signed checkpoint (the log was rewritten or restored: see the runbook).";
    CHECKPOINT_FAILURES: Counter = "accessgrant_checkpoint_failures_total",
        "Signing rounds that failed (database unavailable or damaged tree).";
    CHECKPOINT_TREE_SIZE: Gauge = "accessgrant_checkpoint_tree_size",
        "Tree size of the latest checkpoint this replica signed or found signed.";
    READY: Gauge = "accessgrant_ready",
        "1 while health reports SERVING, 0 otherwise.";
    BUILD_INFO: Gauge = "accessgrant_build_info",
        "Always 1, with the version and git_sha of this build as labels.";
}

/// Latency buckets (seconds): 250 µs … 10 s.
const SECONDS_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Batch-size buckets.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it) and returns its handle.
/// `None` if another recorder was installed first (then metrics are not exported).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(AUDIT_BATCH_SIZE.into()), &BATCH_BUCKETS)
                });
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    for family in FAMILIES {
                        match family.kind {
                            Kind::Counter => metrics::describe_counter!(family.name, family.help),
                            Kind::Gauge => metrics::describe_gauge!(family.name, family.help),
                            Kind::Histogram => {
                                metrics::describe_histogram!(family.name, family.help);
                            }
                        }
                    }
                    metrics::gauge!(
                        BUILD_INFO,
                        "version" => env!("CARGO_PKG_VERSION"),
                        "git_sha" => env!("ACCESSGRANT_GIT_SHA")
                    )
                    .set(1.0);
                    // In a scrape from the start, not only after their first event.
                    metrics::gauge!(CONNECTIONS_OPEN).increment(0.0);
                    metrics::gauge!(ACCESS_REQUESTS_PENDING).set(0.0);
                    for counter in [
                        CONNECTIONS_REFUSED,
                        CONNECTIONS_EVICTED,
                        HANDSHAKE_FAILURES,
                        EXPIRY_SWEEP_FAILURES,
                        CHECKPOINTS_SIGNED,
                        CHECKPOINT_REFUSALS,
                        CHECKPOINT_FAILURES,
                    ] {
                        metrics::counter!(counter).increment(0);
                    }
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// Connections the metrics listener serves at once. A scraper needs one.
const MAX_SCRAPE_CONNECTIONS: usize = 16;
/// The longest one connection may take to send its request and read the answer (the
/// answer is rendered from memory in well under a millisecond).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves `GET /metrics` (any path) on `listener` until the task is dropped: one request
/// per connection, each done within `SCRAPE_TIMEOUT` (3 s), at most `MAX_SCRAPE_CONNECTIONS` (16)
/// at once. At the limit a new connection closes the oldest one rather than being refused,
/// so sockets held open by someone else delay a scrape, but cannot keep refusing it, and
/// cannot hold descriptors the gRPC port needs.
pub async fn serve(listener: TcpListener, handle: &'static PrometheusHandle) {
    let mut open: std::collections::VecDeque<tokio::task::JoinHandle<()>> =
        std::collections::VecDeque::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        open.retain(|task| !task.is_finished());
        if open.len() >= MAX_SCRAPE_CONNECTIONS
            && let Some(oldest) = open.pop_front()
        {
            oldest.abort();
        }
        open.push_back(tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                handle.run_upkeep();
                let body = handle.render();
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap_or_default(),
                )
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, connection).await;
        }));
    }
}

/// Binds the metrics listener, if configured; errors are logged, never fatal.
pub async fn start(addr: Option<SocketAddr>) -> Option<tokio::task::JoinHandle<()>> {
    let handle = install()?;
    let addr = addr?;
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving metrics");
            Some(tokio::spawn(serve(listener, handle)))
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen for metrics");
            None
        }
    }
}
