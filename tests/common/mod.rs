//! Test harness: a real server on `127.0.0.1:0` with a temp SQLite file and a manual clock.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use accessgrant::{
    audit::AuditEvent,
    clock::ManualClock,
    config::{Config, Overrides},
    proto::v1::{
        self as pb, access_grant_service_client::AccessGrantServiceClient,
        account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
        support_access_service_client::SupportAccessServiceClient,
    },
    storage::{Store, audit_log},
};
use chrono::{DateTime, TimeZone, Utc};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// The instant every test starts at: 2026-01-31 10:00:00 UTC (a month end, on purpose).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap()
}

/// A running server and handles to drive it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// Its database URL.
    pub database_url: String,
    /// Path of the SQLite file.
    pub db_path: std::path::PathBuf,
    /// A channel to it.
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Stops `server` and starts a new one on the same database (and clock time).
pub async fn restart(mut server: TestServer) -> TestServer {
    let now = accessgrant::clock::Clock::now(&*server.clock);
    if let Some(tx) = server.shutdown.take() {
        let _ = tx.send(());
    }
    if let Some(h) = server.handle.take() {
        h.await.unwrap();
    }
    let TestServer { _dir, db_path, .. } = server;
    let restarted = spawn_on(_dir, db_path, |_| {}).await;
    restarted.clock.set(now);
    restarted
}

/// Starts a server with default settings.
pub async fn spawn_server() -> TestServer {
    spawn_server_with(|_| {}).await
}

/// Starts a server after letting the test adjust its configuration.
pub async fn spawn_server_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("accessgrant.db");
    spawn_on(dir, db_path, adjust).await
}

async fn spawn_on(
    dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let database_url = format!("sqlite://{}?mode=rwc", db_path.display());
    let mut config = Config::load(Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(database_url.clone()),
        ..Overrides::default()
    })
    .unwrap();
    // Tests that want metrics pick their own port.
    config.metrics_listen = None;
    adjust(&mut config);
    let clock = Arc::new(ManualClock::new(t0()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server_clock = clock.clone();
    let handle = tokio::spawn(async move {
        accessgrant::server::run(config, server_clock, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let channel = connect(addr).await;
    TestServer {
        addr,
        clock,
        database_url,
        db_path,
        channel,
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

/// Connects, retrying while the server migrates.
pub async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    for _ in 0..200 {
        if let Ok(ch) = endpoint.connect().await {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {addr} did not come up");
}

impl TestServer {
    /// A client of `AccessGrantService`.
    pub fn grants(&self) -> AccessGrantServiceClient<Channel> {
        AccessGrantServiceClient::new(self.channel.clone())
    }

    /// A client of `AccountService`.
    pub fn accounts(&self) -> AccountServiceClient<Channel> {
        AccountServiceClient::new(self.channel.clone())
    }

    /// A client of `SupportAccessService`.
    pub fn support(&self) -> SupportAccessServiceClient<Channel> {
        SupportAccessServiceClient::new(self.channel.clone())
    }

    /// A client of `AuditService`.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    /// Asks to assume into `id` (not an emergency) as staff `sam`.
    pub async fn authorize(&self, id: &str) -> pb::AuthorizeAssumptionResponse {
        self.support()
            .authorize_assumption(authorize_request(id))
            .await
            .unwrap()
            .into_inner()
    }

    /// Reads an assumption.
    pub async fn assumption(&self, id: &str) -> pb::Assumption {
        self.support()
            .get_assumption(pb::GetAssumptionRequest {
                assumption_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .assumption
            .unwrap()
    }

    /// Ends an assumption.
    pub async fn end(&self, id: &str) -> pb::Assumption {
        self.support()
            .end_assumption(pb::EndAssumptionRequest {
                assumption_id: id.into(),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .assumption
            .unwrap()
    }

    /// Ids of the ASSUMPTION_ALLOWED events of `id`, oldest first.
    pub async fn authorize_event_ids(&self, id: &str) -> Vec<String> {
        self.events(id)
            .await
            .into_iter()
            .filter(|e| e.kind == accessgrant::audit::EventKind::AssumptionAllowed)
            .map(|e| e.event_id)
            .collect()
    }

    /// Takes SQLite's write lock from another connection and holds it until the returned
    /// guard is dropped: the server's writes wait (up to its busy timeout) meanwhile.
    pub async fn hold_write_lock(&self) -> (Store, sea_orm::DatabaseTransaction) {
        use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
        let store = Store::connect(&self.database_url).await.unwrap();
        let txn = store
            .reader()
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .unwrap();
        (store, txn)
    }

    /// Runs SQL straight against the server's SQLite file (to tamper, inject faults, count).
    pub async fn sql(&self, statement: &str) {
        use sea_orm::ConnectionTrait;
        let store = Store::connect(&self.database_url).await.unwrap();
        store.reader().execute_unprepared(statement).await.unwrap();
        store.close().await.unwrap();
    }

    /// Runs a `SELECT COUNT(*) …` (or any single-integer query) against the SQLite file.
    pub async fn count(&self, query: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let store = Store::connect(&self.database_url).await.unwrap();
        let row = store
            .reader()
            .query_one_raw(Statement::from_string(store.backend(), query.to_owned()))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get_by_index(0).unwrap();
        store.close().await.unwrap();
        n
    }

    /// Creates an account with `plan`.
    pub async fn create_account(&self, id: &str, plan: pb::AccountPlan) {
        self.accounts()
            .upsert_account(pb::UpsertAccountRequest {
                account_id: id.into(),
                plan: plan.into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }

    /// Reads the grant of `id`.
    pub async fn grant(&self, id: &str) -> pb::AccessGrant {
        self.grants()
            .get_access_grant(pb::GetAccessGrantRequest {
                account_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_grant
            .unwrap()
    }

    /// Enables the grant of `id` for `duration` as a Support admin.
    pub async fn enable(
        &self,
        id: &str,
        duration: pb::AccessDuration,
    ) -> Result<pb::AccessGrant, Status> {
        self.grants()
            .enable_access_grant(enable_request(id, duration, support_admin()))
            .await
            .map(|r| r.into_inner().access_grant.unwrap())
    }

    /// Disables the grant of `id` as a Support admin.
    pub async fn disable(&self, id: &str) -> Result<pb::AccessGrant, Status> {
        self.grants()
            .disable_access_grant(pb::DisableAccessGrantRequest {
                account_id: id.into(),
                actor: Some(support_admin()),
                etag: String::new(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_grant.unwrap())
    }

    /// The audit events of `id`, oldest first, read straight from the database.
    pub async fn events(&self, id: &str) -> Vec<AuditEvent> {
        let store = Store::connect(&self.database_url).await.unwrap();
        let events = audit_log::events_of(store.reader(), id, 10_000)
            .await
            .unwrap();
        store.close().await.unwrap();
        events
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

/// An actor with the given roles.
pub fn actor(roles: &[(pb::Product, pb::Role)]) -> pb::Actor {
    pb::Actor {
        user_id: "alice".into(),
        roles: roles
            .iter()
            .map(|(p, r)| pb::ProductRole {
                product: (*p).into(),
                role: (*r).into(),
            })
            .collect(),
    }
}

/// An admin of Support.
pub fn support_admin() -> pb::Actor {
    actor(&[(pb::Product::Support, pb::Role::Admin)])
}

/// An enable request without etag or request id.
pub fn enable_request(
    id: &str,
    duration: pb::AccessDuration,
    actor: pb::Actor,
) -> pb::EnableAccessGrantRequest {
    pb::EnableAccessGrantRequest {
        account_id: id.into(),
        duration: duration.into(),
        actor: Some(actor),
        etag: String::new(),
        request_id: String::new(),
    }
}

/// An `AuthorizeAssumption` request for `id` by staff `sam` on ticket `T-1`.
pub fn authorize_request(id: &str) -> pb::AuthorizeAssumptionRequest {
    pb::AuthorizeAssumptionRequest {
        account_id: id.into(),
        staff_id: "sam".into(),
        ticket_id: "T-1".into(),
        reason: pb::AccessReason::CannotReproduceElsewhere.into(),
        reason_detail: "only happens in their sandbox".into(),
        emergency: None,
        request_id: String::new(),
    }
}

/// An emergency justification long enough to be accepted.
pub fn emergency() -> pb::EmergencyJustification {
    pb::EmergencyJustification {
        reason: pb::EmergencyReason::SuspectedTermsViolation.into(),
        justification: "spam campaign sent from this account, abuse ticket A-77".into(),
    }
}

/// Asserts a status's code and `ErrorInfo.reason` (domain `accessgrant`).
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "accessgrant");
}

/// The fields named by `BadRequest` violations of an `INVALID_ARGUMENT` status.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Protobuf timestamp to chrono.
pub fn time(ts: &prost_types::Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(ts.seconds, ts.nanos as u32).unwrap()
}
