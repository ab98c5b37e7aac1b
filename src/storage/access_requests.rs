//! Access request rows: point reads, the newest-first pages customers see, and what the
//! sweep and the pending gauge need. (Writes go through the one write loop.)
//!
//! A request's *effective* state depends on `now` (a pending request past its
//! `request_expire_time` reads expired without anyone storing that), so the page filter
//! translates each state into a condition on the stored columns at `now`, and the database
//! filters and orders before the limit: a page never comes back short because rows were
//! dropped after the read.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;

use super::{
    entities::access_request,
    from_us, from_us_opt,
    page::{Cursor, any_state},
    to_us,
};
use crate::domain::{
    Error,
    access_request::{AccessRequest, RequestState, Review, Verdict},
    assumption::AccessReason,
};

/// One review as stored in `reviews_json`.
#[derive(Deserialize)]
struct StoredReview {
    user_id: String,
    verdict: String,
    comment: String,
    review_time_us: i64,
}

/// The stored form of `reviews`: a JSON array of `{user_id, verdict, comment,
/// review_time_us}`. Built as a `serde_json::Value`, whose rendering cannot fail.
pub(crate) fn reviews_json(reviews: &[Review]) -> String {
    serde_json::Value::Array(
        reviews
            .iter()
            .map(|r| {
                serde_json::json!({
                    "user_id": r.user_id,
                    "verdict": r.verdict.as_str(),
                    "comment": r.comment,
                    "review_time_us": to_us(r.review_time),
                })
            })
            .collect(),
    )
    .to_string()
}

fn reviews(json: &str) -> Result<Vec<Review>, Error> {
    let stored: Vec<StoredReview> = serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("stored reviews do not decode: {e}")))?;
    stored
        .into_iter()
        .map(|r| {
            Ok(Review {
                verdict: Verdict::from_str_name(&r.verdict)
                    .ok_or_else(|| Error::Internal(format!("stored verdict {:?}", r.verdict)))?,
                review_time: from_us(r.review_time_us)?,
                user_id: r.user_id,
                comment: r.comment,
            })
        })
        .collect()
}

pub(crate) fn to_domain(m: access_request::Model) -> Result<AccessRequest, Error> {
    Ok(AccessRequest {
        reason: AccessReason::from_str_name(&m.reason)
            .ok_or_else(|| Error::Internal(format!("stored reason {:?}", m.reason)))?,
        status: RequestState::from_str_name(&m.status)
            .ok_or_else(|| Error::Internal(format!("stored request status {:?}", m.status)))?,
        reviews: reviews(&m.reviews_json)?,
        create_time: from_us(m.create_time_us)?,
        request_expire_time: from_us(m.request_expire_time_us)?,
        approve_time: from_us_opt(m.approve_time_us)?,
        expire_time: from_us_opt(m.expire_time_us)?,
        update_time: from_us(m.update_time_us)?,
        access_request_id: m.access_request_id,
        account_id: m.account_id,
        staff_id: m.staff_id,
        ticket_id: m.ticket_id,
        reason_detail: m.reason_detail,
        requested_duration_us: m.requested_duration_us,
        required_approvals: m.required_approvals,
        version: m.version,
    })
}

/// Reads one request.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<AccessRequest>, Error> {
    access_request::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// The stored rows whose state at `now_us` is `state` (the SQL form of
/// [`AccessRequest::state_at`]; both lapses half-open).
fn state_condition(state: RequestState, now_us: i64) -> Condition {
    use access_request::Column as C;
    let stored = |s: RequestState| C::Status.eq(s.as_str());
    match state {
        RequestState::Pending => Condition::all()
            .add(stored(RequestState::Pending))
            .add(C::RequestExpireTimeUs.gt(now_us)),
        RequestState::Approved => Condition::all()
            .add(stored(RequestState::Approved))
            .add(C::ExpireTimeUs.gt(now_us)),
        RequestState::Expired => Condition::any()
            .add(stored(RequestState::Expired))
            .add(
                Condition::all()
                    .add(stored(RequestState::Pending))
                    .add(C::RequestExpireTimeUs.lte(now_us)),
            )
            .add(
                Condition::all().add(stored(RequestState::Approved)).add(
                    Condition::any()
                        .add(C::ExpireTimeUs.is_null())
                        .add(C::ExpireTimeUs.lte(now_us)),
                ),
            ),
        final_state => Condition::all().add(stored(final_state)),
    }
}

/// A page of the account's requests, newest first (`create_time`, then id, both
/// descending), strictly after `after`, at most `limit`. `states` filters on the state at
/// `now` (empty: every state), so a lapsed pending request is found under `EXPIRED`.
pub async fn page(
    db: &impl ConnectionTrait,
    account_id: &str,
    states: &[RequestState],
    now: DateTime<Utc>,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<AccessRequest>, Error> {
    use access_request::Column as C;
    let mut query = access_request::Entity::find().filter(C::AccountId.eq(account_id));
    let now_us = to_us(now);
    if let Some(states) = any_state(states, |s| state_condition(s, now_us)) {
        query = query.filter(states);
    }
    if let Some(c) = after {
        query = query.filter(c.older(C::CreateTimeUs, C::AccessRequestId));
    }
    query
        .order_by_desc(C::CreateTimeUs)
        .order_by_desc(C::AccessRequestId)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// Requests still stored `PENDING` whose `request_expire_time` is at or before `now`:
/// `(access_request_id, account_id)` by id, after `after`, at most `limit` (the sweep's
/// cursor: a lapse it could not record does not come back in the same sweep).
pub async fn lapsed_pending(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<(String, String)>, Error> {
    use access_request::Column as C;
    let mut query = access_request::Entity::find()
        .filter(C::Status.eq(RequestState::Pending.as_str()))
        .filter(C::RequestExpireTimeUs.lte(to_us(now)));
    if let Some(id) = after {
        query = query.filter(C::AccessRequestId.gt(id));
    }
    Ok(query
        .select_only()
        .column(C::AccessRequestId)
        .column(C::AccountId)
        .order_by_asc(C::AccessRequestId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// How many requests are pending at `now` (stored `PENDING`, not lapsed): the gauge's value.
pub async fn count_pending(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, Error> {
    use access_request::Column as C;
    Ok(access_request::Entity::find()
        .filter(C::Status.eq(RequestState::Pending.as_str()))
        .filter(C::RequestExpireTimeUs.gt(to_us(now)))
        .count(db)
        .await?)
}
