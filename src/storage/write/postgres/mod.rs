//! The PostgreSQL side of the group-commit loop, through sea-orm (sqlx).
//!
//! Every batch transaction first takes the write fence (`Store::begin_write`): one row lock
//! that serializes write transactions across all replicas, so what a batch loads cannot
//! change under it, audit positions follow commit order, and no two batches deadlock.
//! Loads and writes are set-based (one statement per table and chunk), because each
//! statement is a network round trip while the fence is held.

mod load;
mod save;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    backend::Backend,
    keys::{Keys, Loaded},
    rows::{Changes, CheckpointRow, TreeTip},
};
use crate::{
    domain::Error,
    storage::{Store, WriteTxn, tree},
    transparency::{Hash, NodeKey},
};

/// The pool's side of the loop: the open batch transaction, if any.
pub struct PostgresBackend {
    /// Where transactions come from.
    store: Store,
    /// The batch transaction between `begin` and `commit`/`rollback`.
    txn: Option<WriteTxn>,
}

impl PostgresBackend {
    /// A backend over `store`'s pool.
    pub fn new(store: Store) -> Self {
        Self { store, txn: None }
    }

    fn txn(&self) -> Result<&WriteTxn, Error> {
        self.txn
            .as_ref()
            .ok_or_else(|| Error::Internal("no open write transaction".into()))
    }
}

impl Backend for PostgresBackend {
    async fn begin(&mut self) -> Result<(), Error> {
        self.txn = Some(self.store.begin_write().await?);
        Ok(())
    }

    async fn load(&mut self, keys: &Keys, now: DateTime<Utc>) -> Result<Loaded, Error> {
        load::load(self.txn()?, keys, now).await
    }

    async fn tree_tip(&mut self) -> Result<TreeTip, Error> {
        Ok(self.txn()?.tree_tip.clone())
    }

    async fn tree_nodes(&mut self, keys: &[NodeKey]) -> Result<HashMap<NodeKey, Hash>, Error> {
        tree::nodes(&**self.txn()?, keys).await
    }

    async fn latest_checkpoint(&mut self, origin: &str) -> Result<Option<CheckpointRow>, Error> {
        tree::latest_checkpoint(&**self.txn()?, origin).await
    }

    async fn write(&mut self, changes: &Changes) -> Result<(), Error> {
        let txn = &**self.txn()?;
        save::save(txn, changes).await?;
        save::save_tree(txn, changes).await?;
        tree::insert_checkpoints(txn, &changes.checkpoints).await
    }

    async fn commit(&mut self) -> Result<(), Error> {
        match self.txn.take() {
            Some(txn) => txn.commit().await,
            None => Err(Error::Internal("commit without a write transaction".into())),
        }
    }

    async fn rollback(&mut self) {
        if let Some(txn) = self.txn.take()
            && let Err(e) = txn.rollback().await
        {
            tracing::warn!(error = %e, "rolling back a write batch");
        }
    }
}
