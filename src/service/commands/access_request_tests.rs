//! The request rules on the in-memory fixture: quorum, denial, lapses, closing, deciding with
//! a request, and "everyone out".

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{
    access_request::{Close, Create, RecordRequestLapse, Review},
    account::Delete,
    assumption::{Authorize, Revoke},
    fixture::{Fixture, t},
    grant::Disable,
    policy::UpdatePolicy,
};
use crate::domain::{
    Error,
    access_request::{
        Closing, NewAccessRequest, PolicyUpdate, RequestState, ReviewRequest, Verdict,
    },
    account::Plan,
    actor::{Actor, Product, Role},
    assumption::{
        AccessReason, AssumptionRequest, AssumptionState, Basis, DenyReason, Lifetimes,
        RevokeAssumption,
    },
    grant::DisableGrant,
    ids::AccountId,
};

fn acme() -> AccountId {
    AccountId::parse("acme", "account_id").unwrap()
}

fn admin(user: &str) -> Actor {
    Actor {
        user_id: user.into(),
        roles: vec![(Product::Support, Role::Admin)],
    }
}

fn create(hours: i64) -> Create {
    Create {
        req: NewAccessRequest {
            account_id: acme(),
            staff_id: "sam".into(),
            ticket_id: "T-1".into(),
            reason: AccessReason::Other,
            reason_detail: String::new(),
            requested_duration_us: Duration::hours(hours).num_microseconds().unwrap(),
        },
        principal: "support-tool".into(),
        request_id: None,
        pending_lifetime: Duration::hours(24),
    }
}

fn review(id: &str, user: &str, verdict: Verdict) -> Review {
    Review {
        review: ReviewRequest {
            access_request_id: id.into(),
            actor: admin(user),
            verdict,
            comment: String::new(),
            etag: None,
        },
        account_id: acme(),
        principal: "admin-center".into(),
        request_id: None,
    }
}

fn set_approvals(f: &mut Fixture, n: i32) {
    f.run(
        &UpdatePolicy {
            update: PolicyUpdate {
                account_id: acme(),
                requests_enabled: None,
                required_approvals: Some(n),
                max_request_duration_us: None,
                actor: admin("ada"),
                etag: None,
            },
            principal: "admin-center".into(),
            request_id: None,
        },
        t(0),
    )
    .unwrap();
}

fn authorize(request: Option<&str>, ticket: &str) -> Authorize {
    Authorize {
        req: AssumptionRequest {
            account_id: acme(),
            staff_id: "sam".into(),
            ticket_id: ticket.into(),
            reason: AccessReason::Other,
            reason_detail: String::new(),
            emergency: None,
            access_request_id: request.map(str::to_owned),
        },
        principal: "support-tool".into(),
        request_id: None,
        limits: Lifetimes {
            max: Duration::hours(8),
            emergency: Duration::hours(1),
        },
    }
}

fn close(id: &str, closing: Closing) -> Close {
    Close {
        access_request_id: id.into(),
        account_id: acme(),
        closing,
        principal: "admin-center".into(),
        request_id: None,
    }
}

/// A created and approved request (one approval by default), its id.
fn approved(f: &mut Fixture, at: DateTime<Utc>) -> String {
    let id = f.run(&create(2), at).unwrap().request.access_request_id;
    f.run(&review(&id, "ada", Verdict::Approve), at).unwrap();
    id
}

/// Two required approvals need two distinct users; the same user twice is refused, and the
/// approval sets the window from the moment of the quorum.
#[test]
fn a_quorum_needs_distinct_approvers() {
    let mut f = Fixture::paid("acme");
    set_approvals(&mut f, 2);
    let id = f.run(&create(2), t(1)).unwrap().request.access_request_id;
    let first = f.run(&review(&id, "ada", Verdict::Approve), t(2)).unwrap();
    assert_eq!(first.state, RequestState::Pending);
    assert_eq!(f.last_detail("acme")["approved"], json!(false));
    assert!(matches!(
        f.run(&review(&id, "ada", Verdict::Approve), t(3)),
        Err(Error::AlreadyReviewed)
    ));
    let second = f.run(&review(&id, "bob", Verdict::Approve), t(3)).unwrap();
    assert_eq!(second.state, RequestState::Approved);
    assert_eq!(second.request.approve_time, Some(t(3)));
    assert_eq!(second.request.expire_time, Some(t(5)));
    assert_eq!(f.last_detail("acme")["approvals"], json!(2));
    assert_eq!(f.last_detail("acme")["access_request_id"], json!(id));
    assert!(matches!(
        f.run(&review(&id, "cy", Verdict::Approve), t(4)),
        Err(Error::AccessRequestNotPending)
    ));
    assert_eq!(
        f.kinds("acme"),
        vec![
            "ACCESS_POLICY_UPDATED",
            "ACCESS_REQUEST_CREATED",
            "ACCESS_REQUEST_APPROVED",
            "ACCESS_REQUEST_APPROVED"
        ]
    );
}

/// One denial denies, even after an approval.
#[test]
fn one_denial_denies() {
    let mut f = Fixture::paid("acme");
    set_approvals(&mut f, 2);
    let id = f.run(&create(2), t(1)).unwrap().request.access_request_id;
    f.run(&review(&id, "ada", Verdict::Approve), t(1)).unwrap();
    let denied = f.run(&review(&id, "bob", Verdict::Deny), t(1)).unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    let decision = f.run(&authorize(Some(&id), "T-1"), t(2)).unwrap();
    assert_eq!(decision.denied, Some(DenyReason::AccessRequestNotApproved));
}

/// Creation follows the policy and the plan; a refused creation writes nothing.
#[test]
fn creation_is_bounded_by_policy_and_plan() {
    let mut f = Fixture::paid("acme");
    assert!(matches!(
        f.run(&create(9), t(0)),
        Err(Error::InvalidArgument(v)) if v[0].field == "requested_duration"
    ));
    f.run(
        &UpdatePolicy {
            update: PolicyUpdate {
                account_id: acme(),
                requests_enabled: Some(false),
                required_approvals: None,
                max_request_duration_us: None,
                actor: admin("ada"),
                etag: Some("p1".into()),
            },
            principal: "admin-center".into(),
            request_id: None,
        },
        t(0),
    )
    .unwrap();
    assert!(matches!(
        f.run(&create(1), t(0)),
        Err(Error::AccessRequestsDisabled)
    ));
    let mut trial = Fixture::default();
    trial.add("acme", Plan::Trial);
    assert!(matches!(
        trial.run(&create(1), t(0)),
        Err(Error::TrialAccountAlwaysOn)
    ));
    assert!(trial.events.is_empty() && trial.access_requests.is_empty());
    assert_eq!(f.kinds("acme"), vec!["ACCESS_POLICY_UPDATED"]);
}

/// Deciding with a request: only its own staff member and ticket, only while approved, and
/// never past the request's end.
#[test]
fn a_request_decides_only_for_itself_while_approved() {
    let mut f = Fixture::paid("acme");
    let pending = f.run(&create(2), t(0)).unwrap().request.access_request_id;
    let d = f.run(&authorize(Some(&pending), "T-1"), t(0)).unwrap();
    assert_eq!(d.denied, Some(DenyReason::AccessRequestNotApproved));
    let id = approved(&mut f, t(1));
    let d = f.run(&authorize(Some(&id), "T-2"), t(1)).unwrap();
    assert_eq!(d.denied, Some(DenyReason::AccessRequestMismatch));
    let d = f.run(&authorize(Some("nope"), "T-1"), t(1)).unwrap();
    assert_eq!(d.denied, Some(DenyReason::AccessRequestNotApproved));
    let allowed = f.run(&authorize(Some(&id), "T-1"), t(2)).unwrap();
    let view = allowed.allowed.unwrap();
    assert_eq!(view.assumption.basis, Basis::AccessRequest);
    assert_eq!(view.assumption.expire_time, t(3), "ends with the request");
    assert_eq!(
        view.assumption.access_request_id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(view.assumption.ticket_id, "T-1");
    let lapsed = f.run(&authorize(Some(&id), "T-1"), t(3)).unwrap();
    assert_eq!(lapsed.denied, Some(DenyReason::AccessRequestNotApproved));
    // Without the field, the grant decides as before (off here).
    let d = f.run(&authorize(None, "T-1"), t(2)).unwrap();
    assert_eq!(d.denied, Some(DenyReason::AccessDisabled));
}

/// Revoking a request ends the assumptions made under it, and only those, in the same
/// command; closing one already final writes nothing.
#[test]
fn revoking_a_request_ends_its_assumptions() {
    let mut f = Fixture::paid("acme");
    let id = approved(&mut f, t(0));
    let under = f.run(&authorize(Some(&id), "T-1"), t(0)).unwrap();
    let under = under.allowed.unwrap().assumption.assumption_id;
    let (view, closed) = f
        .run(
            &close(
                &id,
                Closing::Revoke {
                    actor: admin("bob"),
                    etag: None,
                },
            ),
            t(1),
        )
        .unwrap();
    assert!(closed);
    assert_eq!(view.state, RequestState::Revoked);
    let a = f
        .assumptions
        .iter()
        .find(|a| a.assumption_id == under)
        .unwrap();
    assert_eq!(a.state_at(t(1)), AssumptionState::Revoked);
    assert_eq!(
        f.last_detail("acme")["revoked_assumption_ids"],
        json!([under])
    );
    let events = f.events.len();
    let (again, closed) = f.run(&close(&id, Closing::Cancel), t(1)).unwrap();
    assert!(!closed);
    assert_eq!(again.state, RequestState::Revoked);
    assert_eq!(
        f.events.len(),
        events,
        "a final request is returned as it is"
    );
    let d = f.run(&authorize(Some(&id), "T-1"), t(1)).unwrap();
    assert_eq!(d.denied, Some(DenyReason::AccessRequestNotApproved));
}

/// Disabling access revokes open requests (each with its event) even when the grant was off.
#[test]
fn disable_revokes_every_open_request() {
    let mut f = Fixture::paid("acme");
    let a = approved(&mut f, t(0));
    let p = f.run(&create(1), t(0)).unwrap().request.access_request_id;
    f.run(
        &Disable {
            cmd: DisableGrant {
                account_id: acme(),
                actor: admin("ada"),
                etag: None,
            },
            principal: "admin-center".into(),
            request_id: None,
        },
        t(1),
    )
    .unwrap();
    for id in [&a, &p] {
        let r = f
            .access_requests
            .iter()
            .find(|r| &r.access_request_id == id)
            .unwrap();
        assert_eq!(r.state_at(t(1)), RequestState::Revoked);
    }
    let kinds = f.kinds("acme");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "ACCESS_REQUEST_REVOKED")
            .count(),
        2
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("ACCESS_REQUEST_REVOKED")
    );
    assert_eq!(f.last_detail("acme")["cause"], json!("GRANT_DISABLED"));
}

/// Deleting the account revokes its requests before the deletion event (the last one).
#[test]
fn delete_revokes_requests_before_its_event() {
    let mut f = Fixture::paid("acme");
    approved(&mut f, t(0));
    f.run(
        &Delete {
            account_id: acme(),
            principal: "billing".into(),
            request_id: None,
        },
        t(1),
    )
    .unwrap();
    let kinds = f.kinds("acme");
    assert_eq!(kinds[kinds.len() - 2], "ACCESS_REQUEST_REVOKED");
    assert_eq!(kinds[kinds.len() - 1], "ACCOUNT_DELETED");
}

/// A pending request's lapse is recorded once; an approved one's is not an event.
#[test]
fn a_pending_lapse_is_recorded_once() {
    let mut f = Fixture::paid("acme");
    let id = f.run(&create(1), t(0)).unwrap().request.access_request_id;
    let lapse = RecordRequestLapse {
        access_request_id: id.clone(),
        account_id: acme(),
    };
    assert!(!f.run(&lapse, t(23)).unwrap(), "not lapsed yet");
    assert!(f.run(&lapse, t(24)).unwrap());
    assert!(!f.run(&lapse, t(25)).unwrap());
    assert_eq!(
        f.kinds("acme"),
        vec!["ACCESS_REQUEST_CREATED", "ACCESS_REQUEST_EXPIRED"]
    );
    assert!(matches!(
        f.run(&review(&id, "ada", Verdict::Approve), t(25)),
        Err(Error::AccessRequestNotPending)
    ));
}

/// An admin ends one active assumption; one already over is returned as it is.
#[test]
fn an_admin_revokes_one_assumption() {
    let mut f = Fixture::paid("acme");
    let id = approved(&mut f, t(0));
    let a = f.run(&authorize(Some(&id), "T-1"), t(0)).unwrap();
    let a = a.allowed.unwrap().assumption.assumption_id;
    let revoke = Revoke {
        revoke: RevokeAssumption {
            assumption_id: a.clone(),
            actor: admin("ada"),
            reason: "not now".into(),
        },
        principal: "admin-center".into(),
        request_id: None,
    };
    let view = f.run(&revoke, t(1)).unwrap();
    assert_eq!(view.state, AssumptionState::Revoked);
    assert_eq!(f.last_detail("acme")["assumption_id"], json!(a));
    let events = f.events.len();
    assert_eq!(
        f.run(&revoke, t(1)).unwrap().state,
        AssumptionState::Revoked
    );
    assert_eq!(f.events.len(), events);
}

/// A stale etag is refused, on the policy as on a request.
#[test]
fn stale_etags_are_refused() {
    let mut f = Fixture::paid("acme");
    set_approvals(&mut f, 2);
    let stale = UpdatePolicy {
        update: PolicyUpdate {
            account_id: acme(),
            requests_enabled: Some(false),
            required_approvals: None,
            max_request_duration_us: None,
            actor: admin("ada"),
            etag: Some("p1".into()),
        },
        principal: "admin-center".into(),
        request_id: None,
    };
    assert!(matches!(f.run(&stale, t(1)), Err(Error::EtagMismatch)));
    let id = f.run(&create(1), t(1)).unwrap().request.access_request_id;
    let mut r = review(&id, "ada", Verdict::Approve);
    r.review.etag = Some("v7".into());
    assert!(matches!(f.run(&r, t(1)), Err(Error::EtagMismatch)));
}

/// A damaged stored duration fails the approval with an internal error (never a panic on the
/// write loop) and writes nothing.
#[test]
fn a_damaged_duration_fails_the_approval_alone() {
    let mut f = Fixture::paid("acme");
    let id = f.run(&create(1), t(0)).unwrap().request.access_request_id;
    let mut stored = f.access_requests[0].clone();
    stored.requested_duration_us = i64::MAX;
    f.put_request(stored);
    let events = f.events.len();
    assert!(matches!(
        f.run(&review(&id, "ada", Verdict::Approve), t(1)),
        Err(Error::Internal(_))
    ));
    assert_eq!(f.events.len(), events);
    assert_eq!(f.access_requests[0].status, RequestState::Pending);
}
