//! Per-request approval through the real server (API.md, "AccessRequestService: per-request
//! approval"): creating requests against the account's policy, the quorum of distinct admins,
//! deciding an assumption on a request alone, every way a request ends (and the access it gave
//! with it), lapses on a manual clock and the sweep that records them once, the policy, the
//! lists, replays, and the races between using a request and taking it away.

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration as StdDuration,
};

use accessgrant::{
    audit::{EventActor, EventKind},
    proto::v1 as pb,
};
use chrono::Duration;
use common::{requests::*, *};
use pb::{AccessDuration as D, access_request::State as R, assumption::State as A};
use tonic::Code;

/// Sweep interval for the tests that want the expiry sweep to run.
const FAST: StdDuration = StdDuration::from_millis(50);

/// The instant a protobuf timestamp field names (panics when unset).
fn at(ts: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    time(ts.as_ref().expect("timestamp set"))
}

/// Creating a request: PENDING, `required_approvals` copied from the policy at creation,
/// `request_expire_time` = now + 24 h, every field echoed, and one `ACCESS_REQUEST_CREATED`
/// event (by the staff member) naming the request. Later policy changes leave it alone.
#[tokio::test]
async fn create_starts_pending_with_the_policy_copied() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.clock.advance(Duration::minutes(7));
    let now = t0() + Duration::minutes(7);
    let before = s.events("acme").await.len();

    let r = s
        .create_request(new_request_for("acme", Duration::hours(2)))
        .await
        .unwrap();
    assert!(!r.access_request_id.is_empty());
    assert_eq!(r.state(), R::Pending);
    assert_eq!(r.account_id, "acme");
    assert_eq!(r.staff_id, "sam");
    assert_eq!(r.ticket_id, "T-1");
    assert_eq!(r.reason(), pb::AccessReason::CannotReproduceElsewhere);
    assert_eq!(r.reason_detail, "only happens in their sandbox");
    assert_eq!(
        from_pb_duration(r.requested_duration.as_ref().unwrap()),
        Duration::hours(2)
    );
    assert_eq!(r.required_approvals, 1);
    assert!(r.reviews.is_empty());
    assert_eq!(at(&r.create_time), now);
    assert_eq!(at(&r.request_expire_time), now + Duration::hours(24));
    assert_eq!(at(&r.update_time), now);
    assert!(r.approve_time.is_none());
    assert!(r.expire_time.is_none());
    assert!(!r.etag.is_empty());
    assert_eq!(s.access_request(&r.access_request_id).await, r);

    let events = s.events("acme").await;
    assert_eq!(events.len(), before + 1);
    let created = events.last().unwrap();
    assert_eq!(created.kind, EventKind::AccessRequestCreated);
    assert_eq!(created.actor, EventActor::Staff("sam".into()));
    assert_eq!(detail(created)["access_request_id"], r.access_request_id);
    assert_eq!(detail(created)["ticket_id"], "T-1");

    // The policy's quorum is copied at creation: a request made under 3 keeps 3 when the
    // policy changes to 2 later.
    s.require_approvals("acme", 3).await;
    let three = s.pending_request("acme").await;
    assert_eq!(three.required_approvals, 3);
    s.require_approvals("acme", 2).await;
    assert_eq!(
        s.access_request(&three.access_request_id)
            .await
            .required_approvals,
        3
    );
    assert_eq!(s.pending_request("acme").await.required_approvals, 2);
}

/// Refusals of `CreateAccessRequest` (missing ticket, durations outside 1 minute..the policy's
/// maximum, unknown/deleted account, trial account, requests switched off by the policy)
/// carry their code and reason and write nothing.
#[tokio::test]
async fn create_refusals_write_nothing() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("tria", pb::AccountPlan::Trial).await;
    s.create_account("gone", pb::AccountPlan::Paid).await;
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "gone".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    async fn counts(s: &TestServer) -> (usize, usize, usize, i64) {
        (
            s.events("acme").await.len(),
            s.events("tria").await.len(),
            s.events("gone").await.len(),
            s.count("SELECT COUNT(*) FROM access_requests").await,
        )
    }
    let before = counts(&s).await;

    let mut no_ticket = new_request("acme");
    no_ticket.ticket_id = String::new();
    let status = s.create_request(no_ticket).await.unwrap_err();
    assert!(
        violated_fields(&status).contains(&"ticket_id".to_owned()),
        "{status:?}"
    );

    for d in [
        None,
        Some(pb_duration(Duration::seconds(59))),
        Some(pb_duration(Duration::seconds(0))),
        Some(pb_duration(Duration::seconds(-3600))),
        // Above the default policy maximum of 8 hours.
        Some(pb_duration(Duration::hours(8) + Duration::seconds(1))),
        Some(pb_duration(Duration::days(31))),
    ] {
        let mut req = new_request("acme");
        req.requested_duration = d;
        let status = s.create_request(req).await.unwrap_err();
        assert_eq!(
            violated_fields(&status),
            ["requested_duration"],
            "{d:?}: {status:?}"
        );
    }

    let status = s.create_request(new_request("nobody")).await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = s.create_request(new_request("gone")).await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = s.create_request(new_request("tria")).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "TRIAL_ACCOUNT_ALWAYS_ON");
    assert_eq!(counts(&s).await, before);

    // The account's own maximum, lowered to 30 minutes: an hour is too long now.
    let policy = s
        .update_policy(
            pb::AccessPolicy {
                account_id: "acme".into(),
                max_request_duration: Some(pb_duration(Duration::minutes(30))),
                ..Default::default()
            },
            &["max_request_duration"],
        )
        .await
        .unwrap();
    let status = s.create_request(new_request("acme")).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["requested_duration"]);

    // Requests switched off.
    s.update_policy(
        pb::AccessPolicy {
            account_id: "acme".into(),
            access_requests_enabled: false,
            ..Default::default()
        },
        &["access_requests_enabled"],
    )
    .await
    .unwrap();
    let status = s
        .create_request(new_request_for("acme", Duration::minutes(5)))
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUESTS_DISABLED",
    );
    // Only the two policy updates were written.
    let after = counts(&s).await;
    assert_eq!(after.0, before.0 + 2);
    assert_eq!(after.3, before.3);
    assert_eq!(
        &s.kinds("acme").await[before.0..],
        [
            EventKind::AccessPolicyUpdated,
            EventKind::AccessPolicyUpdated
        ]
    );

    // Switched on again, the bounds are inclusive: exactly 1 minute and exactly the maximum.
    s.update_policy(
        pb::AccessPolicy {
            access_requests_enabled: true,
            etag: String::new(),
            ..policy
        },
        &["access_requests_enabled"],
    )
    .await
    .unwrap();
    for d in [Duration::minutes(1), Duration::minutes(30)] {
        let r = s.create_request(new_request_for("acme", d)).await.unwrap();
        assert_eq!(r.state(), R::Pending);
    }
}

/// The quorum: with `required_approvals` = 2, one approval keeps the request pending, the same
/// user again is `ALREADY_REVIEWED`, a second distinct admin approves it (`approve_time` = now,
/// `expire_time` = now + requested duration), and then it is no longer pending. Each approving
/// review writes an event saying how many approvals there are and whether it is approved.
/// A non-admin may not review.
#[tokio::test]
async fn approval_needs_a_quorum_of_distinct_admins() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 2).await;
    let policy = s.policy("acme").await;
    assert!(
        policy.access_requests_enabled,
        "outside the mask: unchanged"
    );
    assert_eq!(
        from_pb_duration(policy.max_request_duration.as_ref().unwrap()),
        Duration::hours(8),
        "outside the mask: unchanged"
    );
    let r = s
        .create_request(new_request_for("acme", Duration::hours(2)))
        .await
        .unwrap();
    let id = r.access_request_id.clone();
    assert_eq!(r.required_approvals, 2);

    s.clock.advance(Duration::minutes(10));
    let first = s.approve(&id, admin("ada")).await.unwrap();
    assert_eq!(first.state(), R::Pending);
    assert!(first.approve_time.is_none());
    assert!(first.expire_time.is_none());
    assert_eq!(first.reviews.len(), 1);
    assert_eq!(first.reviews[0].user_id, "ada");
    assert_eq!(
        first.reviews[0].verdict(),
        pb::access_request_review::Verdict::Approve
    );
    assert_eq!(
        at(&first.reviews[0].review_time),
        t0() + Duration::minutes(10)
    );
    assert_ne!(first.etag, r.etag, "the etag changes on every change");
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AccessRequestApproved);
    assert_eq!(event.actor, EventActor::CustomerUser("ada".into()));
    let d = detail(&event);
    assert_eq!(d["access_request_id"], id);
    assert_eq!(d["approvals"], 1);
    assert_eq!(d["required_approvals"], 2);
    assert_eq!(d["approved"], false);

    // The same user cannot count twice, nor change their mind by denying.
    let n = s.events("acme").await.len();
    let status = s.approve(&id, admin("ada")).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REVIEWED");
    let status = s.deny(&id, admin("ada")).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REVIEWED");
    // An admin of Explore only is not an account admin for this purpose.
    let status = s.approve(&id, explore_admin("eve")).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    let status = s.deny(&id, explore_admin("eve")).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    // A stale etag is refused.
    let status = s
        .requests()
        .approve_access_request(pb::ApproveAccessRequestRequest {
            access_request_id: id.clone(),
            actor: Some(admin("bob")),
            comment: String::new(),
            etag: r.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    let status = s
        .approve("no-such-request", admin("bob"))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCESS_REQUEST_NOT_FOUND");
    assert_eq!(s.events("acme").await.len(), n, "refusals write nothing");
    assert_eq!(s.access_request(&id).await, first);

    // A second, distinct admin (of Sell, with the current etag) completes the quorum.
    s.clock.advance(Duration::minutes(5));
    let approved = s
        .requests()
        .approve_access_request(pb::ApproveAccessRequestRequest {
            access_request_id: id.clone(),
            actor: Some(pb::Actor {
                user_id: "bob".into(),
                roles: vec![pb::ProductRole {
                    product: pb::Product::Sell.into(),
                    role: pb::Role::Admin.into(),
                }],
            }),
            comment: String::new(),
            etag: first.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_request
        .unwrap();
    let approve_time = t0() + Duration::minutes(15);
    assert_eq!(approved.state(), R::Approved);
    assert_eq!(at(&approved.approve_time), approve_time);
    assert_eq!(at(&approved.expire_time), approve_time + Duration::hours(2));
    assert_eq!(approved.reviews.len(), 2);
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AccessRequestApproved);
    let d = detail(&event);
    assert_eq!(d["access_request_id"], id);
    assert_eq!(d["approvals"], 2);
    assert_eq!(d["approved"], true);
    assert_eq!(
        s.events_of_kind("acme", EventKind::AccessRequestApproved)
            .await
            .len(),
        2
    );

    // Approved is final for reviews.
    let n = s.events("acme").await.len();
    let status = s.approve(&id, admin("carol")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    let status = s.deny(&id, admin("carol")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    assert_eq!(s.events("acme").await.len(), n);
    assert_eq!(s.access_request(&id).await.state(), R::Approved);
}

/// One denial denies, even after an approval towards the quorum; a denied request cannot be
/// reviewed again, and its event names it.
#[tokio::test]
async fn one_denial_denies() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 2).await;
    let id = s.pending_request("acme").await.access_request_id;
    assert_eq!(
        s.approve(&id, admin("ada")).await.unwrap().state(),
        R::Pending
    );
    let denied = s.deny(&id, admin("bob")).await.unwrap();
    assert_eq!(denied.state(), R::Denied);
    assert!(denied.approve_time.is_none());
    assert!(denied.expire_time.is_none());
    assert_eq!(
        denied
            .reviews
            .iter()
            .map(|r| r.verdict())
            .collect::<Vec<_>>(),
        [
            pb::access_request_review::Verdict::Approve,
            pb::access_request_review::Verdict::Deny
        ]
    );
    assert_eq!(denied.reviews[1].comment, "not now");
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AccessRequestDenied);
    assert_eq!(event.actor, EventActor::CustomerUser("bob".into()));
    assert_eq!(detail(&event)["access_request_id"], id);
    let status = s.approve(&id, admin("carol")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    assert_eq!(s.access_request(&id).await.state(), R::Denied);
    assert_eq!(
        s.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
}

/// Deciding on a request: allowed on `BASIS_ACCESS_REQUEST` only while it is approved and for
/// its own account, staff member and ticket; the assumption carries the request and the ticket
/// and ends at min(request's expire_time, now + max lifetime). Everything else is a denial
/// (`NOT_APPROVED` or `MISMATCH`), audited. Without the field the grant decides as before, and
/// an emergency ignores the field.
#[tokio::test]
async fn authorize_decides_on_the_request_alone() {
    let s = spawn_server_with(|c| c.service.lifetimes.max = Duration::hours(2)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("other", pb::AccountPlan::Paid).await;
    let r = s.approved_request_for("acme", Duration::hours(3)).await;
    let id = r.access_request_id.clone();
    assert_eq!(at(&r.expire_time), t0() + Duration::hours(3));

    // The grant is off, yet the request allows; the lifetime cap (2 h) is the shorter end.
    let allowed = s.authorize_on("acme", &id).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow);
    assert_eq!(allowed.basis(), pb::Basis::AccessRequest);
    assert_eq!(allowed.deny_reason(), pb::DenyReason::Unspecified);
    let a = allowed.assumption.clone().unwrap();
    assert_eq!(a.access_request_id, id);
    assert_eq!(a.ticket_id, "T-1");
    assert_eq!(a.staff_id, "sam");
    assert_eq!(a.basis(), pb::Basis::AccessRequest);
    assert_eq!(a.state(), A::Active);
    assert_eq!(at(&a.expire_time), t0() + Duration::hours(2));
    assert_eq!(s.assumption(&a.assumption_id).await, a);
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AssumptionAllowed);
    assert_eq!(event.event_id, allowed.audit_event_id);
    let d = detail(&event);
    assert_eq!(d["basis"], "ACCESS_REQUEST");
    assert_eq!(d["access_request_id"], id);
    assert_eq!(d["assumption_id"], a.assumption_id);

    // Two hours later, the request's own end (t0 + 3 h) is the shorter one.
    s.clock.advance(Duration::hours(2));
    let later = s.authorize_on("acme", &id).await.assumption.unwrap();
    assert_eq!(at(&later.expire_time), t0() + Duration::hours(3));

    // Another ticket, staff member or account: a mismatch, audited.
    let mut other_ticket = authorize_with_request("acme", &id);
    other_ticket.ticket_id = "T-2".into();
    let mut other_staff = authorize_with_request("acme", &id);
    other_staff.staff_id = "sue".into();
    let other_account = authorize_with_request("other", &id);
    for (account, req) in [
        ("acme", other_ticket),
        ("acme", other_staff),
        ("other", other_account),
    ] {
        let r = s
            .support()
            .authorize_assumption(req)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.decision(), pb::Decision::Deny);
        assert_eq!(r.deny_reason(), pb::DenyReason::AccessRequestMismatch);
        assert!(r.assumption.is_none());
        let event = s.events(account).await.pop().unwrap();
        assert_eq!(event.kind, EventKind::AssumptionDenied);
        assert_eq!(event.event_id, r.audit_event_id);
        assert_eq!(detail(&event)["deny_reason"], "ACCESS_REQUEST_MISMATCH");
        assert_eq!(detail(&event)["access_request_id"], id);
    }

    // Pending, unknown: not approved.
    let pending = s.pending_request("acme").await.access_request_id;
    for unusable in [pending.as_str(), "no-such-request"] {
        let r = s.authorize_on("acme", unusable).await;
        assert_eq!(r.decision(), pb::Decision::Deny);
        assert_eq!(
            r.deny_reason(),
            pb::DenyReason::AccessRequestNotApproved,
            "{unusable}"
        );
        let event = s.events("acme").await.pop().unwrap();
        assert_eq!(detail(&event)["deny_reason"], "ACCESS_REQUEST_NOT_APPROVED");
    }

    // Without the field, the (disabled) grant decides, as before.
    assert_eq!(
        s.authorize("acme").await.deny_reason(),
        pb::DenyReason::AccessDisabled
    );

    // An emergency ignores the request (even one that would not allow).
    let mut emergency_req = authorize_with_request("acme", &pending);
    emergency_req.emergency = Some(emergency());
    let e = s
        .support()
        .authorize_assumption(emergency_req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.decision(), pb::Decision::Allow);
    assert_eq!(e.basis(), pb::Basis::Emergency);
    assert_eq!(e.assumption.unwrap().access_request_id, "");

    // At the request's expire_time (half-open) it no longer allows, and reads EXPIRED.
    s.clock.advance(Duration::hours(1));
    assert_eq!(s.access_request(&id).await.state(), R::Expired);
    let r = s.authorize_on("acme", &id).await;
    assert_eq!(r.deny_reason(), pb::DenyReason::AccessRequestNotApproved);
    // The assumptions it allowed ended with it.
    assert_eq!(s.assumption(&a.assumption_id).await.state(), A::Expired);
    assert_eq!(s.assumption(&later.assumption_id).await.state(), A::Expired);
}

/// Revoking (customer) or cancelling (support) an open request ends it and every open
/// assumption made under it, in the same change (the event names them); later decisions on it
/// are denied; other assumptions are left alone. On a request already final both return it as
/// it is and write nothing.
#[tokio::test]
async fn revoke_and_cancel_end_the_access_the_request_gave() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneWeek).await.unwrap();
    let on_grant = s.authorize("acme").await.assumption.unwrap().assumption_id;

    let r = s.approved_request("acme").await;
    let id = r.access_request_id.clone();
    let a1 = s
        .authorize_on("acme", &id)
        .await
        .assumption
        .unwrap()
        .assumption_id;
    let a2 = s
        .authorize_on("acme", &id)
        .await
        .assumption
        .unwrap()
        .assumption_id;
    s.end(&a2).await;

    // Refusals first: a non-admin, a stale etag, an unknown id.
    let n = s.events("acme").await.len();
    let status = s
        .revoke_request(&id, explore_admin("eve"))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    let status = s
        .requests()
        .revoke_access_request(pb::RevokeAccessRequestRequest {
            access_request_id: id.clone(),
            actor: Some(admin("ada")),
            etag: "v0".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    let status = s
        .revoke_request("no-such-request", admin("ada"))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCESS_REQUEST_NOT_FOUND");
    let status = s.cancel_request("no-such-request").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCESS_REQUEST_NOT_FOUND");
    assert_eq!(s.events("acme").await.len(), n);

    s.clock.advance(Duration::minutes(5));
    let revoke_time = t0() + Duration::minutes(5);
    let revoked = s
        .requests()
        .revoke_access_request(pb::RevokeAccessRequestRequest {
            access_request_id: id.clone(),
            actor: Some(admin("ada")),
            etag: r.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_request
        .unwrap();
    assert_eq!(revoked.state(), R::Revoked);
    assert_eq!(at(&revoked.update_time), revoke_time);
    let got = s.assumption(&a1).await;
    assert_eq!(got.state(), A::Revoked);
    assert_eq!(at(&got.end_time), revoke_time);
    assert_eq!(
        s.assumption(&a2).await.state(),
        A::Ended,
        "already ended: left alone"
    );
    assert_eq!(
        s.assumption(&on_grant).await.state(),
        A::Active,
        "not made under it"
    );
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AccessRequestRevoked);
    assert_eq!(event.actor, EventActor::CustomerUser("ada".into()));
    let d = detail(&event);
    assert_eq!(d["access_request_id"], id);
    assert_eq!(d["cause"], "REVOKED_BY_ADMIN");
    assert_eq!(d["revoked_assumption_ids"], serde_json::json!([a1]));
    assert_eq!(
        s.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );

    // Final: revoke and cancel return it as it is and write nothing.
    let n = s.events("acme").await.len();
    s.clock.advance(Duration::minutes(1));
    assert_eq!(s.revoke_request(&id, admin("bob")).await.unwrap(), revoked);
    assert_eq!(s.cancel_request(&id).await.unwrap(), revoked);
    assert_eq!(s.events("acme").await.len(), n);

    // Cancel: the same, but CANCELLED, by the calling service.
    let c = s.approved_request("acme").await.access_request_id;
    let b = s
        .authorize_on("acme", &c)
        .await
        .assumption
        .unwrap()
        .assumption_id;
    let cancelled = s.cancel_request(&c).await.unwrap();
    assert_eq!(cancelled.state(), R::Cancelled);
    assert_eq!(s.assumption(&b).await.state(), A::Revoked);
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AccessRequestCancelled);
    assert!(matches!(event.actor, EventActor::ServicePrincipal(_)));
    assert_eq!(detail(&event)["access_request_id"], c);
    assert_eq!(
        detail(&event)["revoked_assumption_ids"],
        serde_json::json!([b])
    );
    assert_eq!(
        s.authorize_on("acme", &c).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
    let n = s.events("acme").await.len();
    assert_eq!(s.cancel_request(&c).await.unwrap(), cancelled);
    assert_eq!(s.revoke_request(&c, admin("ada")).await.unwrap(), cancelled);
    assert_eq!(s.events("acme").await.len(), n);

    // A pending request can be cancelled or revoked too; a denied one is final.
    let p = s.pending_request("acme").await.access_request_id;
    assert_eq!(s.cancel_request(&p).await.unwrap().state(), R::Cancelled);
    let p = s.pending_request("acme").await.access_request_id;
    assert_eq!(
        s.revoke_request(&p, admin("ada")).await.unwrap().state(),
        R::Revoked
    );
    let d = s.pending_request("acme").await.access_request_id;
    s.deny(&d, admin("ada")).await.unwrap();
    let n = s.events("acme").await.len();
    assert_eq!(
        s.revoke_request(&d, admin("ada")).await.unwrap().state(),
        R::Denied
    );
    assert_eq!(s.cancel_request(&d).await.unwrap().state(), R::Denied);
    assert_eq!(s.events("acme").await.len(), n);
    assert_eq!(s.assumption(&on_grant).await.state(), A::Active);
}

/// `DisableAccessGrant` is "everyone out": it revokes every pending and approved request (with
/// `cause` GRANT_DISABLED) and the assumptions made under them, whether the grant was on or
/// already off; final requests stay as they were.
#[tokio::test]
async fn disable_revokes_pending_and_approved_requests() {
    let s = spawn_server().await;
    for (account, enabled) in [("off", false), ("on", true)] {
        s.create_account(account, pb::AccountPlan::Paid).await;
        if enabled {
            s.enable(account, D::OneWeek).await.unwrap();
        }
        let pending = s.pending_request(account).await.access_request_id;
        let approved = s.approved_request(account).await.access_request_id;
        let denied = s.pending_request(account).await.access_request_id;
        s.deny(&denied, admin("ada")).await.unwrap();
        let a = s
            .authorize_on(account, &approved)
            .await
            .assumption
            .unwrap()
            .assumption_id;
        let before = s.events(account).await.len();

        s.clock.advance(Duration::minutes(1));
        s.disable(account).await.unwrap();
        assert_eq!(
            s.access_request(&pending).await.state(),
            R::Revoked,
            "{account}"
        );
        assert_eq!(
            s.access_request(&approved).await.state(),
            R::Revoked,
            "{account}"
        );
        assert_eq!(
            s.access_request(&denied).await.state(),
            R::Denied,
            "{account}"
        );
        assert_eq!(s.assumption(&a).await.state(), A::Revoked, "{account}");
        assert_eq!(
            s.authorize_on(account, &approved).await.deny_reason(),
            pb::DenyReason::AccessRequestNotApproved
        );

        let written = &s.events(account).await[before..];
        let revoked: BTreeSet<String> = written
            .iter()
            .filter(|e| e.kind == EventKind::AccessRequestRevoked)
            .map(|e| {
                assert_eq!(detail(e)["cause"], "GRANT_DISABLED");
                detail(e)["access_request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            revoked,
            BTreeSet::from([pending.clone(), approved.clone()]),
            "{account}"
        );
        // The assumption made under the request is named by one of the events written.
        assert!(
            written.iter().any(|e| detail(e)["revoked_assumption_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|i| i == &serde_json::json!(a)))),
            "{account}: no event names the revoked assumption {a}"
        );

        // Nothing open any more: another disable writes nothing.
        let n = s.events(account).await.len();
        s.disable(account).await.unwrap();
        assert_eq!(s.events(account).await.len(), n, "{account}");
    }
}

/// `DeleteAccount` revokes every pending and approved request (cause ACCOUNT_DELETED) and
/// their assumptions, with the revocations before `ACCOUNT_DELETED` (nothing is written after
/// it); the requests stay readable, and a request of the deleted account allows nothing.
#[tokio::test]
async fn delete_account_revokes_requests_before_its_event() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let pending = s.pending_request("acme").await.access_request_id;
    let approved = s.approved_request("acme").await.access_request_id;
    let a = s
        .authorize_on("acme", &approved)
        .await
        .assumption
        .unwrap()
        .assumption_id;
    let before = s.events("acme").await.len();
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(s.access_request(&pending).await.state(), R::Revoked);
    assert_eq!(s.access_request(&approved).await.state(), R::Revoked);
    assert_eq!(s.assumption(&a).await.state(), A::Revoked);

    let written = &s.events("acme").await[before..];
    let kinds: Vec<EventKind> = written.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::AccessRequestRevoked,
            EventKind::AccessRequestRevoked,
            EventKind::AccountDeleted
        ]
    );
    let revoked: BTreeSet<String> = written[..2]
        .iter()
        .map(|e| {
            assert_eq!(detail(e)["cause"], "ACCOUNT_DELETED");
            detail(e)["access_request_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(revoked, BTreeSet::from([pending, approved.clone()]));

    // Like every later decision on a deleted account: ACCOUNT_NOT_FOUND.
    let r = s.authorize_on("acme", &approved).await;
    assert_eq!(r.decision(), pb::Decision::Deny);
    assert_eq!(r.deny_reason(), pb::DenyReason::AccountNotFound);
    let status = s.create_request(new_request("acme")).await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// Waits until `n` `ACCESS_REQUEST_EXPIRED` events exist (the sweep is asynchronous), at most
/// 10 s.
async fn wait_for_request_lapses(s: &TestServer, n: i64) {
    for _ in 0..200 {
        if count_request_lapses(s).await >= n {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!(
        "expected {n} ACCESS_REQUEST_EXPIRED events, have {}",
        count_request_lapses(s).await
    );
}

async fn count_request_lapses(s: &TestServer) -> i64 {
    s.count("SELECT COUNT(*) FROM audit_events WHERE kind = 'ACCESS_REQUEST_EXPIRED'")
        .await
}

/// More sweeps on each server: the sweep waits on the manual clock, so each move by more than
/// the interval is one more sweep.
async fn more_sweeps(servers: &[&TestServer]) {
    for _ in 0..5 {
        for server in servers {
            server.clock.advance(Duration::seconds(1));
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// A pending request past `request_expire_time` reads EXPIRED at once (no sweep needed) and can
/// no longer be reviewed or closed; the sweep then records `ACCESS_REQUEST_EXPIRED` exactly
/// once per lapsed pending request, however many sweeps (and, on PostgreSQL, replicas) run.
/// Approved requests that ran out, and requests closed before lapsing, get no such event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_pending_request_reads_expired_and_is_recorded_once() {
    // No sweep in this server (the harness default).
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 2).await;
    let lapses = s.pending_request("acme").await.access_request_id;
    let half = s.pending_request("acme").await.access_request_id;
    s.approve(&half, admin("ada")).await.unwrap();
    let cancelled = s.pending_request("acme").await.access_request_id;
    s.require_approvals("acme", 1).await;
    let approved = s
        .approved_request_for("acme", Duration::hours(2))
        .await
        .access_request_id;

    s.clock.advance(Duration::hours(24) - Duration::seconds(1));
    assert_eq!(s.access_request(&lapses).await.state(), R::Pending);
    s.cancel_request(&cancelled).await.unwrap();
    // Exactly at request_expire_time (half-open): expired.
    s.clock.advance(Duration::seconds(1));
    for id in [&lapses, &half, &approved] {
        assert_eq!(s.access_request(id).await.state(), R::Expired, "{id}");
    }
    assert_eq!(s.access_request(&cancelled).await.state(), R::Cancelled);
    assert_eq!(
        count_request_lapses(&s).await,
        0,
        "reads do not depend on the sweep"
    );
    let n = s.events("acme").await.len();
    let status = s.approve(&lapses, admin("bob")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    let status = s.deny(&half, admin("bob")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    assert_eq!(s.cancel_request(&lapses).await.unwrap().state(), R::Expired);
    assert_eq!(
        s.revoke_request(&half, admin("ada")).await.unwrap().state(),
        R::Expired
    );
    assert_eq!(
        s.events("acme").await.len(),
        n,
        "nothing written for a lapsed request"
    );

    // Sweeping servers: on PostgreSQL two replicas beside this one; on SQLite this server
    // restarted with a fast sweep.
    let servers: Vec<TestServer> = match backend() {
        Backend::Postgres => vec![
            spawn_replica(&s, |c| c.expiry_sweep_interval = FAST).await,
            spawn_replica(&s, |c| c.expiry_sweep_interval = FAST).await,
            s,
        ],
        Backend::Sqlite => vec![restart_with(s, |c| c.expiry_sweep_interval = FAST).await],
    };
    let refs: Vec<&TestServer> = servers.iter().collect();
    more_sweeps(&refs).await;
    wait_for_request_lapses(refs[0], 2).await;
    more_sweeps(&refs).await;
    more_sweeps(&refs).await;
    let s = refs[0];
    assert_eq!(count_request_lapses(s).await, 2);
    let recorded = s
        .events_of_kind("acme", EventKind::AccessRequestExpired)
        .await;
    let by_id: HashMap<String, serde_json::Value> = recorded
        .iter()
        .map(|e| {
            assert_eq!(e.actor, EventActor::System);
            let d = detail(e);
            (d["access_request_id"].as_str().unwrap().to_owned(), d)
        })
        .collect();
    assert_eq!(by_id.len(), 2);
    assert_eq!(by_id[&lapses]["approvals"], 0);
    assert_eq!(by_id[&half]["approvals"], 1);
    // Still expired for everyone, still not reviewable.
    for server in &refs {
        assert_eq!(server.access_request(&lapses).await.state(), R::Expired);
        assert_eq!(server.access_request(&approved).await.state(), R::Expired);
    }
    let status = s.approve(&lapses, admin("bob")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUEST_NOT_PENDING",
    );
    let v = s
        .audit()
        .verify_audit_chain(pb::VerifyAuditChainRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact, "{v:?}");
}

/// The policy: defaults (on, 1 approval, 8 hours, an etag); masked updates change only the
/// named fields and write `ACCESS_POLICY_UPDATED`; out-of-range values, unknown mask paths,
/// stale etags and non-admins are refused and write nothing.
#[tokio::test]
async fn access_policy_defaults_and_masked_updates() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let p = s.policy("acme").await;
    assert_eq!(p.account_id, "acme");
    assert!(p.access_requests_enabled);
    assert_eq!(p.required_approvals, 1);
    assert_eq!(
        p.max_request_duration,
        Some(pb_duration(Duration::hours(8)))
    );
    assert!(!p.etag.is_empty());
    let status = s
        .grants()
        .get_access_policy(pb::GetAccessPolicyRequest {
            account_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");

    // Only the masked field changes, whatever the others say.
    let before = s.events("acme").await.len();
    let updated = s
        .update_policy(
            pb::AccessPolicy {
                account_id: "acme".into(),
                access_requests_enabled: false,
                required_approvals: 3,
                max_request_duration: None,
                etag: p.etag.clone(),
            },
            &["required_approvals"],
        )
        .await
        .unwrap();
    assert!(updated.access_requests_enabled);
    assert_eq!(updated.required_approvals, 3);
    assert_eq!(updated.max_request_duration, p.max_request_duration);
    assert_ne!(updated.etag, p.etag);
    assert_eq!(s.policy("acme").await, updated);
    let events = s.events("acme").await;
    assert_eq!(events.len(), before + 1);
    let event = events.last().unwrap();
    assert_eq!(event.kind, EventKind::AccessPolicyUpdated);
    assert_eq!(event.actor, EventActor::CustomerUser("ada".into()));

    // Refusals, none of which writes anything.
    let n = s.events("acme").await.len();
    let base = || pb::AccessPolicy {
        account_id: "acme".into(),
        access_requests_enabled: true,
        required_approvals: 2,
        max_request_duration: Some(pb_duration(Duration::hours(4))),
        etag: String::new(),
    };
    for bad in [0, 6, -1] {
        let status = s
            .update_policy(
                pb::AccessPolicy {
                    required_approvals: bad,
                    ..base()
                },
                &["required_approvals"],
            )
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            ["access_policy.required_approvals"],
            "{bad}"
        );
    }
    for bad in [
        Some(Duration::days(30) + Duration::seconds(1)),
        Some(Duration::seconds(59)),
        None,
    ] {
        let status = s
            .update_policy(
                pb::AccessPolicy {
                    max_request_duration: bad.map(pb_duration),
                    ..base()
                },
                &["max_request_duration"],
            )
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            ["access_policy.max_request_duration"],
            "{bad:?}"
        );
    }
    let status = s
        .update_policy(base(), &["required_approvals", "no_such_field"])
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["update_mask"]);
    let status = s
        .update_policy(
            pb::AccessPolicy {
                etag: p.etag.clone(),
                ..base()
            },
            &["required_approvals"],
        )
        .await
        .unwrap_err();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    let status = s
        .update_policy_as(base(), &["required_approvals"], explore_admin("eve"))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    let status = s
        .update_policy(
            pb::AccessPolicy {
                account_id: "nobody".into(),
                ..base()
            },
            &["required_approvals"],
        )
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    assert_eq!(s.events("acme").await.len(), n);
    assert_eq!(s.policy("acme").await, updated);

    // The bounds are inclusive; the current etag is accepted.
    let top = s
        .update_policy(
            pb::AccessPolicy {
                required_approvals: 5,
                max_request_duration: Some(pb_duration(Duration::days(30))),
                etag: updated.etag.clone(),
                ..base()
            },
            &["required_approvals", "max_request_duration"],
        )
        .await
        .unwrap();
    assert_eq!(top.required_approvals, 5);
    assert_eq!(
        top.max_request_duration,
        Some(pb_duration(Duration::days(30)))
    );
    let d = detail(s.events("acme").await.last().unwrap());
    assert_eq!(d["policy"]["required_approvals"], 5);
    assert_eq!(d["previous_policy"]["required_approvals"], 3);
    // A request may now ask for up to 30 days.
    let r = s
        .create_request(new_request_for("acme", Duration::days(30)))
        .await
        .unwrap();
    assert_eq!(r.required_approvals, 5);
}

/// `ListAccessRequests`: newest first, pages of 2 over 5 requests visit each exactly once
/// (requests made at the same instant included), states are evaluated now (a lapsed pending
/// request is listed under EXPIRED, not PENDING), and a token is bound to its filter.
#[tokio::test]
async fn list_access_requests_pages_newest_first_with_state_filters() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("other", pb::AccountPlan::Paid).await;
    s.pending_request("other").await;
    let mut made = Vec::new();
    // The first lapses first; two are made at the same instant.
    made.push(s.pending_request("acme").await.access_request_id);
    s.clock.advance(Duration::hours(23));
    for gap in [1, 0, 1, 1] {
        s.clock.advance(Duration::minutes(gap));
        made.push(s.pending_request("acme").await.access_request_id);
    }
    let all = s.all_requests("acme", &[], 0).await;
    let ids: Vec<String> = all.iter().map(|r| r.access_request_id.clone()).collect();
    let mut newest_first = made.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first);
    assert!(
        all.windows(2)
            .all(|w| at(&w[0].create_time) >= at(&w[1].create_time))
    );

    let paged = s.all_requests("acme", &[], 2).await;
    assert_eq!(paged, all, "pages of 2 visit each request once, in order");
    let first = s.list_requests("acme", &[], 2, "").await.unwrap();
    assert_eq!(first.access_requests.len(), 2);
    assert!(!first.next_page_token.is_empty());

    // Move past the first request's lapse; approve one, deny one.
    s.clock.advance(Duration::hours(1));
    s.approve(&made[1], admin("ada")).await.unwrap();
    s.deny(&made[2], admin("ada")).await.unwrap();
    async fn ids_in(s: &TestServer, states: &[R]) -> Vec<String> {
        s.all_requests("acme", states, 1)
            .await
            .into_iter()
            .map(|r| r.access_request_id)
            .collect()
    }
    assert_eq!(
        ids_in(&s, &[R::Pending]).await,
        [made[4].clone(), made[3].clone()]
    );
    assert_eq!(ids_in(&s, &[R::Expired]).await, [made[0].clone()]);
    assert_eq!(
        ids_in(&s, &[R::Approved, R::Denied]).await,
        [made[2].clone(), made[1].clone()]
    );
    assert!(ids_in(&s, &[R::Revoked, R::Cancelled]).await.is_empty());
    for r in s.all_requests("acme", &[R::Pending], 0).await {
        assert_eq!(r.state(), R::Pending);
    }

    // A token is bound to its account and filter.
    let page = s.list_requests("acme", &[R::Pending], 1, "").await.unwrap();
    assert!(!page.next_page_token.is_empty());
    let status = s
        .list_requests("acme", &[R::Expired], 1, &page.next_page_token)
        .await
        .unwrap_err();
    assert!(violated_fields(&status).contains(&"page_token".to_owned()));
    let status = s
        .list_requests("other", &[R::Pending], 1, &page.next_page_token)
        .await
        .unwrap_err();
    assert!(violated_fields(&status).contains(&"page_token".to_owned()));
    // The same filter in another order is the same filter.
    let page = s
        .list_requests("acme", &[R::Approved, R::Denied], 1, "")
        .await
        .unwrap();
    let next = s
        .list_requests("acme", &[R::Denied, R::Approved], 1, &page.next_page_token)
        .await
        .unwrap();
    assert_eq!(next.access_requests[0].access_request_id, made[1]);
    let status = s.list_requests("acme", &[], -1, "").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["page_size"]);
    let status = s.list_requests("nobody", &[], 0, "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");

    // The approved one (for an hour) ran out: listed as EXPIRED now, no longer as APPROVED.
    s.clock.advance(Duration::hours(1));
    assert!(ids_in(&s, &[R::Approved]).await.is_empty());
    assert_eq!(
        ids_in(&s, &[R::Expired]).await,
        [made[1].clone(), made[0].clone()]
    );
}

/// "Who is in my account": `ListAssumptions` lists newest first with states evaluated now and
/// pages bound to their filter; `RevokeAssumption` lets a customer admin end one active
/// assumption (REVOKED, `ASSUMPTION_REVOKED`), returns one already over unchanged, and refuses
/// a non-admin.
#[tokio::test]
async fn list_and_revoke_assumptions() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::Indefinite).await.unwrap();
    let r = s
        .approved_request_for("acme", Duration::hours(8))
        .await
        .access_request_id;
    let mut made = Vec::new();
    for i in 0..4 {
        s.clock.advance(Duration::minutes(1));
        let a = if i == 2 {
            s.authorize_on("acme", &r).await
        } else {
            s.authorize("acme").await
        };
        made.push(a.assumption.unwrap().assumption_id);
    }
    s.end(&made[0]).await;

    // Refusals first.
    let n = s.events("acme").await.len();
    let status = s
        .revoke_assumption(&made[1], explore_admin("eve"))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    let status = s
        .revoke_assumption("no-such-assumption", admin("ada"))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ASSUMPTION_NOT_FOUND");
    assert_eq!(s.events("acme").await.len(), n);

    s.clock.advance(Duration::minutes(1));
    let revoked = s.revoke_assumption(&made[1], admin("ada")).await.unwrap();
    assert_eq!(revoked.state(), A::Revoked);
    assert_eq!(at(&revoked.end_time), t0() + Duration::minutes(5));
    assert_eq!(s.assumption(&made[1]).await, revoked);
    let event = s.events("acme").await.pop().unwrap();
    assert_eq!(event.kind, EventKind::AssumptionRevoked);
    assert_eq!(event.actor, EventActor::CustomerUser("ada".into()));
    assert_eq!(detail(&event)["assumption_id"], made[1]);
    // The request-based one can be kicked out alone; its request stays approved.
    let kicked = s.revoke_assumption(&made[2], admin("ada")).await.unwrap();
    assert_eq!(kicked.state(), A::Revoked);
    assert_eq!(kicked.access_request_id, r);
    assert_eq!(
        detail(&s.events("acme").await.pop().unwrap())["access_request_id"],
        r
    );
    assert_eq!(s.access_request(&r).await.state(), R::Approved);
    // Already over: returned as it is, nothing written.
    let n = s.events("acme").await.len();
    assert_eq!(
        s.revoke_assumption(&made[1], admin("bob")).await.unwrap(),
        revoked
    );
    assert_eq!(
        s.revoke_assumption(&made[0], admin("bob"))
            .await
            .unwrap()
            .state(),
        A::Ended
    );
    assert_eq!(s.events("acme").await.len(), n);

    let all = s.all_assumptions("acme", &[], 0).await;
    let ids: Vec<&str> = all.iter().map(|a| a.assumption_id.as_str()).collect();
    assert_eq!(ids, [&made[3], &made[2], &made[1], &made[0]]);
    assert_eq!(
        all.iter().map(|a| a.state()).collect::<Vec<_>>(),
        [A::Active, A::Revoked, A::Revoked, A::Ended]
    );
    assert_eq!(all[1].ticket_id, "T-1");
    assert_eq!(s.all_assumptions("acme", &[], 1).await, all);
    async fn only(s: &TestServer, states: &[A]) -> Vec<String> {
        s.all_assumptions("acme", states, 1)
            .await
            .into_iter()
            .map(|a| a.assumption_id)
            .collect()
    }
    assert_eq!(only(&s, &[A::Active]).await, [made[3].clone()]);
    assert_eq!(
        only(&s, &[A::Revoked]).await,
        [made[2].clone(), made[1].clone()]
    );
    let page = s
        .list_assumptions("acme", &[A::Revoked], 1, "")
        .await
        .unwrap();
    let status = s
        .list_assumptions("acme", &[A::Active], 1, &page.next_page_token)
        .await
        .unwrap_err();
    assert!(violated_fields(&status).contains(&"page_token".to_owned()));

    // Eight hours on, the active one reads EXPIRED (evaluated now).
    s.clock.advance(Duration::hours(8));
    assert!(only(&s, &[A::Active]).await.is_empty());
    assert_eq!(only(&s, &[A::Expired]).await, [made[3].clone()]);
    let status = s.list_assumptions("nobody", &[], 0, "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// Idempotency: `CreateAccessRequest` retried with the same `request_id` returns the same
/// request and writes one event; a retried `ApproveAccessRequest` returns the first answer
/// instead of `ALREADY_REVIEWED`; the same key for a different request is refused.
#[tokio::test]
async fn request_id_replays_return_the_first_answer() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 2).await;
    let mut create = new_request("acme");
    create.request_id = "tooling-create-1".into();
    let first = s.create_request(create.clone()).await.unwrap();
    s.clock.advance(Duration::minutes(1));
    let second = s.create_request(create.clone()).await.unwrap();
    assert_eq!(second.access_request_id, first.access_request_id);
    assert_eq!(second, first);
    assert_eq!(s.count("SELECT COUNT(*) FROM access_requests").await, 1);
    assert_eq!(
        s.events_of_kind("acme", EventKind::AccessRequestCreated)
            .await
            .len(),
        1
    );
    create.ticket_id = "T-2".into();
    let status = s.create_request(create).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");

    let approve = pb::ApproveAccessRequestRequest {
        access_request_id: first.access_request_id.clone(),
        actor: Some(admin("ada")),
        comment: "fine".into(),
        etag: String::new(),
        request_id: "admin-center-approve-1".into(),
    };
    let once = s
        .requests()
        .approve_access_request(approve.clone())
        .await
        .unwrap()
        .into_inner();
    let again = s
        .requests()
        .approve_access_request(approve.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(once, again);
    assert_eq!(
        s.events_of_kind("acme", EventKind::AccessRequestApproved)
            .await
            .len(),
        1
    );
    // Without the key it is a second review by the same user.
    let status = s
        .approve(&first.access_request_id, admin("ada"))
        .await
        .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REVIEWED");

    // The completing approval, replayed after the request is no longer pending.
    let complete = pb::ApproveAccessRequestRequest {
        actor: Some(admin("bob")),
        request_id: "admin-center-approve-2".into(),
        ..approve
    };
    let done = s
        .requests()
        .approve_access_request(complete.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.access_request.as_ref().unwrap().state(), R::Approved);
    let replayed = s
        .requests()
        .approve_access_request(complete)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, done);
    assert_eq!(
        s.events_of_kind("acme", EventKind::AccessRequestApproved)
            .await
            .len(),
        2
    );
}

/// What takes an approved request away in [`authorize_race`].
#[derive(Clone, Copy, Debug)]
enum Closer {
    /// `RevokeAccessRequest` by a customer admin.
    Revoke,
    /// `CancelAccessRequest` by support.
    Cancel,
    /// `DisableAccessGrant` (the grant itself is off all along).
    Disable,
    /// `DeleteAccount`.
    Delete,
}

impl Closer {
    /// The kinds of the events the closing call writes.
    fn kinds(self) -> &'static [EventKind] {
        match self {
            Closer::Revoke => &[EventKind::AccessRequestRevoked],
            Closer::Cancel => &[EventKind::AccessRequestCancelled],
            // The grant was off: only the request's event (it names the assumptions).
            Closer::Disable => &[EventKind::AccessRequestRevoked],
            Closer::Delete => &[EventKind::AccessRequestRevoked, EventKind::AccountDeleted],
        }
    }

    /// The request's state once closed.
    fn state(self) -> R {
        match self {
            Closer::Cancel => R::Cancelled,
            _ => R::Revoked,
        }
    }

    /// Why decisions after the close are denied.
    fn deny_reason(self) -> pb::DenyReason {
        match self {
            Closer::Delete => pb::DenyReason::AccountNotFound,
            _ => pb::DenyReason::AccessRequestNotApproved,
        }
    }

    async fn close(self, s: &TestServer, account: &str, id: &str) {
        match self {
            Closer::Revoke => {
                s.revoke_request(id, admin("ada")).await.unwrap();
            }
            Closer::Cancel => {
                s.cancel_request(id).await.unwrap();
            }
            Closer::Disable => {
                s.disable(account).await.unwrap();
            }
            Closer::Delete => {
                s.accounts()
                    .delete_account(pb::DeleteAccountRequest {
                        account_id: account.into(),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
        }
    }
}

/// The race between using a request and taking it away: eight clients keep calling
/// `AuthorizeAssumption` on an approved request while `closer` ends it. Every ALLOW's event
/// precedes the closing events in the account's log and every DENY's follows them; every
/// assumption allowed reads REVOKED afterwards and is named by the closing events; no call
/// sent after the close was acknowledged is allowed.
async fn authorize_race(closer: Closer) {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let id = s
        .approved_request_for("acme", Duration::hours(8))
        .await
        .access_request_id;
    let acked = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let mut support = s.support();
        let acked = acked.clone();
        let id = id.clone();
        workers.push(tokio::spawn(async move {
            // (sent after the ack, decision, deny reason, assumption id, audit event id)
            let mut seen = Vec::new();
            let mut after_ack = 0;
            for _ in 0..400 {
                let sent_after_ack = acked.load(Ordering::SeqCst);
                let r = support
                    .authorize_assumption(authorize_with_request("acme", &id))
                    .await
                    .unwrap()
                    .into_inner();
                seen.push((
                    sent_after_ack,
                    r.decision(),
                    r.deny_reason(),
                    r.assumption.map(|a| a.assumption_id),
                    r.audit_event_id,
                ));
                if sent_after_ack {
                    after_ack += 1;
                    if after_ack >= 5 {
                        break;
                    }
                }
            }
            seen
        }));
    }
    // Let some calls through before closing.
    for _ in 0..200 {
        if s.events_of_kind("acme", EventKind::AssumptionAllowed)
            .await
            .len()
            >= 8
        {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    closer.close(&s, "acme", &id).await;
    acked.store(true, Ordering::SeqCst);
    assert_eq!(s.access_request(&id).await.state(), closer.state());
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.unwrap());
    }

    let events = s.events("acme").await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1, "gap-free sequence");
    }
    let closing: Vec<_> = events
        .iter()
        .filter(|e| closer.kinds().contains(&e.kind))
        .collect();
    assert_eq!(
        closing.iter().map(|e| e.kind).collect::<Vec<_>>(),
        closer.kinds(),
        "{closer:?}"
    );
    let (first, last) = (closing[0].sequence, closing[closing.len() - 1].sequence);
    assert_eq!(
        last - first + 1,
        closing.len() as i64,
        "one transaction's events are contiguous"
    );
    let seq_of: HashMap<&str, i64> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.sequence))
        .collect();
    let mut allowed = BTreeSet::new();
    let (mut allows, mut denies, mut sent_after) = (0, 0, 0);
    for (sent_after_ack, decision, deny_reason, assumption, event_id) in &results {
        let seq = seq_of[event_id.as_str()];
        if *sent_after_ack {
            sent_after += 1;
        }
        match decision {
            pb::Decision::Allow => {
                allows += 1;
                assert!(
                    !sent_after_ack,
                    "{closer:?}: ALLOW for a call sent after the close was acknowledged"
                );
                assert!(
                    seq < first,
                    "{closer:?}: ALLOW at {seq} after the close at {first}"
                );
                allowed.insert(assumption.clone().unwrap());
            }
            pb::Decision::Deny => {
                denies += 1;
                assert_eq!(*deny_reason, closer.deny_reason(), "{closer:?}");
                assert!(
                    seq > last,
                    "{closer:?}: DENY at {seq} before the close at {last}"
                );
            }
            other => panic!("unexpected decision {other:?}"),
        }
    }
    eprintln!(
        "{closer:?}: allowed {allows}, denied {denies}, sent after the close's ack {sent_after}"
    );
    assert!(
        allows > 0,
        "some calls must have been allowed before the close"
    );
    assert!(
        denies > 0 && sent_after > 0,
        "some calls must follow the close"
    );
    for a in &allowed {
        assert_eq!(s.assumption(a).await.state(), A::Revoked, "{closer:?}: {a}");
    }
    let mut named = BTreeSet::new();
    for e in &closing {
        if let Some(ids) = detail(e)["revoked_assumption_ids"].as_array() {
            for i in ids {
                assert!(
                    named.insert(i.as_str().unwrap().to_owned()),
                    "{closer:?}: {i} named twice"
                );
            }
        }
    }
    assert_eq!(
        named, allowed,
        "{closer:?}: the closing events name exactly the assumptions it ended"
    );
    let store = accessgrant::storage::Store::connect(&s.database_url)
        .await
        .unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "acme")
        .await
        .unwrap();
    assert!(v.intact());
}

/// [`authorize_race`] against `RevokeAccessRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_its_revocation() {
    authorize_race(Closer::Revoke).await;
}

/// [`authorize_race`] against `CancelAccessRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_its_cancellation() {
    authorize_race(Closer::Cancel).await;
}

/// [`authorize_race`] against `DisableAccessGrant` on a grant that is off all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_a_disable() {
    authorize_race(Closer::Disable).await;
}

/// [`authorize_race`] against `DeleteAccount`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_the_account_is_deleted() {
    authorize_race(Closer::Delete).await;
}

/// The race between approving and disabling: whichever commits first, a request is never
/// left APPROVED once the disable is acknowledged (approved then revoked, or revoked while
/// pending so the approval is refused), and an approval event never follows the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_stays_approved_after_a_racing_disable() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let (mut approved_first, mut refused) = (0, 0);
    for round in 0..15 {
        let ids: Vec<String> = {
            let mut ids = Vec::new();
            for _ in 0..4 {
                ids.push(s.pending_request("acme").await.access_request_id);
            }
            ids
        };
        let approvals: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut client = s.requests();
                let id = id.clone();
                tokio::spawn(async move {
                    client
                        .approve_access_request(pb::ApproveAccessRequestRequest {
                            access_request_id: id,
                            actor: Some(admin("ada")),
                            ..Default::default()
                        })
                        .await
                })
            })
            .collect();
        // Vary who tends to win: disable at once, or give the approvals a head start.
        match round % 3 {
            0 => {}
            1 => tokio::time::sleep(StdDuration::from_millis(1)).await,
            _ => tokio::time::sleep(StdDuration::from_millis(4)).await,
        }
        s.disable("acme").await.unwrap();
        // The disable is acknowledged: none of the requests may read APPROVED from now on.
        for id in &ids {
            assert_eq!(
                s.access_request(id).await.state(),
                R::Revoked,
                "round {round}"
            );
        }
        for a in approvals {
            match a.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.into_inner().access_request.unwrap().state(), R::Approved);
                    approved_first += 1;
                }
                Err(status) => {
                    assert_error(
                        &status,
                        Code::FailedPrecondition,
                        "ACCESS_REQUEST_NOT_PENDING",
                    );
                    refused += 1;
                }
            }
        }
        for id in &ids {
            assert_eq!(
                s.access_request(id).await.state(),
                R::Revoked,
                "round {round}"
            );
            assert_eq!(
                s.authorize_on("acme", id).await.deny_reason(),
                pb::DenyReason::AccessRequestNotApproved
            );
        }
    }
    eprintln!("approved before the disable: {approved_first}, refused after it: {refused}");
    // In the log, each request's approval (if any) precedes its revocation.
    let events = s.events("acme").await;
    let mut revoked_at: HashMap<String, i64> = HashMap::new();
    for e in &events {
        let id = detail(e)["access_request_id"].as_str().map(str::to_owned);
        match (e.kind, id) {
            (EventKind::AccessRequestRevoked, Some(id)) => {
                assert!(revoked_at.insert(id, e.sequence).is_none(), "revoked twice");
            }
            (EventKind::AccessRequestApproved, Some(id)) => {
                assert!(
                    !revoked_at.contains_key(&id),
                    "approval of {id} at {} after its revocation",
                    e.sequence
                );
            }
            _ => {}
        }
    }
    assert_eq!(revoked_at.len(), 60);
}

/// The policy is the account's, not the grant's: it survives every grant change (enable,
/// new duration, disable, the sweep recording a lapse).
#[tokio::test]
async fn the_policy_survives_grant_changes() {
    let s = spawn_server_with(|c| c.expiry_sweep_interval = FAST).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 3).await;
    let set = s.policy("acme").await;
    s.enable("acme", D::OneDay).await.unwrap();
    s.enable("acme", D::OneWeek).await.unwrap();
    s.disable("acme").await.unwrap();
    s.enable("acme", D::OneDay).await.unwrap();
    s.clock.advance(Duration::days(2));
    for _ in 0..100 {
        if !s
            .events_of_kind("acme", EventKind::GrantExpired)
            .await
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(
        s.events_of_kind("acme", EventKind::GrantExpired)
            .await
            .len(),
        1
    );
    assert_eq!(
        s.policy("acme").await,
        set,
        "grant changes leave the policy alone"
    );
    assert_eq!(s.pending_request("acme").await.required_approvals, 3);
}

/// A trial account's admins may set the policy ahead of the conversion (UpdateAccessPolicy
/// accepts it); converting to paid must neither silently reset it (no ACCESS_POLICY_UPDATED is
/// written) nor hand out again an etag already issued for other values.
#[tokio::test]
async fn the_policy_survives_conversion_to_paid() {
    let s = spawn_server().await;
    s.create_account("tria", pb::AccountPlan::Trial).await;
    let first = s.policy("tria").await.etag;
    s.require_approvals("tria", 3).await;
    let before = s.policy("tria").await;
    s.create_account("tria", pb::AccountPlan::Paid).await;
    let after = s.policy("tria").await;
    assert_ne!(
        after.etag, first,
        "the policy etag went back to one already issued"
    );
    assert_eq!(
        after.required_approvals, 3,
        "the conversion reset the policy the admins chose: {before:?} -> {after:?}"
    );
    assert_eq!(s.pending_request("tria").await.required_approvals, 3);
}

/// The race between asking and disabling: a request whose `ACCESS_REQUEST_CREATED` precedes a
/// `GRANT_DISABLED` in the log was revoked by it; one created after the last disable is still
/// pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_revokes_every_request_created_before_it() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let mut ids = Vec::new();
    for round in 0..12 {
        // Enabled, so that every disable writes GRANT_DISABLED.
        s.enable("acme", D::Indefinite).await.unwrap();
        // Vary the order the calls leave in: creates first, the disable first, or both at once.
        let mut grants = s.grants();
        let disable = async move {
            if round % 3 == 0 {
                tokio::time::sleep(StdDuration::from_millis(1)).await;
            }
            grants
                .disable_access_grant(pb::DisableAccessGrantRequest {
                    account_id: "acme".into(),
                    actor: Some(support_admin()),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await
                .unwrap();
        };
        let disable = tokio::spawn(disable);
        if round % 3 == 1 {
            tokio::time::sleep(StdDuration::from_millis(1)).await;
        }
        let creates: Vec<_> = (0..4)
            .map(|_| {
                let mut client = s.requests();
                tokio::spawn(async move { client.create_access_request(new_request("acme")).await })
            })
            .collect();
        disable.await.unwrap();
        for c in creates {
            let r = c
                .await
                .unwrap()
                .unwrap()
                .into_inner()
                .access_request
                .unwrap();
            ids.push(r.access_request_id);
        }
    }
    let events = s.events("acme").await;
    let disables: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::GrantDisabled)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(disables.len(), 12);
    let created_at: HashMap<String, i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::AccessRequestCreated)
        .map(|e| {
            (
                detail(e)["access_request_id"].as_str().unwrap().to_owned(),
                e.sequence,
            )
        })
        .collect();
    let (mut revoked, mut pending) = (0, 0);
    for id in &ids {
        let created = created_at[id];
        let state = s.access_request(id).await.state();
        if disables.iter().any(|d| *d > created) {
            assert_eq!(state, R::Revoked, "{id} created at {created}");
            revoked += 1;
        } else {
            assert_eq!(state, R::Pending, "{id} created at {created}");
            pending += 1;
        }
    }
    eprintln!("revoked by a later disable: {revoked}, created after the last one: {pending}");
}

/// Several replicas on one PostgreSQL database: every change acknowledged by one is what the
/// others read and decide on at once (no cache may hide a review, a revocation or a policy
/// change).
#[tokio::test]
async fn replicas_read_and_decide_on_every_acknowledged_change() {
    if postgres_only("replicas_read_and_decide_on_every_acknowledged_change") {
        return;
    }
    let a = spawn_server().await;
    let b = spawn_replica(&a, |_| {}).await;
    a.create_account("acme", pb::AccountPlan::Paid).await;
    // The policy is read on the other replica right after the update.
    assert_eq!(b.policy("acme").await.required_approvals, 1);
    a.require_approvals("acme", 2).await;
    assert_eq!(b.policy("acme").await.required_approvals, 2);
    let id = b.pending_request("acme").await.access_request_id;
    assert_eq!(a.access_request(&id).await.required_approvals, 2);
    a.approve(&id, admin("ada")).await.unwrap();
    assert_eq!(b.access_request(&id).await.reviews.len(), 1);
    let status = b.approve(&id, admin("ada")).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REVIEWED");
    assert_eq!(
        a.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
    b.approve(&id, admin("bob")).await.unwrap();
    assert_eq!(a.access_request(&id).await.state(), R::Approved);
    let allowed = a.authorize_on("acme", &id).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow);
    let assumption = allowed.assumption.unwrap().assumption_id;
    assert_eq!(
        b.all_assumptions("acme", &[A::Active], 0).await[0].assumption_id,
        assumption
    );
    b.revoke_request(&id, admin("ada")).await.unwrap();
    assert_eq!(a.assumption(&assumption).await.state(), A::Revoked);
    assert_eq!(
        a.all_requests("acme", &[R::Revoked], 0).await[0].access_request_id,
        id
    );
    assert_eq!(
        a.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
    // Switched off on one replica, refused on the other.
    b.update_policy(
        pb::AccessPolicy {
            account_id: "acme".into(),
            access_requests_enabled: false,
            ..Default::default()
        },
        &["access_requests_enabled"],
    )
    .await
    .unwrap();
    let status = a.create_request(new_request("acme")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUESTS_DISABLED",
    );
}
