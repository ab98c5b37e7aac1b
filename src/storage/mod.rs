//! Persistence: sea-orm entities, migrations and repositories over SQLite (embedded default) or
//! PostgreSQL.
//!
//! **Write discipline.** Every change runs in one transaction — a group-commit batch
//! ([`writer`], [`batch`]) — which writes the grant/account rows *and* their audit event
//! together or not at all. It is obtained from [`Store::begin_write`], except for SQLite
//! decision batches, which the writer runs on its own connection ([`sqlite_writer`]) under the
//! same mutex and the same `BEGIN IMMEDIATE`. On SQLite, writes pass through one in-process
//! mutex and start with `BEGIN IMMEDIATE`: a deferred transaction that reads first and then writes would try to
//! upgrade its read lock, and SQLite answers such an upgrade with `SQLITE_BUSY` at once (no
//! busy wait) whenever another writer got there first. Taking the write lock up front, one
//! writer at a time, makes that impossible, and readers are never blocked (WAL mode). On
//! PostgreSQL, several replicas write to one database: every write transaction first locks the
//! single row of `write_fence` (`SELECT … FOR UPDATE`), which serializes write transactions
//! across all replicas through the database itself. That is what keeps audit positions in
//! commit order (see the migration `m20261126_000006_create_write_fence`), rules out
//! deadlocks between batches touching several accounts, and makes every read-then-write
//! inside a batch (grant state before an ALLOW, a `request_id` lookup) see everything
//! committed before it (PostgreSQL's READ COMMITTED takes a fresh snapshot per statement).
//! Group commit makes it one lock per batch, not per request.
//!
//! **Durability.** SQLite runs with `journal_mode=WAL` and `synchronous=FULL`: a commit has
//! reached the disk (the WAL is fsynced) before the call returns. PostgreSQL connections pin
//! `synchronous_commit=on` whatever the server default is.
//!
//! **Outages.** Statements are bounded by `statement_timeout` (PostgreSQL), connection
//! checkouts by `acquire_timeout`; a broken connection is dropped by the pool and replaced on
//! a later checkout, so the service recovers by itself when the database returns.

pub mod accounts;
pub mod assumptions;
pub mod audit_log;
pub mod batch;
pub mod entities;
pub mod grant_cache;
pub mod grants;
pub mod idempotency;
pub mod migrations;
pub mod sqlite_file;
pub mod sqlite_writer;
pub mod thread_priority;
pub mod writer;

use std::{ops::Deref, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::domain::Error;

/// A pooled connection idle this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Longest a readiness ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a SQLite statement waits for a lock held by another process (e.g. a backup)
/// before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of the SQLite writer connection, in KiB (negative `cache_size`): the hot index
/// pages of every table a batch appends to stay in memory (SQLite's default is 2 MiB).
const WRITER_CACHE_SIZE: i64 = -32_768;

/// SQLite settings of every connection: WAL (readers beside the writer), `synchronous=FULL`
/// (a commit is on disk before anyone is answered), foreign keys.
fn sqlite_options(
    o: sea_orm::sqlx::sqlite::SqliteConnectOptions,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    o.journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
}

/// How the pool talks to the database (`[database]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Connections in the pool: one is busy with the group-commit writer, the rest serve
    /// reads and watch streams.
    pub pool_size: u32,
    /// Longest wait for a free (or new) connection before a call fails `UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// PostgreSQL: longest any statement may run (also bounds waiting for a row lock held by
    /// a stuck replica). Idle-in-transaction sessions are cut after twice this.
    pub statement_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            pool_size: 8,
            // Short: during an outage a call should answer UNAVAILABLE promptly (clients
            // retry), not hang until its deadline.
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Advisory lock key held while migrating PostgreSQL ("accessgr" in ASCII, truncated).
const MIGRATION_LOCK_KEY: i64 = 0x6163_6365_7373_6772;

/// Locks the single `write_fence` row: the first statement of every PostgreSQL write
/// transaction (see the module doc).
const LOCK_WRITE_FENCE: &str = "SELECT id FROM write_fence WHERE id = 1 FOR UPDATE";

/// A database failure becomes a retryable storage error. The cause is logged here, once, and
/// never reaches the client.
impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        if is_undecodable(&e) {
            // The database answered; what it holds is wrong (edited by hand, corrupted, or a
            // bug). Retrying will not help, so this is not `STORAGE_UNAVAILABLE`.
            tracing::error!(error = %e, "a stored value cannot be decoded");
            return Error::Internal(format!("undecodable stored value: {e}"));
        }
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
            // Every key written (sequence, ids, idempotency key) is derived from rows read in
            // the same serialized transaction, so a collision means the stored state is
            // damaged (a deleted chain head, say): the same answer on every retry.
            tracing::error!(error = %e, "a write collided with a stored key: damaged stored state");
            metrics::counter!(crate::metrics::DB_ERRORS).increment(1);
            return Error::Internal(format!("unique key collision: {e}"));
        }
        tracing::error!(error = %e, "database operation failed");
        metrics::counter!(crate::metrics::DB_ERRORS).increment(1);
        Error::Storage(e.to_string())
    }
}

/// Whether `e` reports a stored value that cannot be decoded into its type (say, text that is
/// not UTF-8), as opposed to a database that failed to answer.
pub(crate) fn is_undecodable(e: &DbErr) -> bool {
    match e {
        DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => true,
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) => matches!(
            **e,
            sea_orm::sqlx::Error::ColumnDecode { .. } | sea_orm::sqlx::Error::Decode(_)
        ),
        _ => false,
    }
}

/// The database, with the write path that keeps changes atomic and serialized.
#[derive(Clone, Debug)]
pub struct Store {
    /// The connection pool (readers; on PostgreSQL writers too).
    db: DatabaseConnection,
    /// Where write transactions run: on SQLite a pool of **one** dedicated connection, so the
    /// writer's page cache stays warm from batch to batch (a connection that sees another
    /// connection's commit must drop its cache and re-read pages); on PostgreSQL the pool.
    writer: DatabaseConnection,
    /// Serializes write transactions on SQLite; unused on PostgreSQL (the `write_fence` row
    /// lock does that job across replicas).
    write_lock: Arc<Mutex<()>>,
    /// Bumped after every commit, so audit watchers wake up instead of polling hot.
    commits: Arc<watch::Sender<u64>>,
    /// The SQLite file's identity, to notice it being deleted or replaced underneath us.
    file: Option<Arc<sqlite_file::SqliteFile>>,
    /// Accounts with their grants, for reads (SQLite only: see [`grant_cache`]).
    grant_cache: Option<Arc<grant_cache::GrantCache>>,
    /// The SQLite file, for the writer thread's decision connection (see [`sqlite_writer`]).
    sqlite_path: Option<std::path::PathBuf>,
}

/// A write transaction. Dropping it without [`WriteTxn::commit`] rolls it back.
pub struct WriteTxn {
    /// The open transaction.
    txn: DatabaseTransaction,
    /// Held until commit or rollback (SQLite only).
    _guard: Option<OwnedMutexGuard<()>>,
    /// Notified after a successful commit.
    commits: Arc<watch::Sender<u64>>,
    /// The SQLite file, re-checked after the commit (see [`Store::confirm_file`]).
    file: Option<Arc<sqlite_file::SqliteFile>>,
}

impl WriteTxn {
    /// Rolls back (explicitly, rather than in `Drop`, so the connection is clean before it
    /// returns to the pool).
    pub async fn rollback(self) -> Result<(), Error> {
        self.txn.rollback().await.map_err(Error::from)
    }

    /// Commits durably, then wakes audit watchers. Fails if the SQLite file is no longer the
    /// one the server opened: the commit then went to a file nobody will read again, and no
    /// caller may be told it is durable.
    pub async fn commit(self) -> Result<(), Error> {
        self.txn.commit().await.map_err(Error::from)?;
        confirm(self.file.as_deref())?;
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Store {
    /// Connects with default [`DatabaseSettings`] (offline tools, tests).
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        Self::connect_with(url, &DatabaseSettings::default()).await
    }

    /// Connects (creating the SQLite file with `mode=rwc`) and configures durability.
    pub async fn connect_with(url: &str, settings: &DatabaseSettings) -> Result<Self, DbErr> {
        let statement_ms = settings.statement_timeout.as_millis().to_string();
        let idle_in_txn_ms = (settings.statement_timeout.as_millis() * 2).to_string();
        let mut options = ConnectOptions::new(url.to_owned());
        options
            // sea-orm defaults SQLite pools to ONE connection, which would queue every read
            // behind the writer's open transaction. WAL readers can run beside the writer, so
            // give them connections of their own.
            .max_connections(settings.pool_size)
            .min_connections(2.min(settings.pool_size))
            // A ping before every checkout would double the round trips of a short read; ping
            // only connections idle long enough to have been cut (a database restart, a
            // proxy), so after an outage dead connections are replaced instead of failing
            // the next requests one by one.
            .test_before_acquire_if_idle_for(IDLE_PING_AFTER)
            .sqlx_logging(false)
            .connect_timeout(settings.acquire_timeout)
            .acquire_timeout(settings.acquire_timeout)
            .map_sqlx_sqlite_opts(sqlite_options)
            .map_sqlx_postgres_opts(move |o| {
                o.application_name("accessgrant").options([
                    // Every ALLOW must be durable before the reply, whatever the server's
                    // default says.
                    ("synchronous_commit", "on"),
                    ("statement_timeout", statement_ms.as_str()),
                    ("lock_timeout", statement_ms.as_str()),
                    (
                        "idle_in_transaction_session_timeout",
                        idle_in_txn_ms.as_str(),
                    ),
                ])
            });
        let db = Database::connect(options.clone()).await?;
        let sqlite = db.get_database_backend() == DbBackend::Sqlite;
        let writer = if sqlite {
            options
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    sqlite_options(o).pragma("cache_size", WRITER_CACHE_SIZE.to_string())
                });
            Database::connect(options).await?
        } else {
            db.clone()
        };
        let grant_cache = sqlite.then(|| Arc::new(grant_cache::GrantCache::default()));
        Ok(Self {
            db,
            writer,
            sqlite_path: sqlite_file::path_of(url).filter(|_| sqlite),
            write_lock: Arc::new(Mutex::new(())),
            commits: Arc::new(watch::channel(0).0),
            file: sqlite_file::SqliteFile::open(url).map(Arc::new),
            grant_cache,
        })
    }

    /// Applies pending migrations, all in one transaction. Processes starting together would
    /// race to create the same tables: on PostgreSQL the transaction holds an advisory lock,
    /// on SQLite it is immediate (takes the write lock first), so one process migrates and
    /// the others then find nothing left to do.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if self.backend() == DbBackend::Postgres {
            let txn = self.db.begin().await?;
            // Waiting for another replica's migration, or a long migration, is not an outage:
            // lift the per-statement limits for this transaction only.
            txn.execute_unprepared(
                "SET LOCAL lock_timeout = '5min'; SET LOCAL statement_timeout = 0",
            )
            .await?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await?;
            migrations::Migrator::up(&txn, None).await?;
            txn.commit().await
        } else {
            // SQLite: one immediate transaction, so two processes opening a new file at once
            // (a server and `accessgrant migrate`) migrate one after the other.
            let txn = self
                .db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await?;
            migrations::Migrator::up(&txn, None).await?;
            txn.commit().await
        }
    }

    /// The pool, for reads.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Starts a read transaction: a consistent snapshot across several queries.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, Error> {
        self.db.begin().await.map_err(Error::from)
    }

    /// Starts a read-only transaction that sees one snapshot for all its statements (SQLite:
    /// a deferred transaction; PostgreSQL: `REPEATABLE READ`).
    pub async fn begin_snapshot(&self) -> Result<DatabaseTransaction, Error> {
        if self.backend() == DbBackend::Sqlite {
            self.begin_read().await
        } else {
            Ok(self
                .db
                .begin_with_config(
                    Some(sea_orm::IsolationLevel::RepeatableRead),
                    Some(sea_orm::AccessMode::ReadOnly),
                )
                .await?)
        }
    }

    /// Starts a write transaction (see the module doc for why it is immediate and serialized
    /// on SQLite).
    pub async fn begin_write(&self) -> Result<WriteTxn, Error> {
        self.confirm_file()?;
        if self.backend() == DbBackend::Sqlite {
            let guard = self.write_lock.clone().lock_owned().await;
            let txn = self
                .writer
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await?;
            Ok(WriteTxn {
                txn,
                _guard: Some(guard),
                commits: self.commits.clone(),
                file: self.file.clone(),
            })
        } else {
            let txn = self.db.begin().await?;
            txn.execute_unprepared(LOCK_WRITE_FENCE).await?;
            Ok(WriteTxn {
                txn,
                _guard: None,
                commits: self.commits.clone(),
                file: None,
            })
        }
    }

    /// The SQLite database file, if this store is one (not in-memory, not PostgreSQL).
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// Takes the SQLite write lock, blocking the calling (non-async) thread, for a batch
    /// written outside [`Store::begin_write`] (the decision connection), so it never overlaps
    /// another write transaction of this process.
    pub(crate) fn lock_writes_blocking(&self) -> OwnedMutexGuard<()> {
        self.write_lock.clone().blocking_lock_owned()
    }

    /// Wakes audit watchers after a commit made outside [`WriteTxn::commit`].
    pub(crate) fn notify_commit(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The read cache of accounts and grants, if this backend has one (SQLite).
    pub fn grant_cache(&self) -> Option<&grant_cache::GrantCache> {
        self.grant_cache.as_deref()
    }

    /// A receiver that changes after every commit through this store.
    pub fn subscribe_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Connections of the pool: (in use, idle), for the pool gauges.
    pub fn pool_usage(&self) -> (u32, u32) {
        let (size, idle) = match self.backend() {
            DbBackend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
            _ => {
                let pool = self.db.get_postgres_connection_pool();
                (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                )
            }
        };
        (size.saturating_sub(idle), idle)
    }

    /// Checks the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        if let Some(file) = &self.file
            && !file.check()
        {
            return Err(Error::Storage(
                "the database file is missing or was replaced".into(),
            ));
        }
        // A database that stopped answering (not just refusing) must not hang readiness.
        match tokio::time::timeout(PING_TIMEOUT, self.db.ping()).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Storage("database ping timed out".into())),
        }
    }

    /// True once the SQLite file was found deleted or replaced (see [`sqlite_file`]).
    pub fn file_lost(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.is_lost())
    }

    /// Returns once the SQLite file is found deleted or replaced; never for other databases.
    pub async fn wait_file_lost(&self) {
        match &self.file {
            Some(file) => file.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Adds the serve lock file this server holds to the file watch: if it is deleted or
    /// replaced, the server fails closed as if the database file were (see [`sqlite_file`]).
    pub fn watch_serve_lock(&self, lock: &sqlite_file::ServeLock) {
        if let (Some(file), Some(held)) = (&self.file, lock.held()) {
            file.watch_serve_lock(held);
        }
    }

    /// Checks, now (one `stat`), that the SQLite file is still the one the server opened.
    /// Writers call it before a transaction and again after its commit, before anyone is
    /// answered: a file deleted or replaced mid-flight must never be acknowledged into.
    pub(crate) fn confirm_file(&self) -> Result<(), Error> {
        confirm(self.file.as_deref())
    }

    /// Closes the pool (after draining requests), so SQLite checkpoints its WAL.
    pub async fn close(self) -> Result<(), DbErr> {
        if self.backend() == DbBackend::Sqlite {
            self.writer.close().await?;
        }
        self.db.close().await
    }
}

fn confirm(file: Option<&sqlite_file::SqliteFile>) -> Result<(), Error> {
    match file {
        Some(file) if !file.check() => Err(Error::Storage(
            "the database file is missing or was replaced".into(),
        )),
        _ => Ok(()),
    }
}

/// Time to storage microseconds.
pub fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Time to storage microseconds, rounding a fraction of a microsecond up (for query bounds).
pub fn to_us_ceil(t: DateTime<Utc>) -> i64 {
    let us = t.timestamp_micros();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000) {
        us
    } else {
        us.saturating_add(1)
    }
}

/// Storage microseconds to time. Out-of-range values (only possible by editing the database)
/// are an internal error, not a panic.
pub fn from_us(us: i64) -> Result<DateTime<Utc>, Error> {
    Utc.timestamp_micros(us)
        .single()
        .ok_or_else(|| Error::Internal(format!("stored time {us} out of range")))
}

/// Optional variant of [`from_us`].
pub fn from_us_opt(us: Option<i64>) -> Result<Option<DateTime<Utc>>, Error> {
    us.map(from_us).transpose()
}
