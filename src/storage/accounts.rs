//! Account rows.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QuerySelect};

use super::{entities::account, from_us, from_us_opt, to_us};
use crate::domain::{
    Error,
    account::{Account, Plan},
    ids::AccountId,
};

/// Decodes a stored account.
pub(crate) fn to_domain(m: account::Model) -> Result<Account, Error> {
    Ok(Account {
        account_id: AccountId::parse(&m.account_id, "account_id")
            .map_err(|_| Error::Internal(format!("stored account id {:?}", m.account_id)))?,
        plan: Plan::from_str_name(&m.plan)
            .ok_or_else(|| Error::Internal(format!("stored plan {:?}", m.plan)))?,
        create_time: from_us(m.create_time_us)?,
        update_time: from_us(m.update_time_us)?,
        delete_time: from_us_opt(m.delete_time_us)?,
    })
}

fn to_model(a: &Account) -> account::ActiveModel {
    account::ActiveModel {
        account_id: Set(a.account_id.as_str().to_owned()),
        plan: Set(a.plan.as_str().to_owned()),
        create_time_us: Set(to_us(a.create_time)),
        update_time_us: Set(to_us(a.update_time)),
        delete_time_us: Set(a.delete_time.map(to_us)),
    }
}

/// Reads an account (deleted ones included).
pub async fn find(db: &impl ConnectionTrait, id: &AccountId) -> Result<Option<Account>, Error> {
    account::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Reads an account for update: on PostgreSQL the row stays locked until the transaction
/// ends, which serializes every change to one account across replicas.
pub async fn find_for_update(
    db: &impl ConnectionTrait,
    id: &AccountId,
) -> Result<Option<Account>, Error> {
    account::Entity::find_by_id(id.as_str())
        .lock_exclusive()
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Reads several accounts; absent ids are simply missing from the result.
pub async fn find_many(db: &impl ConnectionTrait, ids: &[&str]) -> Result<Vec<Account>, Error> {
    use sea_orm::{ColumnTrait, QueryFilter};
    account::Entity::find()
        .filter(account::Column::AccountId.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// Inserts a new account.
pub async fn insert(db: &impl ConnectionTrait, a: &Account) -> Result<(), Error> {
    account::Entity::insert(to_model(a))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Updates plan, update and delete times.
pub async fn update(db: &impl ConnectionTrait, a: &Account) -> Result<(), Error> {
    account::Entity::update(to_model(a)).exec(db).await?;
    Ok(())
}

/// Marks an account deleted.
pub async fn mark_deleted(
    db: &impl ConnectionTrait,
    a: &Account,
    now: DateTime<Utc>,
) -> Result<Account, Error> {
    let deleted = Account {
        update_time: now,
        delete_time: Some(now),
        ..a.clone()
    };
    update(db, &deleted).await?;
    Ok(deleted)
}
