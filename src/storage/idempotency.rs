//! Remembered responses for `request_id` replays (AIP-155). A record is written in the same
//! transaction as the change it answers, so a replay can never see a response whose change
//! did not commit, nor a change without its response.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    batch::{Batch, ResponseRow},
    entities::idempotency_record,
    to_us,
};
use crate::domain::Error;

/// What a lookup found.
pub enum Replay<T> {
    /// No record: run the request.
    Fresh,
    /// The first response to this key.
    Stored(T),
}

/// Looks up `(scope, request_id)` as of this point in the write batch. A record with another
/// fingerprint means the key was reused for a different request.
pub async fn lookup<T: DeserializeOwned>(
    batch: &Batch<'_>,
    scope: &str,
    request_id: &str,
    fingerprint: &str,
) -> Result<Replay<T>, Error> {
    let Some(record) = batch.stored_response(scope, request_id).await? else {
        return Ok(Replay::Fresh);
    };
    if record.fingerprint != fingerprint {
        return Err(Error::RequestIdReused);
    }
    serde_json::from_str(&record.response_json)
        .map(Replay::Stored)
        .map_err(|e| Error::Internal(format!("stored response for {scope}: {e}")))
}

/// Stores the response to `(scope, request_id)` with the batch.
pub fn remember<T: Serialize>(
    batch: &Batch<'_>,
    scope: &str,
    request_id: &str,
    fingerprint: &str,
    response: &T,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let response_json = serde_json::to_string(response)
        .map_err(|e| Error::Internal(format!("encoding response for {scope}: {e}")))?;
    batch.push_response(ResponseRow {
        scope: scope.to_owned(),
        request_id: request_id.to_owned(),
        fingerprint: fingerprint.to_owned(),
        response_json,
        create_time_us: to_us(now),
    });
    Ok(())
}

/// Deletes records created before `cutoff`; returns how many.
pub async fn prune(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, Error> {
    let result = idempotency_record::Entity::delete_many()
        .filter(idempotency_record::Column::CreateTimeUs.lt(to_us(cutoff)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
