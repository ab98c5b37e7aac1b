//! A database outage mid-run: the test PostgreSQL cluster is stopped and started again.
//! While it is down, mutating and authorizing calls answer UNAVAILABLE (never ALLOW) and
//! readiness turns NOT_SERVING within seconds; after it returns, the service recovers by
//! itself within 10 s.
//!
//! Its own test binary with a single test: stopping the cluster must not disturb other tests
//! (test binaries run one after another). PostgreSQL only: the SQLite counterpart (losing the
//! database file) is `serving::lost_database_file_fails_closed`.

mod common;

use std::time::{Duration, Instant};

use accessgrant::proto::v1 as pb;
use common::{Backend, assert_error, authorize_request, backend, spawn_server};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn cluster(command_var: &str) {
    let command = std::env::var(command_var)
        .unwrap_or_else(|_| panic!("{command_var} is set by scripts/test for the PostgreSQL run"));
    let status = std::process::Command::new("sh")
        .args(["-c", &command])
        .status()
        .unwrap();
    assert!(status.success(), "{command_var} failed: {status:?}");
}

async fn readiness(channel: &tonic::transport::Channel) -> ServingStatus {
    match HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(r) => r.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Polls readiness until it is `want`; returns how long that took.
async fn wait_for(
    channel: &tonic::transport::Channel,
    want: ServingStatus,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if readiness(channel).await == want {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness did not become {want:?} within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_closed_and_recovers_by_itself() {
    if backend() != Backend::Postgres {
        eprintln!(
            "database_outage_fails_closed_and_recovers_by_itself: skipped on sqlite: it stops the PostgreSQL cluster (see serving::lost_database_file_fails_closed)"
        );
        return;
    }
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    s.create_account("paid", pb::AccountPlan::Paid).await;
    s.enable("paid", pb::AccessDuration::OneWeek).await.unwrap();
    assert_eq!(s.authorize("acme").await.decision(), pb::Decision::Allow);

    cluster("ACCESSGRANT_TEST_PG_STOP");
    let down = Instant::now();
    // Readiness is watched from the moment of the stop, beside the failing calls below.
    let readiness_channel = s.channel.clone();
    let not_serving = tokio::spawn(async move {
        wait_for(
            &readiness_channel,
            ServingStatus::NotServing,
            Duration::from_secs(5),
        )
        .await
    });
    // Calls during the outage: never ALLOW, always UNAVAILABLE with our ErrorInfo.
    for id in ["acme", "paid"] {
        let status = s
            .support()
            .authorize_assumption(authorize_request(id))
            .await
            .unwrap_err();
        assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    }
    let status = s.disable("paid").await.unwrap_err();
    assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    let status = s
        .accounts()
        .upsert_account(pb::UpsertAccountRequest {
            account_id: "new".into(),
            plan: pb::AccountPlan::Paid.into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    let status = s
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "paid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    eprintln!("calls during the outage answered in {:?}", down.elapsed());
    let not_serving = not_serving.await.unwrap();
    eprintln!("NOT_SERVING {not_serving:?} after the stop");

    cluster("ACCESSGRANT_TEST_PG_START");
    let up = Instant::now();
    let serving = wait_for(&s.channel, ServingStatus::Serving, Duration::from_secs(10)).await;
    // Recovered: decisions and changes work again without a restart, all within 10 s.
    let mut allowed = None;
    while up.elapsed() < Duration::from_secs(10) {
        match s
            .support()
            .authorize_assumption(authorize_request("paid"))
            .await
        {
            Ok(r) => {
                allowed = Some(r.into_inner());
                break;
            }
            Err(status) => {
                assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let recovered = up.elapsed();
    eprintln!("SERVING {serving:?} and first ALLOW {recovered:?} after the start");
    assert_eq!(
        allowed.expect("no successful call within 10 s").decision(),
        pb::Decision::Allow
    );
    // The grant was never disabled (the disable during the outage failed whole).
    assert_eq!(
        s.grant("paid").await.state(),
        pb::access_grant::State::Enabled
    );
    s.disable("paid").await.unwrap();
    let v = s
        .audit()
        .verify_audit_chain(pb::VerifyAuditChainRequest {
            account_id: "paid".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact, "{v:?}");
}
