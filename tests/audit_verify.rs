//! Chain verification through the real server: VerifyAuditChain and the offline
//! `accessgrant audit verify` against an intact log and a tampered or damaged database.

mod common;

use accessgrant::{
    audit::{AuditEvent, EventActor, EventKind, canonical::CanonicalFields, chain::link_hash},
    proto::v1 as pb,
};
use common::{audit::*, *};
use pb::audit_event::{Actor, Kind};
use tonic::Code;

/// Runs `accessgrant audit verify` offline against the server's database; (exit code, stdout).
async fn cli_verify(s: &TestServer, id: &str) -> (Option<i32>, String) {
    cli_verify_args(s, &["--account", id]).await
}

/// Runs `accessgrant audit verify` with `args` after the database URL.
async fn cli_verify_args(s: &TestServer, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["audit", "verify", "--database-url", &s.database_url])
        .args(args)
        .env_remove("ACCESSGRANT_CONFIG")
        .env_remove("ACCESSGRANT_DATABASE_URL")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Asserts both the RPC and the CLI report `account`'s chain broken at `expected`.
async fn assert_broken_at(s: &TestServer, account: &str, expected: &str) {
    let v = verify(s, account).await.unwrap();
    assert!(!v.intact, "RPC reported intact: {v:?}");
    assert_eq!(v.first_broken_event_id, expected, "RPC: {v:?}");
    let (code, stdout) = cli_verify(s, account).await;
    assert_eq!(code, Some(1), "CLI stdout: {stdout}");
    assert!(
        stdout.contains(&format!("{account}: BROKEN at event {expected}")),
        "CLI stdout: {stdout}"
    );
}

/// A server with trial account `acme` holding 4 events (created + 3 assumptions); its events.
async fn four_event_chain() -> (TestServer, Vec<AuditEvent>) {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 3).await;
    let events = s.events("acme").await;
    assert_eq!(sequences_of(&events), [1, 2, 3, 4]);
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact && v.events_checked == 4, "{v:?}");
    (s, events)
}

/// Sequences of stored events.
fn sequences_of(events: &[AuditEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

/// Offline verify of a named account: a typo (unknown or malformed id) is a usage error
/// (exit 2), not "broken" (exit 1); a provisioned account whose whole log was deleted is broken.
#[tokio::test]
async fn cli_verify_tells_a_typo_from_a_deleted_log() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    s.create_account("globex", pb::AccountPlan::Paid).await;
    for typo in ["nobody", "not an id"] {
        let (code, stdout) = cli_verify(&s, typo).await;
        assert_eq!(code, Some(2), "{typo}: {stdout}");
    }
    s.sql("DELETE FROM audit_events WHERE account_id = 'globex'")
        .await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'globex'")
        .await;
    let (code, stdout) = cli_verify(&s, "globex").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("globex: BROKEN"), "{stdout}");
    assert_eq!(cli_verify(&s, "acme").await.0, Some(0));
    // The whole database: the account table names it even with no event or head left.
    let (code, stdout) = cli_verify_args(&s, &[]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("globex: BROKEN"), "{stdout}");
    assert!(stdout.contains("acme: intact"), "{stdout}");
}

/// A deleted account's log stays listed and still verifies, over the RPC and offline.
#[tokio::test]
async fn deleted_account_log_is_listed_and_verifies() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 2).await;
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let page = list(&s, list_request("acme")).await.unwrap();
    assert_eq!(sequences(&page.events), [4, 3, 2, 1]);
    assert_eq!(page.events[0].kind(), Kind::AccountDeleted);
    assert_eq!(
        page.events[0].actor,
        Some(Actor::ServicePrincipal("development".into()))
    );
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.events_checked, 4);
    assert!(v.first_broken_event_id.is_empty());
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(0), "{stdout}");
}

/// An untouched chain is intact, every event checked, and the CLI exits 0.
#[tokio::test]
async fn intact_chain_verifies() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    authorize_n(&s, "acme", 3).await;
    s.disable("acme").await.unwrap();
    trial_with_events(&s, "globex", 2).await;
    let n = s
        .count("SELECT COUNT(*) FROM audit_events WHERE account_id = 'acme'")
        .await;
    assert_eq!(n, 6);
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.events_checked, n);
    assert!(v.first_broken_event_id.is_empty());
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("acme: intact"), "{stdout}");
}

/// An edited field breaks the chain at the edited event.
#[tokio::test]
async fn verify_detects_an_edited_field() {
    let (s, events) = four_event_chain().await;
    s.sql(
        r#"UPDATE audit_events SET detail_json = '{"x":1}'
           WHERE account_id = 'acme' AND sequence = 2"#,
    )
    .await;
    assert_broken_at(&s, "acme", &events[1].event_id).await;
}

/// A deleted event in the middle breaks the chain at the event after the gap.
#[tokio::test]
async fn verify_detects_a_deleted_middle_event() {
    let (s, events) = four_event_chain().await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'acme' AND sequence = 2")
        .await;
    assert_broken_at(&s, "acme", &events[2].event_id).await;
}

/// A deleted newest event is caught by the chain head: `missing-after-sequence-3`.
#[tokio::test]
async fn verify_detects_a_deleted_newest_event() {
    let (s, _events) = four_event_chain().await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'acme' AND sequence = 4")
        .await;
    assert_eq!(
        s.count("SELECT last_sequence FROM audit_chain_heads WHERE account_id = 'acme'")
            .await,
        4
    );
    assert_broken_at(&s, "acme", "missing-after-sequence-3").await;
}

/// The whole-database check (`audit verify` without `--account`) covers every account with
/// events, also one whose chain-head row was deleted: that account is reported broken and the
/// command exits 1.
#[tokio::test]
async fn whole_database_verify_covers_accounts_without_a_chain_head() {
    let (s, _events) = four_event_chain().await;
    s.create_account("other", pb::AccountPlan::Trial).await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'acme'")
        .await;
    let (code, stdout) = cli_verify_args(&s, &[]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("acme: BROKEN")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("other: intact")),
        "{stdout}"
    );
}

/// A write whose key collides with a stored one (the account's chain head row was deleted,
/// so its next event takes sequence 1 again) is damage, not an outage: `INTERNAL`, the same
/// on every retry, not `UNAVAILABLE` ("retry later"). Nothing is written, other accounts go
/// on, and the decision path (its own connection on SQLite) answers like a grant change.
#[tokio::test]
async fn a_write_colliding_with_a_stored_key_is_internal() {
    let s = spawn_server().await;
    for id in ["acme", "paid", "fine"] {
        s.create_account(id, pb::AccountPlan::Paid).await;
        s.enable(id, pb::AccessDuration::OneWeek).await.unwrap();
    }
    s.sql("DELETE FROM audit_chain_heads WHERE account_id IN ('acme', 'paid')")
        .await;
    let events = s.count("SELECT COUNT(*) FROM audit_events").await;
    for _ in 0..2 {
        let status = s
            .support()
            .authorize_assumption(authorize_request("acme"))
            .await
            .unwrap_err();
        assert_error(&status, Code::Internal, "INTERNAL");
    }
    let status = s
        .enable("paid", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    assert_error(&status, Code::Internal, "INTERNAL");
    assert_eq!(s.count("SELECT COUNT(*) FROM audit_events").await, events);
    assert_eq!(s.authorize("fine").await.decision(), pb::Decision::Allow);
}

/// A stored text that is not UTF-8 (SQLite stores whatever bytes it is given) is corruption,
/// not an outage: verification reports the chain broken at that event (the CLI exits 1), and
/// a page that would show it fails `INTERNAL`, not `UNAVAILABLE` ("retry later").
#[tokio::test]
async fn an_undecodable_stored_event_is_reported_as_broken() {
    if sqlite_only("an_undecodable_stored_event_is_reported_as_broken") {
        return;
    }
    let (s, events) = four_event_chain().await;
    s.sql(
        "UPDATE audit_events SET detail_json = CAST(X'7BC328' AS TEXT) \
           WHERE account_id = 'acme' AND sequence = 3",
    )
    .await;
    assert_broken_at(&s, "acme", &events[2].event_id).await;
    let status = list(&s, list_request("acme")).await.unwrap_err();
    assert_error(&status, Code::Internal, "INTERNAL");
}

/// Swapping two events' sequences breaks the chain at one of them.
#[tokio::test]
async fn verify_detects_reordered_events() {
    let (s, events) = four_event_chain().await;
    s.sql("UPDATE audit_events SET sequence = -2 WHERE account_id = 'acme' AND sequence = 2")
        .await;
    s.sql("UPDATE audit_events SET sequence = 2 WHERE account_id = 'acme' AND sequence = 3")
        .await;
    s.sql("UPDATE audit_events SET sequence = 3 WHERE account_id = 'acme' AND sequence = -2")
        .await;
    let swapped = [events[1].event_id.clone(), events[2].event_id.clone()];
    let v = verify(&s, "acme").await.unwrap();
    assert!(!v.intact, "{v:?}");
    assert!(swapped.contains(&v.first_broken_event_id), "{v:?}");
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("BROKEN at event {}", v.first_broken_event_id)),
        "{stdout}"
    );
}

/// A forged event appended with a garbage hash (and the head moved along) is the break.
#[tokio::test]
async fn verify_detects_a_forged_event_with_a_garbage_hash() {
    let (s, events) = four_event_chain().await;
    let last = events.last().unwrap();
    s.sql(&format!(
        "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
         ('forged-1', 'acme', 5, {}, 'ASSUMPTION_ALLOWED', 'staff_id', 'mallory', '{{}}', '', \
         {}, {})",
        last.occur_time.timestamp_micros(),
        blob(&last.hash),
        blob(&[0xab; 32]),
    ))
    .await;
    s.sql(&format!(
        "UPDATE audit_chain_heads SET last_sequence = 5, last_hash = {} WHERE account_id = 'acme'",
        blob(&[0xab; 32])
    ))
    .await;
    assert_broken_at(&s, "acme", "forged-1").await;
}

/// A forged event with a correctly computed hash, without moving the head, is detected.
#[tokio::test]
async fn verify_detects_a_forged_event_with_a_valid_hash() {
    let (s, events) = four_event_chain().await;
    let last = events.last().unwrap();
    let actor = EventActor::Staff("mallory".into());
    let fields = CanonicalFields {
        event_id: "forged-2",
        account_id: "acme",
        sequence: 5,
        occur_time: last.occur_time,
        kind: EventKind::AssumptionAllowed,
        actor: &actor,
        detail_json: "{}",
        request_id: "",
    };
    let hash = link_hash(&last.hash, &fields);
    s.sql(&format!(
        "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
         ('forged-2', 'acme', 5, {}, 'ASSUMPTION_ALLOWED', 'staff_id', 'mallory', '{{}}', '', \
         {}, {})",
        last.occur_time.timestamp_micros(),
        blob(&last.hash),
        blob(&hash),
    ))
    .await;
    // The forged row itself checks out: the stored log now reads as a valid 5-event chain.
    let stored = s.events("acme").await;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[4].hash, hash);

    let v = verify(&s, "acme").await.unwrap();
    assert!(!v.intact, "{v:?}");
    // The chain head still names sequence 4: the event beyond it is the forgery.
    assert_eq!(v.first_broken_event_id, "forged-2", "{v:?}");
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "acme: BROKEN at event {}",
            v.first_broken_event_id
        )),
        "{stdout}"
    );
}

/// Verifying an account that never had an event is NOT_FOUND ACCOUNT_NOT_FOUND.
#[tokio::test]
async fn verifying_an_unknown_account_is_not_found() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let status = verify(&s, "nobody").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = verify(&s, "Not An Id").await.unwrap_err();
    assert_eq!(single_violation(&status), "account_id");
}
