//! `idempotency_records`: the first response to each `request_id`, so a retry returns it.

use sea_orm::entity::prelude::*;

/// A remembered response.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_records")]
pub struct Model {
    /// The RPC the key belongs to (keys are scoped per method).
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// The client's request id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// SHA-256 of the request's content, to refuse a key reused for another request.
    pub fingerprint: String,
    /// The response, as JSON of the domain outcome.
    #[sea_orm(column_type = "Text")]
    pub response_json: String,
    /// When it was stored (µs); records older than the retention are pruned.
    pub create_time_us: i64,
}

impl ActiveModelBehavior for ActiveModel {}
