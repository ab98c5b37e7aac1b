//! WatchAuditEvents through the real server: replay, live delivery, resume, slow consumers
//! and the positions a stream refuses.

mod common;

use std::time::Duration;

use accessgrant::{audit::AuditEvent, proto::v1 as pb};
use common::{audit::*, *};
use pb::audit_service_client::AuditServiceClient;
use tonic::{Code, Status, Streaming};

/// How long a stream read may take before the test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

/// Opens a watch stream.
async fn watch(
    s: &TestServer,
    account_id: &str,
    after: i64,
) -> Result<Streaming<pb::WatchAuditEventsResponse>, Status> {
    s.audit()
        .watch_audit_events(pb::WatchAuditEventsRequest {
            account_id: account_id.into(),
            after_global_position: after,
        })
        .await
        .map(|r| r.into_inner())
}

/// The next message of a watch stream; fails after [`WAIT`] instead of hanging.
async fn next(
    stream: &mut Streaming<pb::WatchAuditEventsResponse>,
) -> pb::WatchAuditEventsResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("no watch message within the timeout")
        .expect("watch stream failed")
        .expect("watch stream ended")
}

/// Reads `n` messages of a watch stream.
async fn take(
    stream: &mut Streaming<pb::WatchAuditEventsResponse>,
    n: usize,
) -> Vec<pb::WatchAuditEventsResponse> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(stream).await);
    }
    out
}

/// Every event of the given accounts in global commit order, straight from the database.
async fn db_events_in_commit_order(s: &TestServer, ids: &[&str]) -> Vec<AuditEvent> {
    let mut all = Vec::new();
    for id in ids {
        all.extend(s.events(id).await);
    }
    all.sort_by_key(|e| e.global_position);
    all
}

/// The median latency of `n` AuthorizeAssumption calls on `id`.
async fn median_authorize_latency(s: &TestServer, id: &str, n: usize) -> Duration {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let start = std::time::Instant::now();
        s.authorize(id).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    latencies[n / 2]
}

/// From position 0 the stream replays every event in commit order, then delivers live ones.
#[tokio::test]
async fn watch_replays_then_streams_live_events() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 2).await;
    trial_with_events(&s, "globex", 2).await;
    s.authorize("acme").await;
    let stored = db_events_in_commit_order(&s, &["acme", "globex"]).await;
    assert_eq!(stored.len(), 7);

    let mut stream = watch(&s, "", 0).await.unwrap();
    let replay = take(&mut stream, stored.len()).await;
    assert_eq!(
        replay.iter().map(|r| r.global_position).collect::<Vec<_>>(),
        stored.iter().map(|e| e.global_position).collect::<Vec<_>>()
    );
    assert!(
        replay
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position)
    );
    for (got, want) in replay.iter().zip(&stored) {
        let event = got.event.as_ref().unwrap();
        assert_eq!(event.event_id, want.event_id);
        assert_eq!(event.account_id, want.account_id);
        assert_eq!(event.sequence, want.sequence);
        assert_eq!(event.hash, want.hash);
    }

    // Live: an event committed after the stream is open arrives.
    let last = replay.last().unwrap().global_position;
    let live_id = s.authorize("globex").await.audit_event_id;
    let live = next(&mut stream).await;
    assert_eq!(live.event.as_ref().unwrap().event_id, live_id);
    assert!(live.global_position > last);
    let live_id = s.authorize("acme").await.audit_event_id;
    let live2 = next(&mut stream).await;
    assert_eq!(live2.event.as_ref().unwrap().event_id, live_id);
    assert!(live2.global_position > live.global_position);
}

/// A stream for one account carries only that account's events, replayed and live.
#[tokio::test]
async fn watch_filters_by_account() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 2).await;
    trial_with_events(&s, "globex", 3).await;
    s.authorize("acme").await;
    let acme = s.events("acme").await;
    assert_eq!(acme.len(), 4);

    let mut stream = watch(&s, "acme", 0).await.unwrap();
    let replay = take(&mut stream, acme.len()).await;
    assert_eq!(
        replay
            .iter()
            .map(|r| r.event.as_ref().unwrap().event_id.clone())
            .collect::<Vec<_>>(),
        acme.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        replay.iter().map(|r| r.global_position).collect::<Vec<_>>(),
        acme.iter().map(|e| e.global_position).collect::<Vec<_>>()
    );

    // Live: globex's event is skipped, acme's arrives.
    s.authorize("globex").await;
    let live_id = s.authorize("acme").await.audit_event_id;
    let live = next(&mut stream).await;
    let event = live.event.unwrap();
    assert_eq!(event.account_id, "acme");
    assert_eq!(event.event_id, live_id);
    assert_eq!(event.sequence, 5);
}

/// Reconnecting with the last position seen resumes exactly: every event once, in order.
#[tokio::test]
async fn watch_resumes_after_reconnect() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 3).await;
    trial_with_events(&s, "globex", 3).await;

    let mut first = watch(&s, "", 0).await.unwrap();
    let mut got = take(&mut first, 5).await;
    drop(first); // disconnect mid-replay

    // More events while disconnected, on both accounts.
    authorize_n(&s, "acme", 3).await;
    authorize_n(&s, "globex", 2).await;

    let resume_from = got.last().unwrap().global_position;
    let mut second = watch(&s, "", resume_from).await.unwrap();
    let total = s.count("SELECT COUNT(*) FROM audit_events").await as usize;
    assert_eq!(total, 13);
    got.extend(take(&mut second, total - got.len()).await);

    let stored = db_events_in_commit_order(&s, &["acme", "globex"]).await;
    assert_eq!(stored.len(), total);
    assert_eq!(
        got.iter()
            .map(|r| r.event.as_ref().unwrap().event_id.clone())
            .collect::<Vec<_>>(),
        stored
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter().map(|r| r.global_position).collect::<Vec<_>>(),
        stored.iter().map(|e| e.global_position).collect::<Vec<_>>()
    );

    // Nothing more is pending: the next message is a new live event.
    let live_id = s.authorize("acme").await.audit_event_id;
    assert_eq!(next(&mut second).await.event.unwrap().event_id, live_id);

    // Resuming one account from a global position works the same way.
    let acme = s.events("acme").await;
    let mut third = watch(&s, "acme", acme[2].global_position).await.unwrap();
    let rest = take(&mut third, acme.len() - 3).await;
    assert_eq!(
        rest.iter()
            .map(|r| r.event.as_ref().unwrap().event_id.clone())
            .collect::<Vec<_>>(),
        acme[3..]
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>()
    );
}

/// An unread stream does not hold up writers; read later, it has every event, gap-free.
#[tokio::test]
async fn slow_watcher_does_not_block_writers() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    // The watcher is a separate consumer (an exporter) on its own connection, which never
    // reads while the writes happen.
    let mut stream = AuditServiceClient::new(connect(s.addr).await)
        .watch_audit_events(pb::WatchAuditEventsRequest {
            account_id: String::new(),
            after_global_position: 0,
        })
        .await
        .unwrap()
        .into_inner();

    let writes = tokio::time::timeout(Duration::from_secs(30), authorize_n(&s, "acme", 600))
        .await
        .expect("writers were held up by an unread watch stream");
    assert_eq!(writes.len(), 600);

    let total = s.count("SELECT COUNT(*) FROM audit_events").await;
    assert_eq!(total, 601);
    let got = take(&mut stream, total as usize).await;
    assert_eq!(
        got.iter().map(|r| r.global_position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter()
            .map(|r| r.event.as_ref().unwrap().sequence)
            .collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(
        got[1..]
            .iter()
            .map(|r| r.event.as_ref().unwrap().event_id.clone())
            .collect::<Vec<_>>(),
        writes
    );
}

/// An unread watch stream sharing the writers' connection does not slow their calls down.
#[tokio::test]
async fn unread_watch_stream_does_not_slow_calls_on_its_connection() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let baseline = median_authorize_latency(&s, "acme", 40).await;

    // Same channel (one HTTP/2 connection) as the calls below; never read during the calls.
    let mut stream = watch(&s, "", 0).await.unwrap();
    let with_stream = median_authorize_latency(&s, "acme", 40).await;
    assert!(
        with_stream <= baseline * 2 + Duration::from_millis(5),
        "median call latency {with_stream:?} with a watch stream on the connection, \
         {baseline:?} without"
    );

    // Every call still completed and every event is on the stream, in order.
    let total = s.count("SELECT COUNT(*) FROM audit_events").await;
    let got = take(&mut stream, total as usize).await;
    assert_eq!(
        got.iter().map(|r| r.global_position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
}

/// Resuming after the log's last position is fine (the stream waits for the next event);
/// after a position the log never reached (a position from before a restore from backup,
/// which reuses positions) is OUT_OF_RANGE `POSITION_AHEAD_OF_LOG` naming the last position,
/// instead of a stream that silently skips everything up to that position.
#[tokio::test]
async fn watch_refuses_a_position_beyond_the_log() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 2).await; // 3 events
    let last = db_events_in_commit_order(&s, &["acme"])
        .await
        .last()
        .unwrap()
        .global_position;
    let mut stream = watch(&s, "acme", last).await.unwrap();
    for (account, after) in [("acme", last + 1), ("", last + 100), ("nobody", i64::MAX)] {
        let status = watch(&s, account, after).await.unwrap_err();
        assert_error(&status, Code::OutOfRange, "POSITION_AHEAD_OF_LOG");
        let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
        assert_eq!(info.metadata["last_global_position"], last.to_string());
    }
    authorize_n(&s, "acme", 1).await;
    assert_eq!(next(&mut stream).await.global_position, last + 1);
    // Once the log has passed it, the same position is an ordinary resume.
    assert!(watch(&s, "acme", last + 1).await.is_ok());
}

/// A negative after_global_position is INVALID_ARGUMENT naming `after_global_position`.
#[tokio::test]
async fn watch_rejects_a_negative_position() {
    let s = spawn_server().await;
    for after in [-1, i64::MIN] {
        let status = watch(&s, "", after).await.unwrap_err();
        assert_eq!(single_violation(&status), "after_global_position");
        let status = watch(&s, "acme", after).await.unwrap_err();
        assert_eq!(single_violation(&status), "after_global_position");
    }
}

/// A malformed account_id is INVALID_ARGUMENT naming `account_id`.
#[tokio::test]
async fn watch_rejects_a_malformed_account_id() {
    let s = spawn_server().await;
    for id in ["Acme", "-acme", "a b", "acme!", &"a".repeat(64)] {
        let status = watch(&s, id, 0).await.unwrap_err();
        assert_eq!(single_violation(&status), "account_id", "id {id:?}");
    }
    let status = watch(&s, "Acme", -1).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["account_id", "after_global_position"]);
}

/// `WatchAuditEvents` order is `leaf_index` order: every event of every account carries its
/// leaf, 0, 1, 2, … in the order the stream delivers them.
#[tokio::test]
async fn watch_order_is_leaf_order() {
    let s = spawn_server().await;
    for id in ["acme", "globex"] {
        s.create_account(id, pb::AccountPlan::Trial).await;
    }
    for _ in 0..3 {
        s.authorize("acme").await;
        s.authorize("globex").await;
    }
    let mut stream = watch(&s, "", 0).await.unwrap();
    let events = take(&mut stream, 8).await;
    let leaves: Vec<i64> = events
        .iter()
        .map(|m| m.event.as_ref().unwrap().leaf_index)
        .collect();
    assert_eq!(leaves, (0..8).collect::<Vec<_>>());
    let positions: Vec<i64> = events.iter().map(|m| m.global_position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}
