//! An account's access policy: whether support may ask for access requests, how many
//! distinct admins must approve one, and how long one may last.

use super::{App, Caller, Idempotency, commands::policy::UpdatePolicy};
use crate::domain::{
    Error,
    access_request::{PolicyUpdate, PolicyView},
    grant,
    ids::AccountId,
    permission::Permission,
};

impl App {
    /// The account's policy (the defaults until an admin changed it).
    pub async fn get_access_policy(
        &self,
        id: &AccountId,
        caller: &Caller,
    ) -> Result<PolicyView, Error> {
        caller.require(Permission::GrantsRead)?;
        let (account, record) = self.open_account_grant(id).await?;
        Ok(PolicyView {
            account_id: account.account_id,
            policy: record.policy,
        })
    }

    /// Changes the fields of the policy named by the update mask (AIP-134).
    pub async fn update_access_policy(
        &self,
        update: PolicyUpdate,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<PolicyView, Error> {
        caller.require(Permission::GrantsWrite)?;
        grant::authorize_actor(&update.actor)?;
        let idem = Idempotency::new(
            "UpdateAccessPolicy",
            request_id.clone(),
            &caller.principal,
            &update,
        )?;
        let command = UpdatePolicy {
            update,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }
}
