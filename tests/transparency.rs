//! Audit transparency through the real server: the Merkle tree over every event, signed
//! checkpoints, inclusion and consistency proofs — every proof checked by the independent
//! verifier in `common::merkle`, never by the code under test — and the insider's attacks
//! (a rewrite with every hash recomputed, a cut tail) caught by `audit verify --checkpoint`
//! and by `audit monitor`.

mod common;

use std::{path::Path, time::Duration};

use accessgrant::proto::v1 as pb;
use common::{merkle as independent, *};
use tonic::Code;

/// Signs a checkpoint every 20 ms.
fn fast(c: &mut accessgrant::config::Config) {
    c.audit.checkpoint_interval = Duration::from_millis(20);
}

/// A server that signs a checkpoint every 20 ms.
async fn fast_signing() -> TestServer {
    spawn_server_with(fast).await
}

/// Every event of `accounts`, in leaf order.
async fn events_by_leaf(s: &TestServer, accounts: &[String]) -> Vec<pb::AuditEvent> {
    let mut all = Vec::new();
    for account in accounts {
        let page = s
            .audit()
            .list_audit_events(pb::ListAuditEventsRequest {
                account_id: account.clone(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.next_page_token.is_empty());
        all.extend(page.events);
    }
    all.sort_by_key(|e| e.leaf_index);
    all
}

/// Writes a few events on a new account `name`: created, one DENY, one ALLOW.
async fn some_events(s: &TestServer, name: &str) {
    s.create_account(name, pb::AccountPlan::Paid).await;
    s.authorize(name).await;
    s.enable(name, pb::AccessDuration::OneDay).await.unwrap();
    s.authorize(name).await;
}

async fn inclusion(
    s: &TestServer,
    event_id: &str,
    size: u64,
) -> pb::GetAuditInclusionProofResponse {
    s.audit()
        .get_audit_inclusion_proof(pb::GetAuditInclusionProofRequest {
            event_id: event_id.into(),
            tree_size: size as i64,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn consistency(
    s: &TestServer,
    first: u64,
    second: u64,
) -> pb::GetAuditConsistencyProofResponse {
    s.audit()
        .get_audit_consistency_proof(pb::GetAuditConsistencyProofRequest {
            first_tree_size: first as i64,
            second_tree_size: second as i64,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Leaves are dense and in commit order; every signed root is the root of the events'
/// chain hashes; every event's inclusion proof verifies at every signed size that covers it
/// and at the latest (size 0); consistency proofs verify between every pair of sizes.
#[tokio::test]
async fn every_proof_verifies_independently() {
    let s = fast_signing().await;
    let mut accounts = Vec::new();
    let mut signed = Vec::new();
    for round in 0..4 {
        let name = format!("acct-{round}");
        some_events(&s, &name).await;
        accounts.push(name);
        let total = events_by_leaf(&s, &accounts).await.len() as u64;
        let (_, _, size, root) = checkpoint_at_least(&s, total).await;
        assert_eq!(size, total, "a checkpoint covers every committed event");
        signed.push((size, root));
    }
    let events = events_by_leaf(&s, &accounts).await;
    let leaves: Vec<i64> = events.iter().map(|e| e.leaf_index).collect();
    assert_eq!(leaves, (0..events.len() as i64).collect::<Vec<_>>());
    let data: Vec<Vec<u8>> = events.iter().map(|e| e.hash.clone()).collect();
    let root_at = |n: u64| independent::root(&data[..n as usize]);
    for (size, root) in &signed {
        assert_eq!(root_at(*size), *root, "signed root at {size}");
    }
    let latest = signed.last().unwrap().0;
    for (size, _) in &signed {
        for (i, e) in events.iter().enumerate().take(*size as usize) {
            let p = inclusion(&s, &e.event_id, *size).await;
            assert_eq!((p.leaf_index, p.tree_size), (i as i64, *size as i64));
            assert!(
                independent::inclusion_ok(&e.hash, i, *size as usize, &p.hashes, &root_at(*size)),
                "leaf {i} at size {size}"
            );
        }
    }
    let last = events.last().unwrap();
    let p = inclusion(&s, &last.event_id, 0).await;
    assert_eq!(p.tree_size, latest as i64, "size 0 means the latest");
    for second in 1..=latest {
        for first in 1..=second {
            let p = consistency(&s, first, second).await;
            assert_eq!(p.second_tree_size, second as i64);
            assert!(
                independent::consistency_ok(
                    first as usize,
                    second as usize,
                    &root_at(first),
                    &root_at(second),
                    &p.hashes
                ),
                "{first} -> {second}"
            );
        }
    }
    let p = consistency(&s, 3, 0).await;
    assert_eq!(p.second_tree_size, latest as i64);
}

/// The contract's errors: sizes above the latest signed one, an event outside the tree of
/// the size asked, negative sizes, first above second, unknown and empty event ids.
#[tokio::test]
async fn proof_errors_follow_the_contract() {
    let s = fast_signing().await;
    some_events(&s, "acme").await;
    let events = events_by_leaf(&s, &["acme".into()]).await;
    let (_, _, latest, _) = checkpoint_at_least(&s, events.len() as u64).await;
    let mut audit = s.audit();
    let inclusion_err = |event_id: &str, tree_size: i64| {
        let mut audit = audit.clone();
        let event_id = event_id.to_owned();
        async move {
            audit
                .get_audit_inclusion_proof(pb::GetAuditInclusionProofRequest {
                    event_id,
                    tree_size,
                })
                .await
                .unwrap_err()
        }
    };
    let newest = &events.last().unwrap().event_id;
    let status = inclusion_err(newest, latest as i64 + 1).await;
    assert_error(&status, Code::OutOfRange, "TREE_SIZE_OUT_OF_RANGE");
    let status = inclusion_err(newest, 1).await;
    assert_error(&status, Code::OutOfRange, "TREE_SIZE_OUT_OF_RANGE");
    let status = inclusion_err(newest, -1).await;
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["tree_size"]);
    let status = inclusion_err("", 0).await;
    assert_eq!(violated_fields(&status), ["event_id"]);
    let status = inclusion_err("0190aaaa-0000-7000-8000-000000000000", 0).await;
    assert_error(&status, Code::NotFound, "EVENT_NOT_FOUND");

    let consistency_err = |first: i64, second: i64| {
        let mut audit = audit.clone();
        async move {
            audit
                .get_audit_consistency_proof(pb::GetAuditConsistencyProofRequest {
                    first_tree_size: first,
                    second_tree_size: second,
                })
                .await
                .unwrap_err()
        }
    };
    let status = consistency_err(1, latest as i64 + 1).await;
    assert_error(&status, Code::OutOfRange, "TREE_SIZE_OUT_OF_RANGE");
    let status = consistency_err(latest as i64 + 1, 0).await;
    assert_error(&status, Code::OutOfRange, "TREE_SIZE_OUT_OF_RANGE");
    let status = consistency_err(3, 2).await;
    assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["first_tree_size"]);
    let status = consistency_err(-1, -2).await;
    assert_eq!(
        violated_fields(&status),
        ["first_tree_size", "second_tree_size"]
    );
    // Equal sizes and the empty tree need no hashes.
    let p = audit
        .get_audit_consistency_proof(pb::GetAuditConsistencyProofRequest {
            first_tree_size: 2,
            second_tree_size: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p.hashes.is_empty());
}

/// A restart keeps the key (SQLite: the one created beside the database; PostgreSQL: the
/// configured one) and the tree: the new checkpoints extend the old ones.
#[tokio::test]
async fn a_restart_keeps_the_key_and_the_tree() {
    let s = fast_signing().await;
    some_events(&s, "acme").await;
    let n = events_by_leaf(&s, &["acme".into()]).await.len() as u64;
    let (_, key, first, first_root) = checkpoint_at_least(&s, n).await;
    let s = restart_with(s, fast).await;
    some_events(&s, "beta").await;
    let events = events_by_leaf(&s, &["acme".into(), "beta".into()]).await;
    let (_, key_after, second, second_root) = checkpoint_at_least(&s, events.len() as u64).await;
    assert_eq!(key_after, key);
    assert!(second > first);
    let p = consistency(&s, first, second).await;
    assert!(independent::consistency_ok(
        first as usize,
        second as usize,
        &first_root,
        &second_root,
        &p.hashes
    ));
}

/// Replicas write into one dense tree and sign with one key.
#[tokio::test]
async fn replicas_share_one_dense_tree_and_one_key() {
    if postgres_only("replicas_share_one_dense_tree_and_one_key") {
        return;
    }
    let a = fast_signing().await;
    let b = spawn_replica(&a, fast).await;
    let mut accounts = Vec::new();
    let mut writes = Vec::new();
    for i in 0..6 {
        let name = format!("r-{i}");
        accounts.push(name.clone());
        let (a, b) = (a.channel.clone(), b.channel.clone());
        writes.push(tokio::spawn(async move {
            let channel = if i % 2 == 0 { a } else { b };
            let mut accounts = pb::account_service_client::AccountServiceClient::new(channel);
            accounts
                .upsert_account(pb::UpsertAccountRequest {
                    account_id: name,
                    plan: pb::AccountPlan::Trial.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
    for name in &accounts {
        a.authorize(name).await;
        b.authorize(name).await;
    }
    let events = events_by_leaf(&a, &accounts).await;
    let leaves: Vec<i64> = events.iter().map(|e| e.leaf_index).collect();
    assert_eq!(leaves, (0..events.len() as i64).collect::<Vec<_>>());
    let (_, key_a, size_a, root_a) = checkpoint_at_least(&a, events.len() as u64).await;
    let (_, key_b, size_b, root_b) = checkpoint_at_least(&b, events.len() as u64).await;
    assert_eq!(key_a, key_b);
    assert_eq!((size_a, root_a), (size_b, root_b));
    let data: Vec<Vec<u8>> = events.iter().map(|e| e.hash.clone()).collect();
    assert_eq!(independent::root(&data), root_a);
}

/// Runs the release or debug binary built with the tests.
async fn accessgrant(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(args)
        .env("ACCESSGRANT_LOG_FORMAT", "text")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn monitor(s: &TestServer, key: &str, state: &Path, account: &str) -> (i32, String) {
    let target = format!("http://{}", s.addr);
    accessgrant(&[
        "audit",
        "monitor",
        "--target",
        &target,
        "--verifier-key",
        key,
        "--state",
        state.to_str().unwrap(),
        "--account",
        account,
        "--once",
    ])
    .await
}

async fn verify(url: &str, key: &str, checkpoint: &Path) -> (i32, String) {
    accessgrant(&[
        "audit",
        "verify",
        "--database-url",
        url,
        "--verifier-key",
        key,
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ])
    .await
}

/// The insider's rewrite: an emergency justification edited, every later hash of the
/// account, its chain head and even the stored tree recomputed, the stored checkpoints
/// deleted. The chains verify; the checkpoint a customer kept does not, and the monitor
/// (which kept one too) fails with the evidence once the server signs the rewritten log.
#[tokio::test]
async fn an_insider_rewrite_is_caught_by_a_kept_checkpoint() {
    let s = fast_signing().await;
    s.create_account("victim", pb::AccountPlan::Paid).await;
    s.authorize_emergency("victim").await;
    s.authorize("victim").await;
    let n = events_by_leaf(&s, &["victim".into()]).await.len() as u64;
    let (note, key, _, _) = checkpoint_at_least(&s, n).await;
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("checkpoint.txt");
    std::fs::write(&kept, &note).unwrap();
    let state = dir.path().join("monitor.json");
    let (code, out) = monitor(&s, &key, &state, "victim").await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&s.database_url, &key, &kept).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("tree: intact"), "{out}");

    let url = s.database_url.clone();
    let db_path = s.db_path.clone();
    let s = stop_keeping_database(s).await;
    insider::rewrite_event(&url, "victim", 2, r#"{"justification":"routine check"}"#).await;
    insider::rebuild_tree(&url).await;
    insider::delete_checkpoints(&url).await;
    // The strongest insider also deletes the server's own record of what it signed (beside
    // a SQLite database; PostgreSQL servers here keep it in memory only), so the restarted
    // server signs the rewritten log: the kept checkpoints are all that is left to catch it.
    if let Some(db) = db_path {
        std::fs::remove_file(format!("{}.audit-signed", db.display())).unwrap();
    }
    let (code, out) = accessgrant(&["audit", "verify", "--database-url", &url]).await;
    assert_eq!(code, 0, "the recomputed chains verify: {out}");
    let (code, out) = verify(&url, &key, &kept).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN: checkpoint file"), "{out}");
    assert!(
        out.contains(note.lines().next().unwrap()),
        "prints the checkpoint: {out}"
    );
    assert!(
        out.contains("among leaves"),
        "locates the difference: {out}"
    );

    let s = s.start_with(fast).await;
    checkpoint_at_least(&s, n).await;
    let (code, out) = monitor(&s, &key, &state, "victim").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MONITOR FAILURE"), "{out}");
    assert!(
        out.contains("kept checkpoint:\n  | accessgrant/audit"),
        "{out}"
    );
}

/// Events cut from the tail (chain heads moved back): the kept checkpoint covers more than
/// the database holds, and the monitor misses the newest event it saw.
#[tokio::test]
async fn a_cut_tail_is_caught() {
    let s = fast_signing().await;
    some_events(&s, "acme").await;
    let n = events_by_leaf(&s, &["acme".into()]).await.len() as u64;
    let (note, key, _, _) = checkpoint_at_least(&s, n).await;
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("checkpoint.txt");
    std::fs::write(&kept, &note).unwrap();
    let state = dir.path().join("monitor.json");
    assert_eq!(monitor(&s, &key, &state, "acme").await.0, 0);

    let url = s.database_url.clone();
    let s = stop_keeping_database(s).await;
    assert_eq!(insider::cut_tail(&url, 2).await, ["acme"]);
    insider::rebuild_tree(&url).await;
    let (code, out) = accessgrant(&["audit", "verify", "--database-url", &url]).await;
    assert_eq!(code, 0, "the cut chain verifies: {out}");
    let (code, out) = verify(&url, &key, &kept).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("events were deleted"), "{out}");

    let s = s.start_with(fast).await;
    let (code, out) = monitor(&s, &key, &state, "acme").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no longer in account acme's log"), "{out}");
}

/// A server whose stored tree no longer extends its stored checkpoint signs nothing more:
/// the latest checkpoint stays the old one while new events commit.
#[tokio::test]
async fn the_server_refuses_to_sign_over_a_rewritten_tree() {
    let s = fast_signing().await;
    some_events(&s, "acme").await;
    let n = events_by_leaf(&s, &["acme".into()]).await.len() as u64;
    let (note, _, _, _) = checkpoint_at_least(&s, n).await;
    let url = s.database_url.clone();
    let s = stop_keeping_database(s).await;
    insider::rewrite_event(&url, "acme", 1, "{}").await;
    insider::rebuild_tree(&url).await;
    let s = s.start_with(fast).await;
    some_events(&s, "beta").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let latest = s
        .audit()
        .get_audit_checkpoint(pb::GetAuditCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        latest.checkpoint, note,
        "nothing signed over the rewritten tree"
    );
}

/// The database lost (a new, empty one) while the key and the signer's record of what it
/// signed survive: the server does not sign the new, shorter history under the same key —
/// it has no checkpoint to give until an operator starts a new origin.
#[tokio::test]
async fn a_lost_database_does_not_get_a_new_history_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, TEST_SIGNING_KEY).unwrap();
    let signed = dir.path().join("signed-checkpoint");
    let config = |c: &mut accessgrant::config::Config| {
        fast(c);
        c.audit.signing_key_file = Some(key.clone());
        c.audit.signed_checkpoint_file = Some(signed.clone());
    };
    let s = spawn_server_with(config).await;
    some_events(&s, "acme").await;
    let n = events_by_leaf(&s, &["acme".into()]).await.len() as u64;
    let (note, _, _, _) = checkpoint_at_least(&s, n).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(std::fs::read_to_string(&signed).unwrap(), note);
    drop(stop_keeping_database(s).await);

    let fresh = spawn_server_with(config).await;
    some_events(&fresh, "beta").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = fresh
        .audit()
        .get_audit_checkpoint(pb::GetAuditCheckpointRequest {})
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "NO_CHECKPOINT_YET");
    assert_eq!(
        std::fs::read_to_string(&signed).unwrap(),
        note,
        "the record is kept"
    );
}

/// An event row edited without touching the stored tree: `audit verify` pins the change to
/// its exact leaf (the stored leaf hash no longer matches the row).
#[tokio::test]
async fn an_edit_that_leaves_the_tree_alone_is_pinned_to_its_leaf() {
    let s = fast_signing().await;
    some_events(&s, "acme").await;
    let events = events_by_leaf(&s, &["acme".into()]).await;
    let (note, key, _, _) = checkpoint_at_least(&s, events.len() as u64).await;
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("checkpoint.txt");
    std::fs::write(&kept, &note).unwrap();
    let url = s.database_url.clone();
    let _stopped = stop_keeping_database(s).await;
    insider::rewrite_event(&url, "acme", 2, r#"{"edited":true}"#).await;
    let (code, out) = verify(&url, &key, &kept).await;
    assert_eq!(code, 1, "{out}");
    let second = &events[1];
    assert!(
        out.contains(&format!(
            "first leaf that differs: {} (event {}",
            second.leaf_index, second.event_id
        )),
        "{out}"
    );
}

/// The monitor authenticates with `--token-file`: without it (or with a principal lacking
/// `audit:read`) it cannot check (exit 2, no evidence claimed); with it, it verifies.
#[tokio::test]
async fn the_monitor_authenticates_with_its_token_file() {
    use accessgrant::{auth::Principal, auth::token, domain::permission::Permission};
    let principal = |name: &str, permissions: &[Permission]| Principal {
        name: name.into(),
        token_sha256: Some(token::sha256(format!("token-of-{name}").as_bytes())),
        cert_subject: None,
        permissions: permissions.iter().copied().collect(),
    };
    let s = spawn_server_with(|c| {
        fast(c);
        c.principals.push(principal("admin", &Permission::ALL));
        c.principals
            .push(principal("auditor", &[Permission::AuditRead]));
        c.principals
            .push(principal("grants", &[Permission::GrantsRead]));
    })
    .await;
    let mut request = tonic::Request::new(pb::GetAuditCheckpointRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer token-of-admin".parse().unwrap());
    let vkey = s
        .audit()
        .get_audit_checkpoint(request)
        .await
        .unwrap()
        .into_inner()
        .verifier_key;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let target = format!("http://{}", s.addr);
    let run = |token: Option<&str>| {
        let mut args: Vec<String> = [
            "audit",
            "monitor",
            "--target",
            &target,
            "--verifier-key",
            &vkey,
            "--state",
        ]
        .map(String::from)
        .to_vec();
        args.push(state.display().to_string());
        args.push("--once".into());
        if let Some(token) = token {
            let file = dir.path().join(format!("{token}.txt"));
            std::fs::write(&file, format!("{token}\n")).unwrap();
            args.push("--token-file".into());
            args.push(file.display().to_string());
        }
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            accessgrant(&refs).await
        }
    };
    let (code, out) = run(None).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Unauthenticated"), "{out}");
    let (code, out) = run(Some("token-of-grants")).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("PermissionDenied"), "{out}");
    let (code, out) = run(Some("token-of-auditor")).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verified checkpoint accessgrant/audit"),
        "{out}"
    );
    assert!(state.exists());
}
