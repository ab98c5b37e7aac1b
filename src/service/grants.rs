//! Reading and switching access grants.

use super::{
    App, Caller, Idempotency,
    commands::grant::{Disable, Enable},
};
use crate::{
    domain::{
        Error,
        grant::{self, DisableGrant, EnableGrant, GrantView},
        ids::AccountId,
        permission::Permission,
    },
    storage::grants,
};

/// Most ids one `BatchGetAccessGrants` may ask for.
pub const MAX_BATCH: usize = 1_000;

impl App {
    /// The grant's effective state now.
    pub async fn get_grant(&self, id: &AccountId, caller: &Caller) -> Result<GrantView, Error> {
        caller.require(Permission::GrantsRead)?;
        let (account, record) = self.open_account_grant(id).await?;
        Ok(GrantView::at(&account, &record, self.clock.now()))
    }

    /// An open (not deleted) account with its grant record, through the read cache.
    pub(crate) async fn open_account_grant(
        &self,
        id: &AccountId,
    ) -> Result<(crate::domain::account::Account, grant::GrantRecord), Error> {
        grants::read_cached(&self.store, &[id.as_str()])
            .await?
            .into_iter()
            .find(|(a, _)| !a.is_deleted())
            .ok_or(Error::AccountNotFound)
    }

    /// Several grants in request order; any unknown (or deleted) account fails the call.
    pub async fn batch_get_grants(
        &self,
        ids: &[AccountId],
        caller: &Caller,
    ) -> Result<Vec<GrantView>, Error> {
        caller.require(Permission::GrantsRead)?;
        let mut keys: Vec<&str> = ids.iter().map(AccountId::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        let found = grants::read_cached(&self.store, &keys).await?;
        let now = self.clock.now();
        let by_id: std::collections::HashMap<
            &str,
            (&crate::domain::account::Account, &grant::GrantRecord),
        > = found
            .iter()
            .filter(|(a, _)| !a.is_deleted())
            .map(|(a, g)| (a.account_id.as_str(), (a, g)))
            .collect();
        ids.iter()
            .map(|id| {
                by_id
                    .get(id.as_str())
                    .map(|(account, record)| GrantView::at(account, record, now))
                    .ok_or(Error::AccountNotFound)
            })
            .collect()
    }

    /// Enables the grant or replaces its period.
    pub async fn enable_grant(
        &self,
        cmd: EnableGrant,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<GrantView, Error> {
        caller.require(Permission::GrantsWrite)?;
        // The actor's roles need no data: refuse a non-admin before touching the account.
        grant::authorize_actor(&cmd.actor)?;
        let idem = Idempotency::new(
            "EnableAccessGrant",
            request_id.clone(),
            &caller.principal,
            &cmd,
        )?;
        let command = Enable {
            cmd,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }

    /// Disables the grant and revokes every open assumption of the account. A grant that is
    /// not enabled is returned unchanged; the call writes an event only if it revoked something.
    pub async fn disable_grant(
        &self,
        cmd: DisableGrant,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<GrantView, Error> {
        caller.require(Permission::GrantsWrite)?;
        grant::authorize_actor(&cmd.actor)?;
        let idem = Idempotency::new(
            "DisableAccessGrant",
            request_id.clone(),
            &caller.principal,
            &cmd,
        )?;
        let command = Disable {
            cmd,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }
}
