//! The Merkle tree's side of the write loop, the same for every backend: placing a batch's
//! events as the tree's next leaves (inside the batch's transaction, so the tree never
//! differs from the committed events), and reading the tree's state for a checkpoint signer.
//! Backends only read the head (size and right edge, kept on the `write_fence` row every
//! write transaction locks anyway) and nodes; the arithmetic is `transparency::merkle`'s.

use std::collections::BTreeMap;

use super::{
    backend::Backend,
    keys::TreeKeys,
    rows::{Changes, TreeState, TreeTip},
};
use crate::{domain::Error, transparency::merkle};

/// Gives `changes`' events their leaf indexes, in append order, and adds the nodes they
/// complete. Serialized like every write (the SQLite writer thread, the PostgreSQL write
/// fence), so leaf indexes are dense across replicas.
pub async fn place_events<B: Backend>(backend: &mut B, changes: &mut Changes) -> Result<(), Error> {
    if changes.events.is_empty() {
        return Ok(());
    }
    let tip = backend.tree_tip().await?;
    let leaves: Vec<&[u8]> = changes.events.iter().map(|e| e.hash.as_slice()).collect();
    let appended = merkle::append(tip.size, &tip.frontier, &leaves).map_err(Error::Internal)?;
    let placed = leaves.len() as u64;
    for (offset, event) in changes.events.iter_mut().enumerate() {
        event.leaf_index = to_i64(appended.first_leaf + offset as u64)?;
    }
    changes.tree_nodes = appended.nodes;
    changes.tree_tip = Some(TreeTip {
        size: tip.size + placed,
        frontier: appended.frontier,
    });
    Ok(())
}

/// Reads what `keys` ask for (see [`TreeKeys`]).
pub async fn load_state<B: Backend>(backend: &mut B, keys: &TreeKeys) -> Result<TreeState, Error> {
    let size = backend.tree_tip().await?.size;
    let latest = backend.latest_checkpoint(&keys.origin).await?;
    let mut sizes: Vec<u64> = keys.roots_at.clone();
    sizes.push(size);
    sizes.extend(latest.as_ref().map(|c| c.checkpoint.size));
    sizes.retain(|s| *s <= size);
    sizes.sort_unstable();
    sizes.dedup();
    let wanted: Vec<merkle::NodeKey> = sizes
        .iter()
        .flat_map(|s| merkle::needed(|read| merkle::root(*s, read)))
        .collect();
    let nodes = backend.tree_nodes(&wanted).await?;
    let mut roots = BTreeMap::new();
    for s in sizes {
        let root = merkle::with_nodes(&nodes, |read| merkle::root(s, read)).map_err(missing)?;
        roots.insert(s, root);
    }
    Ok(TreeState {
        size,
        latest,
        roots,
    })
}

/// A node the tree's shape says must be stored is not: the stored tree is damaged.
fn missing(key: merkle::NodeKey) -> Error {
    Error::Internal(format!(
        "the stored Merkle tree lacks node {key:?}: it is damaged"
    ))
}

fn to_i64(n: u64) -> Result<i64, Error> {
    i64::try_from(n).map_err(|_| Error::Internal(format!("leaf index {n} overflows")))
}
