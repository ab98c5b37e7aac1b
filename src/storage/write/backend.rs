//! What differs per database, and nothing else: open a write transaction, load what a batch
//! announced, write its changes, commit. One implementation per backend:
//! [`super::sqlite::SqliteBackend`] and [`super::postgres::PostgresBackend`].

use std::future::Future;

use chrono::{DateTime, Utc};

use std::collections::HashMap;

use super::{
    keys::{Keys, Loaded},
    rows::{Changes, CheckpointRow, TreeTip},
};
use crate::{
    domain::Error,
    transparency::{Hash, NodeKey},
};

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

    /// The Merkle tree's head: size and right edge (inside the open transaction).
    fn tree_tip(&mut self) -> impl Future<Output = Result<TreeTip, Error>> + Send;

    /// The stored tree nodes among `keys` (absent ones are left out).
    fn tree_nodes(
        &mut self,
        keys: &[NodeKey],
    ) -> impl Future<Output = Result<HashMap<NodeKey, Hash>, Error>> + Send;

    /// The latest checkpoint signed for `origin`.
    fn latest_checkpoint(
        &mut self,
        origin: &str,
    ) -> impl Future<Output = Result<Option<CheckpointRow>, Error>> + Send;

    /// Writes every change of the batch inside the open transaction (events with their
    /// `leaf_index`, the tree nodes, the tree's new head and checkpoints included).
    fn write(&mut self, changes: &Changes) -> impl Future<Output = Result<(), Error>> + Send;

    /// Commits durably; on failure nothing of the batch is written.
    fn commit(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Rolls back the open transaction, if any.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
}
