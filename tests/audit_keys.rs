//! The checkpoint signing key's life: `audit key generate|show`, the key the embedded
//! SQLite default creates beside its database (private, logged, kept across restarts), the
//! refusal to serve PostgreSQL without a configured key, and the tree an upgrade builds for
//! events written before the tree existed.

mod common;

use std::{process::Stdio, time::Duration};

use accessgrant::{
    storage::{migrations::Migrator, tree},
    transparency::merkle,
};
use common::{merkle as independent, *};
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;

async fn accessgrant(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(args)
        .env("ACCESSGRANT_LOG_FORMAT", "text")
        .env_remove("ACCESSGRANT_CONFIG")
        .output()
        .await
        .unwrap()
}

/// `generate` writes a private key and prints its verifier key; `show` prints the same one;
/// a second `generate` onto the same file is refused and leaves the key alone.
#[tokio::test]
async fn generate_and_show_agree() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let key = key.to_str().unwrap();
    let out = accessgrant(&["audit", "key", "generate", "--out", key]).await;
    assert!(out.status.success(), "{out:?}");
    let generated = String::from_utf8(out.stdout).unwrap();
    assert!(generated.starts_with("accessgrant/audit+"), "{generated}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let out = accessgrant(&["audit", "key", "show", "--key", key]).await;
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated);
    let out = accessgrant(&[
        "audit",
        "key",
        "show",
        "--key",
        key,
        "--origin",
        "other/log",
    ])
    .await;
    let other = String::from_utf8(out.stdout).unwrap();
    assert!(other.starts_with("other/log+"), "{other}");
    let out = accessgrant(&["audit", "key", "generate", "--out", key]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = accessgrant(&["audit", "key", "show", "--key", key]).await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        generated,
        "key unchanged"
    );
    let out = accessgrant(&["audit", "key", "generate", "--out", "/x", "--origin", "a+b"]).await;
    assert_eq!(out.status.code(), Some(2), "an origin with '+' is refused");
}

/// On SQLite without a configured key, `serve` creates one beside the database, logs its
/// verifier key, and signs with it; GetAuditCheckpoint names the same verifier key.
#[tokio::test]
async fn the_sqlite_default_creates_and_logs_its_key() {
    if sqlite_only("the_sqlite_default_creates_and_logs_its_key") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/a.db?mode=rwc", dir.path().display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--metrics-listen",
            "",
            "--database-url",
            &url,
        ])
        .env("ACCESSGRANT_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = connect(listen.parse().unwrap()).await;
    let mut audit = accessgrant::proto::v1::audit_service_client::AuditServiceClient::new(channel);
    let mut served = None;
    for _ in 0..100 {
        if let Ok(r) = audit
            .get_audit_checkpoint(accessgrant::proto::v1::GetAuditCheckpointRequest {})
            .await
        {
            served = Some(r.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = served.expect("no checkpoint");
    let key_file = dir.path().join("a.db.audit-key.pem");
    let out = accessgrant(&["audit", "key", "show", "--key", key_file.to_str().unwrap()]).await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        served.verifier_key
    );
    assert!(
        independent::open_checkpoint(&served.checkpoint, &served.verifier_key).is_some(),
        "{served:?}"
    );
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&served.verifier_key),
        "the verifier key is logged: {log}"
    );
    assert!(
        !log.contains("PRIVATE KEY"),
        "the key itself is never logged"
    );
}

/// PostgreSQL without `[audit] signing_key_file`: `serve` exits 1 naming the setting, before
/// touching the database.
#[tokio::test]
async fn postgres_without_a_key_refuses_to_serve() {
    let out = accessgrant(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("signing_key_file"), "{log}");
}

/// Upgrading a database written before the tree: existing events become leaves 0.. in
/// global-position order, and the stored tree gives the root of their hashes.
#[tokio::test]
async fn the_upgrade_builds_the_tree_of_existing_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(8)).await.unwrap();
    let mut hashes = Vec::new();
    for i in 0..13_u8 {
        let hash = vec![i; 32];
        let account = if i % 3 == 0 { "a" } else { "b" };
        db.execute_unprepared(&format!(
            "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
             actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
             ('e{i}', '{account}', {i}, 0, 'ACCOUNT_CREATED', 'system', '', '{{}}', '', {}, {})",
            blob(&[0]),
            blob(&hash)
        ))
        .await
        .unwrap();
        hashes.push(hash);
    }
    Migrator::up(&db, None).await.unwrap();
    let leaves: Vec<i64> = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT leaf_index FROM audit_events ORDER BY global_position",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0).unwrap())
        .collect();
    assert_eq!(leaves, (0..13).collect::<Vec<_>>());
    assert_eq!(
        fence_tree_size(&db).await,
        13,
        "the head the next append starts from"
    );
    let keys = merkle::frontier_keys(13);
    let nodes = tree::nodes(&db, &keys).await.unwrap();
    let edge: Vec<u8> = keys.iter().flat_map(|k| nodes[k]).collect();
    let stored_edge = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT tree_frontier FROM write_fence WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Vec<u8>>(0)
        .unwrap();
    assert_eq!(
        stored_edge, edge,
        "the head's right edge is the stored tree's"
    );
    for size in [1, 7, 13] {
        let stored = tree::compute(&db, |r| merkle::root(size, r)).await.unwrap();
        assert_eq!(
            stored,
            independent::root(&hashes[..size as usize]),
            "{size}"
        );
    }
    // Down through the access requests' migration and the tree's, then up again.
    Migrator::down(&db, Some(2)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(fence_tree_size(&db).await, 13);
}

/// The tree size on the `write_fence` row.
async fn fence_tree_size(db: &sea_orm::DatabaseConnection) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT tree_size FROM write_fence WHERE id = 1",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}
