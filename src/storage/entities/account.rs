//! `accounts`: one row per customer account, kept after deletion.

use sea_orm::entity::prelude::*;

/// A stored account.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    /// The account id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// `TRIAL` or `PAID`.
    pub plan: String,
    /// Creation time (µs since epoch).
    pub create_time_us: i64,
    /// Last change (µs since epoch).
    pub update_time_us: i64,
    /// Deletion time (µs since epoch); null while open.
    pub delete_time_us: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}
