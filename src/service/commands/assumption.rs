//! Deciding an assumption request, and ending an assumption. Fail closed: a decision exists
//! only once its audit event committed with it.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{
        Error, access_request,
        assumption::{
            self, Assumption, AssumptionDecision, AssumptionRequest, AssumptionState,
            AssumptionView, Basis, Decision, EndReason, Lifetimes, RevokeAssumption,
        },
        ids::AccountId,
    },
    storage::write::{Command, Draft, Keys},
};

/// Decide an assumption request against the grant as it stands in the batch, and record the
/// decision (and the assumption, when allowed).
#[derive(Debug, Clone)]
pub struct Authorize {
    /// The validated request.
    pub req: AssumptionRequest,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
    /// Caps on assumption lifetimes.
    pub limits: Lifetimes,
}

impl Authorize {
    /// The request to decide on, if one was named (an emergency ignores it).
    fn on_request(&self) -> Option<&str> {
        match (&self.req.access_request_id, &self.req.emergency) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    }
}

impl Command for Authorize {
    type Answer = AssumptionDecision;

    fn announce(&self, keys: &mut Keys) {
        keys.account(self.req.account_id.as_str());
        if let Some(id) = self.on_request() {
            keys.access_request(id);
        }
    }

    fn time_account(&self) -> Option<&str> {
        Some(self.req.account_id.as_str())
    }

    fn apply(
        &self,
        draft: &mut Draft<'_>,
        now: DateTime<Utc>,
    ) -> Result<AssumptionDecision, Error> {
        let req = &self.req;
        // Read inside the batch (write transactions never overlap): this decision is ordered
        // against a concurrent Disable, revocation or cancellation, whichever commits first.
        let found = draft.account(req.account_id.as_str())?;
        let decision = match self.on_request() {
            Some(id) => access_request::decide_on_request(
                found.as_ref().is_some_and(|(a, _)| !a.is_deleted()),
                draft.access_request(id)?.as_ref(),
                req,
                now,
                self.limits.max,
            ),
            None => assumption::decide(
                found.as_ref().map(|(a, _)| a),
                found.as_ref().map(|(_, g)| g),
                req.emergency.is_some(),
                now,
                self.limits,
            ),
        };
        let mut detail = json!({
            "ticket_id": req.ticket_id,
            "reason": req.reason.as_str(),
            "reason_detail": req.reason_detail,
            "principal": self.principal,
        });
        if let Some(id) = &req.access_request_id {
            detail["access_request_id"] = json!(id);
        }
        if let Some(e) = &req.emergency {
            detail["emergency_reason"] = json!(e.reason.as_str());
            detail["justification"] = json!(e.justification);
        }
        let (kind, allowed, denied) = match decision {
            Decision::Allow { basis, expire_time } => {
                let created = Assumption {
                    // Time-ordered: appends to the primary key index.
                    assumption_id: uuid::Uuid::now_v7().to_string(),
                    account_id: req.account_id.as_str().to_owned(),
                    staff_id: req.staff_id.clone(),
                    ticket_id: req.ticket_id.clone(),
                    access_request_id: (basis == Basis::AccessRequest)
                        .then(|| req.access_request_id.clone())
                        .flatten(),
                    basis,
                    start_time: now,
                    expire_time,
                    end_time: None,
                    end_reason: None,
                };
                draft.insert_assumption(created.clone());
                detail["basis"] = json!(basis.as_str());
                detail["assumption_id"] = json!(created.assumption_id);
                detail["expire_time"] = json!(format_time(expire_time));
                let kind = if basis == Basis::Emergency {
                    EventKind::EmergencyAssumption
                } else {
                    EventKind::AssumptionAllowed
                };
                (kind, Some(AssumptionView::at(created, now)), None)
            }
            Decision::Deny(reason) => {
                detail["deny_reason"] = json!(reason.as_str());
                (EventKind::AssumptionDenied, None, Some(reason))
            }
        };
        let event = draft.append(
            NewEvent {
                account_id: req.account_id.clone(),
                kind,
                actor: EventActor::Staff(req.staff_id.clone()),
                detail,
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(AssumptionDecision {
            allowed,
            denied,
            audit_event_id: event.event_id,
        })
    }
}

/// End an active assumption (audited); one already over is returned unchanged.
#[derive(Debug, Clone)]
pub struct End {
    /// The assumption.
    pub assumption_id: String,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for End {
    type Answer = AssumptionView;

    fn announce(&self, keys: &mut Keys) {
        keys.assumption(&self.assumption_id);
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<AssumptionView, Error> {
        let found = draft
            .assumption(&self.assumption_id)?
            .ok_or(Error::AssumptionNotFound)?;
        if found.state_at(now) != AssumptionState::Active {
            return Ok(AssumptionView::at(found, now));
        }
        let ended = Assumption {
            end_time: Some(now),
            end_reason: Some(EndReason::Ended),
            ..found
        };
        draft.change_assumption(ended.clone());
        let account_id = AccountId::parse(&ended.account_id, "account_id")
            .map_err(|_| Error::Internal("stored assumption account id".into()))?;
        draft.append(
            NewEvent {
                account_id,
                kind: EventKind::AssumptionEnded,
                actor: EventActor::Staff(ended.staff_id.clone()),
                detail: json!({
                    "assumption_id": ended.assumption_id,
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(AssumptionView::at(ended, now))
    }
}

/// A customer admin ends one active assumption ("kick one person out"); one already over is
/// returned unchanged.
#[derive(Debug, Clone)]
pub struct Revoke {
    /// The validated request.
    pub revoke: RevokeAssumption,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Revoke {
    type Answer = AssumptionView;

    fn announce(&self, keys: &mut Keys) {
        keys.assumption(&self.revoke.assumption_id);
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<AssumptionView, Error> {
        let found = draft
            .assumption(&self.revoke.assumption_id)?
            .ok_or(Error::AssumptionNotFound)?;
        if found.state_at(now) != AssumptionState::Active {
            return Ok(AssumptionView::at(found, now));
        }
        let revoked = Assumption {
            end_time: Some(now),
            end_reason: Some(EndReason::Revoked),
            ..found
        };
        draft.change_assumption(revoked.clone());
        let account_id = AccountId::parse(&revoked.account_id, "account_id")
            .map_err(|_| Error::Internal("stored assumption account id".into()))?;
        draft.append(
            NewEvent {
                account_id,
                kind: EventKind::AssumptionRevoked,
                actor: EventActor::CustomerUser(self.revoke.actor.user_id.clone()),
                detail: json!({
                    "assumption_id": revoked.assumption_id,
                    "staff_id": revoked.staff_id,
                    "access_request_id": revoked.access_request_id,
                    "reason": self.revoke.reason,
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(AssumptionView::at(revoked, now))
    }
}
