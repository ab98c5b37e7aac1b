//! Request limits through the real server: decoded size, deadline cap, concurrency with load
//! shedding, and the keepalive settings.

mod common;

use std::time::{Duration, Instant};

use accessgrant::proto::v1 as pb;
use common::*;
use tonic::{Code, Request};

/// A request larger than `max_request_bytes` is refused before it reaches a handler; a small one passes.
#[tokio::test]
async fn oversized_requests_are_refused() {
    let s = spawn_server_with(|c| c.limits.max_request_bytes = 1024).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let big = pb::BatchGetAccessGrantsRequest {
        account_ids: vec!["acme".to_string(); 300],
    };
    let status = s.grants().batch_get_access_grants(big).await.unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "REQUEST_TOO_LARGE");
    let small = pb::BatchGetAccessGrantsRequest {
        account_ids: vec!["acme".to_string(); 10],
    };
    assert_eq!(
        s.grants()
            .batch_get_access_grants(small)
            .await
            .unwrap()
            .into_inner()
            .access_grants
            .len(),
        10
    );
}

/// The default 64 KiB limit admits the largest valid request (1,000 ids of 63 characters).
#[tokio::test]
async fn default_limit_admits_the_largest_valid_batch() {
    let s = spawn_server().await;
    let id = "a".repeat(63);
    s.create_account(&id, pb::AccountPlan::Paid).await;
    let request = pb::BatchGetAccessGrantsRequest {
        account_ids: vec![id; 1000],
    };
    let grants = s
        .grants()
        .batch_get_access_grants(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grants.access_grants.len(), 1000);
}

/// A call that runs past the server's deadline cap ends without waiting for the database, and the write stays atomic.
#[tokio::test]
async fn server_deadline_cap_ends_slow_calls() {
    let s = spawn_server_with(|c| c.limits.max_deadline = Duration::from_millis(300)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let lock = s.hold_write_lock().await;
    let started = Instant::now();
    let status = s
        .enable("acme", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "took {waited:?}");
    assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    drop(lock);
    // The detached write either committed whole or not at all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let enabled = s.grant("acme").await.state() == pb::access_grant::State::Enabled;
    let events = s.events("acme").await.len();
    assert_eq!(events, if enabled { 2 } else { 1 });
}

/// A client's grpc-timeout shorter than the cap is honoured.
#[tokio::test]
async fn client_deadline_is_honoured() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let lock = s.hold_write_lock().await;
    let mut request = Request::new(enable_request(
        "acme",
        pb::AccessDuration::OneDay,
        support_admin(),
    ));
    request.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let status = s.grants().enable_access_grant(request).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    drop(lock);
}

/// Beyond max_concurrent_requests, calls are shed at once with RESOURCE_EXHAUSTED instead of queueing.
#[tokio::test]
async fn excess_concurrency_is_shed_quickly() {
    let s = spawn_server_with(|c| c.limits.max_concurrent_requests = 2).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let lock = s.hold_write_lock().await;
    // Two slow calls occupy both slots (they wait on the held lock).
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let mut grants = s.grants();
            tokio::spawn(async move {
                grants
                    .enable_access_grant(enable_request(
                        "acme",
                        pb::AccessDuration::OneDay,
                        support_admin(),
                    ))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = s
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shedding must not queue"
    );
    assert_error(&status, Code::ResourceExhausted, "SERVER_OVERLOADED");
    assert!(tonic_types::StatusExt::get_details_retry_info(&status).is_some());
    // Health is never shed.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    drop(lock);
    for call in slow {
        call.await.unwrap().unwrap();
    }
    // Capacity is back.
    assert_eq!(
        s.grant("acme").await.state(),
        pb::access_grant::State::Enabled
    );
}

/// Keepalive and stream limits are applied from the configuration (the server starts and serves with them).
#[tokio::test]
async fn keepalive_settings_are_accepted() {
    let s = spawn_server_with(|c| {
        c.limits.http2_keepalive_interval = Duration::from_millis(200);
        c.limits.http2_keepalive_timeout = Duration::from_millis(500);
        c.limits.tcp_keepalive = Duration::from_secs(5);
        c.limits.max_concurrent_streams_per_connection = 4;
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    // An idle connection survives several keepalive rounds (the client answers PINGs).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        s.grant("acme").await.state(),
        pb::access_grant::State::Disabled
    );
    // More concurrent calls than streams per connection still complete (they wait for a stream).
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let mut grants = s.grants();
            tokio::spawn(async move {
                grants
                    .get_access_grant(pb::GetAccessGrantRequest {
                        account_id: "acme".into(),
                    })
                    .await
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
}

/// A call whose request body has not arrived holds no slot: with more stalled calls than
/// slots (headers sent, body never), other callers are still served, not shed.
#[tokio::test]
async fn stalled_request_bodies_hold_no_slot() {
    let s = spawn_server_with(|c| c.limits.max_concurrent_requests = 2).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let stalled: Vec<_> = (0..6)
        .map(|_| {
            let channel = s.channel.clone();
            tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.unwrap();
                grpc.client_streaming::<_, pb::GetAccessGrantRequest, pb::GetAccessGrantResponse, _>(
                    Request::new(futures::stream::pending::<pb::GetAccessGrantRequest>()),
                    http::uri::PathAndQuery::from_static(
                        "/accessgrant.v1.AccessGrantService/GetAccessGrant",
                    ),
                    tonic_prost::ProstCodec::default(),
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for call in &stalled {
        assert!(
            !call.is_finished(),
            "a stalled call is still waiting for its body"
        );
    }
    for _ in 0..3 {
        s.grants()
            .get_access_grant(pb::GetAccessGrantRequest {
                account_id: "acme".into(),
            })
            .await
            .unwrap();
    }
    for call in stalled {
        call.abort();
    }
}

/// Health and reflection need no credentials and are never shed, but a probe whose request
/// body never arrives is still cut at the server's deadline cap instead of living forever.
#[tokio::test]
async fn stalled_probe_bodies_end_at_the_deadline_cap() {
    let s = spawn_server_with(|c| c.limits.max_deadline = Duration::from_millis(300)).await;
    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.unwrap();
    let started = std::time::Instant::now();
    let stalled = grpc
        .client_streaming::<_, tonic_health::pb::HealthCheckRequest, tonic_health::pb::HealthCheckResponse, _>(
            Request::new(futures::stream::pending::<tonic_health::pb::HealthCheckRequest>()),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
            tonic_prost::ProstCodec::default(),
        );
    let status = tokio::time::timeout(Duration::from_secs(5), stalled)
        .await
        .expect("a stalled health check ends")
        .unwrap_err();
    assert_error(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Probes themselves still answer.
    tonic_health::pb::health_client::HealthClient::new(s.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
}
