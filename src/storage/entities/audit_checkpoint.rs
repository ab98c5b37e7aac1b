//! `audit_checkpoints`: every checkpoint the service signed, kept forever, per origin (a new
//! key is a new origin). The signature is in `note`; the key is never stored.

use sea_orm::entity::prelude::*;

/// A signed checkpoint.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_checkpoints")]
pub struct Model {
    /// The log's name (the checkpoint's first line).
    #[sea_orm(primary_key, auto_increment = false)]
    pub origin: String,
    /// Leaves covered.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tree_size: i64,
    /// The signed root.
    pub root_hash: Vec<u8>,
    /// The signed note text, exactly as served.
    #[sea_orm(column_type = "Text")]
    pub note: String,
    /// When it was signed (µs).
    pub sign_time_us: i64,
}

impl ActiveModelBehavior for ActiveModel {}
