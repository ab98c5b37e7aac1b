//! `access_grants`: the admin's choice for each account (the effective state is computed).

use sea_orm::entity::prelude::*;

/// A stored grant.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_grants")]
pub struct Model {
    /// The account id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Switched on by an admin.
    pub enabled: bool,
    /// Duration of the last enable (`ONE_DAY` …), null if never enabled.
    pub duration: Option<String>,
    /// Start of the current/last period (µs).
    pub enable_time_us: Option<i64>,
    /// End of the current period (µs); null when indefinite or off.
    pub expire_time_us: Option<i64>,
    /// Last change (µs).
    pub update_time_us: i64,
    /// Who made the last change.
    pub update_user_id: String,
    /// Incremented on every change (etag source).
    pub version: i64,
    /// The `expire_time_us` whose lapse has been audited (`GRANT_EXPIRED`), if any: the
    /// expiry sweeper's exactly-once marker.
    pub expiry_recorded_us: Option<i64>,
}

impl ActiveModelBehavior for ActiveModel {}
