//! Assumption rows: point reads and the newest-first pages customers see. (Writes go
//! through the one write loop.)
//!
//! An assumption's state depends on `now` (one past its expiry reads expired without anyone
//! storing that), so the page filter translates each state into a condition on the stored
//! columns at `now`, and the database filters before the limit.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    entities::assumption,
    from_us, from_us_opt,
    page::{Cursor, any_state},
    to_us,
};
use crate::domain::{
    Error,
    assumption::{Assumption, AssumptionState, Basis, EndReason},
};

pub(crate) fn to_domain(m: assumption::Model) -> Result<Assumption, Error> {
    Ok(Assumption {
        basis: Basis::from_str_name(&m.basis)
            .ok_or_else(|| Error::Internal(format!("stored basis {:?}", m.basis)))?,
        end_reason: m
            .end_reason
            .as_deref()
            .map(|r| {
                EndReason::from_str_name(r)
                    .ok_or_else(|| Error::Internal(format!("stored end reason {r:?}")))
            })
            .transpose()?,
        start_time: from_us(m.start_time_us)?,
        expire_time: from_us(m.expire_time_us)?,
        end_time: from_us_opt(m.end_time_us)?,
        assumption_id: m.assumption_id,
        account_id: m.account_id,
        staff_id: m.staff_id,
        ticket_id: m.ticket_id,
        access_request_id: m.access_request_id,
    })
}

/// Reads one assumption.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Assumption>, Error> {
    assumption::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// The stored rows whose state at `now_us` is `state` (the SQL form of
/// [`Assumption::state_at`]; expiry half-open).
fn state_condition(state: AssumptionState, now_us: i64) -> Condition {
    use assumption::Column as C;
    match state {
        AssumptionState::Active => Condition::all()
            .add(C::EndReason.is_null())
            .add(C::ExpireTimeUs.gt(now_us)),
        AssumptionState::Expired => Condition::all()
            .add(C::EndReason.is_null())
            .add(C::ExpireTimeUs.lte(now_us)),
        AssumptionState::Ended => Condition::all().add(C::EndReason.eq(EndReason::Ended.as_str())),
        AssumptionState::Revoked => {
            Condition::all().add(C::EndReason.eq(EndReason::Revoked.as_str()))
        }
    }
}

/// A page of the account's assumptions, newest first (`start_time`, then id, both
/// descending), strictly after `after`, at most `limit`. `states` filters on the state at
/// `now` (empty: every state).
pub async fn page(
    db: &impl ConnectionTrait,
    account_id: &str,
    states: &[AssumptionState],
    now: DateTime<Utc>,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<Assumption>, Error> {
    use assumption::Column as C;
    let mut query = assumption::Entity::find().filter(C::AccountId.eq(account_id));
    let now_us = to_us(now);
    if let Some(states) = any_state(states, |s| state_condition(s, now_us)) {
        query = query.filter(states);
    }
    if let Some(c) = after {
        query = query.filter(c.older(C::StartTimeUs, C::AssumptionId));
    }
    query
        .order_by_desc(C::StartTimeUs)
        .order_by_desc(C::AssumptionId)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}
