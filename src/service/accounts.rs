//! Creating, converting and closing accounts.

pub use super::commands::account::{UpsertAccount, Upserted};
use super::{
    App, Caller, Idempotency,
    commands::account::{Delete, Upsert},
};
use crate::{
    domain::{Error, account::Account, ids::AccountId, permission::Permission},
    storage::accounts,
};

impl App {
    /// Creates an account or converts a trial to paid.
    pub async fn upsert_account(
        &self,
        cmd: UpsertAccount,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<Upserted, Error> {
        caller.require(Permission::AccountsWrite)?;
        let idem = Idempotency::new("UpsertAccount", request_id.clone(), &caller.principal, &cmd)?;
        let command = Upsert {
            cmd,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }

    /// Reads an open account.
    pub async fn get_account(&self, id: &AccountId, caller: &Caller) -> Result<Account, Error> {
        caller.require(Permission::AccountsWrite)?;
        accounts::find(self.store.reader(), id)
            .await?
            .filter(|a| !a.is_deleted())
            .ok_or(Error::AccountNotFound)
    }

    /// Closes an account. Its audit events are kept.
    pub async fn delete_account(
        &self,
        id: AccountId,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<(), Error> {
        caller.require(Permission::AccountsWrite)?;
        let idem = Idempotency::new("DeleteAccount", request_id.clone(), &caller.principal, &id)?;
        let command = Delete {
            account_id: id,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }
}
