//! Several `accessgrant` processes on one PostgreSQL database, hammered at once: the
//! coordination is the database's (the write fence, conditional updates), so whatever the
//! interleaving, every chain verifies, sequences are gap-free, no ALLOW follows a committed
//! Disable, `request_id` replays sent to another replica return the first answer, and a
//! watcher on one replica sees every event committed through any replica, in order, also
//! when it resumes.
//!
//! PostgreSQL only: on the SQLite pass these tests say so and return (SQLite is the embedded,
//! single-replica backend).

mod common;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use accessgrant::{
    audit::{AuditEvent, EventKind},
    proto::v1::{self as pb, audit_service_client::AuditServiceClient},
    storage::Store,
};
use common::{
    Backend, TEST_SIGNING_KEY, backend, connect, fresh_database_url, reserved_port, support_admin,
};
use sea_orm::{ConnectionTrait, Statement};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// One `accessgrant serve` process.
struct Replica {
    channel: Channel,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` processes on one new database (they migrate concurrently, on purpose).
async fn start_replicas(n: usize, dir: &std::path::Path) -> (String, Vec<Replica>) {
    let url = fresh_database_url(dir).await;
    let mut replicas = Vec::new();
    for i in 0..n {
        let addr = reserved_port();
        let log = std::fs::File::create(dir.join(format!("replica-{i}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_accessgrant"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--database-url",
                &url,
                "--metrics-listen",
                "",
            ])
            .args(common::key_config_args(&url))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        replicas.push((addr, child));
    }
    let mut out = Vec::new();
    for (addr, child) in replicas {
        let channel = connect(addr).await;
        out.push(Replica { channel, child });
    }
    (url, out)
}

fn postgres_or_skip(test: &str) -> bool {
    if backend() == Backend::Postgres {
        true
    } else {
        eprintln!("{test}: skipped on sqlite: several processes share one PostgreSQL database");
        false
    }
}

/// Every audit event, in global position order.
async fn all_events(url: &str) -> Vec<AuditEvent> {
    let store = Store::connect(url).await.unwrap();
    let events =
        accessgrant::storage::audit_log::after_position(store.reader(), None, 0, 1_000_000)
            .await
            .unwrap();
    store.close().await.unwrap();
    events
}

/// Creates every shared account with `plan` through `channel`.
async fn create_accounts(channel: &Channel, plan: pb::AccountPlan) {
    for account in ACCOUNTS {
        pb::account_service_client::AccountServiceClient::new(channel.clone())
            .upsert_account(pb::UpsertAccountRequest {
                account_id: account.into(),
                plan: plan.into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
}

/// Every shared account's chain verifies through `channel`.
async fn assert_chains_intact(channel: &Channel) {
    for account in ACCOUNTS {
        let v = AuditServiceClient::new(channel.clone())
            .verify_audit_chain(pb::VerifyAuditChainRequest {
                account_id: account.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.intact, "{account}: {v:?}");
    }
}

/// What a worker did, to check replays.
#[derive(Debug)]
enum Sent {
    Authorize(
        pb::AuthorizeAssumptionRequest,
        pb::AuthorizeAssumptionResponse,
    ),
    Enable(pb::EnableAccessGrantRequest, pb::EnableAccessGrantResponse),
}

const ACCOUNTS: [&str; 5] = ["shared-a", "shared-b", "shared-c", "shared-d", "shared-e"];

/// A deterministic pseudo-random sequence per worker (no extra dependency, reproducible).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One worker: `ops` random calls, each to a random replica, on the shared accounts.
async fn hammer(channels: Vec<Channel>, worker: u64, ops: usize) -> Vec<Sent> {
    use pb::{
        access_grant_service_client::AccessGrantServiceClient,
        account_service_client::AccountServiceClient,
        support_access_service_client::SupportAccessServiceClient,
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker + 1).wrapping_mul(0x1234_5678_9ABC_DEF1);
    let mut sent = Vec::new();
    for op in 0..ops {
        let channel = channels[(next(&mut seed) % channels.len() as u64) as usize].clone();
        let account = ACCOUNTS[(next(&mut seed) % ACCOUNTS.len() as u64) as usize];
        let request_id = format!("w{worker}-op{op}");
        match next(&mut seed) % 10 {
            0..=3 => {
                let mut request = common::authorize_request(account);
                request.request_id = request_id;
                if let Ok(r) = SupportAccessServiceClient::new(channel)
                    .authorize_assumption(request.clone())
                    .await
                {
                    sent.push(Sent::Authorize(request, r.into_inner()));
                }
            }
            4..=5 => {
                let durations = [
                    pb::AccessDuration::OneDay,
                    pb::AccessDuration::OneWeek,
                    pb::AccessDuration::Indefinite,
                ];
                let duration = durations[(next(&mut seed) % 3) as usize];
                let mut request = common::enable_request(account, duration, support_admin());
                request.request_id = request_id;
                if let Ok(r) = AccessGrantServiceClient::new(channel)
                    .enable_access_grant(request.clone())
                    .await
                {
                    sent.push(Sent::Enable(request, r.into_inner()));
                }
            }
            6..=8 => {
                AccessGrantServiceClient::new(channel)
                    .disable_access_grant(pb::DisableAccessGrantRequest {
                        account_id: account.into(),
                        actor: Some(support_admin()),
                        etag: String::new(),
                        request_id,
                    })
                    .await
                    .unwrap();
            }
            _ => {
                AccountServiceClient::new(channel)
                    .upsert_account(pb::UpsertAccountRequest {
                        account_id: account.into(),
                        plan: pb::AccountPlan::Paid.into(),
                        request_id,
                    })
                    .await
                    .unwrap();
            }
        }
    }
    sent
}

/// Replays each remembered request to a *different* replica: the first answer comes back.
async fn replay_elsewhere(channels: &[Channel], sent: &[Sent]) {
    use pb::{
        access_grant_service_client::AccessGrantServiceClient,
        support_access_service_client::SupportAccessServiceClient,
    };
    for (i, s) in sent.iter().enumerate() {
        let channel = channels[(i + 1) % channels.len()].clone();
        match s {
            Sent::Authorize(request, first) => {
                let again = SupportAccessServiceClient::new(channel)
                    .authorize_assumption(request.clone())
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(&again, first, "replay of {}", request.request_id);
            }
            Sent::Enable(request, first) => {
                let again = AccessGrantServiceClient::new(channel)
                    .enable_access_grant(request.clone())
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(&again, first, "replay of {}", request.request_id);
            }
        }
    }
}

/// Walks one account's events in sequence order and checks the grant rules on the committed
/// history: no grant-based ALLOW while the grant is disabled, and the sequence is 1..=n.
fn check_history(account: &str, events: &[&AuditEvent]) {
    let mut enabled = false;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.sequence,
            i as i64 + 1,
            "{account}: sequence gap/duplicate"
        );
        match e.kind {
            EventKind::GrantEnabled | EventKind::GrantDurationChanged => enabled = true,
            EventKind::GrantDisabled | EventKind::GrantExpired => enabled = false,
            EventKind::AssumptionAllowed => {
                assert!(
                    enabled,
                    "{account}: ALLOW at sequence {} follows a committed Disable",
                    e.sequence
                );
            }
            EventKind::AssumptionDenied => {
                assert!(
                    !enabled,
                    "{account}: DENY at sequence {} while the grant was enabled",
                    e.sequence
                );
            }
            _ => {}
        }
    }
}

/// Three processes, twelve workers, shared accounts: the committed history is consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_hammered_concurrently_stay_consistent() {
    if !postgres_or_skip("three_replicas_hammered_concurrently_stay_consistent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, replicas) = start_replicas(3, dir.path()).await;
    let channels: Vec<Channel> = replicas.iter().map(|r| r.channel.clone()).collect();
    create_accounts(&channels[0], pb::AccountPlan::Paid).await;

    let started = Instant::now();
    let workers: Vec<_> = (0..12)
        .map(|w| tokio::spawn(hammer(channels.clone(), w, 40)))
        .collect();
    let mut sent = Vec::new();
    for w in workers {
        sent.extend(w.await.unwrap());
    }
    eprintln!(
        "480 calls over 3 replicas in {:?}; {} remembered for replay",
        started.elapsed(),
        sent.len()
    );
    assert!(
        sent.iter().any(|s| matches!(s, Sent::Authorize(..))),
        "no authorize call succeeded"
    );

    replay_elsewhere(&channels, &sent).await;

    // Chains verify through every replica.
    for replica in &replicas {
        assert_chains_intact(&replica.channel).await;
    }
    // The history: gap-free sequences, no ALLOW after a committed Disable.
    let events = all_events(&url).await;
    let mut by_account: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
    for e in &events {
        by_account.entry(e.account_id.as_str()).or_default().push(e);
    }
    for (account, mut list) in by_account {
        list.sort_by_key(|e| e.sequence);
        check_history(account, &list);
    }
    // Each remembered ALLOW is in the log exactly once (replays wrote nothing new).
    let allowed: HashSet<&str> = sent
        .iter()
        .filter_map(|s| match s {
            Sent::Authorize(_, r) if r.decision() == pb::Decision::Allow => {
                r.assumption.as_ref().map(|a| a.assumption_id.as_str())
            }
            _ => None,
        })
        .collect();
    let mut allow_events: HashMap<String, usize> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::AssumptionAllowed)
    {
        let detail: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap();
        if let Some(id) = detail.get("assumption_id").and_then(|v| v.as_str()) {
            *allow_events.entry(id.to_owned()).or_default() += 1;
        }
    }
    for id in allowed {
        assert_eq!(allow_events.get(id), Some(&1), "assumption {id}");
    }
}

/// Reads a watch stream until `want` events arrived (or a deadline), returning
/// `(position, event id)` pairs; `resume_every` > 0 drops and resumes the stream that often.
async fn watch_all(
    channel: Channel,
    want: usize,
    resume_every: usize,
    deadline: Instant,
) -> Vec<(i64, String)> {
    let mut got: Vec<(i64, String)> = Vec::new();
    let mut after = 0_i64;
    while got.len() < want && Instant::now() < deadline {
        let mut stream = AuditServiceClient::new(channel.clone())
            .watch_audit_events(pb::WatchAuditEventsRequest {
                account_id: String::new(),
                after_global_position: after,
            })
            .await
            .unwrap()
            .into_inner();
        let mut this_stream = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(item) = tokio::time::timeout(left, stream.next()).await else {
                break;
            };
            let Some(item) = item else { break };
            let item = item.unwrap();
            let event = item.event.unwrap();
            after = item.global_position;
            got.push((item.global_position, event.event_id));
            this_stream += 1;
            if got.len() >= want || (resume_every > 0 && this_stream >= resume_every) {
                break;
            }
        }
    }
    got
}

/// The outbox trap: with writers on three replicas committing concurrently, a watcher on
/// one replica (live, and one that keeps disconnecting and resuming "after N") receives every
/// event exactly once, in strictly increasing position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_on_one_replica_see_every_commit_of_all_replicas_in_order() {
    if !postgres_or_skip("watchers_on_one_replica_see_every_commit_of_all_replicas_in_order") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, replicas) = start_replicas(3, dir.path()).await;
    let channels: Vec<Channel> = replicas.iter().map(|r| r.channel.clone()).collect();
    create_accounts(&channels[1], pb::AccountPlan::Trial).await;
    // Writers on every replica: trial accounts always ALLOW, so every call writes an event.
    let writers: Vec<_> = (0..12)
        .map(|w| {
            let channel = channels[w % 3].clone();
            tokio::spawn(async move {
                let mut support =
                    pb::support_access_service_client::SupportAccessServiceClient::new(channel);
                for i in 0..40 {
                    support
                        .authorize_assumption(common::authorize_request(
                            ACCOUNTS[(w + i) % ACCOUNTS.len()],
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let total = ACCOUNTS.len() + 12 * 40;
    let deadline = Instant::now() + Duration::from_secs(60);
    let live = tokio::spawn(watch_all(channels[0].clone(), total, 0, deadline));
    let resuming = tokio::spawn(watch_all(channels[0].clone(), total, 7, deadline));
    for w in writers {
        w.await.unwrap();
    }
    let stored: Vec<(i64, String)> = all_events(&url)
        .await
        .into_iter()
        .map(|e| (e.global_position, e.event_id))
        .collect();
    assert_eq!(stored.len(), total);
    for (name, got) in [
        ("live", live.await.unwrap()),
        ("resuming", resuming.await.unwrap()),
    ] {
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: positions not strictly increasing"
        );
        assert_eq!(
            got, stored,
            "{name}: watcher missed, duplicated or reordered"
        );
    }
}

/// Positions are handed out in commit order: reading the table repeatedly while writers
/// commit, a snapshot never contains position N+k without every committed position below it
/// that a later snapshot shows (no late-visible lower position).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lower_position_becomes_visible_after_a_higher_one() {
    if !postgres_or_skip("no_lower_position_becomes_visible_after_a_higher_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, replicas) = start_replicas(3, dir.path()).await;
    let channels: Vec<Channel> = replicas.iter().map(|r| r.channel.clone()).collect();
    pb::account_service_client::AccountServiceClient::new(channels[0].clone())
        .upsert_account(pb::UpsertAccountRequest {
            account_id: "trial".into(),
            plan: pb::AccountPlan::Trial.into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let writers: Vec<_> = (0..9)
        .map(|w| {
            let channel = channels[w % 3].clone();
            tokio::spawn(async move {
                let mut support =
                    pb::support_access_service_client::SupportAccessServiceClient::new(channel);
                for _ in 0..30 {
                    support
                        .authorize_assumption(common::authorize_request("trial"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // A reader polls "max position" and "count": under commit-order positions, every
    // snapshot is a prefix of the final order, so the highest position seen so far never
    // gains a lower neighbour later.
    let store = Store::connect(&url).await.unwrap();
    let mut snapshots: Vec<Vec<i64>> = Vec::new();
    while !writers.iter().all(|w| w.is_finished()) {
        let rows = store
            .reader()
            .query_all_raw(Statement::from_string(
                store.backend(),
                "SELECT global_position FROM audit_events ORDER BY global_position",
            ))
            .await
            .unwrap();
        snapshots.push(
            rows.iter()
                .map(|r| r.try_get_by_index::<i64>(0).unwrap())
                .collect(),
        );
    }
    for w in writers {
        w.await.unwrap();
    }
    let final_positions: Vec<i64> = all_events(&url)
        .await
        .iter()
        .map(|e| e.global_position)
        .collect();
    for snapshot in &snapshots {
        assert!(
            final_positions.starts_with(snapshot),
            "a snapshot is not a prefix of the final order: a lower position became visible later"
        );
    }
    eprintln!("{} snapshots checked", snapshots.len());
    assert!(snapshots.len() > 5);
    store.close().await.unwrap();
}

/// `kill -9` of one replica in the middle of the hammering: the others keep serving, every
/// ALLOW any client received (also from the killed replica, before it died) is in the log,
/// and the committed history is still consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_write_loses_nothing_acknowledged() {
    if !postgres_or_skip("a_replica_killed_mid_write_loses_nothing_acknowledged") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (url, mut replicas) = start_replicas(3, dir.path()).await;
    let channels: Vec<Channel> = replicas.iter().map(|r| r.channel.clone()).collect();
    create_accounts(&channels[0], pb::AccountPlan::Trial).await;
    // Eight clients per replica authorize as fast as they can, keeping every ALLOW received.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..24)
        .map(|c| {
            let channel = channels[c % 3].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut support =
                    pb::support_access_service_client::SupportAccessServiceClient::new(channel);
                let (mut allowed, mut failed) = (Vec::new(), 0_usize);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let account = ACCOUNTS[(c + i) % ACCOUNTS.len()];
                    i += 1;
                    match support
                        .authorize_assumption(common::authorize_request(account))
                        .await
                    {
                        Ok(r) => {
                            let r = r.into_inner();
                            assert_eq!(r.decision(), pb::Decision::Allow);
                            allowed.push(r.assumption.unwrap().assumption_id);
                        }
                        Err(_) if c % 3 == 2 => {
                            failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(status) => panic!("replica {} failed: {status:?}", c % 3),
                    }
                }
                (allowed, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = &mut replicas[2].child;
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut received: Vec<String> = Vec::new();
    let mut failed_on_victim = 0;
    for c in clients {
        let (allowed, failed) = c.await.unwrap();
        received.extend(allowed);
        failed_on_victim += failed;
    }
    assert!(
        failed_on_victim > 0,
        "the victim never failed: was it killed?"
    );

    let events = all_events(&url).await;
    let logged: HashSet<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::AssumptionAllowed)
        .filter_map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail_json).ok()?;
            detail["assumption_id"].as_str().map(str::to_owned)
        })
        .collect();
    eprintln!(
        "{} ALLOWs received, {} logged, {failed_on_victim} failed calls to the killed replica",
        received.len(),
        logged.len()
    );
    for id in &received {
        assert!(logged.contains(id), "acknowledged ALLOW {id} has no event");
    }
    let mut by_account: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
    for e in &events {
        by_account.entry(e.account_id.as_str()).or_default().push(e);
    }
    for (account, mut list) in by_account {
        list.sort_by_key(|e| e.sequence);
        let sequences: Vec<i64> = list.iter().map(|e| e.sequence).collect();
        let expected: Vec<i64> = (1..=list.len() as i64).collect();
        assert_eq!(sequences, expected, "{account}: gap or duplicate");
    }
    assert_chains_intact(&channels[0]).await;
    // The Merkle tree rebuilt from the rows matches every checkpoint signed, killed replica
    // included: leaves stayed dense and the tree moved with its transactions.
    let mut leaves: Vec<i64> = events.iter().map(|e| e.leaf_index).collect();
    leaves.sort_unstable();
    assert_eq!(leaves, (0..events.len() as i64).collect::<Vec<_>>());
    let key = accessgrant::transparency::SigningKey::from_pem(TEST_SIGNING_KEY, "test").unwrap();
    let verifier =
        accessgrant::transparency::VerifierKey::new("accessgrant/audit", key.public_key());
    let out = Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["audit", "verify", "--database-url", &url, "--verifier-key"])
        .arg(verifier.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tree: intact"), "{text}");
}

/// A replica stuck inside a write transaction (here: a test connection holding the write
/// fence) does not make the others queue without bound: past `statement_timeout` (which also
/// sets `lock_timeout`) their writes answer UNAVAILABLE, and succeed again once it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_fence_times_out_instead_of_queueing_forever() {
    if !postgres_or_skip("a_held_write_fence_times_out_instead_of_queueing_forever") {
        return;
    }
    let s = common::spawn_server_with(|c| {
        c.database.statement_timeout = Duration::from_millis(500);
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let lock = s.hold_write_lock().await;
    let started = Instant::now();
    let status = s
        .enable("acme", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    common::assert_error(&status, tonic::Code::Unavailable, "STORAGE_UNAVAILABLE");
    eprintln!(
        "write behind a held fence failed after {:?}",
        started.elapsed()
    );
    drop(lock);
    let enabled = s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    assert_eq!(enabled.state(), pb::access_grant::State::Enabled);
    // The failed attempt left nothing: exactly one GRANT_ENABLED.
    let kinds: Vec<EventKind> = s.events("acme").await.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::AccountCreated, EventKind::GrantEnabled],
        "{kinds:?}"
    );
}
