//! Assumption rows.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};

use super::{
    batch::{AssumptionRow, Batch},
    entities::assumption,
    from_us, from_us_opt, to_us,
};
use crate::domain::{
    Error,
    assumption::{Assumption, Basis, EndReason},
};

fn to_domain(m: assumption::Model) -> Result<Assumption, Error> {
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
    })
}

/// Inserts a new assumption, with the write batch.
pub fn insert(batch: &Batch<'_>, a: &Assumption, ticket_id: &str) {
    batch.push_assumption(AssumptionRow {
        assumption_id: a.assumption_id.clone(),
        account_id: a.account_id.clone(),
        staff_id: a.staff_id.clone(),
        ticket_id: ticket_id.to_owned(),
        basis: a.basis.as_str().to_owned(),
        start_time_us: to_us(a.start_time),
        expire_time_us: to_us(a.expire_time),
        end_time_us: a.end_time.map(to_us),
        end_reason: a.end_reason.map(|r| r.as_str().to_owned()),
    });
}

/// Reads one assumption.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Assumption>, Error> {
    assumption::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Reads one assumption and, on PostgreSQL, locks it until the transaction ends.
pub async fn find_for_update(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<Assumption>, Error> {
    assumption::Entity::find_by_id(id.to_owned())
        .lock_exclusive()
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Marks one assumption ended or revoked at `now`.
pub async fn end(
    db: &impl ConnectionTrait,
    id: &str,
    reason: EndReason,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    assumption::Entity::update_many()
        .col_expr(assumption::Column::EndTimeUs, Expr::value(to_us(now)))
        .col_expr(assumption::Column::EndReason, Expr::value(reason.as_str()))
        .filter(assumption::Column::AssumptionId.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ids of an account's assumptions still active at `now`, optionally of one basis only.
pub async fn open_ids(
    db: &impl ConnectionTrait,
    account_id: &str,
    only_basis: Option<Basis>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let mut query = assumption::Entity::find()
        .select_only()
        .column(assumption::Column::AssumptionId)
        .filter(assumption::Column::AccountId.eq(account_id))
        .filter(assumption::Column::EndReason.is_null())
        .filter(assumption::Column::ExpireTimeUs.gt(to_us(now)));
    if let Some(basis) = only_basis {
        query = query.filter(assumption::Column::Basis.eq(basis.as_str()));
    }
    Ok(query.into_tuple::<String>().all(db).await?)
}

/// Revokes an account's active assumptions (optionally of one basis); returns their ids for
/// the audit event that explains the revocation.
pub async fn revoke_open(
    db: &impl ConnectionTrait,
    account_id: &str,
    only_basis: Option<Basis>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let ids = open_ids(db, account_id, only_basis, now).await?;
    if !ids.is_empty() {
        assumption::Entity::update_many()
            .col_expr(assumption::Column::EndTimeUs, Expr::value(to_us(now)))
            .col_expr(
                assumption::Column::EndReason,
                Expr::value(EndReason::Revoked.as_str()),
            )
            .filter(assumption::Column::AssumptionId.is_in(ids.iter().cloned()))
            .exec(db)
            .await?;
    }
    Ok(ids)
}

/// Caps the expiry of an account's active grant-based assumptions at `end` (the grant was
/// shortened: no assumption may outlive the grant it rests on).
pub async fn cap_grant_based(
    db: &impl ConnectionTrait,
    account_id: &str,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let result = assumption::Entity::update_many()
        .col_expr(assumption::Column::ExpireTimeUs, Expr::value(to_us(end)))
        .filter(assumption::Column::AccountId.eq(account_id))
        .filter(assumption::Column::EndReason.is_null())
        .filter(assumption::Column::Basis.eq(Basis::CustomerGrant.as_str()))
        .filter(assumption::Column::ExpireTimeUs.gt(to_us(end)))
        .filter(assumption::Column::ExpireTimeUs.gt(to_us(now)))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Open grant-based assumptions of `account_id` that ran out exactly when the grant's period
/// ended at `grant_end` (their `expire_time` was capped to it): named in `GRANT_EXPIRED`.
pub async fn lapsed_with_grant(
    db: &impl ConnectionTrait,
    account_id: &str,
    grant_end: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    Ok(assumption::Entity::find()
        .select_only()
        .column(assumption::Column::AssumptionId)
        .filter(assumption::Column::AccountId.eq(account_id))
        .filter(assumption::Column::EndReason.is_null())
        .filter(assumption::Column::Basis.eq(Basis::CustomerGrant.as_str()))
        .filter(assumption::Column::ExpireTimeUs.eq(to_us(grant_end)))
        .into_tuple::<String>()
        .all(db)
        .await?)
}
