//! `audit_tree_nodes`: every complete subtree of the audit log's Merkle tree, keyed by its
//! last leaf and its level (see `transparency::merkle`). Appending a leaf completes only
//! nodes ending at it, so the table grows at its end. Derived data: `audit verify` rebuilds
//! the tree from the events and never trusts these rows.

use sea_orm::entity::prelude::*;

/// A stored complete subtree.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_tree_nodes")]
pub struct Model {
    /// The subtree's last leaf (the append that completed it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub last_leaf: i64,
    /// Height above the leaves.
    #[sea_orm(primary_key, auto_increment = false)]
    pub level: i16,
    /// RFC 9162 hash of the subtree.
    pub hash: Vec<u8>,
}

impl ActiveModelBehavior for ActiveModel {}
