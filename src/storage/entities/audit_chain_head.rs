//! `audit_chain_heads`: the last sequence and hash of each account's chain. Appending reads
//! and updates this one row instead of scanning events, and on PostgreSQL its row lock
//! serializes appends per account. It also lets verification notice deleted newest events.

use sea_orm::entity::prelude::*;

/// A chain head.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain_heads")]
pub struct Model {
    /// The account id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Sequence of the newest event.
    pub last_sequence: i64,
    /// Hash of the newest event.
    pub last_hash: Vec<u8>,
    /// Time of the newest event (microseconds): the next one is never earlier.
    pub last_occur_time_us: i64,
}

impl ActiveModelBehavior for ActiveModel {}
