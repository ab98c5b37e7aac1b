//! The expiry sweeper: `GRANT_EXPIRED` once per lapsed period, even with several replicas
//! sweeping the same database (in-process servers with their own stores and manual clocks;
//! the exactly-once guarantee comes from the database, so this runs on both backends).

mod common;

use std::time::Duration as StdDuration;

use accessgrant::{
    audit::{EventActor, EventKind},
    proto::v1::{self as pb, AccessDuration as D},
};
use chrono::Duration;
use common::{Backend, TestServer, backend, postgres_only, spawn_replica, spawn_server_with};

const FAST: StdDuration = StdDuration::from_millis(50);

async fn expired_events(s: &TestServer, id: &str) -> Vec<accessgrant::audit::AuditEvent> {
    s.events(id)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::GrantExpired)
        .collect()
}

/// Several more sweeps on each server: the sweep waits on the server's manual clock, so each
/// move of it by more than the interval is one more sweep (clocks move together, as replicas'
/// clocks would).
async fn more_sweeps(servers: &[&TestServer]) {
    for _ in 0..5 {
        for server in servers {
            server.clock.advance(Duration::seconds(1));
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

async fn count_expired(s: &TestServer) -> i64 {
    s.count("SELECT COUNT(*) FROM audit_events WHERE kind = 'GRANT_EXPIRED'")
        .await
}

/// Waits until `n` GRANT_EXPIRED events exist (sweeps are asynchronous), at most 10 s.
async fn wait_for_expired(s: &TestServer, n: i64) {
    for _ in 0..200 {
        if count_expired(s).await >= n {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!(
        "expected {n} GRANT_EXPIRED events, have {}",
        count_expired(s).await
    );
}

/// Three replicas sweep every 50 ms of their clocks: each lapse is recorded exactly once, by the system, with
/// the grant-based assumptions that ran out with it; deleted accounts get nothing; a new
/// period lapses (and is recorded) again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lapse_is_recorded_once_across_three_sweeping_replicas() {
    if postgres_only("each_lapse_is_recorded_once_across_three_sweeping_replicas") {
        return;
    }
    // Assumptions may outlive a day here, so one rests on the grant until the grant lapses.
    let s = spawn_server_with(|c| {
        c.expiry_sweep_interval = FAST;
        c.service.lifetimes.max = Duration::hours(48);
    })
    .await;
    let r1 = spawn_replica(&s, |c| c.expiry_sweep_interval = FAST).await;
    let r2 = spawn_replica(&s, |c| c.expiry_sweep_interval = FAST).await;
    let ids: Vec<String> = (0..10).map(|i| format!("acct-{i}")).collect();
    for id in &ids {
        s.create_account(id, pb::AccountPlan::Paid).await;
        s.enable(id, D::OneDay).await.unwrap();
    }
    s.create_account("gone", pb::AccountPlan::Paid).await;
    s.enable("gone", D::OneDay).await.unwrap();
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "gone".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let allowed = s.authorize("acct-0").await;
    assert_eq!(allowed.decision(), pb::Decision::Allow);
    let assumption_id = allowed.assumption.unwrap().assumption_id;
    let grant_end = s.grant("acct-0").await.expire_time.unwrap();

    // Nothing has lapsed yet: sweeps find nothing.
    more_sweeps(&[&s, &r1, &r2]).await;
    assert_eq!(count_expired(&s).await, 0);

    for server in [&s, &r1, &r2] {
        server
            .clock
            .advance(Duration::days(1) + Duration::seconds(1));
    }
    wait_for_expired(&s, 10).await;
    // Many more sweep rounds on all three replicas: still exactly one per lapse.
    more_sweeps(&[&s, &r1, &r2]).await;
    assert_eq!(count_expired(&s).await, 10);
    for id in &ids {
        let events = expired_events(&s, id).await;
        assert_eq!(events.len(), 1, "{id}");
        assert_eq!(events[0].actor, EventActor::System);
    }
    assert!(expired_events(&s, "gone").await.is_empty());
    let detail: serde_json::Value =
        serde_json::from_str(&expired_events(&s, "acct-0").await[0].detail_json).unwrap();
    assert_eq!(
        detail["expired_assumption_ids"],
        serde_json::json!([assumption_id])
    );
    assert_eq!(
        detail["expire_time"],
        serde_json::json!(accessgrant::audit::canonical::format_time(common::time(
            &grant_end
        )))
    );

    // A new period lapses again and is recorded again, once.
    r1.enable("acct-1", D::OneDay).await.unwrap();
    for server in [&s, &r1, &r2] {
        server
            .clock
            .advance(Duration::days(1) + Duration::seconds(1));
    }
    wait_for_expired(&s, 11).await;
    more_sweeps(&[&s, &r1, &r2]).await;
    assert_eq!(expired_events(&s, "acct-1").await.len(), 2);
    assert_eq!(count_expired(&s).await, 11);

    for id in &ids {
        let v = r2
            .audit()
            .verify_audit_chain(pb::VerifyAuditChainRequest {
                account_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.intact, "{id}: {v:?}");
    }
}

/// Reads never wait for a sweep, and a change to a lapsed grant records the lapse first, so a
/// sweep afterwards has nothing left to record.
#[tokio::test]
async fn a_change_records_a_pending_lapse_before_itself() {
    // The default harness interval is long: no sweep runs in this server.
    let s = spawn_server_with(|_| {}).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneDay).await.unwrap();
    s.clock.advance(Duration::days(2));
    assert_eq!(
        s.grant("acme").await.state(),
        pb::access_grant::State::Expired
    );
    let r = s.authorize("acme").await;
    assert_eq!(r.deny_reason(), pb::DenyReason::AccessExpired);
    assert_eq!(
        count_expired(&s).await,
        0,
        "reads do not depend on the sweep"
    );

    s.enable("acme", D::OneWeek).await.unwrap();
    let kinds: Vec<EventKind> = s.events("acme").await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        [EventKind::GrantExpired, EventKind::GrantEnabled]
    );
    // A sweeping server joining later (a replica; on SQLite, the same server restarted)
    // finds the old lapse already recorded.
    let r = match backend() {
        Backend::Postgres => spawn_replica(&s, |c| c.expiry_sweep_interval = FAST).await,
        Backend::Sqlite => common::restart_with(s, |c| c.expiry_sweep_interval = FAST).await,
    };
    more_sweeps(&[&r]).await;
    assert_eq!(expired_events(&r, "acme").await.len(), 1);
}

/// A backlog bigger than one sweep transaction (e.g. after downtime) is fully recorded, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_one_sweep_batch_is_fully_recorded_once() {
    let s = spawn_server_with(|c| c.expiry_sweep_interval = StdDuration::from_millis(300)).await;
    let tasks: Vec<_> = (0..260)
        .map(|i| {
            let mut accounts = s.accounts();
            let mut grants = s.grants();
            tokio::spawn(async move {
                let id = format!("bulk-{i}");
                accounts
                    .upsert_account(pb::UpsertAccountRequest {
                        account_id: id.clone(),
                        plan: pb::AccountPlan::Paid.into(),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
                grants
                    .enable_access_grant(common::enable_request(
                        &id,
                        D::OneDay,
                        common::support_admin(),
                    ))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    s.clock.advance(Duration::days(2));
    // More than one sweep transaction's worth (200): all of them, each once.
    wait_for_expired(&s, 260).await;
    more_sweeps(&[&s]).await;
    assert_eq!(count_expired(&s).await, 260);
}

/// Accounts whose lapse cannot be written (their chain head rows were deleted, so their next
/// event collides with their first) do not hold back the other accounts' lapses, however many
/// of them lapse first: a failed transaction's lapses are retried one by one, and every sweep
/// moves past them. Twelve damaged accounts lapse a minute before four healthy ones (an
/// earlier version gave up after ten failures in a row and recorded none of the four).
#[tokio::test]
async fn damaged_accounts_do_not_stop_the_sweep() {
    let s = spawn_server_with(|c| c.expiry_sweep_interval = StdDuration::from_millis(200)).await;
    let damaged: Vec<String> = (0..12).map(|i| format!("dmg-{i:02}")).collect();
    let healthy = ["ok-0", "ok-1", "ok-2", "ok-3"];
    for id in &damaged {
        s.create_account(id, pb::AccountPlan::Paid).await;
        s.enable(id, D::OneDay).await.unwrap();
    }
    s.clock.advance(Duration::minutes(1));
    for id in healthy {
        s.create_account(id, pb::AccountPlan::Paid).await;
        s.enable(id, D::OneDay).await.unwrap();
    }
    s.sql("DELETE FROM audit_chain_heads WHERE account_id LIKE 'dmg-%'")
        .await;
    s.clock.advance(Duration::days(2));
    wait_for_expired(&s, 4).await;
    // Several more sweeps: the damaged accounts keep failing alone, nothing is written twice.
    more_sweeps(&[&s]).await;
    for id in &damaged {
        assert!(expired_events(&s, id).await.is_empty(), "{id}");
    }
    for id in healthy {
        assert_eq!(expired_events(&s, id).await.len(), 1, "{id}");
    }
    assert_eq!(count_expired(&s).await, 4);
}
