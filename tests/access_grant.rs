//! AccessGrantService through the real server: roles, durations, expiry, extend/shorten,
//! disable, etag, replay and batch reads.

mod common;

use accessgrant::{audit::EventKind, proto::v1 as pb};
use chrono::{Duration, TimeZone, Utc};
use common::*;
use pb::{AccessDuration as D, access_grant::State};
use tonic::Code;

fn kinds(events: &[accessgrant::audit::AuditEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// Only admins of Support, Chat or Sell may enable; every other product/role combination is refused.
#[tokio::test]
async fn only_support_chat_sell_admins_may_enable() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let products = [
        pb::Product::Support,
        pb::Product::Chat,
        pb::Product::Sell,
        pb::Product::Explore,
        pb::Product::Guide,
        pb::Product::Talk,
    ];
    let roles = [pb::Role::Admin, pb::Role::Agent, pb::Role::Other];
    for product in products {
        for role in roles {
            let allowed = role == pb::Role::Admin
                && matches!(
                    product,
                    pb::Product::Support | pb::Product::Chat | pb::Product::Sell
                );
            let result = s
                .grants()
                .enable_access_grant(enable_request("acme", D::OneDay, actor(&[(product, role)])))
                .await;
            match result {
                Ok(_) => assert!(allowed, "{product:?}/{role:?} was allowed"),
                Err(status) => {
                    assert!(!allowed, "{product:?}/{role:?} was refused: {status:?}");
                    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
                }
            }
        }
    }
    // The seed's example: agent in Support but admin in Explore may not.
    let status = s
        .grants()
        .enable_access_grant(enable_request(
            "acme",
            D::OneDay,
            actor(&[
                (pb::Product::Support, pb::Role::Agent),
                (pb::Product::Explore, pb::Role::Admin),
            ]),
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    // An actor with no roles at all may not, and neither disable.
    let status = s
        .grants()
        .disable_access_grant(pb::DisableAccessGrantRequest {
            account_id: "acme".into(),
            actor: Some(actor(&[])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    // Three admins enabled it: one ENABLED then two DURATION_CHANGED; refusals wrote nothing.
    assert_eq!(
        kinds(&s.events("acme").await),
        [
            EventKind::AccountCreated,
            EventKind::GrantEnabled,
            EventKind::GrantDurationChanged,
            EventKind::GrantDurationChanged
        ]
    );
}

/// A non-admin learns nothing about whether an account exists.
#[tokio::test]
async fn non_admin_is_refused_before_existence_is_checked() {
    let s = spawn_server().await;
    let status = s
        .grants()
        .enable_access_grant(enable_request(
            "nobody",
            D::OneDay,
            actor(&[(pb::Product::Explore, pb::Role::Admin)]),
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "ACTOR_NOT_ACCOUNT_ADMIN");
    let status = s.enable("nobody", D::OneDay).await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = s.disable("nobody").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = s
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// A new paid account's grant is off, never enabled, with no duration or expiry.
#[tokio::test]
async fn grant_is_off_by_default() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let g = s.grant("acme").await;
    assert_eq!(g.state(), State::Disabled);
    assert_eq!(g.duration(), D::Unspecified);
    assert!(g.enable_time.is_none() && g.expire_time.is_none());
    assert!(g.configurable);
    assert!(!g.etag.is_empty());
}

/// Each duration yields its exact calendar expiry (enabled on Jan 31: a month ends Feb 28).
#[tokio::test]
async fn each_duration_has_its_exact_expire_time() {
    let s = spawn_server().await;
    let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 10, 0, 0).unwrap();
    let cases = [
        ("day", D::OneDay, Some(at(2026, 2, 1))),
        ("week", D::OneWeek, Some(at(2026, 2, 7))),
        ("month", D::OneMonth, Some(at(2026, 2, 28))),
        ("year", D::OneYear, Some(at(2027, 1, 31))),
        ("forever", D::Indefinite, None),
    ];
    for (id, duration, expected) in cases {
        s.create_account(id, pb::AccountPlan::Paid).await;
        let g = s.enable(id, duration).await.unwrap();
        assert_eq!(g.state(), State::Enabled, "{id}");
        assert_eq!(g.duration(), duration);
        assert_eq!(time(g.enable_time.as_ref().unwrap()), t0());
        assert_eq!(g.expire_time.as_ref().map(time), expected, "{id}");
        // A read agrees with the write's answer.
        assert_eq!(s.grant(id).await, g);
    }
}

/// Leap years: Jan 31 + 1 month = Feb 29 in 2028, and Feb 29 + 1 year = Feb 28.
#[tokio::test]
async fn month_and_year_clamp_in_leap_years() {
    let s = spawn_server().await;
    s.create_account("leap", pb::AccountPlan::Paid).await;
    s.clock
        .set(Utc.with_ymd_and_hms(2028, 1, 31, 23, 59, 59).unwrap());
    let g = s.enable("leap", D::OneMonth).await.unwrap();
    assert_eq!(
        time(g.expire_time.as_ref().unwrap()),
        Utc.with_ymd_and_hms(2028, 2, 29, 23, 59, 59).unwrap()
    );
    s.clock
        .set(Utc.with_ymd_and_hms(2028, 2, 29, 8, 0, 0).unwrap());
    let g = s.enable("leap", D::OneYear).await.unwrap();
    assert_eq!(
        time(g.expire_time.as_ref().unwrap()),
        Utc.with_ymd_and_hms(2029, 2, 28, 8, 0, 0).unwrap()
    );
}

/// The grant reads EXPIRED at exactly expire_time, and ENABLED one microsecond before.
#[tokio::test]
async fn expiry_happens_at_the_boundary_instant() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneDay).await.unwrap();
    s.clock
        .advance(Duration::days(1) - Duration::microseconds(1));
    assert_eq!(s.grant("acme").await.state(), State::Enabled);
    s.clock.advance(Duration::microseconds(1));
    assert_eq!(s.grant("acme").await.state(), State::Expired);
    // Indefinite never expires.
    s.enable("acme", D::Indefinite).await.unwrap();
    s.clock.advance(Duration::days(365 * 30));
    assert_eq!(s.grant("acme").await.state(), State::Enabled);
}

/// A new duration on an enabled grant counts from now: it can shorten and extend, and is audited as a duration change.
#[tokio::test]
async fn new_duration_extends_or_shortens_from_now() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneYear).await.unwrap();
    s.clock.advance(Duration::hours(5));
    let shortened = s.enable("acme", D::OneDay).await.unwrap();
    let now = t0() + Duration::hours(5);
    assert_eq!(
        time(shortened.expire_time.as_ref().unwrap()),
        now + Duration::days(1)
    );
    assert_eq!(time(shortened.enable_time.as_ref().unwrap()), now);
    s.clock.advance(Duration::hours(1));
    let extended = s.enable("acme", D::OneWeek).await.unwrap();
    assert_eq!(
        time(extended.expire_time.as_ref().unwrap()),
        now + Duration::hours(1) + Duration::days(7)
    );
    let events = s.events("acme").await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::AccountCreated,
            EventKind::GrantEnabled,
            EventKind::GrantDurationChanged,
            EventKind::GrantDurationChanged
        ]
    );
    let detail: serde_json::Value = serde_json::from_str(&events[2].detail_json).unwrap();
    assert_eq!(detail["duration"], "ONE_DAY");
}

/// Enabling an expired grant is a new enable, not a duration change.
#[tokio::test]
async fn enabling_an_expired_grant_is_audited_as_enabled() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneDay).await.unwrap();
    s.clock.advance(Duration::days(2));
    assert_eq!(s.grant("acme").await.state(), State::Expired);
    assert_eq!(
        s.enable("acme", D::OneWeek).await.unwrap().state(),
        State::Enabled
    );
    let events = s.events("acme").await;
    assert_eq!(events.last().unwrap().kind, EventKind::GrantEnabled);
}

/// Disabling ends access at once; disabling a disabled or expired grant succeeds and writes nothing.
#[tokio::test]
async fn disable_and_repeated_disable() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    // Never enabled: a no-op.
    assert_eq!(s.disable("acme").await.unwrap().state(), State::Disabled);
    assert_eq!(s.events("acme").await.len(), 1);

    s.enable("acme", D::OneMonth).await.unwrap();
    let g = s.disable("acme").await.unwrap();
    assert_eq!(g.state(), State::Disabled);
    assert!(g.expire_time.is_none());
    assert_eq!(g.update_user_id, "alice");
    assert_eq!(s.grant("acme").await.state(), State::Disabled);
    let before = s.events("acme").await;
    assert_eq!(before.last().unwrap().kind, EventKind::GrantDisabled);

    let again = s.disable("acme").await.unwrap();
    assert_eq!(
        again.etag, g.etag,
        "a no-op disable must not change the grant"
    );
    assert_eq!(s.events("acme").await.len(), before.len());

    // Expired: no change, and it keeps reading EXPIRED. The lapse itself is audited once
    // (here by the disable, since no sweep ran yet), never twice.
    s.enable("acme", D::OneDay).await.unwrap();
    s.clock.advance(Duration::days(1));
    let n = s.events("acme").await.len();
    assert_eq!(s.disable("acme").await.unwrap().state(), State::Expired);
    let after = s.events("acme").await;
    assert_eq!(after.len(), n + 1);
    assert_eq!(after.last().unwrap().kind, EventKind::GrantExpired);
    assert_eq!(s.disable("acme").await.unwrap().state(), State::Expired);
    assert_eq!(s.events("acme").await.len(), n + 1);
}

/// A stale etag is refused with ABORTED; the current one is accepted; every change makes a new etag.
#[tokio::test]
async fn etag_guards_changes() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let first = s.grant("acme").await;
    let mut request = enable_request("acme", D::OneDay, support_admin());
    request.etag = first.etag.clone();
    let enabled = s
        .grants()
        .enable_access_grant(request.clone())
        .await
        .unwrap()
        .into_inner();
    let enabled = enabled.access_grant.unwrap();
    assert_ne!(enabled.etag, first.etag);

    // The old etag is now stale, for enable and disable alike.
    let status = s.grants().enable_access_grant(request).await.unwrap_err();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    let status = s
        .grants()
        .disable_access_grant(pb::DisableAccessGrantRequest {
            account_id: "acme".into(),
            actor: Some(support_admin()),
            etag: first.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(s.grant("acme").await.state(), State::Enabled);

    let disabled = s
        .grants()
        .disable_access_grant(pb::DisableAccessGrantRequest {
            account_id: "acme".into(),
            actor: Some(support_admin()),
            etag: enabled.etag.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_grant
        .unwrap();
    assert_eq!(disabled.state(), State::Disabled);
    assert_ne!(disabled.etag, enabled.etag);
}

/// A retry with the same request_id returns the first response and writes nothing, even after other changes.
#[tokio::test]
async fn request_id_replay_returns_the_first_response() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let mut request = enable_request("acme", D::OneWeek, support_admin());
    request.request_id = "retry-1".into();
    let first = s
        .grants()
        .enable_access_grant(request.clone())
        .await
        .unwrap()
        .into_inner();
    let events = s.events("acme").await.len();

    s.clock.advance(Duration::hours(1));
    let second = s
        .grants()
        .enable_access_grant(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(s.events("acme").await.len(), events);

    // Another change in between does not alter what the retry answers.
    s.disable("acme").await.unwrap();
    let third = s
        .grants()
        .enable_access_grant(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, third);
    assert_eq!(s.grant("acme").await.state(), State::Disabled);
    assert_eq!(s.events("acme").await.len(), events + 1);

    // The recorded event carries the request id.
    let recorded = s.events("acme").await;
    assert_eq!(recorded[1].request_id, "retry-1");
}

/// The replay record survives a restart: it is stored durably, not in memory.
#[tokio::test]
async fn request_id_replay_survives_restart() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let mut request = enable_request("acme", D::OneDay, support_admin());
    request.request_id = "durable".into();
    let first = s
        .grants()
        .enable_access_grant(request.clone())
        .await
        .unwrap()
        .into_inner();
    let url = s.database_url.clone();
    let restarted = restart(s).await;
    assert_eq!(restarted.database_url, url);
    let again = restarted
        .grants()
        .enable_access_grant(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(restarted.events("acme").await.len(), 2);
}

/// BatchGetAccessGrants answers in request order, each grant in its effective state.
#[tokio::test]
async fn batch_get_in_request_order() {
    let s = spawn_server().await;
    for (id, plan) in [
        ("a-paid", pb::AccountPlan::Paid),
        ("b-trial", pb::AccountPlan::Trial),
        ("c-on", pb::AccountPlan::Paid),
        ("d-expired", pb::AccountPlan::Paid),
    ] {
        s.create_account(id, plan).await;
    }
    s.enable("c-on", D::OneYear).await.unwrap();
    s.enable("d-expired", D::OneDay).await.unwrap();
    s.clock.advance(Duration::days(3));
    let ids = ["d-expired", "a-paid", "c-on", "b-trial", "a-paid"];
    let grants = s
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: ids.iter().map(|s| s.to_string()).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_grants;
    let got: Vec<(&str, State)> = grants
        .iter()
        .map(|g| (g.account_id.as_str(), g.state()))
        .collect();
    assert_eq!(
        got,
        [
            ("d-expired", State::Expired),
            ("a-paid", State::Disabled),
            ("c-on", State::Enabled),
            ("b-trial", State::AlwaysOnTrial),
            ("a-paid", State::Disabled),
        ]
    );
    let status = s
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec!["a-paid".into(), "missing".into()],
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// Grant changes are audited with the customer user as actor and the calling principal in the detail, on an intact chain.
#[tokio::test]
async fn grant_changes_are_audited_on_an_intact_chain() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneWeek).await.unwrap();
    s.disable("acme").await.unwrap();
    let events = s.events("acme").await;
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        events[1].actor,
        accessgrant::audit::EventActor::CustomerUser("alice".into())
    );
    let detail: serde_json::Value = serde_json::from_str(&events[1].detail_json).unwrap();
    assert_eq!(detail["principal"], "development");
    assert_eq!(events[1].prev_hash, events[0].hash);
    let store = accessgrant::storage::Store::connect(&s.database_url)
        .await
        .unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "acme")
        .await
        .unwrap();
    assert!(v.intact());
    assert_eq!(v.events_checked, 3);
}
