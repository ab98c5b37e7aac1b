//! What differs per database, and nothing else: open a write transaction, load what a batch
//! announced, write its changes, commit. One implementation per backend:
//! [`super::sqlite::SqliteBackend`] and [`super::postgres::PostgresBackend`].

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{
    keys::{Keys, Loaded},
    rows::Changes,
};
use crate::domain::Error;

/// One database's side of the group-commit loop. Calls come in the order `begin`, `load`,
/// `write`, `commit` (or `rollback` after any failure); errors are already classified
/// (see `storage::error`).
pub trait Backend: Send + 'static {
    /// Opens the batch's write transaction, serialized against every other writer.
    fn begin(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Reads what the batch announced; `now` decides which assumptions are still open.
    fn load(
        &mut self,
        keys: &Keys,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Loaded, Error>> + Send;

    /// Writes every change of the batch inside the open transaction.
    fn write(&mut self, changes: &Changes) -> impl Future<Output = Result<(), Error>> + Send;

    /// Commits durably; on failure nothing of the batch is written.
    fn commit(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Rolls back the open transaction, if any.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
}
