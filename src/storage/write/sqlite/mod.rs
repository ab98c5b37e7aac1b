//! The SQLite side of the group-commit loop: a plain SQLite connection (rusqlite) owned by
//! the writer's own thread, with its prepared statements kept for its lifetime.
//!
//! Why not the sqlx pool: every statement through sqlx-sqlite is a hop to the connection's
//! worker thread and back; on two busy cores each hop waits for a scheduler slot (0.3–1.5 ms
//! measured), and the writer sat idle between statements while commands queued. Here a batch
//! is `BEGIN IMMEDIATE`, point reads of what it announced, prepared writes, `COMMIT`, with no
//! hop in between. Durability is the pool's: WAL with `synchronous=FULL`; the commit returns
//! once the WAL is on disk, and only then is anyone answered.
//!
//! The loop is the file's only writer in this process (the serve lock keeps other servers
//! out; `BEGIN IMMEDIATE` and the busy timeout order us against offline tools). Before each
//! batch and after each commit the file is checked (see `storage::sqlite_file`): a batch
//! never commits into, and nobody is told of a commit into, a file that was deleted or
//! replaced.

mod load;
mod save;
mod tree;

use std::{collections::HashMap, future::Future, path::Path};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::{
    backend::Backend,
    keys::{Keys, Loaded},
    rows::{Changes, CheckpointRow, TreeTip},
};
use crate::{
    domain::Error,
    storage::Store,
    transparency::{Hash, NodeKey},
};

/// Page cache of the connection, in KiB (negative `cache_size`): the hot index pages of
/// every table a batch appends to stay in memory (SQLite's default is 2 MiB).
const CACHE_SIZE_KIB: i64 = 32_768;
/// How long a write waits for another process's write lock before failing.
const BUSY_TIMEOUT_MS: i64 = 5_000;

/// The writer thread's connection.
#[derive(Debug)]
pub struct SqliteBackend {
    /// The connection; every call blocks the writer thread (which is what it is for).
    conn: Connection,
    /// For the file checks before and after each batch.
    store: Store,
}

impl SqliteBackend {
    /// Opens the database file, which must exist: the pool created and migrated it. Never
    /// creating one means a path that does not name the pool's file fails here instead of
    /// writing into a new, empty file.
    pub fn open(path: &Path, store: Store) -> Result<Self, Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
             PRAGMA cache_size = -{CACHE_SIZE_KIB};"
        ))?;
        Ok(Self { conn, store })
    }

    fn rollback_now(&self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a write batch");
        }
    }
}

impl Backend for SqliteBackend {
    fn begin(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        let result = self
            .store
            .confirm_file()
            .and_then(|()| Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?));
        std::future::ready(result)
    }

    fn load(
        &mut self,
        keys: &Keys,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Loaded, Error>> + Send {
        std::future::ready(load::load(&self.conn, keys, now))
    }

    fn tree_tip(&mut self) -> impl Future<Output = Result<TreeTip, Error>> + Send {
        std::future::ready(tree::tip(&self.conn))
    }

    fn tree_nodes(
        &mut self,
        keys: &[NodeKey],
    ) -> impl Future<Output = Result<HashMap<NodeKey, Hash>, Error>> + Send {
        std::future::ready(tree::nodes(&self.conn, keys))
    }

    fn latest_checkpoint(
        &mut self,
        origin: &str,
    ) -> impl Future<Output = Result<Option<CheckpointRow>, Error>> + Send {
        std::future::ready(tree::latest_checkpoint(&self.conn, origin))
    }

    fn write(&mut self, changes: &Changes) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(save::save(&self.conn, changes))
    }

    fn commit(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        let result = match self.conn.execute_batch("COMMIT") {
            // Committed, but into a file that was deleted or replaced meanwhile: nobody will
            // read it again, so nobody is told it is durable.
            Ok(()) => self.store.confirm_file(),
            Err(e) => {
                self.rollback_now();
                Err(e.into())
            }
        };
        std::future::ready(result)
    }

    fn rollback(&mut self) -> impl Future<Output = ()> + Send {
        self.rollback_now();
        std::future::ready(())
    }
}
