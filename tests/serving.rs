//! Serving: health (Check and Watch), reflection v1 and v1alpha (the contract and the
//! `google.rpc` error details), graceful shutdown, and the real binary started with its
//! defaults.

mod common;

use std::{process::Stdio, time::Duration};

use common::*;
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Health reports SERVING for the server and each service once migrations have run.
#[tokio::test]
async fn health_is_serving_after_migrations() {
    let s = spawn_server().await;
    let mut health = HealthClient::new(s.channel.clone());
    for service in [
        "",
        "accessgrant.v1.AccessGrantService",
        "accessgrant.v1.AccountService",
        "accessgrant.v1.SupportAccessService",
        "accessgrant.v1.AuditService",
        "liveness",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

/// Health Watch streams SERVING, then NOT_SERVING when shutdown starts.
#[tokio::test]
async fn health_watch_sees_not_serving_on_shutdown() {
    let s = spawn_server_with(|c| c.drain_timeout = Duration::from_millis(500)).await;
    let mut health = HealthClient::new(s.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(s.stop());
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("no health update during shutdown");
    let update = next.expect("watch ended without NOT_SERVING").unwrap();
    assert_eq!(update.status(), ServingStatus::NotServing);
    // The open stream does not hold shutdown hostage beyond the drain timeout.
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown did not finish")
        .unwrap();
}

/// Reflection v1 and v1alpha both list every service of the contract plus health.
#[tokio::test]
async fn reflection_lists_services_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};
    let s = spawn_server().await;
    let expected = [
        "accessgrant.v1.AccessGrantService",
        "accessgrant.v1.AccountService",
        "accessgrant.v1.SupportAccessService",
        "accessgrant.v1.AuditService",
        "grpc.health.v1.Health",
    ];

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(
            names.iter().any(|n| n == name),
            "v1 lacks {name}: {names:?}"
        );
    }

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in expected {
        assert!(
            names.iter().any(|n| n == name),
            "v1alpha lacks {name}: {names:?}"
        );
    }
}

/// Whether one of the encoded `files` is in package `google.rpc` and declares `message`.
fn declares_google_rpc(files: &[Vec<u8>], message: &str) -> bool {
    use prost::Message;
    files.iter().any(|bytes| {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
        file.package() == "google.rpc" && file.message_type.iter().any(|m| m.name() == message)
    })
}

/// Reflection v1 and v1alpha both resolve `google.rpc.BadRequest` and `ErrorInfo`, so
/// grpcurl and buf curl decode error details instead of printing opaque bytes.
#[tokio::test]
async fn reflection_serves_the_error_detail_types_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};
    let s = spawn_server().await;
    for message in ["BadRequest", "ErrorInfo"] {
        let symbol = format!("google.rpc.{message}");

        let mut client =
            v1::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.clone()),
            ),
        };
        let response = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .next()
            .await
            .unwrap()
            .unwrap();
        let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
            response.message_response
        else {
            panic!("v1 does not resolve {symbol}: {response:?}");
        };
        assert!(
            declares_google_rpc(&files.file_descriptor_proto, message),
            "v1: {symbol}"
        );

        let mut client =
            v1alpha::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    symbol.clone(),
                ),
            ),
        };
        let response = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .next()
            .await
            .unwrap()
            .unwrap();
        let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        )) = response.message_response
        else {
            panic!("v1alpha does not resolve {symbol}: {response:?}");
        };
        assert!(
            declares_google_rpc(&files.file_descriptor_proto, message),
            "v1alpha: {symbol}"
        );
    }
}

/// `accessgrant serve` with no flags listens on 127.0.0.1:50051, creates ./accessgrant.db,
/// answers a health check, and exits 0 on SIGTERM.
#[tokio::test]
async fn binary_serves_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("ACCESSGRANT_LISTEN")
        .env_remove("ACCESSGRANT_DATABASE_URL")
        .env_remove("ACCESSGRANT_CONFIG")
        .env_remove("ACCESSGRANT_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = "127.0.0.1:50051".parse().unwrap();
    let channel = connect(addr).await;
    let mut health = HealthClient::new(channel);
    let mut serving = false;
    for _ in 0..100 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status())
            .ok();
        if status == Some(ServingStatus::Serving) {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serving, "the default server never reported SERVING");
    assert!(dir.path().join("accessgrant.db").exists());
    // The embedded default made its checkpoint signing key beside the database.
    assert!(dir.path().join("accessgrant.db.audit-key.pem").exists());

    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("server did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// `accessgrant migrate` creates the schema and exits 0; `audit verify` on it reports intact.
#[tokio::test]
async fn migrate_and_verify_commands() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bad config value stops the process before it touches anything.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args([
            "serve",
            "--listen",
            "not-an-address",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Asserts that a decision on `account` now fails closed: `UNAVAILABLE STORAGE_UNAVAILABLE`.
async fn assert_decision_fails_closed(s: &TestServer, account: &str) {
    let status = s
        .support()
        .authorize_assumption(authorize_request(account))
        .await
        .unwrap_err();
    assert_error(&status, tonic::Code::Unavailable, "STORAGE_UNAVAILABLE");
}

/// Deleting the SQLite file under a running server: writes fail closed, readiness and
/// liveness turn NOT_SERVING as soon as a write finds the file gone.
#[tokio::test]
async fn lost_database_file_fails_closed() {
    use accessgrant::proto::v1 as pb;
    if sqlite_only("lost_database_file_fails_closed") {
        return;
    }
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let db_path = s.db_path.clone().expect("a SQLite file");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    // At once, not after the next readiness probe: writers check the file themselves, and
    // the write that finds it lost turns health NOT_SERVING without waiting for the
    // periodic readiness check (every 2 s): within 500 ms here.
    assert_decision_fails_closed(&s, "acme").await;
    let mut health = HealthClient::new(s.channel.clone());
    let mut statuses = (ServingStatus::Serving, ServingStatus::Serving);
    for _ in 0..5 {
        let check = |name: &str| HealthCheckRequest {
            service: name.into(),
        };
        let ready = health.check(check("")).await.unwrap().into_inner().status();
        let live = health
            .check(check("liveness"))
            .await
            .unwrap()
            .into_inner()
            .status();
        statuses = (ready, live);
        if statuses == (ServingStatus::NotServing, ServingStatus::NotServing) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses,
        (ServingStatus::NotServing, ServingStatus::NotServing)
    );
    assert_decision_fails_closed(&s, "acme").await;
}

/// Deleting only the WAL under a running server loses every commit since the last
/// checkpoint, so it counts as losing the file: the next decision fails closed.
#[tokio::test]
async fn a_deleted_wal_fails_closed() {
    use accessgrant::proto::v1 as pb;
    if sqlite_only("a_deleted_wal_fails_closed") {
        return;
    }
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    assert_eq!(s.authorize("acme").await.decision(), pb::Decision::Allow);
    let db_path = s.db_path.clone().expect("a SQLite file");
    std::fs::remove_file(format!("{}-wal", db_path.display())).unwrap();
    assert_decision_fails_closed(&s, "acme").await;
}

/// A decision whose batch commits into a file deleted while the batch waited for it is not
/// acknowledged: the commit went to a file nobody will read again.
#[tokio::test]
async fn a_file_lost_during_a_commit_is_never_acknowledged() {
    use accessgrant::proto::v1 as pb;
    if sqlite_only("a_file_lost_during_a_commit_is_never_acknowledged") {
        return;
    }
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let db_path = s.db_path.clone().expect("a SQLite file");
    // Another connection holds SQLite's write lock: the writer passes its check of the file,
    // then waits in `BEGIN IMMEDIATE`.
    let (store, txn) = s.hold_write_lock().await;
    let mut support = s.support();
    let decision = tokio::spawn(async move {
        support
            .authorize_assumption(authorize_request("acme"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", db_path.display())).unwrap();
    }
    txn.rollback().await.unwrap();
    let status = decision.await.unwrap().unwrap_err();
    assert_error(&status, tonic::Code::Unavailable, "STORAGE_UNAVAILABLE");
    store.close().await.unwrap();
}

/// Upgrading a database written before chain heads carried their time: each existing head
/// gets its last event's time (0 when the event is missing), the `(account_id, occur_time)`
/// index goes, and the step can be undone and redone.
#[tokio::test]
async fn chain_head_time_migration_backfills_existing_heads() {
    use accessgrant::storage::migrations::Migrator;
    use sea_orm::{ConnectionTrait, Database, Statement};
    use sea_orm_migration::MigratorTrait;

    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let db = Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(7)).await.unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
         ('e1', 'acme', 1, 100, 'ACCOUNT_CREATED', 'system', '', '{{}}', '', {}, {}), \
         ('e2', 'acme', 2, 250, 'ASSUMPTION_ALLOWED', 'system', '', '{{}}', '', {}, {})",
        blob(&[0x00]),
        blob(&[0x01]),
        blob(&[0x01]),
        blob(&[0x02])
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO audit_chain_heads (account_id, last_sequence, last_hash) VALUES \
         ('acme', 2, {}), ('ghost', 3, {})",
        blob(&[0x02]),
        blob(&[0x03])
    ))
    .await
    .unwrap();
    let time_index_count = || async {
        let sql = match backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events_account_time'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'audit_events_account_time'"
            }
        };
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
    };
    assert_eq!(time_index_count().await, 1);

    Migrator::up(&db, None).await.unwrap();
    let heads = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT account_id, last_occur_time_us FROM audit_chain_heads ORDER BY account_id",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<i64>(1).unwrap(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(heads, [("acme".to_owned(), 250), ("ghost".to_owned(), 0)]);
    assert_eq!(time_index_count().await, 0);

    // Down through the access requests' and the audit tree's migrations to this one.
    Migrator::down(&db, Some(3)).await.unwrap();
    assert_eq!(time_index_count().await, 1);
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(time_index_count().await, 0);
}

/// On a SQLite file the writer thread asks to run ahead of request handling (nice −5, see
/// `storage::thread_priority`). With the privilege (root, as in CI) every writer thread of
/// this process gets it; without it they keep the default 0 and the server goes on.
#[tokio::test]
async fn writer_thread_priority_is_raised_when_permitted() {
    if sqlite_only("writer_thread_priority_is_raised_when_permitted") {
        return;
    }
    let _s = spawn_server().await;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    let expected = if root { -5 } else { 0 };
    // The nice value of every thread named like the writer (field 19 of its stat line).
    let writer_nices = || -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
                (name == "accessgrant-wri").then(|| rest.split(' ').nth(16)?.parse().ok())?
            })
            .collect()
    };
    // A writer thread sets its priority as it starts; other tests' servers start theirs too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let nices = writer_nices();
        if !nices.is_empty() && nices.iter().all(|n| *n == expected) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writer threads' nice values {nices:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `accessgrant serve` keeps the SQLite writer thread ahead of request handling with or
/// without the privilege to raise a priority: with `CAP_SYS_NICE` the writer runs at nice −5
/// and the request workers at 0; without it (here: root with the capability dropped, or any
/// other user) the writer stays at 0 and the workers step down to +5.
#[tokio::test]
async fn binary_keeps_the_writer_ahead_of_request_workers() {
    if sqlite_only("binary_keeps_the_writer_ahead_of_request_workers") {
        return;
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    // (run without CAP_SYS_NICE, expected writer nice, expected worker nice)
    let mut cases = vec![(false, if root { -5 } else { 0 }, if root { 0 } else { 5 })];
    if root {
        cases.push((true, 0, 5));
    }
    for (drop_cap, writer_nice, worker_nice) in cases {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database_url(dir.path()).await;
        let bin = env!("CARGO_BIN_EXE_accessgrant");
        let serve = serve_args(&url);
        let mut command = if drop_cap {
            let mut c = tokio::process::Command::new("setpriv");
            c.args([
                "--bounding-set",
                "-sys_nice",
                "--inh-caps",
                "-sys_nice",
                "--",
                bin,
            ]);
            c
        } else {
            tokio::process::Command::new(bin)
        };
        let child = command
            .args(serve)
            .env_remove("ACCESSGRANT_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // Thread name → nice values, once the writer thread (started after migrations) is up.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (writers, workers) = loop {
            let mut writers = Vec::new();
            let mut workers = Vec::new();
            for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
                let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
                    continue;
                };
                let Some((name, rest)) =
                    stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
                else {
                    continue;
                };
                let nice: i64 = rest.split(' ').nth(16).unwrap().parse().unwrap();
                match name {
                    "accessgrant-wri" => writers.push(nice),
                    "tokio-rt-worker" => workers.push(nice),
                    _ => {}
                }
            }
            if !writers.is_empty() && !workers.is_empty() {
                break (writers, workers);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no writer thread appeared (drop_cap {drop_cap})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(writers, [writer_nice], "writer, drop_cap {drop_cap}");
        assert!(
            workers.iter().all(|n| *n == worker_nice),
            "workers {workers:?}, expected {worker_nice}, drop_cap {drop_cap}"
        );
        drop(child);
    }
}

/// A second `accessgrant serve` on a SQLite file already being served is refused at start
/// (its read cache would miss the first server's changes); once the first server stops, the
/// file can be served again.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused() {
    if sqlite_only("a_second_server_on_the_same_sqlite_file_is_refused") {
        return;
    }
    let serve = |url: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""])
            .args(["--database-url", &url])
            .env_remove("ACCESSGRANT_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // The database lives in `dir`, which outlives the first server.
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let s = spawn_on(tempfile::tempdir().unwrap(), url.clone(), |_| {}).await;
    // Serving (and so the file exists) once it has answered a write.
    s.create_account("acme", accessgrant::proto::v1::AccountPlan::Trial)
        .await;
    // The same file, also through a symlink: both refused.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("accessgrant.db"), &link).unwrap();
    // And through a hard link, which no lock named after a path can see: a file with
    // several names is not served at all.
    let hard = dir.path().join("hard.db");
    std::fs::hard_link(dir.path().join("accessgrant.db"), &hard).unwrap();
    for other in [
        url.clone(),
        format!("sqlite://{}?mode=rwc", link.display()),
        format!("sqlite://{}?mode=rwc", hard.display()),
    ] {
        let mut second = serve(other.clone()).await;
        let status = tokio::time::timeout(Duration::from_secs(10), second.wait())
            .await
            .expect("the second server must exit at once")
            .unwrap();
        assert_eq!(status.code(), Some(1), "{other}");
    }

    s.stop().await;
    std::fs::remove_file(&hard).unwrap();
    let mut third = serve(url).await;
    // Serving, not exiting: still running after migrations had time to finish.
    let early = tokio::time::timeout(Duration::from_secs(2), third.wait()).await;
    assert!(early.is_err(), "the file is free again: {early:?}");
}

/// Deleting the serve lock file under a running server would let a second server start on
/// the same file; the first stops acknowledging writes at once, as if the database file had
/// been replaced, and a second server can then take over the file.
#[tokio::test]
async fn a_deleted_serve_lock_fails_closed() {
    use accessgrant::proto::v1 as pb;
    if sqlite_only("a_deleted_serve_lock_fails_closed") {
        return;
    }
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    assert_eq!(s.authorize("acme").await.decision(), pb::Decision::Allow);
    let db_path = s.db_path.clone().expect("a SQLite file");
    let lock = format!(
        "{}.serve-lock",
        std::fs::canonicalize(&db_path).unwrap().display()
    );
    std::fs::remove_file(&lock).unwrap();
    assert_decision_fails_closed(&s, "acme").await;
}

/// A percent-encoded SQLite URL names one file for every connection of the server: the pool
/// (sqlx) decodes `%20`, and so do the decision connection and the file watch, so decisions
/// land in the migrated file and no stray `a%20b` file appears.
#[tokio::test]
async fn a_percent_encoded_sqlite_url_names_one_file_for_every_connection() {
    if sqlite_only("a_percent_encoded_sqlite_url_names_one_file_for_every_connection") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("a b");
    let stray_dir = dir.path().join("a%20b");
    std::fs::create_dir(&real_dir).unwrap();
    std::fs::create_dir(&stray_dir).unwrap();
    let url = format!(
        "sqlite://{}/a%20b/accessgrant.db?mode=rwc",
        dir.path().display()
    );
    use accessgrant::proto::v1 as pb;
    let s = spawn_on(dir, url, |_| {}).await;
    assert_eq!(
        s.db_path.as_deref(),
        Some(real_dir.join("accessgrant.db").as_path())
    );
    s.create_account("acme", pb::AccountPlan::Trial).await;
    assert_eq!(s.authorize("acme").await.decision(), pb::Decision::Allow);
    assert_eq!(
        std::fs::read_dir(&stray_dir).unwrap().count(),
        0,
        "nothing opened the undecoded path"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 1);
}

/// `serve` refuses an in-memory SQLite database (the audit log would vanish with the
/// process) before it listens, with exit code 1.
#[tokio::test]
async fn an_in_memory_database_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in-memory"));
}
