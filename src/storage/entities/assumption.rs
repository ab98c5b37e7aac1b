//! `assumptions`: every allowed assumption and how it ended.

use sea_orm::entity::prelude::*;

/// A stored assumption.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assumptions")]
pub struct Model {
    /// Server-assigned id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub assumption_id: String,
    /// The account.
    pub account_id: String,
    /// The staff member.
    pub staff_id: String,
    /// The support ticket.
    pub ticket_id: String,
    /// `CUSTOMER_GRANT`, `TRIAL_ACCOUNT`, `EMERGENCY` or `ACCESS_REQUEST`.
    pub basis: String,
    /// Allowed at (µs).
    pub start_time_us: i64,
    /// Ends by itself at (µs).
    pub expire_time_us: i64,
    /// Ended or revoked at (µs).
    pub end_time_us: Option<i64>,
    /// `ENDED` or `REVOKED`; null while open or merely expired.
    pub end_reason: Option<String>,
    /// The access request it was allowed under (basis `ACCESS_REQUEST`), else null.
    pub access_request_id: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}
