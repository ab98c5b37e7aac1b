//! Creating, converting and closing accounts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    access_request::{ClosedBy, revoke_open_requests},
    grant::revoke_open,
};
use crate::{
    audit::{EventActor, EventKind, NewEvent},
    domain::{
        Error,
        access_request::RequestState,
        account::{self, Account, Plan, PlanChange},
        assumption::Basis,
        grant::GrantRecord,
        ids::AccountId,
    },
    storage::write::{Command, Draft, Keys},
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

/// Create an account (grant off), or convert a trial to paid (grant starts off, trial-based
/// assumptions lose their basis).
#[derive(Debug, Clone)]
pub struct Upsert {
    /// The validated request.
    pub cmd: UpsertAccount,
    /// The calling service: the event's actor.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Upsert {
    type Answer = Upserted;

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(self.cmd.account_id.as_str());
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<Upserted, Error> {
        let id = &self.cmd.account_id;
        let existing = draft.account(id.as_str())?;
        let mut revoked_ids = None;
        let (account, kind) =
            match account::plan_change(existing.as_ref().map(|(a, _)| a), self.cmd.plan)? {
                PlanChange::Unchanged => {
                    let (account, _) = existing.ok_or_else(|| {
                        Error::Internal("unchanged plan without an account".into())
                    })?;
                    return Ok(Upserted {
                        account,
                        created: false,
                    });
                }
                PlanChange::Create => {
                    let account = Account {
                        account_id: id.clone(),
                        plan: self.cmd.plan,
                        create_time: now,
                        update_time: now,
                        delete_time: None,
                    };
                    draft.put_account(account.clone());
                    draft.put_grant(id.as_str(), GrantRecord::initial(now))?;
                    (account, EventKind::AccountCreated)
                }
                PlanChange::ConvertToPaid => {
                    let (before, record) = existing
                        .ok_or_else(|| Error::Internal("conversion without an account".into()))?;
                    let account = Account {
                        plan: Plan::Paid,
                        update_time: now,
                        ..before
                    };
                    draft.put_account(account.clone());
                    draft.put_grant(id.as_str(), record.reset_for_paid(now))?;
                    revoked_ids = Some(revoke_open(
                        draft,
                        id.as_str(),
                        Some(Basis::TrialAccount),
                        now,
                    )?);
                    (account, EventKind::AccountConvertedToPaid)
                }
            };
        let mut detail = json!({ "plan": self.cmd.plan.as_str(), "principal": self.principal });
        // Like disable and delete events: the log says which sessions the change ended.
        if let Some(revoked) = revoked_ids {
            detail["revoked_assumption_ids"] = json!(revoked);
        }
        draft.append(
            NewEvent {
                account_id: id.clone(),
                kind,
                actor: EventActor::ServicePrincipal(self.principal.clone()),
                detail,
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(Upserted {
            created: kind == EventKind::AccountCreated,
            account,
        })
    }
}

/// Close an account: soft-deleted (its audit events are kept), every open assumption revoked.
#[derive(Debug, Clone)]
pub struct Delete {
    /// The account.
    pub account_id: AccountId,
    /// The calling service: the event's actor.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Delete {
    type Answer = ();

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(self.account_id.as_str());
        keys.account_with_requests(self.account_id.as_str());
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<(), Error> {
        let id = &self.account_id;
        let (account, _) = super::open_account(draft.account(id.as_str())?)?;
        draft.put_account(Account {
            update_time: now,
            delete_time: Some(now),
            ..account
        });
        // Before the deletion event (nothing is written after it), and before the remaining
        // assumptions, so each request's event names the assumptions made under it.
        let by = ClosedBy {
            to: RequestState::Revoked,
            actor: EventActor::ServicePrincipal(self.principal.clone()),
            cause: Some("ACCOUNT_DELETED"),
            principal: &self.principal,
            request_id: self.request_id.as_ref(),
        };
        revoke_open_requests(draft, id, &by, now)?;
        let revoked = revoke_open(draft, id.as_str(), None, now)?;
        draft.append(
            NewEvent {
                account_id: id.clone(),
                kind: EventKind::AccountDeleted,
                actor: EventActor::ServicePrincipal(self.principal.clone()),
                detail: json!({
                    "revoked_assumption_ids": revoked,
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::assumption::{Assumption, AssumptionState},
        service::commands::fixture::{Fixture, t},
        storage::write::Idempotency,
    };

    fn upsert(plan: Plan) -> Upsert {
        Upsert {
            cmd: UpsertAccount {
                account_id: AccountId::parse("acme", "account_id").unwrap(),
                plan,
            },
            principal: "provisioning".into(),
            request_id: Some("r1".into()),
        }
    }

    /// Creating twice with the same request id replays the first answer and writes once; the
    /// same id for another request is refused.
    #[test]
    fn a_replay_returns_the_first_answer() {
        let mut f = Fixture::default();
        let cmd = upsert(Plan::Trial);
        let idem = || {
            Idempotency::new("UpsertAccount", Some("r1".into()), "provisioning", &cmd.cmd).unwrap()
        };
        let first = f.run_idempotent(&cmd, idem(), t(0)).unwrap();
        assert!(first.created);
        let again = f.run_idempotent(&cmd, idem(), t(5)).unwrap();
        assert_eq!(again, first);
        assert_eq!(f.kinds("acme"), vec!["ACCOUNT_CREATED"]);
        let other = upsert(Plan::Paid);
        let reused = Idempotency::new(
            "UpsertAccount",
            Some("r1".into()),
            "provisioning",
            &other.cmd,
        )
        .unwrap();
        assert!(matches!(
            f.run_idempotent(&other, reused, t(6)),
            Err(Error::RequestIdReused)
        ));
    }

    /// Converting a trial to paid turns the grant off and revokes trial-based assumptions only.
    #[test]
    fn conversion_revokes_trial_assumptions() {
        let mut f = Fixture::default();
        f.add("acme", Plan::Trial);
        for (id, basis) in [("tr", Basis::TrialAccount), ("em", Basis::Emergency)] {
            f.assumptions.push(Assumption {
                assumption_id: id.into(),
                account_id: "acme".into(),
                staff_id: "sam".into(),
                ticket_id: "T-1".into(),
                access_request_id: None,
                basis,
                start_time: t(0),
                expire_time: t(10),
                end_time: None,
                end_reason: None,
            });
        }
        f.run(&upsert(Plan::Paid), t(1)).unwrap();
        assert_eq!(
            f.last_detail("acme")["revoked_assumption_ids"],
            json!(["tr"])
        );
        let state = |id: &str| {
            f.assumptions
                .iter()
                .find(|a| a.assumption_id == id)
                .unwrap()
                .state_at(t(1))
        };
        assert_eq!(state("tr"), AssumptionState::Revoked);
        assert_eq!(state("em"), AssumptionState::Active);
    }

    /// Deleting leaves nothing open and a second delete finds no account.
    #[test]
    fn delete_leaves_nothing_open() {
        let mut f = Fixture::paid("acme");
        let delete = Delete {
            account_id: AccountId::parse("acme", "account_id").unwrap(),
            principal: "provisioning".into(),
            request_id: None,
        };
        f.run(&delete, t(1)).unwrap();
        assert!(matches!(f.run(&delete, t(2)), Err(Error::AccountNotFound)));
        assert_eq!(f.kinds("acme"), vec!["ACCOUNT_DELETED"]);
    }
}
