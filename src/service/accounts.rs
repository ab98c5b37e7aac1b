//! Creating, converting and closing accounts.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{App, Caller, Idempotency};
use crate::{
    audit::{EventActor, EventKind, NewEvent},
    domain::{
        Error,
        account::{self, Account, Plan, PlanChange},
        assumption::Basis,
        grant::GrantRecord,
        ids::AccountId,
        permission::Permission,
    },
    storage::{accounts, assumptions, audit_log, grants},
};

/// A request to create or update an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UpsertAccount {
    /// The account.
    pub account_id: AccountId,
    /// The wanted plan.
    pub plan: Plan,
}

/// The result of an upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upserted {
    /// The account after the call.
    pub account: Account,
    /// True when the call created it.
    pub created: bool,
}

impl App {
    /// Creates an account or converts a trial to paid.
    pub async fn upsert_account(
        &self,
        cmd: UpsertAccount,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<Upserted, Error> {
        caller.require(Permission::AccountsWrite)?;
        let idem = Idempotency::new("UpsertAccount", request_id.clone(), &caller.principal, &cmd);
        self.write(idem, move |batch, now| {
            Box::pin(async move {
                let txn = batch.conn().await?;
                let existing = accounts::find_for_update(txn, &cmd.account_id).await?;
                let mut revoked_ids = None;
                let (account, kind) = match account::plan_change(existing.as_ref(), cmd.plan)? {
                    PlanChange::Unchanged => {
                        let account = existing.ok_or_else(|| {
                            Error::Internal("unchanged plan without an account".into())
                        })?;
                        return Ok(Upserted {
                            account,
                            created: false,
                        });
                    }
                    PlanChange::Create => {
                        let account = Account {
                            account_id: cmd.account_id.clone(),
                            plan: cmd.plan,
                            create_time: now,
                            update_time: now,
                            delete_time: None,
                        };
                        accounts::insert(txn, &account).await?;
                        grants::insert(txn, &cmd.account_id, &GrantRecord::initial(now)).await?;
                        (account, EventKind::AccountCreated)
                    }
                    PlanChange::ConvertToPaid => {
                        let before = existing.ok_or_else(|| {
                            Error::Internal("conversion without an account".into())
                        })?;
                        let account = Account {
                            plan: Plan::Paid,
                            update_time: now,
                            ..before
                        };
                        accounts::update(txn, &account).await?;
                        let record = grants::get(txn, &cmd.account_id).await?;
                        grants::update(txn, &cmd.account_id, &record.reset_for_paid(now)).await?;
                        // The paid grant starts off: trial-based assumptions lose their basis.
                        let revoked = assumptions::revoke_open(
                            txn,
                            cmd.account_id.as_str(),
                            Some(Basis::TrialAccount),
                            now,
                        )
                        .await?;
                        revoked_ids = Some(revoked);
                        (account, EventKind::AccountConvertedToPaid)
                    }
                };
                let mut detail =
                    json!({ "plan": cmd.plan.as_str(), "principal": caller.principal });
                // Like disable and delete events: the log says which sessions the change ended.
                if let Some(revoked) = revoked_ids {
                    detail["revoked_assumption_ids"] = json!(revoked);
                }
                audit_log::append(
                    batch,
                    NewEvent {
                        account_id: cmd.account_id.clone(),
                        kind,
                        actor: EventActor::ServicePrincipal(caller.principal.clone()),
                        detail,
                        request_id,
                    },
                    now,
                )
                .await?;
                Ok(Upserted {
                    created: kind == EventKind::AccountCreated,
                    account,
                })
            })
        })
        .await
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
        let idem = Idempotency::new("DeleteAccount", request_id.clone(), &caller.principal, &id);
        self.write(idem, move |batch, now| {
            Box::pin(async move {
                let txn = batch.conn().await?;
                let account = accounts::find_for_update(txn, &id)
                    .await?
                    .filter(|a| !a.is_deleted())
                    .ok_or(Error::AccountNotFound)?;
                accounts::mark_deleted(txn, &account, now).await?;
                let revoked = assumptions::revoke_open(txn, id.as_str(), None, now).await?;
                audit_log::append(
                    batch,
                    NewEvent {
                        account_id: id.clone(),
                        kind: EventKind::AccountDeleted,
                        actor: EventActor::ServicePrincipal(caller.principal.clone()),
                        detail: json!({
                            "revoked_assumption_ids": revoked,
                            "principal": caller.principal,
                        }),
                        request_id,
                    },
                    now,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
