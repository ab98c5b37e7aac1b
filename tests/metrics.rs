//! The Prometheus endpoint through the real server: after real calls, counters and histogram
//! counts move. The exposition text is parsed with a real parser (`prometheus-parse`).

mod common;

use std::net::SocketAddr;

use accessgrant::proto::v1 as pb;
use common::*;
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The recorder is process-wide, so tests that compare counters before and after their own
/// calls take turns: another test's failures must not land in their window.
static COUNTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// GETs /metrics over HTTP/1.1 and parses it.
async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The samples of `metric` whose labels include `labels`.
fn matching<'a>(
    scrape: &'a Scrape,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
    scrape.samples.iter().filter(move |s| {
        s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

/// The value of a counter or gauge sample with these labels (0 when absent).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, metric, labels)
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        })
        .sum()
}

/// The observation count of a histogram with these labels (its `+Inf` bucket).
fn histogram_count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, metric, labels)
        .filter_map(|s| match &s.value {
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count),
            _ => None,
        })
        .sum()
}

/// Calls move the gRPC server, decision, emergency, audit-event and write counters and histograms; build info and readiness are exported.
#[tokio::test]
async fn counters_and_histograms_move_after_real_calls() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("offc", pb::AccountPlan::Paid).await;
    let before = scrape(addr).await;

    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    assert_eq!(s.authorize("acme").await.decision(), pb::Decision::Allow);
    assert_eq!(s.authorize("offc").await.decision(), pb::Decision::Deny);
    s.authorize_emergency("offc").await;
    s.grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "nobody".into(),
        })
        .await
        .unwrap_err();

    let after = scrape(addr).await;
    let delta = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    let enable = [
        ("grpc_type", "unary"),
        ("grpc_service", "accessgrant.v1.AccessGrantService"),
        ("grpc_method", "EnableAccessGrant"),
    ];
    assert_eq!(delta("grpc_server_started_total", &enable), 1.0);
    assert_eq!(
        delta(
            "grpc_server_handled_total",
            &[enable[0], enable[1], enable[2], ("grpc_code", "OK")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "grpc_server_handled_total",
            &[("grpc_method", "GetAccessGrant"), ("grpc_code", "NotFound")]
        ),
        1.0
    );
    assert_eq!(
        histogram_count(&after, "grpc_server_handling_seconds", &enable)
            - histogram_count(&before, "grpc_server_handling_seconds", &enable),
        1.0
    );
    assert_eq!(
        delta(
            "accessgrant_decisions_total",
            &[("decision", "ALLOW"), ("basis", "CUSTOMER_GRANT")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "accessgrant_decisions_total",
            &[("decision", "DENY"), ("deny_reason", "ACCESS_DISABLED")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "accessgrant_emergency_assumptions_total",
            &[("reason", "SUSPECTED_TERMS_VIOLATION")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "accessgrant_audit_events_total",
            &[("kind", "GRANT_ENABLED")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "accessgrant_audit_events_total",
            &[("kind", "EMERGENCY_ASSUMPTION")]
        ),
        1.0
    );
    assert!(
        histogram_count(&after, "accessgrant_audit_batch_size", &[])
            >= histogram_count(&before, "accessgrant_audit_batch_size", &[]) + 1.0
    );
    assert!(
        histogram_count(&after, "accessgrant_audit_write_duration_seconds", &[])
            > histogram_count(&before, "accessgrant_audit_write_duration_seconds", &[])
    );
    assert_eq!(value(&after, "accessgrant_ready", &[]), 1.0);
    let build = after
        .samples
        .iter()
        .find(|s| s.metric == "accessgrant_build_info")
        .expect("build info");
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(build.labels.get("git_sha").is_some());
    // No label carries an account or staff id.
    for sample in &after.samples {
        for (_, v) in sample.labels.iter() {
            assert!(
                !["acme", "offc", "nobody", "sam"].contains(&v.as_str()),
                "{sample:?}"
            );
        }
    }
}

/// The go-grpc-prometheus families count health too, a field violation as `InvalidArgument`,
/// and a server stream once it ends (`Canceled` when the client leaves).
#[tokio::test]
async fn grpc_server_metrics_follow_each_call_to_its_end() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let before = scrape(addr).await;

    let status = s
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "Not An Id!".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    tonic_health::pb::health_client::HealthClient::new(s.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let mut watch = s
        .audit()
        .watch_audit_events(pb::WatchAuditEventsRequest {
            account_id: "acme".into(),
            after_global_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();
    let during = scrape(addr).await;

    let delta = |now: &Scrape, metric: &str, labels: &[(&str, &str)]| {
        value(now, metric, labels) - value(&before, metric, labels)
    };
    assert_eq!(
        delta(
            &during,
            "grpc_server_handled_total",
            &[
                ("grpc_service", "accessgrant.v1.AccessGrantService"),
                ("grpc_method", "GetAccessGrant"),
                ("grpc_code", "InvalidArgument"),
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            &during,
            "grpc_server_handled_total",
            &[
                ("grpc_type", "unary"),
                ("grpc_service", "grpc.health.v1.Health"),
                ("grpc_method", "Check"),
                ("grpc_code", "OK"),
            ]
        ),
        1.0
    );
    let watch_labels = [
        ("grpc_type", "server_stream"),
        ("grpc_service", "accessgrant.v1.AuditService"),
        ("grpc_method", "WatchAuditEvents"),
    ];
    assert_eq!(
        delta(&during, "grpc_server_started_total", &watch_labels),
        1.0
    );
    assert_eq!(
        delta(&during, "grpc_server_handled_total", &watch_labels),
        0.0,
        "an open stream is not handled yet"
    );

    drop(watch);
    let canceled = [
        watch_labels[0],
        watch_labels[1],
        watch_labels[2],
        ("grpc_code", "Canceled"),
    ];
    for _ in 0..100 {
        if delta(&scrape(addr).await, "grpc_server_handled_total", &canceled) == 1.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the abandoned stream was not counted as handled with Canceled in 5 s");
}

/// Every exported family carries the HELP text declared beside its name in `src/metrics.rs`.
#[tokio::test]
async fn every_family_has_its_declared_help_text() {
    let addr = reserved_port();
    let s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let scraped = scrape(addr).await;
    for sample in &scraped.samples {
        // A histogram's `_sum` and `_count` series belong to its family.
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.metric.strip_suffix(suffix))
            .filter(|base| scraped.docs.contains_key(*base))
            .unwrap_or(&sample.metric);
        assert!(
            scraped.docs.contains_key(family),
            "{} has no HELP",
            sample.metric
        );
    }
    for family in accessgrant::metrics::FAMILIES {
        if let Some(help) = scraped.docs.get(family.name) {
            assert_eq!(help, family.help, "{}", family.name);
        }
    }
    assert!(scraped.docs.contains_key("grpc_server_handled_total"));
}

/// A failing audit write is counted, and the watch-stream gauge follows open streams.
#[tokio::test]
async fn audit_failures_and_watch_streams_are_visible() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let before = scrape(addr).await;
    s.fail_audit_inserts("fail_audit", None).await;
    s.support()
        .authorize_assumption(authorize_request("acme"))
        .await
        .unwrap_err();
    let mut watch = s
        .audit()
        .watch_audit_events(pb::WatchAuditEventsRequest {
            account_id: "acme".into(),
            after_global_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap();
    let after = scrape(addr).await;
    assert_eq!(
        value(
            &after,
            "accessgrant_audit_write_failures_total",
            &[("stage", "change")]
        ) - value(
            &before,
            "accessgrant_audit_write_failures_total",
            &[("stage", "change")]
        ),
        1.0
    );
    assert!(value(&after, "accessgrant_db_errors_total", &[]) >= 1.0);
    assert!(value(&after, "accessgrant_watch_streams", &[]) >= 1.0);
    // The pool gauges are refreshed by the upkeep loop (every two seconds).
    let mut pool_seen = false;
    for _ in 0..40 {
        let now = scrape(addr).await;
        if now.samples.iter().any(|s| {
            s.metric == "accessgrant_db_connections" && s.labels.get("state") == Some("idle")
        }) {
            pool_seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(pool_seen, "accessgrant_db_connections was never exported");
}

/// The metrics port holds few connections: at its small cap a new connection closes the
/// oldest (so idle sockets cannot keep refusing a scrape), and a connection serves one
/// request (no keep-alive). The connection and sweep-failure counters are exported from the
/// start.
#[tokio::test]
async fn the_metrics_port_bounds_its_connections() {
    let addr = reserved_port();
    let _s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    let first = scrape(addr).await;
    for name in [
        "accessgrant_connections_open",
        "accessgrant_connections_refused_total",
        "accessgrant_connections_evicted_total",
        "accessgrant_connection_handshake_failures_total",
        "accessgrant_expiry_sweep_failures_total",
    ] {
        assert!(
            first.samples.iter().any(|s| s.metric == name),
            "{name} is exported before its first event"
        );
    }

    // Two requests on one connection: the first is answered, then the connection closes.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\nGET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the connection closes after one answer")
    .unwrap();
    assert_eq!(response.matches("HTTP/1.1 200").count(), 1);

    // Sixteen idle sockets fill the port; a scrape still gets through, on time, by closing
    // the oldest of them.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    scrape(addr).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the scrape waited for an idle socket's timeout"
    );
    assert!(
        closed_within(&mut idle[0], std::time::Duration::from_secs(2)).await,
        "the oldest idle socket made room"
    );
    assert!(
        !closed_within(&mut idle[15], std::time::Duration::from_millis(200)).await,
        "only the oldest was closed"
    );
}

/// A lapse that cannot be written (the account's chain head row was deleted) is counted in
/// `accessgrant_expiry_sweep_failures_total`, on every sweep, which is what its alert needs.
#[tokio::test]
async fn a_failing_expiry_sweep_is_counted() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| {
        c.metrics_listen = Some(addr);
        c.expiry_sweep_interval = std::time::Duration::from_millis(100);
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'acme'")
        .await;
    let metric = "accessgrant_expiry_sweep_failures_total";
    let before = value(&scrape(addr).await, metric, &[]);
    s.clock.advance(chrono::Duration::days(2));
    for _ in 0..100 {
        // Each move of the clock past the sweep interval is one more sweep.
        s.clock.advance(chrono::Duration::seconds(1));
        if value(&scrape(addr).await, metric, &[]) >= before + 2.0 {
            // Stop sweeping before the next test's counter window opens.
            s.stop().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{metric} did not move past {before} in 5 s");
}

/// The one database error classifier labels what it counts: a write colliding with a stored
/// key (a deleted chain head) answers `INTERNAL` and counts
/// `accessgrant_db_errors_total{kind="damaged"}`, whichever backend raised it.
#[tokio::test]
async fn damaged_stored_state_is_counted_as_damaged() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| c.metrics_listen = Some(addr)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneWeek).await.unwrap();
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'acme'")
        .await;
    let metric = "accessgrant_db_errors_total";
    let before = value(&scrape(addr).await, metric, &[("kind", "damaged")]);
    let status = s
        .support()
        .authorize_assumption(authorize_request("acme"))
        .await
        .unwrap_err();
    assert_error(&status, tonic::Code::Internal, "INTERNAL");
    let after = value(&scrape(addr).await, metric, &[("kind", "damaged")]);
    assert!(
        after >= before + 1.0,
        "{metric}{{kind=damaged}}: {before} -> {after}"
    );
}

/// Signed checkpoints are counted and their size exported; a server whose stored tree no
/// longer extends its signed checkpoint counts `accessgrant_checkpoint_refusals_total` on every
/// round, which is what `AccessgrantCheckpointRefused` pages on.
#[tokio::test]
async fn checkpoints_and_refusals_are_counted() {
    let _turn = COUNTERS.lock().await;
    let fast = |addr: SocketAddr| {
        move |c: &mut accessgrant::config::Config| {
            c.metrics_listen = Some(addr);
            c.audit.checkpoint_interval = std::time::Duration::from_millis(20);
        }
    };
    let addr = reserved_port();
    let s = spawn_server_with(fast(addr)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.authorize("acme").await;
    let (_, _, size, _) = checkpoint_at_least(&s, 2).await;
    let scraped = scrape(addr).await;
    assert!(value(&scraped, "accessgrant_checkpoints_signed_total", &[]) >= 1.0);
    assert!(value(&scraped, "accessgrant_checkpoint_tree_size", &[]) >= size as f64);
    let refusals = "accessgrant_checkpoint_refusals_total";
    let before = value(&scraped, refusals, &[]);

    let url = s.database_url.clone();
    let stopped = stop_keeping_database(s).await;
    insider::rewrite_event(&url, "acme", 1, "{}").await;
    insider::rebuild_tree(&url).await;
    let addr = reserved_port();
    let s = stopped.start_with(fast(addr)).await;
    for _ in 0..100 {
        if value(&scrape(addr).await, refusals, &[]) >= before + 2.0 {
            s.stop().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{refusals} did not move past {before} in 5 s");
}

/// Access requests' state transitions are counted at commit, by `to` (an approval short of
/// the quorum is none), and the pending gauge follows the expiry sweep.
#[tokio::test]
async fn access_request_transitions_and_pending_are_visible() {
    let _turn = COUNTERS.lock().await;
    let addr = reserved_port();
    let s = spawn_server_with(|c| {
        c.metrics_listen = Some(addr);
        c.expiry_sweep_interval = std::time::Duration::from_millis(100);
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.require_approvals("acme", 2).await;
    let metric = "accessgrant_access_request_transitions_total";
    let moved = |before: &Scrape, after: &Scrape, to: &str| {
        value(after, metric, &[("to", to)]) - value(before, metric, &[("to", to)])
    };
    let before = scrape(addr).await;
    let approved = s.pending_request("acme").await.access_request_id;
    let denied = s.pending_request("acme").await.access_request_id;
    s.pending_request("acme").await;
    s.approve(&approved, requests::admin("ada")).await.unwrap();
    let halfway = scrape(addr).await;
    assert_eq!(moved(&before, &halfway, "PENDING"), 3.0);
    assert_eq!(
        moved(&before, &halfway, "APPROVED"),
        0.0,
        "1 of 2 approvals"
    );
    s.approve(&approved, requests::admin("bob")).await.unwrap();
    s.deny(&denied, requests::admin("bob")).await.unwrap();
    let after = scrape(addr).await;
    assert_eq!(moved(&before, &after, "APPROVED"), 1.0);
    assert_eq!(moved(&before, &after, "DENIED"), 1.0);
    let gauge = "accessgrant_access_requests_pending";
    for _ in 0..100 {
        // Each move of the clock past the sweep interval is one more sweep.
        s.clock.advance(chrono::Duration::seconds(1));
        if value(&scrape(addr).await, gauge, &[]) == 1.0 {
            s.stop().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{gauge} did not read the one request still pending");
}
