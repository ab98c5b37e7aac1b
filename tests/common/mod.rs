//! Test harness: a real server on `127.0.0.1:0` with a manual clock, on a fresh database of
//! the backend chosen by `ACCESSGRANT_TEST_BACKEND`: a temp SQLite file (`sqlite`, the
//! default) or a new database on the PostgreSQL cluster at `ACCESSGRANT_TEST_POSTGRES_URL`
//! (`postgres`). `scripts/test` runs the whole suite once per backend.
#![allow(dead_code)]

pub mod audit;
pub mod insider;
pub mod merkle;
pub mod requests;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use accessgrant::{
    audit::AuditEvent,
    clock::ManualClock,
    config::{Config, Overrides},
    proto::v1::{
        self as pb, access_grant_service_client::AccessGrantServiceClient,
        access_request_service_client::AccessRequestServiceClient,
        account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
        support_access_service_client::SupportAccessServiceClient,
    },
    storage::{Store, audit_log},
};
use chrono::{DateTime, TimeZone, Utc};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// The database the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A temp SQLite file per server.
    Sqlite,
    /// A new database per server on the cluster at `ACCESSGRANT_TEST_POSTGRES_URL`.
    Postgres,
}

/// The backend named by `ACCESSGRANT_TEST_BACKEND`: unset or `sqlite` is SQLite, `postgres`
/// is PostgreSQL (which then requires `ACCESSGRANT_TEST_POSTGRES_URL`); anything else panics.
pub fn backend() -> Backend {
    match std::env::var("ACCESSGRANT_TEST_BACKEND") {
        Err(std::env::VarError::NotPresent) => Backend::Sqlite,
        Ok(name) if name.is_empty() || name == "sqlite" => Backend::Sqlite,
        Ok(name) if name == "postgres" => {
            postgres_admin_url();
            Backend::Postgres
        }
        other => panic!("ACCESSGRANT_TEST_BACKEND must be `sqlite` or `postgres`, not {other:?}"),
    }
}

/// The PostgreSQL URL the harness creates its databases through.
fn postgres_admin_url() -> String {
    match std::env::var("ACCESSGRANT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "ACCESSGRANT_TEST_BACKEND=postgres needs ACCESSGRANT_TEST_POSTGRES_URL (an admin URL \
             such as postgres://postgres@127.0.0.1:5432/postgres); scripts/test starts a \
             throwaway cluster and sets it"
        ),
    }
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// A URL of a new, empty database for one server: SQLite `accessgrant.db` in `dir`, or a
/// database `t_<uuid>` created on the PostgreSQL cluster (never dropped: the cluster is
/// throwaway).
pub async fn fresh_database_url(dir: &Path) -> String {
    match backend() {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("accessgrant.db").display()),
        Backend::Postgres => {
            use sea_orm::{ConnectOptions, ConnectionTrait, Database};
            let admin = postgres_admin_url();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut options = ConnectOptions::new(admin.clone());
            options
                .max_connections(1)
                .min_connections(0)
                .sqlx_logging(false)
                .connect_timeout(Duration::from_secs(10));
            let db = Database::connect(options)
                .await
                .unwrap_or_else(|e| panic!("connecting to {admin}: {e}"));
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
            db.close().await.unwrap();
            with_database(&admin, &name)
        }
    }
}

/// A fresh database of the chosen backend (see [`fresh_database_url`]), migrated, with its
/// URL: for tests that drive storage directly, without a server.
pub async fn migrated_store(dir: &Path) -> (Store, String) {
    let url = fresh_database_url(dir).await;
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating {url}: {e}"));
    (store, url)
}

/// Whether this test must stop here because it is about the SQLite database *file* (reads it
/// with another program, deletes it, …), which has no PostgreSQL counterpart. Says so on
/// stderr when it skips. Only for such file-level tests: everything else runs on both.
pub fn sqlite_only(test_name: &str) -> bool {
    match backend() {
        Backend::Sqlite => false,
        Backend::Postgres => {
            eprintln!(
                "{test_name}: skipped on postgres: it works on the SQLite database file itself"
            );
            true
        }
    }
}

/// Whether this test must stop here because it runs several servers on one database, which
/// only PostgreSQL supports: a SQLite file is served by one process (`ServeLock`). Says so
/// on stderr when it skips.
pub fn postgres_only(test_name: &str) -> bool {
    match backend() {
        Backend::Postgres => false,
        Backend::Sqlite => {
            eprintln!("{test_name}: skipped on sqlite: one server per SQLite file");
            true
        }
    }
}

/// A literal of `bytes` for SQL run through [`TestServer::sql`]: `X'..'` on SQLite,
/// `'\x..'::bytea` on PostgreSQL.
pub fn blob(bytes: &[u8]) -> String {
    match backend() {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

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
    /// Path of the SQLite file; `None` on PostgreSQL.
    pub db_path: Option<PathBuf>,
    /// The backend it runs on.
    pub backend: Backend,
    /// A channel to it.
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Stops `server` and starts a new one on the same database (and clock time).
pub async fn restart(server: TestServer) -> TestServer {
    restart_with(server, |_| {}).await
}

/// [`restart`], letting the test adjust the new server's configuration.
pub async fn restart_with(server: TestServer, adjust: impl FnOnce(&mut Config)) -> TestServer {
    stop_keeping_database(server).await.start_with(adjust).await
}

/// A stopped server's database (and files), to change behind its back and start again.
pub struct Stopped {
    dir: tempfile::TempDir,
    database_url: String,
    now: DateTime<Utc>,
}

/// Stops `server`, keeping its database for [`Stopped::start_with`].
pub async fn stop_keeping_database(mut server: TestServer) -> Stopped {
    let now = accessgrant::clock::Clock::now(&*server.clock);
    if let Some(tx) = server.shutdown.take() {
        let _ = tx.send(());
    }
    if let Some(h) = server.handle.take() {
        h.await.unwrap();
    }
    let TestServer {
        _dir, database_url, ..
    } = server;
    Stopped {
        dir: _dir,
        database_url,
        now,
    }
}

impl Stopped {
    /// Starts a server on the kept database (at the clock time it stopped at).
    pub async fn start_with(self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let started = spawn_on(self.dir, self.database_url, adjust).await;
        started.clock.set(self.now);
        started
    }
}

/// The latest checkpoint once it covers at least `size` events, opened by the independent
/// verifier of [`merkle`]: (note, verifier key, size, root).
pub async fn checkpoint_at_least(s: &TestServer, size: u64) -> (String, String, u64, merkle::H) {
    for _ in 0..500 {
        let r = s
            .audit()
            .get_audit_checkpoint(pb::GetAuditCheckpointRequest {})
            .await
            .unwrap()
            .into_inner();
        let (origin, signed, root) = merkle::open_checkpoint(&r.checkpoint, &r.verifier_key)
            .unwrap_or_else(|| panic!("checkpoint does not verify: {r:?}"));
        assert_eq!(origin, "accessgrant/audit");
        if signed >= size {
            return (r.checkpoint, r.verifier_key, signed, root);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no checkpoint of size {size} was signed");
}

/// Starts another server (a replica, with its own store, writer and clock set to the same
/// time) on `primary`'s database (PostgreSQL only: see [`postgres_only`]).
pub async fn spawn_replica(primary: &TestServer, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let replica = spawn_on(dir, primary.database_url.clone(), adjust).await;
    replica
        .clock
        .set(accessgrant::clock::Clock::now(&*primary.clock));
    replica
}

/// Starts a server with default settings.
pub async fn spawn_server() -> TestServer {
    spawn_server_with(|_| {}).await
}

/// Starts a server after letting the test adjust its configuration.
pub async fn spawn_server_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(dir.path()).await;
    spawn_on(dir, database_url, adjust).await
}

/// Starts a server on `database_url`, keeping `dir` (its files) alive as long as the server.
pub async fn spawn_on(
    dir: tempfile::TempDir,
    database_url: String,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let db_path = accessgrant::storage::sqlite_file::path_of(&database_url);
    let mut config = Config::load(Overrides {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(database_url.clone()),
        ..Overrides::default()
    })
    .unwrap();
    // Tests that want metrics pick their own port.
    config.metrics_listen = None;
    // No expiry sweep unless a test asks for one: the sweep waits on the manual clock, and
    // no test moves it by a century, so events counted by a test never depend on a sweep
    // racing its clock changes. Sweep tests set a short interval and move the clock past it.
    config.expiry_sweep_interval = Duration::from_secs(100 * 365 * 24 * 3600);
    // The same key for every replica and restart of a PostgreSQL database.
    use_test_signing_key(&mut config);
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
        backend: backend(),
        channel,
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

/// The PostgreSQL tests' checkpoint signing key (RFC 8410 §10.3's example key).
pub const TEST_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
    -----END PRIVATE KEY-----\n";

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

    /// A client of `AccessRequestService`.
    pub fn requests(&self) -> AccessRequestServiceClient<Channel> {
        AccessRequestServiceClient::new(self.channel.clone())
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

    /// Asks for an emergency assumption (with [`emergency`]'s justification).
    pub async fn authorize_emergency(&self, id: &str) -> pb::AuthorizeAssumptionResponse {
        let mut req = authorize_request(id);
        req.emergency = Some(emergency());
        self.support()
            .authorize_assumption(req)
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

    /// Takes the database's write lock from another connection and holds it until the
    /// returned guard is dropped: the server's writes wait meanwhile. SQLite: `BEGIN
    /// IMMEDIATE` (writes wait up to the busy timeout). PostgreSQL: the row of `write_fence`
    /// that every write transaction of the server locks first.
    pub async fn hold_write_lock(&self) -> (Store, sea_orm::DatabaseTransaction) {
        use sea_orm::{
            ConnectionTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait,
        };
        let store = Store::connect(&self.database_url).await.unwrap();
        let txn = match self.backend {
            Backend::Sqlite => store
                .reader()
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .unwrap(),
            Backend::Postgres => {
                let txn = store.reader().begin().await.unwrap();
                txn.execute_unprepared("SELECT id FROM write_fence WHERE id = 1 FOR UPDATE")
                    .await
                    .unwrap_or_else(|e| panic!("locking the write_fence row: {e}"));
                txn
            }
        };
        (store, txn)
    }

    /// Installs fault `name`: every INSERT into `audit_events` (only those of `only_account`
    /// when given) fails with the error `injected`. Undo with [`TestServer::remove_fault`].
    pub async fn fail_audit_inserts(&self, name: &str, only_account: Option<&str>) {
        match self.backend {
            Backend::Sqlite => {
                let when = only_account
                    .map(|id| format!("WHEN NEW.account_id = '{id}' "))
                    .unwrap_or_default();
                self.sql(&format!(
                    "CREATE TRIGGER {name} BEFORE INSERT ON audit_events {when}\
                     BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                ))
                .await;
            }
            Backend::Postgres => {
                let when = only_account
                    .map(|id| format!("WHEN (NEW.account_id = '{id}') "))
                    .unwrap_or_default();
                self.sql(&format!(
                    "CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'injected'; END $$"
                ))
                .await;
                self.sql(&format!(
                    "CREATE TRIGGER {name} BEFORE INSERT ON audit_events FOR EACH ROW {when}\
                     EXECUTE FUNCTION {name}_fn()"
                ))
                .await;
            }
        }
    }

    /// Installs fault `name`: a transaction that appends an event of `account` fails at
    /// `COMMIT` (a deferred foreign key the append trigger violates), after every statement of
    /// it succeeded. Undo with [`TestServer::remove_commit_fault`].
    pub async fn fail_commits(&self, name: &str, account: &str) {
        self.sql(&format!(
            "CREATE TABLE {name}_parent (id INTEGER PRIMARY KEY)"
        ))
        .await;
        self.sql(&format!(
            "CREATE TABLE {name}_child (parent INTEGER REFERENCES {name}_parent (id) \
             DEFERRABLE INITIALLY DEFERRED)"
        ))
        .await;
        match self.backend {
            Backend::Sqlite => {
                self.sql(&format!(
                    "CREATE TRIGGER {name} AFTER INSERT ON audit_events \
                     WHEN NEW.account_id = '{account}' \
                     BEGIN INSERT INTO {name}_child VALUES (1); END;"
                ))
                .await;
            }
            Backend::Postgres => {
                self.sql(&format!(
                    "CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN INSERT INTO {name}_child VALUES (1); RETURN NEW; END $$"
                ))
                .await;
                self.sql(&format!(
                    "CREATE TRIGGER {name} AFTER INSERT ON audit_events FOR EACH ROW \
                     WHEN (NEW.account_id = '{account}') EXECUTE FUNCTION {name}_fn()"
                ))
                .await;
            }
        }
    }

    /// Removes fault `name` installed by [`TestServer::fail_commits`].
    pub async fn remove_commit_fault(&self, name: &str) {
        match self.backend {
            Backend::Sqlite => self.sql(&format!("DROP TRIGGER {name}")).await,
            Backend::Postgres => {
                self.sql(&format!("DROP TRIGGER {name} ON audit_events"))
                    .await;
                self.sql(&format!("DROP FUNCTION {name}_fn()")).await;
            }
        }
        self.sql(&format!("DROP TABLE {name}_child")).await;
        self.sql(&format!("DROP TABLE {name}_parent")).await;
    }

    /// Removes fault `name` installed by [`TestServer::fail_audit_inserts`].
    pub async fn remove_fault(&self, name: &str) {
        match self.backend {
            Backend::Sqlite => self.sql(&format!("DROP TRIGGER {name}")).await,
            Backend::Postgres => {
                self.sql(&format!("DROP TRIGGER {name} ON audit_events"))
                    .await;
                self.sql(&format!("DROP FUNCTION {name}_fn()")).await;
            }
        }
    }

    /// Runs SQL straight against the server's database (to tamper, inject faults). Keep it
    /// portable (SQLite and PostgreSQL), or branch on [`TestServer::backend`].
    pub async fn sql(&self, statement: &str) {
        use sea_orm::ConnectionTrait;
        let store = Store::connect(&self.database_url).await.unwrap();
        store.reader().execute_unprepared(statement).await.unwrap();
        store.close().await.unwrap();
    }

    /// Runs a `SELECT COUNT(*) …` (or any single BIGINT query) against the server's database.
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
        access_request_id: String::new(),
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

/// True if the peer closes `stream` (EOF or an error such as a reset) within `limit`;
/// whatever it sends before (HTTP/2 SETTINGS, a GOAWAY) is skipped.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The arguments of `accessgrant serve` on `url`: any free loopback port, no metrics, and on
/// PostgreSQL a config naming the test signing key (which PostgreSQL requires).
pub fn serve_args(url: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--database-url",
        url,
    ]
    .map(String::from)
    .to_vec();
    args.extend(key_config_args(url));
    args
}

/// Files of this test process: the PostgreSQL tests' signing key and a config naming it.
fn key_files() -> &'static (PathBuf, PathBuf) {
    static FILES: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("accessgrant-test-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("audit-key.pem");
        std::fs::write(&key, TEST_SIGNING_KEY).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[audit]\nsigning_key_file = {:?}\n",
                key.display().to_string()
            ),
        )
        .unwrap();
        (key, config)
    })
}

/// `--config FILE` naming the test signing key on PostgreSQL, which requires a key (SQLite
/// servers create theirs beside the database, as in production); nothing on SQLite.
pub fn key_config_args(url: &str) -> Vec<String> {
    if url.starts_with("postgres") {
        vec!["--config".into(), key_files().1.display().to_string()]
    } else {
        Vec::new()
    }
}

/// Gives a PostgreSQL configuration the test signing key (nothing on SQLite).
pub fn use_test_signing_key(config: &mut Config) {
    if config.database_url.starts_with("postgres") && config.audit.signing_key_file.is_none() {
        config.audit.signing_key_file = Some(key_files().0.clone());
    }
}

/// A loopback port for a listener a test starts later (a metrics port, a child process's
/// gRPC port), taken **below the kernel's ephemeral range** (32768–60999 by default). A port
/// from `bind(":0")` is itself ephemeral: once released, any other test server binding
/// `127.0.0.1:0` may be handed it before ours binds, and the test then talks to the wrong
/// server (an HTTP/1.1 scrape sent to a gRPC port is reset). Ports below the range are never
/// handed out that way; the bind here only checks that no one holds this one now.
pub fn reserved_port() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Spread test processes (each test binary is one) over the range by their pid.
    let base = std::process::id().wrapping_mul(7919);
    loop {
        let n = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(13));
        let port = 20_000 + (n % 12_000) as u16;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
}
