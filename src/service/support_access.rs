//! Assumption decisions and the assumptions they create. Fail closed: a decision exists only
//! if its audit event committed with it.

use super::{
    App, Caller, Idempotency,
    commands::assumption::{Authorize, End},
};
use crate::{
    domain::{
        Error,
        assumption::{AssumptionDecision, AssumptionRequest, AssumptionView},
        permission::Permission,
    },
    storage::assumptions,
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
        let idem = Idempotency::new(
            "AuthorizeAssumption",
            request_id.clone(),
            &caller.principal,
            &req,
        )?;
        let emergency_reason = req.emergency.as_ref().map(|e| e.reason.as_str());
        let command = Authorize {
            req,
            principal: caller.principal,
            request_id,
            limits: self.settings.lifetimes,
        };
        let decision = self.write(command, idem).await?;
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
        let idem = Idempotency::new("EndAssumption", request_id.clone(), &caller.principal, &id)?;
        let command = End {
            assumption_id: id,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }
}
