//! Per-request approval through the real server, part two: the access policy (defaults,
//! masked updates, and that it survives grant changes and conversion), the lists of requests
//! and assumptions with their filters and tokens, revoking one assumption, and `request_id`
//! replays. Part one is `access_requests.rs`, the races `access_request_races.rs`.

mod common;

use std::time::Duration as StdDuration;

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

/// Without a mask (AIP-134) only the populated fields change: a policy carrying only
/// `max_request_duration` leaves the others as they are. `*` replaces all three, so it must
/// carry valid values for each, and is how requests are switched off without naming paths.
#[tokio::test]
async fn an_update_without_a_mask_changes_the_populated_fields() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 3).await;
    let only_duration = pb::AccessPolicy {
        account_id: "acme".into(),
        max_request_duration: Some(pb_duration(Duration::hours(2))),
        ..Default::default()
    };
    let p = s.update_policy(only_duration, &[]).await.unwrap();
    assert_eq!(p.required_approvals, 3);
    assert!(p.access_requests_enabled);
    assert_eq!(
        from_pb_duration(p.max_request_duration.as_ref().unwrap()),
        Duration::hours(2)
    );
    let empty = pb::AccessPolicy {
        account_id: "acme".into(),
        ..Default::default()
    };
    let status = s.update_policy(empty, &["*"]).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "access_policy.max_request_duration",
            "access_policy.required_approvals"
        ]
    );
    let off = pb::AccessPolicy {
        account_id: "acme".into(),
        access_requests_enabled: false,
        required_approvals: 1,
        max_request_duration: Some(pb_duration(Duration::hours(1))),
        etag: String::new(),
    };
    let p = s.update_policy(off, &["*"]).await.unwrap();
    assert!(!p.access_requests_enabled);
    assert_eq!(p.required_approvals, 1);
}
