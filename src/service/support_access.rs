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

/// A request for one page of an account's assumptions.
#[derive(Debug, Clone)]
pub struct AssumptionListQuery {
    /// The account.
    pub account_id: crate::domain::ids::AccountId,
    /// Only assumptions in these states (evaluated now); empty: all.
    pub states: Vec<crate::domain::assumption::AssumptionState>,
    /// Page size (already defaulted and capped, like `ListAuditEvents`').
    pub page_size: u64,
    /// The previous page's token, if any.
    pub page_token: Option<String>,
}

/// One page, newest first.
#[derive(Debug, Clone)]
pub struct AssumptionPage {
    /// The assumptions, evaluated now.
    pub assumptions: Vec<AssumptionView>,
    /// Token for the next page; `None` at the end.
    pub next_page_token: Option<String>,
}

fn state_name(s: crate::domain::assumption::AssumptionState) -> &'static str {
    use crate::domain::assumption::AssumptionState as S;
    match s {
        S::Active => "ACTIVE",
        S::Ended => "ENDED",
        S::Expired => "EXPIRED",
        S::Revoked => "REVOKED",
    }
}

impl App {
    /// Who is in the account: one page of its assumptions, newest first, evaluated now.
    pub async fn list_assumptions(
        &self,
        query: AssumptionListQuery,
        caller: &Caller,
    ) -> Result<AssumptionPage, Error> {
        caller.require(Permission::GrantsRead)?;
        let names: Vec<&str> = query.states.iter().map(|s| state_name(*s)).collect();
        let binding = super::page_token::binding("assumptions", query.account_id.as_str(), &names);
        let after = query
            .page_token
            .as_deref()
            .map(|t| super::page_token::decode(t, &binding))
            .transpose()?;
        self.require_account(query.account_id.as_str()).await?;
        let now = self.clock.now();
        // One extra row tells whether another page exists.
        let rows = assumptions::page(
            self.store.reader(),
            query.account_id.as_str(),
            &query.states,
            now,
            after.as_ref(),
            query.page_size + 1,
        )
        .await?;
        let (rows, next_page_token) =
            super::page_token::page(rows, query.page_size, &binding, |last| {
                crate::storage::page::Cursor {
                    time_us: crate::storage::to_us(last.start_time),
                    id: last.assumption_id.clone(),
                }
            });
        Ok(AssumptionPage {
            assumptions: rows
                .into_iter()
                .map(|a| AssumptionView::at(a, now))
                .collect(),
            next_page_token,
        })
    }

    /// A customer admin ends one active assumption (audited); one already over is returned
    /// unchanged.
    pub async fn revoke_assumption(
        &self,
        revoke: crate::domain::assumption::RevokeAssumption,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AssumptionView, Error> {
        caller.require(Permission::GrantsWrite)?;
        crate::domain::grant::authorize_actor(&revoke.actor)?;
        let idem = Idempotency::new(
            "RevokeAssumption",
            request_id.clone(),
            &caller.principal,
            &revoke,
        )?;
        let command = super::commands::assumption::Revoke {
            revoke,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }
}
