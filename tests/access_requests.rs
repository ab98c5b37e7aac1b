//! Per-request approval through the real server (API.md, "AccessRequestService: per-request
//! approval"): creating requests against the account's policy, the quorum of distinct admins,
//! deciding an assumption on a request alone, every way a request ends (and the access it gave
//! with it), lapses on a manual clock and the sweep that records them once. The policy, the
//! lists and replays are in `access_request_lists.rs`; the races between using a request and
//! taking it away in `access_request_races.rs`.

mod common;

use std::{
    collections::{BTreeSet, HashMap},
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

/// `[access_requests] pending_lifetime` sets how long a new request waits for its reviews.
#[tokio::test]
async fn the_pending_lifetime_is_configured() {
    let s = spawn_server_with(|c| c.service.pending_request_lifetime = Duration::hours(2)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let r = s.pending_request("acme").await;
    assert_eq!(
        at(&r.request_expire_time),
        at(&r.create_time) + Duration::hours(2)
    );
    s.clock.advance(Duration::hours(2));
    assert_eq!(
        s.access_request(&r.access_request_id).await.state(),
        R::Expired
    );
}
