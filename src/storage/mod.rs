//! Persistence: sea-orm entities, migrations and repositories over SQLite (embedded default) or
//! PostgreSQL.
//!
//! **Write discipline.** Every change runs in one transaction obtained from
//! [`Store::begin_write`], which writes the grant/account rows *and* their audit event together
//! or not at all. On SQLite, writes also pass through one in-process mutex and start with
//! `BEGIN IMMEDIATE`: a deferred transaction that reads first and then writes would try to
//! upgrade its read lock, and SQLite answers such an upgrade with `SQLITE_BUSY` at once (no
//! busy wait) whenever another writer got there first. Taking the write lock up front, one
//! writer at a time, makes that impossible, and readers are never blocked (WAL mode). On
//! PostgreSQL, concurrent writers (several replicas) are serialized per account by row locks
//! (`SELECT … FOR UPDATE`) taken inside the transaction.
//!
//! **Durability.** SQLite runs with `journal_mode=WAL` and `synchronous=FULL`: a commit has
//! reached the disk (the WAL is fsynced) before the call returns.

pub mod accounts;
pub mod assumptions;
pub mod audit_log;
pub mod entities;
pub mod grants;
pub mod idempotency;
pub mod migrations;
pub mod sqlite_file;
pub mod writer;

use std::{ops::Deref, sync::Arc, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::domain::Error;

/// How long a SQLite statement waits for a lock held by another process (e.g. a backup)
/// before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: one for the group-commit writer, the rest for readers.
const POOL_CONNECTIONS: u32 = 8;

/// A database failure becomes a retryable storage error. The cause is logged here, once, and
/// never reaches the client.
impl From<DbErr> for Error {
    fn from(e: DbErr) -> Self {
        tracing::error!(error = %e, "database operation failed");
        metrics::counter!(crate::metrics::DB_ERRORS).increment(1);
        Error::Storage(e.to_string())
    }
}

/// The database, with the write path that keeps changes atomic and serialized.
#[derive(Clone, Debug)]
pub struct Store {
    /// The connection pool (readers and writers).
    db: DatabaseConnection,
    /// Serializes write transactions on SQLite; unused on PostgreSQL (row locks do that job
    /// across replicas).
    write_lock: Arc<Mutex<()>>,
    /// Bumped after every commit, so audit watchers wake up instead of polling hot.
    commits: Arc<watch::Sender<u64>>,
    /// The SQLite file's identity, to notice it being deleted or replaced underneath us.
    file: Option<Arc<sqlite_file::SqliteFile>>,
}

/// A write transaction. Dropping it without [`WriteTxn::commit`] rolls it back.
pub struct WriteTxn {
    /// The open transaction.
    txn: DatabaseTransaction,
    /// Held until commit or rollback (SQLite only).
    _guard: Option<OwnedMutexGuard<()>>,
    /// Notified after a successful commit.
    commits: Arc<watch::Sender<u64>>,
}

impl WriteTxn {
    /// Commits durably, then wakes audit watchers.
    pub async fn commit(self) -> Result<(), Error> {
        self.txn.commit().await.map_err(Error::from)?;
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
    /// Connects (creating the SQLite file with `mode=rwc`) and configures durability.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            // sea-orm defaults SQLite pools to ONE connection, which would queue every read
            // behind the writer's open transaction. WAL readers can run beside the writer, so
            // give them connections of their own.
            .max_connections(POOL_CONNECTIONS)
            .min_connections(2)
            // A ping before every checkout doubles the round trips of a short read.
            .test_before_acquire(false)
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            write_lock: Arc::new(Mutex::new(())),
            commits: Arc::new(watch::channel(0).0),
            file: sqlite_file::SqliteFile::open(url).map(Arc::new),
        })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        migrations::Migrator::up(&self.db, None).await
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
        if self.file_lost() {
            return Err(Error::Storage(
                "the database file is missing or was replaced".into(),
            ));
        }
        if self.backend() == DbBackend::Sqlite {
            let guard = self.write_lock.clone().lock_owned().await;
            let txn = self
                .db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await?;
            Ok(WriteTxn {
                txn,
                _guard: Some(guard),
                commits: self.commits.clone(),
            })
        } else {
            Ok(WriteTxn {
                txn: self.db.begin().await?,
                _guard: None,
                commits: self.commits.clone(),
            })
        }
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
        self.db.ping().await.map_err(Error::from)
    }

    /// True once the SQLite file was found deleted or replaced (see [`sqlite_file`]).
    pub fn file_lost(&self) -> bool {
        self.file.as_ref().is_some_and(|f| f.is_lost())
    }

    /// Closes the pool (after draining requests), so SQLite checkpoints its WAL.
    pub async fn close(self) -> Result<(), DbErr> {
        self.db.close().await
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
