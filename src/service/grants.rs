//! Reading and switching access grants.

use serde_json::json;

use super::{App, Caller, Idempotency, expiry};
use crate::{
    audit::canonical::format_time,
    audit::{EventActor, EventKind, NewEvent},
    domain::{
        Error,
        account::Account,
        grant::{self, DisableGrant, EnableGrant, GrantChange, GrantView},
        ids::AccountId,
        permission::Permission,
    },
    storage::{accounts, assumptions, audit_log, grants},
};

/// Most ids one `BatchGetAccessGrants` may ask for.
pub const MAX_BATCH: usize = 1_000;

fn open_account(account: Option<Account>) -> Result<Account, Error> {
    account
        .filter(|a| !a.is_deleted())
        .ok_or(Error::AccountNotFound)
}

impl App {
    /// The grant's effective state now.
    pub async fn get_grant(&self, id: &AccountId, caller: &Caller) -> Result<GrantView, Error> {
        caller.require(Permission::GrantsRead)?;
        let found = grants::read_cached(&self.store, &[id.as_str()]).await?;
        let (account, record) = found
            .into_iter()
            .find(|(a, _)| !a.is_deleted())
            .ok_or(Error::AccountNotFound)?;
        Ok(GrantView::at(&account, &record, self.clock.now()))
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
        let by_id: std::collections::HashMap<&str, (&Account, &grant::GrantRecord)> = found
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
        );
        self.write(idem, move |batch, now| {
            Box::pin(async move {
                let txn = batch.conn().await?;
                let account = open_account(accounts::find_for_update(txn, &cmd.account_id).await?)?;
                let record = grants::get(txn, &cmd.account_id).await?;
                expiry::record_pending_lapse(batch, &cmd.account_id, &record, now).await?;
                let (next, change) = grant::enable(&account, &record, &cmd, now)?;
                grants::update(txn, &cmd.account_id, &next).await?;
                // A shortened grant also shortens the assumptions resting on it.
                let capped = match (change, next.expire_time) {
                    (GrantChange::DurationChanged, Some(end)) => {
                        assumptions::cap_grant_based(txn, cmd.account_id.as_str(), end, now).await?
                    }
                    _ => 0,
                };
                let kind = match change {
                    GrantChange::Enabled => EventKind::GrantEnabled,
                    GrantChange::DurationChanged => EventKind::GrantDurationChanged,
                    GrantChange::Disabled => {
                        return Err(Error::Internal("enable produced a disable".into()));
                    }
                };
                audit_log::append(
                    batch,
                    NewEvent {
                        account_id: cmd.account_id.clone(),
                        kind,
                        actor: EventActor::CustomerUser(cmd.actor.user_id.clone()),
                        detail: json!({
                            "duration": cmd.duration.as_str(),
                            "expire_time": next.expire_time.map(format_time),
                            "previous_expire_time": record.expire_time.map(format_time),
                            "assumptions_shortened": capped,
                            "principal": caller.principal,
                        }),
                        request_id,
                    },
                    now,
                )
                .await?;
                Ok(GrantView::at(&account, &next, now))
            })
        })
        .await
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
        );
        self.write(idem, move |batch, now| {
            Box::pin(async move {
                let txn = batch.conn().await?;
                let account = open_account(accounts::find_for_update(txn, &cmd.account_id).await?)?;
                let record = grants::get(txn, &cmd.account_id).await?;
                expiry::record_pending_lapse(batch, &cmd.account_id, &record, now).await?;
                let disabled = grant::disable(&account, &record, &cmd, now)?;
                if let Some(next) = &disabled {
                    grants::update(txn, &cmd.account_id, next).await?;
                }
                // The contract: disabling ends every open assumption of the account. That holds
                // for a grant already off too: an emergency assumption taken meanwhile is still
                // open, and a customer asking for "off" ends it like any other.
                let revoked =
                    assumptions::revoke_open(txn, cmd.account_id.as_str(), None, now).await?;
                let was_enabled = disabled.is_some();
                if !was_enabled && revoked.is_empty() {
                    // Nothing changed: no event.
                    return Ok(GrantView::at(&account, &record, now));
                }
                let next = disabled.unwrap_or_else(|| record.clone());
                audit_log::append(
                    batch,
                    NewEvent {
                        account_id: cmd.account_id.clone(),
                        kind: EventKind::GrantDisabled,
                        actor: EventActor::CustomerUser(cmd.actor.user_id.clone()),
                        detail: json!({
                            "previous_expire_time": record.expire_time.map(format_time),
                            "was_enabled": was_enabled,
                            "revoked_assumption_ids": revoked,
                            "principal": caller.principal,
                        }),
                        request_id,
                    },
                    now,
                )
                .await?;
                Ok(GrantView::at(&account, &next, now))
            })
        })
        .await
    }
}
