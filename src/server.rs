//! Assembles the gRPC server: the five services, health and reflection on one port, request
//! spans, background upkeep, and graceful shutdown (health turns NOT_SERVING first so load
//! balancers stop routing, then in-flight requests drain, then the database closes).

use std::{future::Future, time::Duration};

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    auth::{Authenticator, layer::AdmissionLayer},
    clock::SharedClock,
    config::Config,
    grpc::{
        access_grant::AccessGrantApi, access_request::AccessRequestApi, account::AccountApi,
        audit::AuditApi, support_access::SupportAccessApi,
    },
    proto::{
        FILE_DESCRIPTOR_SET,
        v1::{
            access_grant_service_server::AccessGrantServiceServer,
            access_request_service_server::AccessRequestServiceServer,
            account_service_server::AccountServiceServer, audit_service_server::AuditServiceServer,
            support_access_service_server::SupportAccessServiceServer,
        },
    },
    service::App,
    storage::Store,
};

/// Names reported by the health service: the whole server (`""`) and each service.
const HEALTH_NAMES: [&str; 6] = [
    "",
    "accessgrant.v1.AccessGrantService",
    "accessgrant.v1.AccountService",
    "accessgrant.v1.SupportAccessService",
    "accessgrant.v1.AuditService",
    "accessgrant.v1.AccessRequestService",
];

/// A health name that stays SERVING while the process runs, for liveness probes: a database
/// outage should take the pod out of rotation (readiness), not restart it.
pub const LIVENESS_NAME: &str = "liveness";

/// How often the database is pinged to keep readiness honest.
const READINESS_INTERVAL: Duration = Duration::from_secs(2);
/// How often old idempotency records are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Reflection could not load the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Another server already serves this SQLite file, or its lock could not be taken.
    #[error("{0}")]
    SqliteLock(#[from] crate::storage::sqlite_file::ServeLockError),
    /// A `[tls]` file is missing or unusable.
    #[error("{0}")]
    Tls(#[from] crate::connections::TlsFileError),
    /// An in-memory SQLite database would lose the audit log when the process exits.
    #[error(
        "database: an in-memory SQLite database cannot keep a durable audit log; \
         use a file (sqlite://PATH?mode=rwc)"
    )]
    InMemoryDatabase,
    /// No usable checkpoint signing key.
    #[error("{0}")]
    Signer(#[from] crate::checkpoints::SignerError),
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        reporter.set_service_status(name, status).await;
    }
    metrics::gauge!(crate::metrics::READY).set(if status == ServingStatus::Serving {
        1.0
    } else {
        0.0
    });
}

/// Opens and migrates the database named by `config`.
pub async fn open_store(config: &Config) -> Result<Store, sea_orm::DbErr> {
    let store = Store::connect_with(&config.database_url, &config.database).await?;
    store.migrate().await?;
    Ok(store)
}

/// Serves on `listener` until `shutdown` resolves. Migrations run first; health reports
/// SERVING once they have and while the database answers.
pub async fn run(
    config: Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Unusable TLS files stop the start before the database is touched.
    let tls = config
        .tls
        .as_ref()
        .map(crate::connections::tls_server_config)
        .transpose()?;
    if config.database_url.starts_with("sqlite:")
        && crate::storage::sqlite_file::path_of(&config.database_url).is_none()
    {
        return Err(ServeError::InMemoryDatabase);
    }
    // One server per SQLite file; held until this function returns.
    let serve_lock = crate::storage::sqlite_file::path_of(&config.database_url)
        .map(|path| crate::storage::sqlite_file::ServeLock::acquire(&path))
        .transpose()?;
    // The key before the database: a misconfigured key stops the start with nothing touched.
    let sqlite_file = crate::storage::sqlite_file::path_of(&config.database_url);
    let signer = crate::checkpoints::signer(&config.audit, sqlite_file.clone())?;
    let mut signed = crate::checkpoints::memory(&config.audit, sqlite_file, &signer)?;
    let metrics_task = crate::metrics::start(config.metrics_listen).await;
    let store = open_store(&config).await?;
    if let Some(lock) = &serve_lock {
        store.watch_serve_lock(lock);
    }
    let app = App::new(store.clone(), clock, config.service.clone(), signer);

    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;

    // Reflection serves the contract, health, and the `google.rpc` error details the errors
    // carry (`ErrorInfo`, `BadRequest`, `RetryInfo`), so grpcurl and buf curl print them
    // decoded instead of as opaque bytes.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let upkeep = tokio::spawn(upkeep(app.clone(), reporter.clone()));
    let sweeper = tokio::spawn(sweep_expired_grants(
        app.clone(),
        config.expiry_sweep_interval,
    ));
    // A checkpoint of the log as it stands before serving, so GetAuditCheckpoint answers
    // from the first request.
    crate::checkpoints::round(&app, &mut signed).await;
    let signing = tokio::spawn(crate::checkpoints::run(
        app.clone(),
        config.audit.checkpoint_interval,
        signed,
    ));
    set_health(&reporter, ServingStatus::Serving).await;
    reporter
        .set_service_status(LIVENESS_NAME, ServingStatus::Serving)
        .await;
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, database = %redact_url(&config.database_url), "serving");

    let drain_reporter = reporter.clone();
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        // Stop new traffic first: readiness fails while in-flight requests finish.
        set_health(&drain_reporter, ServingStatus::NotServing).await;
        tracing::info!("draining in-flight requests");
        let _ = draining_tx.send(());
    };
    // Streams (health Watch, audit Watch) never finish by themselves: after the drain timeout,
    // stop waiting for them.
    let drain_timeout = config.drain_timeout;
    let drain_deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };

    let limits = &config.limits;
    let authenticator = Authenticator::new(config.principals.clone());
    if authenticator.is_development() {
        tracing::warn!(
            "no [[principals]] configured: every caller is the all-permission development \
             principal; only loopback listen addresses are allowed"
        );
    }
    let connection_limits = limits.connections();
    crate::connections::raise_open_files_limit(limits.max_connections);
    let max_bytes = limits.max_request_bytes;
    let router = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams_per_connection)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .trace_fn(|req| tracing::info_span!("rpc", method = %req.uri().path()))
        // Outermost: every call is counted, also those admission refuses.
        .layer(crate::rpc_metrics::RpcMetricsLayer)
        // Sheds load, authenticates, authorizes and enforces the deadline cap (a client's
        // shorter grpc-timeout wins).
        .layer(AdmissionLayer::new(
            authenticator,
            limits.max_concurrent_requests,
            limits.max_deadline,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AccessGrantServiceServer::new(AccessGrantApi::new(app.clone()))
                .max_decoding_message_size(max_bytes),
        )
        .add_service(
            AccountServiceServer::new(AccountApi::new(app.clone()))
                .max_decoding_message_size(max_bytes),
        )
        .add_service(
            SupportAccessServiceServer::new(SupportAccessApi::new(app.clone()))
                .max_decoding_message_size(max_bytes),
        )
        .add_service(
            AuditServiceServer::new(AuditApi::new(app.clone()))
                .max_decoding_message_size(max_bytes),
        )
        .add_service(
            AccessRequestServiceServer::new(AccessRequestApi::new(app.clone()))
                .max_decoding_message_size(max_bytes),
        );
    // Connections are accepted, capped and handshaken by `connections`, TLS included.
    let serve: BoxFuture<'static, Result<(), tonic::transport::Error>> = match tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            crate::connections::tls(listener, connection_limits, tls),
            signal,
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(
            crate::connections::plain(listener, connection_limits),
            signal,
        )),
    };
    let result = tokio::select! {
        result = serve => result,
        () = drain_deadline => {
            tracing::warn!(?drain_timeout, "drain timeout passed: closing the remaining streams");
            Ok(())
        }
    };
    upkeep.abort();
    sweeper.abort();
    signing.abort();
    if let Some(task) = metrics_task {
        task.abort();
    }
    drop(app);
    if let Err(e) = store.close().await {
        tracing::warn!(error = %e, "closing the database failed");
    }
    tracing::info!("stopped");
    result.map_err(ServeError::from)
}

/// Background upkeep: readiness follows the database (every `READINESS_INTERVAL`, and at
/// once when a write finds the SQLite file lost); old idempotency records are pruned.
async fn upkeep(app: App, reporter: HealthReporter) {
    let mut ready = true;
    let mut ticks: u64 = 0;
    let mut interval = tokio::time::interval(READINESS_INTERVAL);
    loop {
        let store = app.store().clone();
        tokio::select! {
            _ = interval.tick() => ticks += 1,
            () = store.wait_file_lost(), if !store.file_lost() || ready => {}
        }
        let reachable = app.writer_alive() && app.store().ping().await.is_ok();
        let (in_use, idle) = app.store().pool_usage();
        metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
        metrics::gauge!(crate::metrics::DB_CONNECTIONS, "state" => "idle").set(f64::from(idle));
        if app.store().file_lost() {
            // Only a restart reopens the file: let the liveness probe ask for one.
            reporter
                .set_service_status(LIVENESS_NAME, ServingStatus::NotServing)
                .await;
        }
        if reachable != ready {
            ready = reachable;
            if ready {
                tracing::info!("database reachable again: SERVING");
                set_health(&reporter, ServingStatus::Serving).await;
            } else {
                tracing::error!("database unreachable: NOT_SERVING");
                set_health(&reporter, ServingStatus::NotServing).await;
            }
        }
        if ready && ticks % (PRUNE_INTERVAL.as_secs() / READINESS_INTERVAL.as_secs()) == 1 {
            match app.prune_idempotency_records().await {
                Ok(()) => tracing::debug!("pruned idempotency records past their retention"),
                Err(e) => tracing::warn!(error = %e, "pruning idempotency records failed"),
            }
        }
    }
}

/// Background expiry sweep: audits lapsed grants (`GRANT_EXPIRED`). Every replica runs it;
/// the database makes each lapse recorded once (see `service::expiry`). A failed sweep is
/// retried at the next tick; reads never depend on it.
async fn sweep_expired_grants(app: App, every: Duration) {
    // On the app's clock (tests move it); the first sweep waits one interval, so starting
    // replicas do not all sweep at once, and each next one an interval after the last ended.
    loop {
        app.clock.sleep(every).await;
        match app.sweep_expired_grants().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(lapses = n, "recorded expired grants"),
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed; retrying next tick"),
        }
    }
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/ag"),
            "postgres://app:***@db:5432/ag"
        );
        assert_eq!(
            redact_url("sqlite://accessgrant.db?mode=rwc"),
            "sqlite://accessgrant.db?mode=rwc"
        );
    }
}
