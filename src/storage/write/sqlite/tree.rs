//! The Merkle tree's reads on the writer's connection: point reads by primary key.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    domain::Error,
    storage::{
        tree::{stored_hash, stored_u64},
        write::rows::{CheckpointRow, TreeTip},
    },
    transparency::{Checkpoint, Hash, NodeKey},
};

/// The tree's head, from the `write_fence` row.
pub(super) fn tip(conn: &Connection) -> Result<TreeTip, Error> {
    let (size, frontier): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT tree_size, tree_frontier FROM write_fence WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    TreeTip::from_stored(size, &frontier)
}

/// The stored nodes among `keys`.
pub(super) fn nodes(conn: &Connection, keys: &[NodeKey]) -> Result<HashMap<NodeKey, Hash>, Error> {
    let mut select = conn
        .prepare_cached("SELECT hash FROM audit_tree_nodes WHERE last_leaf = ?1 AND level = ?2")?;
    let mut found = HashMap::with_capacity(keys.len());
    for key in keys {
        let hash: Option<Vec<u8>> = select
            .query_row(params![key.last_leaf() as i64, key.level], |r| r.get(0))
            .optional()?;
        if let Some(hash) = hash {
            found.insert(*key, stored_hash(hash)?);
        }
    }
    Ok(found)
}

/// The latest checkpoint of `origin`.
pub(super) fn latest_checkpoint(
    conn: &Connection,
    origin: &str,
) -> Result<Option<CheckpointRow>, Error> {
    let row: Option<(i64, Vec<u8>, String, i64)> = conn
        .prepare_cached(
            "SELECT tree_size, root_hash, note, sign_time_us FROM audit_checkpoints \
             WHERE origin = ?1 ORDER BY tree_size DESC LIMIT 1",
        )?
        .query_row(params![origin], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(size, root, note, sign_time_us)| {
        Ok(CheckpointRow {
            checkpoint: Checkpoint {
                origin: origin.to_owned(),
                size: stored_u64(size)?,
                root: stored_hash(root)?,
            },
            note,
            sign_time_us,
        })
    })
    .transpose()
}
