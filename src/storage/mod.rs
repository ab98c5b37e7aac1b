//! Persistence: sea-orm entities, migrations and repositories over SQLite (embedded default) or
//! PostgreSQL.
//!
//! **Write discipline.** Every change is a command run by the one group-commit loop
//! ([`write`]): one transaction per batch writes the account/grant rows *and* their audit
//! events together or not at all, through one backend per database. On SQLite the loop's
//! thread owns the only write connection (rusqlite) and starts each batch with `BEGIN
//! IMMEDIATE`: a deferred transaction that reads first and then writes would have to upgrade
//! its lock, which SQLite refuses at once (`SQLITE_BUSY`) if another process (a backup, an
//! offline tool) wrote meanwhile; readers are never blocked (WAL mode). On PostgreSQL several
//! replicas write to one database: every write transaction first locks the single row of
//! `write_fence` (`SELECT … FOR UPDATE`), which serializes write transactions across all
//! replicas through the database itself. That is what keeps audit positions in commit order
//! (see the migration `m20261126_000006_create_write_fence`), rules out deadlocks between
//! batches touching several accounts, and makes every read-then-write inside a batch (grant
//! state before an ALLOW, a `request_id` lookup) see everything committed before it.
//! Group commit makes it one lock per batch, not per request.
//!
//! **Durability.** SQLite runs with `journal_mode=WAL` and `synchronous=FULL`: a commit has
//! reached the disk (the WAL is fsynced) before the call returns. PostgreSQL connections pin
//! `synchronous_commit=on` whatever the server default is.
//!
//! **Outages.** Statements are bounded by `statement_timeout` (PostgreSQL), connection
//! checkouts by `acquire_timeout`; a broken connection is dropped by the pool and replaced on
//! a later checkout, so the service recovers by itself when the database returns.

pub mod access_requests;
pub mod accounts;
pub mod assumptions;
pub mod audit_log;
pub mod entities;
pub mod error;
pub mod grant_cache;
pub mod grants;
pub mod migrations;
pub mod page;
pub mod sqlite_file;
pub mod thread_priority;
pub mod tree;
pub mod write;

use std::{ops::Deref, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::watch;

use crate::domain::Error;

/// A pooled connection idle this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Longest a readiness ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a SQLite statement waits for a lock held by another process (e.g. a backup)
/// before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
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
/// transaction (see the module doc). The row also carries the Merkle tree's head, which the
/// batch appends to, so reading it costs no round trip of its own.
const LOCK_WRITE_FENCE: &str =
    "SELECT tree_size, tree_frontier FROM write_fence WHERE id = 1 FOR UPDATE";

pub(crate) use error::is_undecodable;

/// The database, with the write path that keeps changes atomic and serialized.
#[derive(Clone, Debug)]
pub struct Store {
    /// The connection pool (readers; on PostgreSQL the write loop's transactions too).
    db: DatabaseConnection,
    /// Bumped after every commit, so audit watchers wake up instead of polling hot.
    commits: Arc<watch::Sender<u64>>,
    /// The SQLite file's identity, to notice it being deleted or replaced underneath us.
    file: Option<Arc<sqlite_file::SqliteFile>>,
    /// Accounts with their grants, for reads (SQLite only: see [`grant_cache`]).
    grant_cache: Option<Arc<grant_cache::GrantCache>>,
    /// The SQLite file, for the write loop's own connection (see [`write::sqlite`]).
    sqlite_path: Option<std::path::PathBuf>,
}

/// A write transaction. Dropping it without [`WriteTxn::commit`] rolls it back.
pub struct WriteTxn {
    /// The open transaction.
    txn: DatabaseTransaction,
    /// The Merkle tree's head as the fence row holds it.
    pub tree_tip: write::rows::TreeTip,
}

impl WriteTxn {
    /// Rolls back (explicitly, rather than in `Drop`, so the connection is clean before it
    /// returns to the pool).
    pub async fn rollback(self) -> Result<(), Error> {
        self.txn.rollback().await.map_err(Error::from)
    }

    /// Commits durably.
    pub async fn commit(self) -> Result<(), Error> {
        self.txn.commit().await.map_err(Error::from)
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
        let grant_cache = sqlite.then(|| Arc::new(grant_cache::GrantCache::default()));
        Ok(Self {
            db,
            sqlite_path: sqlite_file::path_of(url).filter(|_| sqlite),
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

    /// Starts a PostgreSQL write transaction holding the write fence (see the module doc).
    /// Only the write loop's PostgreSQL backend calls it; SQLite writes go through the loop's
    /// own connection.
    pub async fn begin_write(&self) -> Result<WriteTxn, Error> {
        if self.backend() != DbBackend::Postgres {
            return Err(Error::Internal(
                "SQLite writes go through the write loop's own connection".into(),
            ));
        }
        let txn = self.db.begin().await?;
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Postgres,
                LOCK_WRITE_FENCE,
            ))
            .await?
            .ok_or_else(|| Error::Internal("the write_fence row is missing".into()))?;
        let tree_tip = write::rows::TreeTip::from_stored(
            row.try_get_by_index::<i64>(0)?,
            &row.try_get_by_index::<Vec<u8>>(1)?,
        )?;
        Ok(WriteTxn { txn, tree_tip })
    }

    /// The SQLite database file, if this store is one (not in-memory, not PostgreSQL).
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// Wakes audit watchers after a commit (the write loop calls it).
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
