//! `audit_events`: the append-only log. `global_position` orders all events by commit.

use sea_orm::entity::prelude::*;

/// A stored event.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Global commit-order position.
    #[sea_orm(primary_key)]
    pub global_position: i64,
    /// Unique event id.
    #[sea_orm(unique)]
    pub event_id: String,
    /// The account.
    pub account_id: String,
    /// Per-account sequence.
    pub sequence: i64,
    /// Occurrence (µs).
    pub occur_time_us: i64,
    /// Kind name.
    pub kind: String,
    /// Actor type.
    pub actor_type: String,
    /// Actor value.
    pub actor_value: String,
    /// Details as hashed.
    #[sea_orm(column_type = "Text")]
    pub detail_json: String,
    /// Causing request id or empty.
    pub request_id: String,
    /// Previous hash.
    pub prev_hash: Vec<u8>,
    /// This event's hash.
    pub hash: Vec<u8>,
    /// Its leaf in the Merkle tree: dense, in commit order across all accounts.
    pub leaf_index: i64,
}

impl ActiveModelBehavior for ActiveModel {}
