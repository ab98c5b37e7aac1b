//! docs/audit-log.md is precise enough for an independent verifier: the Python one in
//! `tools/` (written from that page alone) agrees with the server on intact and tampered logs,
//! and with a verifier key rebuilds the Merkle tree and checks signed checkpoints, catching an
//! insider's rewrite (every hash recomputed) and a cut tail with a checkpoint kept outside.

mod common;

use std::{ffi::OsStr, path::Path, time::Duration};

use accessgrant::proto::v1 as pb;
use common::*;

/// Runs the independent verifier with `args`: (exit code, stdout then stderr).
async fn python(args: &[&OsStr]) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_audit_chain.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("python3 is required to run the independent verifier");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The chains only, of `database` (see [`database_arg`]).
async fn python_verify(database: &str) -> (i32, String) {
    python(&[database.as_ref()]).await
}

/// Chains, tree and checkpoints: `database` with `--verifier-key key` and one
/// `--checkpoint` per file.
async fn python_verify_tree(database: &str, key: &str, checkpoints: &[&Path]) -> (i32, String) {
    let mut args: Vec<&OsStr> = vec![database.as_ref(), "--verifier-key".as_ref(), key.as_ref()];
    for file in checkpoints {
        args.extend(["--checkpoint".as_ref(), file.as_os_str()]);
    }
    python(&args).await
}

/// What the verifier is given as `DATABASE`: the SQLite file, or the PostgreSQL URL.
fn database_arg(s: &TestServer) -> String {
    match &s.db_path {
        Some(path) => path.display().to_string(),
        None => s.database_url.clone(),
    }
}

/// Signs a checkpoint every 20 ms.
fn fast(c: &mut accessgrant::config::Config) {
    c.audit.checkpoint_interval = Duration::from_millis(20);
}

/// The number of events in the log.
async fn event_count(s: &TestServer) -> u64 {
    s.count("SELECT COUNT(*) FROM audit_events").await as u64
}

/// The latest checkpoint, once it covers every event, kept in a file of `dir` as a customer
/// would keep it: (file, verifier key).
async fn keep_checkpoint(s: &TestServer, dir: &Path) -> (std::path::PathBuf, String) {
    let (note, key, _, _) = checkpoint_at_least(s, event_count(s).await).await;
    let kept = dir.join("checkpoint.txt");
    std::fs::write(&kept, &note).unwrap();
    (kept, key)
}

/// The independent verifier accepts the service's chains and finds the same first broken event.
#[tokio::test]
async fn python_verifier_agrees_with_the_service() {
    let s = spawn_server().await;
    let database = database_arg(&s);
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneWeek).await.unwrap();
    s.authorize("acme").await;
    s.authorize("nobody").await;
    let mut req = authorize_request("acme");
    req.emergency = Some(emergency());
    req.reason_detail = "unicode détail ✓ and \"quotes\"".into();
    s.support().authorize_assumption(req).await.unwrap();
    s.disable("acme").await.unwrap();

    let (code, out) = python_verify(&database).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acme: intact (5 events)"), "{out}");
    assert!(out.contains("nobody: intact (1 events)"), "{out}");

    let third = s.events("acme").await[2].event_id.clone();
    s.sql(
        "UPDATE audit_events SET request_id = 'forged' WHERE account_id = 'acme' AND sequence = 3",
    )
    .await;
    let (code, out) = python_verify(&database).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("acme: BROKEN at event {third}")),
        "{out}"
    );

    let v = s
        .audit()
        .verify_audit_chain(pb::VerifyAuditChainRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!v.intact);
    assert_eq!(v.first_broken_event_id, third);
}

/// The Python verifier (like `audit verify`, tests/audit_log.rs) reports a provisioned account
/// whose whole log (events and head) was deleted: every account starts its log when it is
/// created, so an empty one is tampering.
#[tokio::test]
async fn a_deleted_log_is_broken_for_the_python_verifier() {
    let s = spawn_server().await;
    let database = database_arg(&s);
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("globex", pb::AccountPlan::Paid).await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'globex'")
        .await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'globex'")
        .await;
    let (code, out) = python_verify(&database).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("globex: BROKEN"), "{out}");
    assert!(out.contains("acme: intact (1 events)"), "{out}");
}

/// The verifier reproduces the page's worked examples (canonical encoding, tree, key id,
/// verifier key and signed checkpoint) byte for byte.
#[tokio::test]
async fn the_python_verifier_reproduces_the_documented_examples() {
    let (code, out) = python(&["--self-test".as_ref()]).await;
    assert_eq!(code, 0, "{out}");
}

/// With the verifier key, an intact log passes: every stored checkpoint and the kept one
/// verify against the tree rebuilt from the events. A kept checkpoint whose text was altered
/// fails its signature.
#[tokio::test]
async fn the_python_verifier_accepts_an_intact_tree() {
    let s = spawn_server_with(fast).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.authorize("acme").await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    s.authorize("acme").await;
    s.authorize("nobody").await;
    let dir = tempfile::tempdir().unwrap();
    let (kept, key) = keep_checkpoint(&s, dir.path()).await;
    let n = event_count(&s).await;

    let (code, out) = python_verify_tree(&database_arg(&s), &key, &[&kept]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acme: intact (4 events)"), "{out}");
    assert!(out.contains("nobody: intact (1 events)"), "{out}");
    assert!(
        out.contains(&format!("tree: intact ({n} leaves, ")),
        "{out}"
    );

    let note = std::fs::read_to_string(&kept).unwrap();
    let forged = dir.path().join("forged.txt");
    std::fs::write(&forged, note.replacen(&format!("\n{n}\n"), "\n1\n", 1)).unwrap();
    let (code, out) = python_verify_tree(&database_arg(&s), &key, &[&forged]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tree: BROKEN: checkpoint file") && out.contains("signature"),
        "{out}"
    );
}

/// The insider's rewrite (tests/common/insider.rs): an emergency justification edited, every
/// later hash, the chain head and the stored tree recomputed, the stored checkpoints
/// deleted. The chains verify; the checkpoint kept outside the database does not.
#[tokio::test]
async fn an_insider_rewrite_fails_the_python_verifiers_kept_checkpoint() {
    let s = spawn_server_with(fast).await;
    s.create_account("victim", pb::AccountPlan::Paid).await;
    s.authorize_emergency("victim").await;
    s.authorize("victim").await;
    let dir = tempfile::tempdir().unwrap();
    let (kept, key) = keep_checkpoint(&s, dir.path()).await;
    let (database, url) = (database_arg(&s), s.database_url.clone());
    let (code, out) = python_verify_tree(&database, &key, &[&kept]).await;
    assert_eq!(code, 0, "{out}");

    let _stopped = stop_keeping_database(s).await;
    insider::rewrite_event(&url, "victim", 2, r#"{"justification":"routine check"}"#).await;
    insider::rebuild_tree(&url).await;
    insider::delete_checkpoints(&url).await;
    let (code, out) = python_verify(&database).await;
    assert_eq!(code, 0, "the recomputed chains verify: {out}");
    let (code, out) = python_verify_tree(&database, &key, &[&kept]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("victim: intact (3 events)"), "{out}");
    assert!(out.contains("tree: BROKEN: checkpoint file"), "{out}");
    assert!(out.contains("differs from the root rebuilt"), "{out}");
}

/// The newest events cut and the chain heads moved back: the chains verify, but the kept
/// checkpoint covers more leaves than the database holds.
#[tokio::test]
async fn a_cut_tail_fails_the_python_verifiers_kept_checkpoint() {
    let s = spawn_server_with(fast).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.authorize("acme").await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    s.authorize("acme").await;
    let dir = tempfile::tempdir().unwrap();
    let (kept, key) = keep_checkpoint(&s, dir.path()).await;
    let (database, url) = (database_arg(&s), s.database_url.clone());

    let _stopped = stop_keeping_database(s).await;
    assert_eq!(insider::cut_tail(&url, 2).await, ["acme"]);
    insider::rebuild_tree(&url).await;
    let (code, out) = python_verify_tree(&database, &key, &[&kept]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("acme: intact (2 events)"), "{out}");
    assert!(out.contains("tree: BROKEN: checkpoint file"), "{out}");
    assert!(out.contains("events were deleted"), "{out}");
}
