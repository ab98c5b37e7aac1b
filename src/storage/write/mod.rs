//! The write path: every change to the database is a [`Command`] run by the one
//! group-commit loop ([`group_commit`]), which loads what a batch of commands announced,
//! applies them in order against the batch's [`View`], writes every changed row and commits
//! once — through one [`Backend`] per database ([`sqlite`], [`postgres`]). Nothing writes
//! outside this loop: requests, the expiry sweep and pruning all submit commands.
//!
//! See `docs/architecture.md` ("The write discipline") for why it is shaped this way.

pub mod backend;
pub mod columns;
pub mod command;
pub mod draft;
pub mod group_commit;
pub mod keys;
pub mod postgres;
pub mod rows;
pub mod sqlite;
pub mod tree;
pub mod view;

pub use backend::Backend;
pub use command::{Command, Idempotency};
pub use draft::{Appended, Draft};
pub use group_commit::{MAX_BATCH, Writer};
pub use keys::{Keys, Loaded, TreeKeys};
pub use rows::{ChainHead, Changes, CheckpointRow, GrantRow, TreeState};
pub use view::View;

use super::{
    Store,
    thread_priority::{WRITER_NICE, set_current_thread_nice},
};
use crate::clock::SharedClock;

/// Starts the loop over `store` (needs a Tokio runtime): on a SQLite file, a thread of its
/// own with the rusqlite backend, raised above the request workers when permitted; on
/// PostgreSQL, a task with the sea-orm backend. A SQLite database without a file (in
/// memory) cannot hold a durable audit log: its writer refuses every write.
pub fn start(store: Store, clock: SharedClock) -> Writer {
    if store.backend() == sea_orm::DbBackend::Postgres {
        let (writer, looped) =
            Writer::new(postgres::PostgresBackend::new(store.clone()), store, clock);
        tokio::spawn(looped);
        return writer;
    }
    let Some(path) = store.sqlite_path().map(std::path::Path::to_path_buf) else {
        tracing::error!(
            "an in-memory SQLite database cannot keep a durable audit log; writes are refused"
        );
        return Writer::stopped();
    };
    let backend = match sqlite::SqliteBackend::open(&path, store.clone()) {
        Ok(backend) => backend,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the SQLite writer connection; writes are refused");
            return Writer::stopped();
        }
    };
    let (writer, looped) = Writer::new(backend, store, clock);
    let spawned = std::thread::Builder::new()
        .name("accessgrant-writer".into())
        .spawn(move || {
            match set_current_thread_nice(WRITER_NICE) {
                Ok(()) => tracing::debug!(nice = WRITER_NICE, "writer thread priority raised"),
                Err(e) => tracing::info!(
                    error = %e,
                    "writer thread keeps the default priority (raising it needs CAP_SYS_NICE); \
                     `accessgrant serve` runs its request workers at nice +5 instead, below it"
                ),
            }
            futures::executor::block_on(looped);
        });
    if let Err(e) = spawned {
        // The loop is gone with the closure: writes fail and readiness says NOT_SERVING.
        tracing::error!(error = %e, "could not start the writer thread");
    }
    writer
}
