//! Changing an account's access policy (`ACCESS_POLICY_UPDATED`). The policy is stored with
//! the grant, so it is read and written with the account like the grant is.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::open_account;
use crate::{
    audit::{EventActor, EventKind, NewEvent},
    domain::{
        Error,
        access_request::{AccessPolicy, PolicyUpdate, PolicyView, check_etag},
        grant::GrantRecord,
    },
    storage::write::{Command, Draft, Keys},
};

/// Apply the masked fields of a policy update.
#[derive(Debug, Clone)]
pub struct UpdatePolicy {
    /// The validated update.
    pub update: PolicyUpdate,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

fn described(p: &AccessPolicy) -> serde_json::Value {
    json!({
        "access_requests_enabled": p.requests_enabled,
        "required_approvals": p.required_approvals,
        "max_request_duration_seconds": p.max_request_duration_us / 1_000_000,
    })
}

impl Command for UpdatePolicy {
    type Answer = PolicyView;

    fn announce(&self, keys: &mut Keys) {
        keys.account(self.update.account_id.as_str());
    }

    fn time_account(&self) -> Option<&str> {
        Some(self.update.account_id.as_str())
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<PolicyView, Error> {
        let id = &self.update.account_id;
        let (account, record) = open_account(draft.account(id.as_str())?)?;
        check_etag(self.update.etag.as_deref(), &record.policy.etag())?;
        let Some(next) = self.update.apply_to(&record.policy) else {
            // The same values again: nothing changes, nothing is written.
            return Ok(PolicyView {
                account_id: account.account_id,
                policy: record.policy,
            });
        };
        draft.put_grant(
            id.as_str(),
            GrantRecord {
                policy: next,
                ..record.clone()
            },
        )?;
        draft.append(
            NewEvent {
                account_id: id.clone(),
                kind: EventKind::AccessPolicyUpdated,
                actor: EventActor::CustomerUser(self.update.actor.user_id.clone()),
                detail: json!({
                    "policy": described(&next),
                    "previous_policy": described(&record.policy),
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(PolicyView {
            account_id: account.account_id,
            policy: next,
        })
    }
}
