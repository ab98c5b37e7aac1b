//! `SupportAccessService` messages ↔ domain: assumption requests, lists and revocations in,
//! decisions and assumptions out. Request conversions validate every field and report all violations at
//! once; they destructure messages completely, so a field added to a proto fails to compile
//! here until it is handled.

use crate::{
    domain::{
        Error, FieldViolation,
        assumption::{
            AccessReason, AssumptionDecision, AssumptionRequest, AssumptionState, AssumptionView,
            Basis, DenyReason, Emergency, EmergencyReason, MIN_JUSTIFICATION_CHARS,
            RevokeAssumption,
        },
        error::Violations,
        ids::{self, AccountId},
    },
    grpc::{
        access_grant::convert::actor,
        fields::{self, enum_value, timestamp},
    },
    proto::v1 as pb,
    service::support_access::{AssumptionListQuery, AssumptionPage},
};

/// A required `AccessReason` field (assumptions and access requests take the same reasons).
pub fn access_reason(value: i32, field: &str) -> Result<AccessReason, FieldViolation> {
    match enum_value(value, field)? {
        pb::AccessReason::Unspecified => Err(FieldViolation::new(field, "required")),
        pb::AccessReason::EscalatedTechnicalIssue => Ok(AccessReason::EscalatedTechnicalIssue),
        pb::AccessReason::CannotReproduceElsewhere => Ok(AccessReason::CannotReproduceElsewhere),
        pb::AccessReason::VisualConsoleInspection => Ok(AccessReason::VisualConsoleInspection),
        pb::AccessReason::IpConfiguration => Ok(AccessReason::IpConfiguration),
        pb::AccessReason::TestTickets => Ok(AccessReason::TestTickets),
        pb::AccessReason::Other => Ok(AccessReason::Other),
    }
}

/// A domain reason as its protobuf enum.
pub fn access_reason_to_pb(r: AccessReason) -> pb::AccessReason {
    match r {
        AccessReason::EscalatedTechnicalIssue => pb::AccessReason::EscalatedTechnicalIssue,
        AccessReason::CannotReproduceElsewhere => pb::AccessReason::CannotReproduceElsewhere,
        AccessReason::VisualConsoleInspection => pb::AccessReason::VisualConsoleInspection,
        AccessReason::IpConfiguration => pb::AccessReason::IpConfiguration,
        AccessReason::TestTickets => pb::AccessReason::TestTickets,
        AccessReason::Other => pb::AccessReason::Other,
    }
}

fn emergency(value: pb::EmergencyJustification, v: &mut Violations) -> Option<Emergency> {
    let pb::EmergencyJustification {
        reason,
        justification,
    } = value;
    let reason = v.check(match enum_value(reason, "emergency.reason") {
        Ok(pb::EmergencyReason::Unspecified) => {
            Err(FieldViolation::new("emergency.reason", "required"))
        }
        Ok(pb::EmergencyReason::PreventSeriousHarm) => Ok(EmergencyReason::PreventSeriousHarm),
        Ok(pb::EmergencyReason::SuspectedTermsViolation) => {
            Ok(EmergencyReason::SuspectedTermsViolation)
        }
        Err(e) => Err(e),
    });
    let justification = v.check(
        ids::parse_free_text(&justification, "emergency.justification").and_then(|text| {
            // Counted as a reader sees it: blanks and invisible characters do not explain.
            if ids::visible_chars(&text) < MIN_JUSTIFICATION_CHARS {
                Err(FieldViolation::new(
                    "emergency.justification",
                    "at least 20 visible characters: say why this cannot wait for the customer",
                ))
            } else {
                Ok(text)
            }
        }),
    );
    Some(Emergency {
        reason: reason?,
        justification: justification?,
    })
}

/// A validated `AuthorizeAssumption` request.
pub fn authorize_request(
    req: pb::AuthorizeAssumptionRequest,
) -> Result<(AssumptionRequest, Option<String>), Error> {
    let pb::AuthorizeAssumptionRequest {
        account_id,
        staff_id,
        ticket_id,
        reason,
        reason_detail,
        emergency: emergency_value,
        request_id,
        access_request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let staff_id = v.check(ids::parse_printable_id(&staff_id, "staff_id"));
    let ticket_id = v.check(ids::parse_printable_id(&ticket_id, "ticket_id"));
    let reason = v.check(access_reason(reason, "reason"));
    let reason_detail = v.check(ids::parse_free_text(&reason_detail, "reason_detail"));
    let emergency = emergency_value.map(|e| emergency(e, &mut v));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    // Optional like request_id: empty means "decide on the grant".
    let access_request_id = v.check(ids::parse_request_id(
        &access_request_id,
        "access_request_id",
    ));
    let cmd = (|| {
        Some((
            AssumptionRequest {
                account_id: account_id?,
                staff_id: staff_id?,
                ticket_id: ticket_id?,
                reason: reason?,
                reason_detail: reason_detail?,
                emergency: match emergency {
                    None => None,
                    Some(e) => Some(e?),
                },
                access_request_id: access_request_id?,
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// Validates an assumption id field.
pub fn assumption_id(value: &str) -> Result<String, Error> {
    ids::parse_printable_id(value, "assumption_id").map_err(Error::from)
}

/// A validated `EndAssumption` request.
pub fn end_request(req: pb::EndAssumptionRequest) -> Result<(String, Option<String>), Error> {
    let pb::EndAssumptionRequest {
        assumption_id,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(&assumption_id, "assumption_id"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| Some((id?, request_id?)))();
    v.finish(cmd)
}

/// Most `states` a list request may name: each of the four at most twice (duplicates are
/// harmless), so a huge list cannot make the query expensive.
const MAX_STATES: usize = 8;

fn state_from_pb(value: i32, field: &str) -> Result<AssumptionState, FieldViolation> {
    match enum_value(value, field)? {
        pb::assumption::State::Unspecified => {
            Err(FieldViolation::new(field, "must be a specific state"))
        }
        pb::assumption::State::Active => Ok(AssumptionState::Active),
        pb::assumption::State::Ended => Ok(AssumptionState::Ended),
        pb::assumption::State::Expired => Ok(AssumptionState::Expired),
        pb::assumption::State::Revoked => Ok(AssumptionState::Revoked),
    }
}

/// A validated `ListAssumptions` request.
pub fn list_request(req: pb::ListAssumptionsRequest) -> Result<AssumptionListQuery, Error> {
    let pb::ListAssumptionsRequest {
        account_id,
        page_size,
        page_token,
        states,
    } = req;
    let f = fields::list_fields(
        &account_id,
        page_size,
        page_token,
        &states,
        MAX_STATES,
        state_from_pb,
    )?;
    Ok(AssumptionListQuery {
        account_id: f.account_id,
        states: f.states,
        page_size: f.page_size,
        page_token: f.page_token,
    })
}

/// A validated `RevokeAssumption` request.
pub fn revoke_request(
    req: pb::RevokeAssumptionRequest,
) -> Result<(RevokeAssumption, Option<String>), Error> {
    let pb::RevokeAssumptionRequest {
        assumption_id,
        actor: actor_value,
        reason,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(&assumption_id, "assumption_id"));
    let actor = actor(actor_value, "actor", &mut v);
    let reason = v.check(ids::parse_free_text(&reason, "reason"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            RevokeAssumption {
                assumption_id: id?,
                actor: actor?,
                reason: reason?,
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

fn basis_to_pb(b: Basis) -> pb::Basis {
    match b {
        Basis::CustomerGrant => pb::Basis::CustomerGrant,
        Basis::TrialAccount => pb::Basis::TrialAccount,
        Basis::Emergency => pb::Basis::Emergency,
        Basis::AccessRequest => pb::Basis::AccessRequest,
    }
}

impl From<AssumptionView> for pb::Assumption {
    fn from(view: AssumptionView) -> Self {
        let AssumptionView {
            assumption: a,
            state,
        } = view;
        let state = match state {
            AssumptionState::Active => pb::assumption::State::Active,
            AssumptionState::Ended => pb::assumption::State::Ended,
            AssumptionState::Expired => pb::assumption::State::Expired,
            AssumptionState::Revoked => pb::assumption::State::Revoked,
        };
        Self {
            assumption_id: a.assumption_id,
            account_id: a.account_id,
            staff_id: a.staff_id,
            basis: basis_to_pb(a.basis).into(),
            start_time: Some(timestamp(a.start_time)),
            expire_time: Some(timestamp(a.expire_time)),
            end_time: a.end_time.map(timestamp),
            state: state.into(),
            ticket_id: a.ticket_id,
            access_request_id: a.access_request_id.unwrap_or_default(),
        }
    }
}

impl From<AssumptionDecision> for pb::AuthorizeAssumptionResponse {
    fn from(d: AssumptionDecision) -> Self {
        let deny_reason = match d.denied {
            None => pb::DenyReason::Unspecified,
            Some(DenyReason::AccessDisabled) => pb::DenyReason::AccessDisabled,
            Some(DenyReason::AccessExpired) => pb::DenyReason::AccessExpired,
            Some(DenyReason::AccountNotFound) => pb::DenyReason::AccountNotFound,
            Some(DenyReason::AccessRequestNotApproved) => pb::DenyReason::AccessRequestNotApproved,
            Some(DenyReason::AccessRequestMismatch) => pb::DenyReason::AccessRequestMismatch,
        };
        let (decision, basis) = match &d.allowed {
            Some(view) => (pb::Decision::Allow, basis_to_pb(view.assumption.basis)),
            None => (pb::Decision::Deny, pb::Basis::Unspecified),
        };
        Self {
            decision: decision.into(),
            deny_reason: deny_reason.into(),
            basis: basis.into(),
            assumption: d.allowed.map(Into::into),
            audit_event_id: d.audit_event_id,
        }
    }
}

impl From<AssumptionPage> for pb::ListAssumptionsResponse {
    fn from(page: AssumptionPage) -> Self {
        let AssumptionPage {
            assumptions,
            next_page_token,
        } = page;
        Self {
            assumptions: assumptions.into_iter().map(Into::into).collect(),
            next_page_token: next_page_token.unwrap_or_default(),
        }
    }
}
