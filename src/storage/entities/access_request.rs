//! `access_requests`: every access request and its reviews (the effective state is computed
//! at read time from `status` and the two expiry times).

use sea_orm::entity::prelude::*;

/// A stored access request.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_requests")]
pub struct Model {
    /// Server-assigned id (UUIDv7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub access_request_id: String,
    /// The account.
    pub account_id: String,
    /// The staff member who will assume.
    pub staff_id: String,
    /// The support ticket.
    pub ticket_id: String,
    /// `AccessReason` name (`ESCALATED_TECHNICAL_ISSUE` …).
    pub reason: String,
    /// Free-text detail (may be empty).
    pub reason_detail: String,
    /// How long access lasts once approved (µs).
    pub requested_duration_us: i64,
    /// Stored status: `PENDING`, `APPROVED`, `DENIED`, `CANCELLED`, `EXPIRED` or `REVOKED`.
    pub status: String,
    /// The reviews, in order: a JSON array of `{user_id, verdict, comment, review_time_us}`
    /// (always read and written with the request, never queried on their own).
    pub reviews_json: String,
    /// Distinct approvals needed (copied from the policy at creation).
    pub required_approvals: i32,
    /// Created at (µs): the newest-first order of pages.
    pub create_time_us: i64,
    /// A pending request lapses at (µs).
    pub request_expire_time_us: i64,
    /// The quorum was reached at (µs).
    pub approve_time_us: Option<i64>,
    /// An approved request lapses at (µs).
    pub expire_time_us: Option<i64>,
    /// Last change (µs).
    pub update_time_us: i64,
    /// Incremented on every change (etag source).
    pub version: i64,
}

impl ActiveModelBehavior for ActiveModel {}
