//! Prometheus metrics: one process-wide recorder (`metrics` + `metrics-exporter-prometheus`
//! renders the exposition format) and a small HTTP/1.1 listener serving it on
//! `--metrics-listen` (default `127.0.0.1:9464`). Every name is declared here, once, with its
//! labels; labels never carry account or staff ids (unbounded cardinality).

use std::{convert::Infallible, net::SocketAddr, sync::OnceLock, time::Duration};

use http_body_util::Full;
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// RPCs answered, by `service`, `method` and `code` (counter).
pub const RPC_REQUESTS: &str = "accessgrant_rpc_requests_total";
/// RPC latency until the response starts, by `service` and `method` (histogram, seconds).
pub const RPC_DURATION: &str = "accessgrant_rpc_duration_seconds";
/// Assumption decisions, by `decision`, `basis` and `deny_reason` (counter).
pub const DECISIONS: &str = "accessgrant_decisions_total";
/// Emergency assumptions allowed, by `reason` (counter). Every one should page someone.
pub const EMERGENCY_ASSUMPTIONS: &str = "accessgrant_emergency_assumptions_total";
/// Time to commit one group-commit batch of changes and audit events (histogram, seconds).
pub const AUDIT_WRITE_DURATION: &str = "accessgrant_audit_write_duration_seconds";
/// Changes per group-commit batch (histogram).
pub const AUDIT_BATCH_SIZE: &str = "accessgrant_audit_batch_size";
/// Changes whose audit write failed (the request failed closed), by `stage` (counter).
pub const AUDIT_WRITE_FAILURES: &str = "accessgrant_audit_write_failures_total";
/// Committed audit events, by `kind` (`GRANT_ENABLED`, `GRANT_DURATION_CHANGED`,
/// `GRANT_DISABLED`, `ASSUMPTION_ALLOWED`, …): grant and account changes by kind (counter).
pub const AUDIT_EVENTS: &str = "accessgrant_audit_events_total";
/// Database connections, by `state` (`in_use`, `idle`) (gauge).
pub const DB_CONNECTIONS: &str = "accessgrant_db_connections";
/// Database errors of any statement (counter).
pub const DB_ERRORS: &str = "accessgrant_db_errors_total";
/// Open `WatchAuditEvents` streams (gauge).
pub const WATCH_STREAMS: &str = "accessgrant_watch_streams";
/// Open connections on the gRPC port, handshaking or serving (gauge).
pub const CONNECTIONS_OPEN: &str = "accessgrant_connections_open";
/// Connections closed at accept because `[limits] max_connections` were open, all of them
/// authenticated (counter).
pub const CONNECTIONS_REFUSED: &str = "accessgrant_connections_refused_total";
/// Never-authenticated connections closed to make room for a new one at
/// `[limits] max_connections` (counter).
pub const CONNECTIONS_EVICTED: &str = "accessgrant_connections_evicted_total";
/// Connections closed before serving: TLS handshake failed, or no TLS handshake and HTTP/2
/// preface within `[limits] handshake_timeout` (counter).
pub const HANDSHAKE_FAILURES: &str = "accessgrant_connection_handshake_failures_total";
/// Expiry-sweep write transactions that failed (counter). A damaged account fails its own
/// transaction on every sweep; other accounts' lapses are still recorded.
pub const EXPIRY_SWEEP_FAILURES: &str = "accessgrant_expiry_sweep_failures_total";
/// 1 while health reports SERVING, 0 otherwise (gauge).
pub const READY: &str = "accessgrant_ready";
/// Always 1, with `version` and `git_sha` labels (gauge).
pub const BUILD_INFO: &str = "accessgrant_build_info";

/// Every metric this service exports, for the alert-rule check in CI.
pub const ALL: [&str; 18] = [
    RPC_REQUESTS,
    RPC_DURATION,
    DECISIONS,
    EMERGENCY_ASSUMPTIONS,
    AUDIT_WRITE_DURATION,
    AUDIT_BATCH_SIZE,
    AUDIT_WRITE_FAILURES,
    AUDIT_EVENTS,
    DB_CONNECTIONS,
    DB_ERRORS,
    WATCH_STREAMS,
    CONNECTIONS_OPEN,
    CONNECTIONS_REFUSED,
    CONNECTIONS_EVICTED,
    HANDSHAKE_FAILURES,
    EXPIRY_SWEEP_FAILURES,
    READY,
    BUILD_INFO,
];

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
                    metrics::gauge!(
                        BUILD_INFO,
                        "version" => env!("CARGO_PKG_VERSION"),
                        "git_sha" => env!("ACCESSGRANT_GIT_SHA")
                    )
                    .set(1.0);
                    // In a scrape from the start, not only after their first event.
                    metrics::gauge!(CONNECTIONS_OPEN).increment(0.0);
                    for counter in [
                        CONNECTIONS_REFUSED,
                        CONNECTIONS_EVICTED,
                        HANDSHAKE_FAILURES,
                        EXPIRY_SWEEP_FAILURES,
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

/// Splits a gRPC path `/pkg.Service/Method` into (`Service`, `Method`) for labels. Unknown
/// shapes become `unknown` so a hostile path cannot create new label values.
pub fn rpc_labels(path: &str) -> (&'static str, &'static str) {
    crate::grpc::permissions::TABLE
        .iter()
        .find(|(method, _)| *method == path)
        .and_then(|(method, _)| {
            let rest = method.strip_prefix("/accessgrant.v1.")?;
            rest.split_once('/')
        })
        .unwrap_or(("unknown", "unknown"))
}

/// Records one answered RPC.
pub fn record_rpc(path: &str, code: &str, elapsed: Duration) {
    let (service, method) = rpc_labels(path);
    metrics::counter!(RPC_REQUESTS, "service" => service, "method" => method, "code" => code.to_owned())
        .increment(1);
    metrics::histogram!(RPC_DURATION, "service" => service, "method" => method)
        .record(elapsed.as_secs_f64());
}
