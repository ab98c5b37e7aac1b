//! Account rows.

use sea_orm::{ConnectionTrait, EntityTrait};

use super::{entities::account, from_us, from_us_opt};
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

/// Reads an account (deleted ones included).
pub async fn find(db: &impl ConnectionTrait, id: &AccountId) -> Result<Option<Account>, Error> {
    account::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}
