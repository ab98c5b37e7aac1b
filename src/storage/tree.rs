//! Reads (and, for the PostgreSQL write backend, writes) of the audit log's Merkle tree and
//! checkpoints through sea-orm, on any connection or transaction. Proofs read O(log n)
//! stored nodes in one query (see `transparency::merkle` for the two phases).

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{
    entities::{audit_checkpoint, audit_event, audit_tree_node},
    write::CheckpointRow,
};
use crate::{
    domain::Error,
    transparency::{Checkpoint, Hash, NodeKey, merkle},
};

/// Keys per lookup statement (each key is two bound values).
const KEYS_PER_QUERY: usize = 200;

/// The stored nodes among `keys`.
pub async fn nodes(
    db: &impl ConnectionTrait,
    keys: &[NodeKey],
) -> Result<HashMap<NodeKey, Hash>, Error> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let mut any = Condition::any();
        for key in chunk {
            any = any.add(
                Condition::all()
                    .add(audit_tree_node::Column::LastLeaf.eq(key.last_leaf() as i64))
                    .add(audit_tree_node::Column::Level.eq(i16::from(key.level))),
            );
        }
        for row in audit_tree_node::Entity::find().filter(any).all(db).await? {
            let level = u8::try_from(row.level)
                .map_err(|_| Error::Internal(format!("stored tree level {}", row.level)))?;
            let key = NodeKey::ending_at(stored_u64(row.last_leaf)?, level);
            found.insert(key, stored_hash(row.hash)?);
        }
    }
    Ok(found)
}

/// Runs a tree computation over the nodes it needs, read in one round (see
/// `transparency::merkle::needed`). A missing node means the stored tree is damaged.
pub async fn compute<T>(
    db: &impl ConnectionTrait,
    run: impl Fn(merkle::Reader<'_>) -> T,
) -> Result<T, Error> {
    let keys = merkle::needed(&run);
    let fetched = nodes(db, &keys).await?;
    merkle::with_nodes(&fetched, &run).map_err(|key| {
        Error::Internal(format!(
            "the stored Merkle tree lacks node {key:?}: it is damaged"
        ))
    })
}

/// The latest checkpoint of `origin`.
pub async fn latest_checkpoint(
    db: &impl ConnectionTrait,
    origin: &str,
) -> Result<Option<CheckpointRow>, Error> {
    audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::Origin.eq(origin))
        .order_by_desc(audit_checkpoint::Column::TreeSize)
        .one(db)
        .await?
        .map(to_row)
        .transpose()
}

/// Every checkpoint stored, of every origin, oldest first per origin.
pub async fn all_checkpoints(db: &impl ConnectionTrait) -> Result<Vec<CheckpointRow>, Error> {
    audit_checkpoint::Entity::find()
        .order_by_asc(audit_checkpoint::Column::Origin)
        .order_by_asc(audit_checkpoint::Column::TreeSize)
        .all(db)
        .await?
        .into_iter()
        .map(to_row)
        .collect()
}

/// The leaf of an event, `None` for an unknown event.
pub async fn event_leaf(db: &impl ConnectionTrait, event_id: &str) -> Result<Option<u64>, Error> {
    audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::LeafIndex)
        .filter(audit_event::Column::EventId.eq(event_id))
        .into_tuple::<i64>()
        .one(db)
        .await?
        .map(stored_u64)
        .transpose()
}

/// An event as a leaf of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    /// Its stored leaf index.
    pub leaf_index: i64,
    /// The event.
    pub event_id: String,
    /// Its account.
    pub account_id: String,
    /// Its place in the account's chain.
    pub sequence: i64,
    /// Its chain hash: the leaf's data.
    pub hash: Vec<u8>,
}

/// Up to `limit` events with `leaf_index >= from`, in leaf order.
pub async fn leaves(
    db: &impl ConnectionTrait,
    from: u64,
    limit: u64,
) -> Result<Vec<LeafRow>, Error> {
    Ok(audit_event::Entity::find()
        .select_only()
        .columns([
            audit_event::Column::LeafIndex,
            audit_event::Column::EventId,
            audit_event::Column::AccountId,
            audit_event::Column::Sequence,
            audit_event::Column::Hash,
        ])
        .filter(audit_event::Column::LeafIndex.gte(from as i64))
        .order_by_asc(audit_event::Column::LeafIndex)
        .limit(limit)
        .into_tuple::<(i64, String, String, i64, Vec<u8>)>()
        .all(db)
        .await?
        .into_iter()
        .map(
            |(leaf_index, event_id, account_id, sequence, hash)| LeafRow {
                leaf_index,
                event_id,
                account_id,
                sequence,
                hash,
            },
        )
        .collect())
}

/// The stored leaf hashes (level-0 nodes) of leaves `from..to`.
pub async fn stored_leaf_hashes(
    db: &impl ConnectionTrait,
    from: u64,
    to: u64,
) -> Result<HashMap<u64, Vec<u8>>, Error> {
    Ok(audit_tree_node::Entity::find()
        .filter(audit_tree_node::Column::Level.eq(0_i16))
        .filter(audit_tree_node::Column::LastLeaf.gte(from as i64))
        .filter(audit_tree_node::Column::LastLeaf.lt(to as i64))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|n| u64::try_from(n.last_leaf).ok().map(|l| (l, n.hash)))
        .collect())
}

/// Inserts signed checkpoints (PostgreSQL write backend).
pub async fn insert_checkpoints(
    db: &impl ConnectionTrait,
    rows: &[CheckpointRow],
) -> Result<(), Error> {
    for c in rows {
        audit_checkpoint::Entity::insert(audit_checkpoint::ActiveModel {
            origin: Set(c.checkpoint.origin.clone()),
            tree_size: Set(c.checkpoint.size as i64),
            root_hash: Set(c.checkpoint.root.to_vec()),
            note: Set(c.note.clone()),
            sign_time_us: Set(c.sign_time_us),
        })
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

fn to_row(m: audit_checkpoint::Model) -> Result<CheckpointRow, Error> {
    Ok(CheckpointRow {
        checkpoint: Checkpoint {
            origin: m.origin,
            size: stored_u64(m.tree_size)?,
            root: stored_hash(m.root_hash)?,
        },
        note: m.note,
        sign_time_us: m.sign_time_us,
    })
}

/// A stored size or leaf index (never negative).
pub(crate) fn stored_u64(n: i64) -> Result<u64, Error> {
    u64::try_from(n).map_err(|_| Error::Internal(format!("stored tree size {n}")))
}

/// A stored 32-byte hash.
pub(crate) fn stored_hash(bytes: Vec<u8>) -> Result<Hash, Error> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| Error::Internal(format!("stored tree hash of {} bytes", b.len())))
}
