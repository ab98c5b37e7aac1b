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
    /// Whether support may ask for access requests (the account's request policy lives on
    /// its grant row, so one read gives a command both).
    pub requests_enabled: bool,
    /// Distinct approvals a request needs.
    pub required_approvals: i32,
    /// Longest duration a request may ask for (µs).
    pub max_request_duration_us: i64,
    /// Incremented on every policy change (the policy's own etag source).
    pub policy_version: i64,
}

impl ActiveModelBehavior for ActiveModel {}
