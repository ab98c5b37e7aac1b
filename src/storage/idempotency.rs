//! Remembered responses for `request_id` replays (AIP-155). A record is written in the same
//! transaction as the change it answers, so a replay can never see a response whose change
//! did not commit, nor a change without its response.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Serialize, de::DeserializeOwned};

use super::{entities::idempotency_record, to_us};
use crate::domain::Error;

/// What a lookup found.
pub enum Replay<T> {
    /// No record: run the request.
    Fresh,
    /// The first response to this key.
    Stored(T),
}

/// Looks up `(scope, request_id)`. A record with another fingerprint means the key was reused
/// for a different request.
pub async fn lookup<T: DeserializeOwned>(
    db: &impl ConnectionTrait,
    scope: &str,
    request_id: &str,
    fingerprint: &str,
) -> Result<Replay<T>, Error> {
    let Some(record) =
        idempotency_record::Entity::find_by_id((scope.to_owned(), request_id.to_owned()))
            .one(db)
            .await?
    else {
        return Ok(Replay::Fresh);
    };
    if record.fingerprint != fingerprint {
        return Err(Error::RequestIdReused);
    }
    serde_json::from_str(&record.response_json)
        .map(Replay::Stored)
        .map_err(|e| Error::Internal(format!("stored response for {scope}: {e}")))
}

/// Stores the response to `(scope, request_id)`.
pub async fn remember<T: Serialize>(
    db: &impl ConnectionTrait,
    scope: &str,
    request_id: &str,
    fingerprint: &str,
    response: &T,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let response_json = serde_json::to_string(response)
        .map_err(|e| Error::Internal(format!("encoding response for {scope}: {e}")))?;
    idempotency_record::Entity::insert(idempotency_record::ActiveModel {
        scope: Set(scope.to_owned()),
        request_id: Set(request_id.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        response_json: Set(response_json),
        create_time_us: Set(to_us(now)),
    })
    .exec_without_returning(db)
    .await?;
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
