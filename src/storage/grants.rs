//! Grant rows.

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{entities::access_grant, from_us, from_us_opt, to_us};
use crate::domain::{Error, duration::AccessDuration, grant::GrantRecord, ids::AccountId};

fn to_domain(m: access_grant::Model) -> Result<GrantRecord, Error> {
    let duration = m
        .duration
        .as_deref()
        .map(|d| {
            AccessDuration::from_str_name(d)
                .ok_or_else(|| Error::Internal(format!("stored duration {d:?}")))
        })
        .transpose()?;
    Ok(GrantRecord {
        enabled: m.enabled,
        duration,
        enable_time: from_us_opt(m.enable_time_us)?,
        expire_time: from_us_opt(m.expire_time_us)?,
        update_time: from_us(m.update_time_us)?,
        update_user_id: m.update_user_id,
        version: m.version,
    })
}

fn to_model(id: &AccountId, g: &GrantRecord) -> access_grant::ActiveModel {
    access_grant::ActiveModel {
        account_id: Set(id.as_str().to_owned()),
        enabled: Set(g.enabled),
        duration: Set(g.duration.map(|d| d.as_str().to_owned())),
        enable_time_us: Set(g.enable_time.map(to_us)),
        expire_time_us: Set(g.expire_time.map(to_us)),
        update_time_us: Set(to_us(g.update_time)),
        update_user_id: Set(g.update_user_id.clone()),
        version: Set(g.version),
    }
}

/// Reads one account's grant. Every account has one (created with it), so absence is an
/// internal error.
pub async fn get(db: &impl ConnectionTrait, id: &AccountId) -> Result<GrantRecord, Error> {
    let model = access_grant::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .ok_or_else(|| Error::Internal(format!("account {id} has no grant row")))?;
    to_domain(model)
}

/// Reads several grants, keyed by account id.
pub async fn get_many(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(String, GrantRecord)>, Error> {
    access_grant::Entity::find()
        .filter(access_grant::Column::AccountId.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| Ok((m.account_id.clone(), to_domain(m)?)))
        .collect()
}

/// Inserts the grant of a new account.
pub async fn insert(
    db: &impl ConnectionTrait,
    id: &AccountId,
    g: &GrantRecord,
) -> Result<(), Error> {
    access_grant::Entity::insert(to_model(id, g))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Replaces a grant.
pub async fn update(
    db: &impl ConnectionTrait,
    id: &AccountId,
    g: &GrantRecord,
) -> Result<(), Error> {
    access_grant::Entity::update(to_model(id, g))
        .exec(db)
        .await?;
    Ok(())
}
