//! docs/audit-log.md is precise enough for an independent verifier: the Python one in
//! `tools/` (written from that page alone) agrees with the server on intact and tampered logs.

mod common;

use accessgrant::proto::v1 as pb;
use common::*;

fn python_verify(db: &std::path::Path) -> (i32, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/verify_audit_chain.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(db)
        .output()
        .expect("python3 is required to run the independent verifier");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The independent verifier accepts the service's chains and finds the same first broken event.
#[tokio::test]
async fn python_verifier_agrees_with_the_service() {
    // The verifier reads the SQLite file directly.
    if sqlite_only("python_verifier_agrees_with_the_service") {
        return;
    }
    let s = spawn_server().await;
    let db_path = s.db_path.clone().expect("a SQLite file");
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneWeek).await.unwrap();
    s.authorize("acme").await;
    s.authorize("nobody").await;
    let mut req = authorize_request("acme");
    req.emergency = Some(emergency());
    req.reason_detail = "unicode détail ✓ and \"quotes\"".into();
    s.support().authorize_assumption(req).await.unwrap();
    s.disable("acme").await.unwrap();

    let (code, out) = python_verify(&db_path);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("acme: intact (5 events)"), "{out}");
    assert!(out.contains("nobody: intact (1 events)"), "{out}");

    let third = s.events("acme").await[2].event_id.clone();
    s.sql(
        "UPDATE audit_events SET request_id = 'forged' WHERE account_id = 'acme' AND sequence = 3",
    )
    .await;
    let (code, out) = python_verify(&db_path);
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
    if sqlite_only("a_deleted_log_is_broken_for_the_python_verifier") {
        return;
    }
    let s = spawn_server().await;
    let db_path = s.db_path.clone().expect("a SQLite file");
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("globex", pb::AccountPlan::Paid).await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'globex'")
        .await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'globex'")
        .await;
    let (code, out) = python_verify(&db_path);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("globex: BROKEN"), "{out}");
    assert!(out.contains("acme: intact (1 events)"), "{out}");
}
