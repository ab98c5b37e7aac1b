//! Assumption decisions and the assumptions they create. Fail closed: a decision exists only
//! if its audit event committed with it.

use serde_json::json;

use super::{App, Caller, Idempotency};
use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{
        Error,
        assumption::{
            self, Assumption, AssumptionDecision, AssumptionRequest, AssumptionState,
            AssumptionView, Decision, EndReason,
        },
        permission::Permission,
    },
    storage::{assumptions, audit_log},
};

/// Counts an answered decision (replays included: they are answers too).
fn record_decision(decision: &AssumptionDecision, emergency_reason: Option<&'static str>) {
    let (verdict, basis, deny) = match (&decision.allowed, decision.denied) {
        (Some(view), _) => ("ALLOW", view.assumption.basis.as_str(), "NONE"),
        (None, Some(reason)) => ("DENY", "NONE", reason.as_str()),
        (None, None) => ("UNSPECIFIED", "NONE", "NONE"),
    };
    metrics::counter!(
        crate::metrics::DECISIONS,
        "decision" => verdict,
        "basis" => basis,
        "deny_reason" => deny
    )
    .increment(1);
    if let (Some(reason), Some(_)) = (emergency_reason, &decision.allowed) {
        metrics::counter!(crate::metrics::EMERGENCY_ASSUMPTIONS, "reason" => reason).increment(1);
    }
}

impl App {
    /// Decides an assumption request and records the decision, durably, before answering.
    pub async fn authorize_assumption(
        &self,
        req: AssumptionRequest,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AssumptionDecision, Error> {
        caller.require(Permission::AccessAuthorize)?;
        if req.emergency.is_some() {
            caller.require(Permission::AccessEmergency)?;
        }
        let limits = self.settings.lifetimes;
        let idem = Idempotency::new(
            "AuthorizeAssumption",
            request_id.clone(),
            &caller.principal,
            &req,
        );
        let emergency_reason = req.emergency.as_ref().map(|e| e.reason.as_str());
        let decision = self
            .write_on(
                Some(req.account_id.as_str().to_owned()),
                idem,
                move |batch, now| {
                    Box::pin(async move {
                        // Read with the batch (write transactions never overlap): this decision is
                        // ordered against a concurrent Disable, whichever commits first.
                        let (account, grant) =
                            match batch.account_with_grant(req.account_id.as_str()).await? {
                                Some((account, grant)) => (Some(account), Some(grant)),
                                None => (None, None),
                            };
                        let decision = assumption::decide(
                            account.as_ref(),
                            grant.as_ref(),
                            req.emergency.is_some(),
                            now,
                            limits,
                        );
                        let mut detail = json!({
                            "ticket_id": req.ticket_id,
                            "reason": req.reason.as_str(),
                            "reason_detail": req.reason_detail,
                            "principal": caller.principal,
                        });
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
                                    basis,
                                    start_time: now,
                                    expire_time,
                                    end_time: None,
                                    end_reason: None,
                                };
                                assumptions::insert(batch, &created, &req.ticket_id);
                                detail["basis"] = json!(basis.as_str());
                                detail["assumption_id"] = json!(created.assumption_id);
                                detail["expire_time"] = json!(format_time(expire_time));
                                let kind = if basis == assumption::Basis::Emergency {
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
                        let event = audit_log::append(
                            batch,
                            NewEvent {
                                account_id: req.account_id.clone(),
                                kind,
                                actor: EventActor::Staff(req.staff_id.clone()),
                                detail,
                                request_id,
                            },
                            now,
                        )
                        .await?;
                        Ok(AssumptionDecision {
                            allowed,
                            denied,
                            audit_event_id: event.event_id,
                        })
                    })
                },
            )
            .await?;
        record_decision(&decision, emergency_reason);
        Ok(decision)
    }

    /// An assumption evaluated now.
    pub async fn get_assumption(&self, id: &str, caller: &Caller) -> Result<AssumptionView, Error> {
        caller.require(Permission::AccessAuthorize)?;
        let found = assumptions::find(self.store.reader(), id)
            .await?
            .ok_or(Error::AssumptionNotFound)?;
        Ok(AssumptionView::at(found, self.clock.now()))
    }

    /// Ends an active assumption (audited); one already over is returned unchanged.
    pub async fn end_assumption(
        &self,
        id: String,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AssumptionView, Error> {
        caller.require(Permission::AccessAuthorize)?;
        let idem = Idempotency::new("EndAssumption", request_id.clone(), &caller.principal, &id);
        self.write(idem, move |batch, now| {
            Box::pin(async move {
                let txn = batch.conn().await?;
                let found = assumptions::find_for_update(txn, &id)
                    .await?
                    .ok_or(Error::AssumptionNotFound)?;
                if found.state_at(now) != AssumptionState::Active {
                    return Ok(AssumptionView::at(found, now));
                }
                assumptions::end(txn, &id, EndReason::Ended, now).await?;
                let ended = Assumption {
                    end_time: Some(now),
                    end_reason: Some(EndReason::Ended),
                    ..found
                };
                let account_id =
                    crate::domain::ids::AccountId::parse(&ended.account_id, "account_id")
                        .map_err(|_| Error::Internal("stored assumption account id".into()))?;
                audit_log::append(
                    batch,
                    NewEvent {
                        account_id,
                        kind: EventKind::AssumptionEnded,
                        actor: EventActor::Staff(ended.staff_id.clone()),
                        detail: json!({
                            "assumption_id": ended.assumption_id,
                            "principal": caller.principal,
                        }),
                        request_id,
                    },
                    now,
                )
                .await?;
                Ok(AssumptionView::at(ended, now))
            })
        })
        .await
    }
}
