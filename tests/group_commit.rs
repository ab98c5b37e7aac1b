//! Group commit keeps every guarantee of one-transaction-per-request: under concurrent load
//! every ALLOW has its assumption and its event, every chain verifies with gap-free sequences,
//! and a job that fails inside a batch fails alone.

mod common;

use std::collections::HashSet;

use accessgrant::{audit::EventKind, proto::v1 as pb, storage::Store};
use common::*;
use tonic::Code;

/// Hundreds of concurrent decisions and grant changes over a few accounts: every answer is backed by exactly its committed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_all_durable_and_chained() {
    let s = spawn_server().await;
    let accounts: Vec<String> = (0..8).map(|i| format!("acct-{i}")).collect();
    for (i, id) in accounts.iter().enumerate() {
        let plan = if i % 4 == 0 {
            pb::AccountPlan::Trial
        } else {
            pb::AccountPlan::Paid
        };
        s.create_account(id, plan).await;
        if i % 2 == 1 {
            s.enable(id, pb::AccessDuration::Indefinite).await.unwrap();
        }
    }
    let mut tasks = Vec::new();
    for n in 0..400 {
        let mut support = s.support();
        let mut grants = s.grants();
        let id = accounts[n % accounts.len()].clone();
        tasks.push(tokio::spawn(async move {
            if n % 25 == 0 && n % 2 == 1 {
                grants
                    .enable_access_grant(enable_request(
                        &id,
                        pb::AccessDuration::OneWeek,
                        support_admin(),
                    ))
                    .await
                    .ok();
                None
            } else {
                let r = support
                    .authorize_assumption(authorize_request(&id))
                    .await
                    .unwrap();
                Some(r.into_inner())
            }
        }));
    }
    let mut allowed_ids = HashSet::new();
    let mut event_ids = HashSet::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            assert!(
                event_ids.insert(r.audit_event_id.clone()),
                "an event id answered twice"
            );
            if r.decision() == pb::Decision::Allow {
                allowed_ids.insert(r.assumption.unwrap().assumption_id);
            }
        }
    }
    assert!(allowed_ids.len() > 100, "the workload should allow plenty");
    let store = Store::connect(&s.database_url).await.unwrap();
    let mut allowed_events = 0;
    for id in &accounts {
        let events = s.events(id).await;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.sequence, i as i64 + 1, "{id}: gap or duplicate");
        }
        for e in events
            .iter()
            .filter(|e| e.kind == EventKind::AssumptionAllowed)
        {
            allowed_events += 1;
            assert!(
                event_ids.contains(&e.event_id),
                "an event nobody was answered with"
            );
            let d: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap();
            assert!(allowed_ids.contains(d["assumption_id"].as_str().unwrap()));
        }
        let v = accessgrant::storage::audit_log::verify(&store, id)
            .await
            .unwrap();
        assert!(v.intact(), "{id}: {v:?}");
    }
    assert_eq!(allowed_events, allowed_ids.len());
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions").await,
        allowed_ids.len() as i64
    );
}

/// A job whose audit write fails is rolled back alone: the other requests of the same batches commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_does_not_sink_its_batch() {
    let s = spawn_server().await;
    s.create_account("good", pb::AccountPlan::Trial).await;
    s.create_account("bad", pb::AccountPlan::Trial).await;
    s.fail_audit_inserts("fail_bad", Some("bad")).await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let mut support = s.support();
        let id = if n % 2 == 0 { "good" } else { "bad" };
        tasks.push(tokio::spawn(async move {
            (
                id,
                support.authorize_assumption(authorize_request(id)).await,
            )
        }));
    }
    let (mut good, mut bad) = (0, 0);
    let mut answered_ids = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            ("good", Ok(r)) => {
                let r = r.into_inner();
                assert_eq!(r.decision(), pb::Decision::Allow);
                answered_ids.push(r.assumption.unwrap().assumption_id);
                good += 1;
            }
            ("bad", Err(status)) => {
                assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
                bad += 1;
            }
            (id, other) => panic!("{id}: unexpected {other:?}"),
        }
    }
    assert_eq!((good, bad), (100, 100));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions WHERE account_id = 'good'")
            .await,
        100
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions WHERE account_id = 'bad'")
            .await,
        0,
        "fail closed: no assumption without its event"
    );
    assert_eq!(s.events("good").await.len(), 101);
    // Jobs of a rolled-back pass run again: each caller got the answer of the attempt that
    // committed (its assumption exists), never that of a discarded one.
    for id in answered_ids {
        assert_eq!(s.assumption(&id).await.assumption_id, id);
    }
}

/// A batch whose `COMMIT` fails (every statement before it succeeded) answers each of its
/// jobs with `UNAVAILABLE` and leaves nothing behind: no assumption or event of a failed call,
/// an intact chain for the calls that did commit, and a writer that goes on deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_commit_answers_its_whole_batch_and_writes_nothing() {
    let s = spawn_server().await;
    s.create_account("good", pb::AccountPlan::Trial).await;
    s.create_account("bad", pb::AccountPlan::Trial).await;
    s.fail_commits("commit_fault", "bad").await;

    let status = s
        .support()
        .authorize_assumption(authorize_request("bad"))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    assert_eq!(s.authorize("good").await.decision(), pb::Decision::Allow);

    let mut tasks = Vec::new();
    for n in 0..120 {
        let mut support = s.support();
        let id = if n % 3 == 0 { "bad" } else { "good" };
        tasks.push(tokio::spawn(async move {
            (
                id,
                support.authorize_assumption(authorize_request(id)).await,
            )
        }));
    }
    let mut allowed: HashSet<String> = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            ("bad", result) => {
                assert_error(
                    &result.unwrap_err(),
                    Code::Unavailable,
                    "STORAGE_UNAVAILABLE",
                );
            }
            (_, Ok(r)) => {
                let r = r.into_inner();
                assert_eq!(r.decision(), pb::Decision::Allow);
                allowed.insert(r.assumption.unwrap().assumption_id);
            }
            // A good call batched with a bad one shares its failed commit.
            (_, Err(status)) => assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE"),
        }
    }
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions WHERE account_id = 'bad'")
            .await,
        0
    );
    assert_eq!(s.events("bad").await.len(), 1, "only its creation");
    // Exactly the answered ALLOWs (and the lone one before) were written.
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions WHERE account_id = 'good'")
            .await,
        allowed.len() as i64 + 1
    );
    let events = s.events("good").await;
    assert_eq!(events.len(), allowed.len() + 2);
    let store = Store::connect(&s.database_url).await.unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "good")
        .await
        .unwrap();
    assert!(v.intact(), "{v:?}");

    s.remove_commit_fault("commit_fault").await;
    assert_eq!(s.authorize("bad").await.decision(), pb::Decision::Allow);
}

/// Decisions batched with grant changes on the same accounts are decided against exactly the
/// grant state the log shows before them: walking each account's events in sequence order, no
/// grant-based ALLOW follows a disable and no GRANT_DISABLED denial follows an enable. (On
/// SQLite decisions and changes take different connections; this is their ordering.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_see_grant_changes_of_their_batch_in_order() {
    let s = spawn_server().await;
    let accounts: Vec<String> = (0..3).map(|i| format!("flip-{i}")).collect();
    for id in &accounts {
        s.create_account(id, pb::AccountPlan::Paid).await;
    }
    let mut tasks = Vec::new();
    for n in 0..300_usize {
        let mut support = s.support();
        let mut grants = s.grants();
        let id = accounts[n % accounts.len()].clone();
        tasks.push(tokio::spawn(async move {
            match n % 10 {
                0 => {
                    grants
                        .enable_access_grant(enable_request(
                            &id,
                            pb::AccessDuration::OneDay,
                            support_admin(),
                        ))
                        .await
                        .unwrap();
                }
                5 => {
                    grants
                        .disable_access_grant(pb::DisableAccessGrantRequest {
                            account_id: id.clone(),
                            actor: Some(support_admin()),
                            etag: String::new(),
                            request_id: String::new(),
                        })
                        .await
                        .unwrap();
                }
                _ => {
                    support
                        .authorize_assumption(authorize_request(&id))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (mut allows, mut denies) = (0, 0);
    for id in &accounts {
        let mut enabled = false;
        for e in s.events(id).await {
            let d: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap();
            match e.kind {
                EventKind::GrantEnabled | EventKind::GrantDurationChanged => enabled = true,
                EventKind::GrantDisabled => enabled = false,
                EventKind::AssumptionAllowed => {
                    assert!(enabled, "{id} #{}: ALLOW while disabled", e.sequence);
                    allows += 1;
                }
                EventKind::AssumptionDenied => {
                    assert!(!enabled, "{id} #{}: DENY while enabled: {d}", e.sequence);
                    denies += 1;
                }
                _ => {}
            }
        }
    }
    assert!(allows > 0 && denies > 0, "allows {allows}, denies {denies}");
}

/// The same `request_id` sent many times at once (so copies share a batch) is decided once:
/// every copy gets the first answer, and the log holds one event for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_copies_in_one_batch_are_decided_once() {
    let s = spawn_server().await;
    s.create_account("dup", pb::AccountPlan::Trial).await;
    let mut tasks = Vec::new();
    for n in 0..60 {
        let mut support = s.support();
        tasks.push(tokio::spawn(async move {
            let mut req = authorize_request("dup");
            req.request_id = format!("retry-{}", n % 3);
            support
                .authorize_assumption(req)
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut answers: std::collections::HashMap<String, String> = Default::default();
    for (n, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        let first = answers
            .entry(format!("retry-{}", n % 3))
            .or_insert_with(|| r.audit_event_id.clone());
        assert_eq!(*first, r.audit_event_id, "a copy got another answer");
    }
    let decided = s
        .events("dup")
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::AssumptionAllowed)
        .count();
    assert_eq!(decided, 3);
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 3);
}

/// Text that needs escaping (quotes, backslashes, control and non-ASCII characters) is stored
/// byte for byte by the batched writes: the decision's event and assumption read back as
/// sent, and the chain (which hashes the stored text) verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_writes_store_awkward_text_exactly() {
    let s = spawn_server().await;
    s.create_account("esc", pb::AccountPlan::Trial).await;
    let awkward = "it's \"quoted\" \\ back\\\\slash $1 ?; -- \u{e9}\u{1F600}\ttab";
    let mut req = authorize_request("esc");
    req.reason_detail = awkward.into();
    req.ticket_id = "T-'\\".into();
    req.request_id = "req-'\\\"".into();
    let first = s
        .support()
        .authorize_assumption(req.clone())
        .await
        .unwrap()
        .into_inner();
    let replay = s
        .support()
        .authorize_assumption(req)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.audit_event_id, replay.audit_event_id);
    let event = s
        .events("esc")
        .await
        .into_iter()
        .find(|e| e.event_id == first.audit_event_id)
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(detail["reason_detail"], awkward);
    assert_eq!(detail["ticket_id"], "T-'\\");
    assert_eq!(event.request_id, "req-'\\\"");
    let store = Store::connect(&s.database_url).await.unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "esc")
        .await
        .unwrap();
    assert!(v.intact(), "{v:?}");
}
