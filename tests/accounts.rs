//! `AccountService`: creating, converting and closing accounts, with their audit events and
//! `request_id` replays.

mod common;
use common::*;

use accessgrant::{
    audit::{EventActor, EventKind},
    proto::v1 as pb,
    storage::{Store, audit_log},
};
use tonic::Code;

/// Upserts `id` with `plan` and an optional request id.
async fn upsert(
    server: &TestServer,
    id: &str,
    plan: pb::AccountPlan,
    request_id: &str,
) -> Result<pb::UpsertAccountResponse, tonic::Status> {
    server
        .accounts()
        .upsert_account(pb::UpsertAccountRequest {
            account_id: id.into(),
            plan: plan.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Reads the account `id`.
async fn get_account(server: &TestServer, id: &str) -> Result<pb::Account, tonic::Status> {
    server
        .accounts()
        .get_account(pb::GetAccountRequest {
            account_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().account.unwrap())
}

/// Deletes the account `id` with an optional request id.
async fn delete(
    server: &TestServer,
    id: &str,
    request_id: &str,
) -> Result<pb::DeleteAccountResponse, tonic::Status> {
    server
        .accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: id.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The kinds of `id`'s events, oldest first.
async fn kinds(server: &TestServer, id: &str) -> Vec<EventKind> {
    server
        .events(id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Asserts the sequences of `id`'s events are 1..=n with no gap.
async fn assert_gap_free(server: &TestServer, id: &str) {
    let sequences: Vec<i64> = server.events(id).await.iter().map(|e| e.sequence).collect();
    let want: Vec<i64> = (1..=sequences.len() as i64).collect();
    assert_eq!(sequences, want);
}

/// The development principal every test call runs as.
fn development() -> EventActor {
    EventActor::ServicePrincipal("development".into())
}

/// A new paid account is created with a disabled, configurable grant and one creation event.
#[tokio::test]
async fn upsert_creates_paid_account_with_disabled_grant() {
    let server = spawn_server().await;
    let resp = upsert(&server, "acme", pb::AccountPlan::Paid, "")
        .await
        .unwrap();
    assert!(resp.created);
    let account = resp.account.unwrap();
    assert_eq!(account.account_id, "acme");
    assert_eq!(account.plan(), pb::AccountPlan::Paid);
    assert_eq!(time(account.create_time.as_ref().unwrap()), t0());
    assert_eq!(time(account.update_time.as_ref().unwrap()), t0());

    let grant = server.grant("acme").await;
    assert_eq!(grant.account_id, "acme");
    assert_eq!(grant.state(), pb::access_grant::State::Disabled);
    assert!(grant.configurable);
    assert_eq!(grant.duration(), pb::AccessDuration::Unspecified);
    assert_eq!(grant.enable_time, None);
    assert_eq!(grant.expire_time, None);
    assert!(grant.update_user_id.is_empty());
    assert!(!grant.etag.is_empty());

    let events = server.events("acme").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::AccountCreated);
    assert_eq!(events[0].sequence, 1);
    assert_eq!(events[0].actor, development());
    assert_eq!(events[0].account_id, "acme");
    assert_eq!(events[0].occur_time, t0());
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail_json).unwrap();
    assert_eq!(detail["plan"], "PAID");
}

/// A new trial account's grant is always on and not configurable.
#[tokio::test]
async fn upsert_creates_trial_account_always_on() {
    let server = spawn_server().await;
    let resp = upsert(&server, "trialco", pb::AccountPlan::Trial, "")
        .await
        .unwrap();
    assert!(resp.created);
    assert_eq!(resp.account.unwrap().plan(), pb::AccountPlan::Trial);
    let grant = server.grant("trialco").await;
    assert_eq!(grant.state(), pb::access_grant::State::AlwaysOnTrial);
    assert!(!grant.configurable);
    let events = server.events("trialco").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::AccountCreated);
    assert_eq!(events[0].actor, development());
    let detail: serde_json::Value = serde_json::from_str(&events[0].detail_json).unwrap();
    assert_eq!(detail["plan"], "TRIAL");
}

/// Enabling or disabling a trial grant is FAILED_PRECONDITION `TRIAL_ACCOUNT_ALWAYS_ON` and
/// writes nothing.
#[tokio::test]
async fn trial_grant_cannot_be_enabled_or_disabled() {
    let server = spawn_server().await;
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    let before = server.events("trialco").await;
    let grant_before = server.grant("trialco").await;

    for duration in [pb::AccessDuration::OneDay, pb::AccessDuration::Indefinite] {
        let status = server.enable("trialco", duration).await.unwrap_err();
        assert_error(&status, Code::FailedPrecondition, "TRIAL_ACCOUNT_ALWAYS_ON");
    }
    let status = server.disable("trialco").await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "TRIAL_ACCOUNT_ALWAYS_ON");

    assert_eq!(server.events("trialco").await, before);
    assert_eq!(server.grant("trialco").await, grant_before);
}

/// Upserting the same plan again reports `created=false` and writes nothing.
#[tokio::test]
async fn upsert_same_plan_again_changes_nothing() {
    let server = spawn_server().await;
    for (id, plan) in [
        ("acme", pb::AccountPlan::Paid),
        ("trialco", pb::AccountPlan::Trial),
    ] {
        let first = upsert(&server, id, plan, "").await.unwrap();
        let events = server.events(id).await;
        let grant = server.grant(id).await;
        server.clock.advance(chrono::Duration::hours(1));

        let again = upsert(&server, id, plan, "").await.unwrap();
        assert!(!again.created);
        let account = again.account.unwrap();
        assert_eq!(account.plan(), plan);
        assert_eq!(
            account.create_time,
            first.account.as_ref().unwrap().create_time
        );
        assert_eq!(
            account.update_time,
            first.account.as_ref().unwrap().update_time
        );
        assert_eq!(get_account(&server, id).await.unwrap(), account);
        assert_eq!(server.events(id).await, events);
        assert_eq!(server.grant(id).await, grant);
    }
}

/// Upserting a paid account again keeps an enabled grant enabled.
#[tokio::test]
async fn upsert_same_paid_plan_keeps_grant_enabled() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let enabled = server
        .enable("acme", pb::AccessDuration::OneWeek)
        .await
        .unwrap();
    let again = upsert(&server, "acme", pb::AccountPlan::Paid, "")
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(server.grant("acme").await, enabled);
    assert_eq!(
        kinds(&server, "acme").await,
        [EventKind::AccountCreated, EventKind::GrantEnabled]
    );
}

/// A trial converted to paid gets a disabled, configurable grant with a new etag; the
/// conversion is audited and enabling then works.
#[tokio::test]
async fn trial_converts_to_paid() {
    let server = spawn_server().await;
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    let trial_grant = server.grant("trialco").await;
    server.clock.advance(chrono::Duration::hours(2));

    let resp = upsert(&server, "trialco", pb::AccountPlan::Paid, "")
        .await
        .unwrap();
    assert!(!resp.created);
    let account = resp.account.unwrap();
    assert_eq!(account.plan(), pb::AccountPlan::Paid);
    assert_eq!(time(account.create_time.as_ref().unwrap()), t0());
    assert_eq!(
        time(account.update_time.as_ref().unwrap()),
        t0() + chrono::Duration::hours(2)
    );
    assert_eq!(get_account(&server, "trialco").await.unwrap(), account);

    let grant = server.grant("trialco").await;
    assert_eq!(grant.state(), pb::access_grant::State::Disabled);
    assert!(grant.configurable);
    assert_ne!(grant.etag, trial_grant.etag);

    let events = server.events("trialco").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::AccountConvertedToPaid);
    assert_eq!(events[1].sequence, 2);
    assert_eq!(events[1].actor, development());
    assert_eq!(events[1].occur_time, t0() + chrono::Duration::hours(2));

    let enabled = server
        .enable("trialco", pb::AccessDuration::OneDay)
        .await
        .unwrap();
    assert_eq!(enabled.state(), pb::access_grant::State::Enabled);
    assert_eq!(
        kinds(&server, "trialco").await,
        [
            EventKind::AccountCreated,
            EventKind::AccountConvertedToPaid,
            EventKind::GrantEnabled
        ]
    );

    // Converting again is a no-op on an already paid account.
    let again = upsert(&server, "trialco", pb::AccountPlan::Paid, "")
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(server.events("trialco").await.len(), 3);
    assert_eq!(server.grant("trialco").await, enabled);
}

/// A paid account cannot become a trial: FAILED_PRECONDITION `PAID_ACCOUNT_CANNOT_BECOME_TRIAL`,
/// nothing written.
#[tokio::test]
async fn paid_account_cannot_become_trial() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let events = server.events("acme").await;
    let status = upsert(&server, "acme", pb::AccountPlan::Trial, "")
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "PAID_ACCOUNT_CANNOT_BECOME_TRIAL",
    );
    assert_eq!(
        get_account(&server, "acme").await.unwrap().plan(),
        pb::AccountPlan::Paid
    );
    assert_eq!(
        server.grant("acme").await.state(),
        pb::access_grant::State::Disabled
    );
    assert_eq!(server.events("acme").await, events);

    // Nor can a converted trial go back.
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    server
        .create_account("trialco", pb::AccountPlan::Paid)
        .await;
    let status = upsert(&server, "trialco", pb::AccountPlan::Trial, "")
        .await
        .unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "PAID_ACCOUNT_CANNOT_BECOME_TRIAL",
    );
    assert_eq!(server.events("trialco").await.len(), 2);
}

/// GetAccount of an unknown id is NOT_FOUND `ACCOUNT_NOT_FOUND`.
#[tokio::test]
async fn get_unknown_account_is_not_found() {
    let server = spawn_server().await;
    let status = get_account(&server, "ghost").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server
        .enable("ghost", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = delete(&server, "ghost", "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    assert!(server.events("ghost").await.is_empty());
}

/// GetAccount returns the plan and the creation time from the server clock.
#[tokio::test]
async fn get_account_returns_plan_and_create_time() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    server.clock.advance(chrono::Duration::minutes(30));
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    server.clock.advance(chrono::Duration::days(3));

    let acme = get_account(&server, "acme").await.unwrap();
    assert_eq!(acme.account_id, "acme");
    assert_eq!(acme.plan(), pb::AccountPlan::Paid);
    assert_eq!(time(acme.create_time.as_ref().unwrap()), t0());
    assert_eq!(time(acme.update_time.as_ref().unwrap()), t0());

    let trial = get_account(&server, "trialco").await.unwrap();
    assert_eq!(trial.plan(), pb::AccountPlan::Trial);
    assert_eq!(
        time(trial.create_time.as_ref().unwrap()),
        t0() + chrono::Duration::minutes(30)
    );
}

/// After DeleteAccount the account reads as not found everywhere.
#[tokio::test]
async fn deleted_account_is_not_found_everywhere() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    server.create_account("other", pb::AccountPlan::Paid).await;
    server
        .enable("acme", pb::AccessDuration::Indefinite)
        .await
        .unwrap();
    delete(&server, "acme", "").await.unwrap();

    let status = get_account(&server, "acme").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server
        .enable("acme", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server.disable("acme").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec!["other".into(), "acme".into()],
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");

    // The other account is untouched.
    assert_eq!(
        get_account(&server, "other").await.unwrap().plan(),
        pb::AccountPlan::Paid
    );
    assert_eq!(kinds(&server, "other").await, [EventKind::AccountCreated]);
}

/// DeleteAccount keeps the audit log and appends `AccountDeleted` last, gap-free.
#[tokio::test]
async fn delete_account_keeps_audit_events() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Trial).await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    server
        .enable("acme", pb::AccessDuration::OneMonth)
        .await
        .unwrap();
    server.disable("acme").await.unwrap();
    let before = server.events("acme").await;
    assert_eq!(before.len(), 4);
    server.clock.advance(chrono::Duration::minutes(5));

    delete(&server, "acme", "").await.unwrap();
    let after = server.events("acme").await;
    assert_eq!(after.len(), 5);
    assert_eq!(after[..4], before[..]);
    let last = &after[4];
    assert_eq!(last.kind, EventKind::AccountDeleted);
    assert_eq!(last.sequence, 5);
    assert_eq!(last.actor, development());
    assert_eq!(last.occur_time, t0() + chrono::Duration::minutes(5));
    assert_eq!(last.prev_hash, after[3].hash);
    assert_gap_free(&server, "acme").await;
}

/// Deleting an account twice is NOT_FOUND the second time and writes nothing.
#[tokio::test]
async fn deleting_twice_is_not_found() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    delete(&server, "acme", "").await.unwrap();
    let events = server.events("acme").await;
    let status = delete(&server, "acme", "").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = delete(&server, "acme", "another-key").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    assert_eq!(server.events("acme").await, events);
}

/// The id of a deleted account cannot be reused: FAILED_PRECONDITION `ACCOUNT_DELETED`.
#[tokio::test]
async fn deleted_account_id_cannot_be_reused() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    delete(&server, "acme", "").await.unwrap();
    let events = server.events("acme").await;
    for plan in [pb::AccountPlan::Paid, pb::AccountPlan::Trial] {
        let status = upsert(&server, "acme", plan, "").await.unwrap_err();
        assert_error(&status, Code::FailedPrecondition, "ACCOUNT_DELETED");
    }
    assert_eq!(server.events("acme").await, events);
    let status = get_account(&server, "acme").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");

    // A deleted trial is not reusable either.
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    delete(&server, "trialco", "").await.unwrap();
    let status = upsert(&server, "trialco", pb::AccountPlan::Trial, "")
        .await
        .unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ACCOUNT_DELETED");
}

/// An upsert retried with the same request id and body returns the first response and writes
/// one event.
#[tokio::test]
async fn upsert_replay_returns_first_response() {
    let server = spawn_server().await;
    let first = upsert(&server, "acme", pb::AccountPlan::Paid, "prov-1")
        .await
        .unwrap();
    assert!(first.created);
    server.clock.advance(chrono::Duration::minutes(1));
    let second = upsert(&server, "acme", pb::AccountPlan::Paid, "prov-1")
        .await
        .unwrap();
    assert_eq!(second, first);
    let events = server.events("acme").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].request_id, "prov-1");

    // A conversion replay is answered the same way.
    server
        .create_account("trialco", pb::AccountPlan::Trial)
        .await;
    let converted = upsert(&server, "trialco", pb::AccountPlan::Paid, "conv-1")
        .await
        .unwrap();
    let replayed = upsert(&server, "trialco", pb::AccountPlan::Paid, "conv-1")
        .await
        .unwrap();
    assert_eq!(replayed, converted);
    assert_eq!(
        kinds(&server, "trialco").await,
        [EventKind::AccountCreated, EventKind::AccountConvertedToPaid]
    );
}

/// A DeleteAccount retried with the same request id after the delete succeeds, and only one
/// `AccountDeleted` event exists.
#[tokio::test]
async fn delete_replay_returns_first_response() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let first = delete(&server, "acme", "close-1").await.unwrap();
    server.clock.advance(chrono::Duration::minutes(1));
    let second = delete(&server, "acme", "close-1").await.unwrap();
    assert_eq!(second, first);
    let events = server.events("acme").await;
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::AccountDeleted)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].request_id, "close-1");
    assert_eq!(events.len(), 2);
    let status = get_account(&server, "acme").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// The audit chain of an account verifies intact after a series of operations.
#[tokio::test]
async fn audit_chain_is_intact_after_a_series_of_operations() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Trial).await;
    server.create_account("other", pb::AccountPlan::Paid).await;
    server.clock.advance(chrono::Duration::hours(1));
    upsert(&server, "acme", pb::AccountPlan::Paid, "conv")
        .await
        .unwrap();
    upsert(&server, "acme", pb::AccountPlan::Paid, "")
        .await
        .unwrap();
    server
        .enable("acme", pb::AccessDuration::OneDay)
        .await
        .unwrap();
    server
        .enable("other", pb::AccessDuration::OneWeek)
        .await
        .unwrap();
    server.clock.advance(chrono::Duration::hours(1));
    server
        .enable("acme", pb::AccessDuration::OneYear)
        .await
        .unwrap();
    server.disable("acme").await.unwrap();
    server.disable("acme").await.unwrap();
    server.clock.advance(chrono::Duration::hours(1));
    delete(&server, "acme", "close").await.unwrap();
    delete(&server, "acme", "close").await.unwrap();

    let events = server.events("acme").await;
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            EventKind::AccountCreated,
            EventKind::AccountConvertedToPaid,
            EventKind::GrantEnabled,
            EventKind::GrantDurationChanged,
            EventKind::GrantDisabled,
            EventKind::AccountDeleted,
        ]
    );
    assert_gap_free(&server, "acme").await;

    let store = Store::connect(&server.database_url).await.unwrap();
    for id in ["acme", "other"] {
        let verification = audit_log::verify(&store, id).await.unwrap();
        assert!(verification.intact(), "{id}: {verification:?}");
        assert_eq!(
            verification.events_checked,
            server.events(id).await.len() as i64,
            "{id}"
        );
    }
    store.close().await.unwrap();
}
