mod common;
use common::*;

// AuditService through the real server: customer-visible pages (order, sizes, tokens,
// filters), chain verification over the RPC and the offline CLI against a tampered SQLite
// file, and the watch stream (replay, live delivery, resume, slow consumers).

use std::{collections::HashSet, time::Duration};

use accessgrant::{
    audit::{AuditEvent, EventActor, EventKind, canonical::CanonicalFields, chain::link_hash},
    proto::v1 as pb,
};
use chrono::{DateTime, Utc};
use pb::{
    audit_event::{Actor, Kind},
    audit_service_client::AuditServiceClient,
};
use tonic::{Code, Status, Streaming};

/// How long a stream read may take before the test fails instead of hanging.
const WAIT: Duration = Duration::from_secs(5);

/// A list request for `id` with every other field defaulted.
fn list_request(id: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        account_id: id.into(),
        ..Default::default()
    }
}

/// Calls ListAuditEvents.
async fn list(
    s: &TestServer,
    req: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    s.audit()
        .list_audit_events(req)
        .await
        .map(|r| r.into_inner())
}

/// Follows `next_page_token` from `req` to the end; returns every page.
async fn all_pages(s: &TestServer, req: pb::ListAuditEventsRequest) -> Vec<Vec<pb::AuditEvent>> {
    let mut pages = Vec::new();
    let mut req = req;
    for _ in 0..1_000 {
        let page = list(s, req.clone()).await.unwrap();
        pages.push(page.events);
        if page.next_page_token.is_empty() {
            return pages;
        }
        req.page_token = page.next_page_token;
    }
    panic!("paging did not end");
}

/// Calls VerifyAuditChain.
async fn verify(s: &TestServer, id: &str) -> Result<pb::VerifyAuditChainResponse, Status> {
    s.audit()
        .verify_audit_chain(pb::VerifyAuditChainRequest {
            account_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Runs `accessgrant audit verify` offline against the server's database; (exit code, stdout).
async fn cli_verify(s: &TestServer, id: &str) -> (Option<i32>, String) {
    cli_verify_args(s, &["--account", id]).await
}

/// Runs `accessgrant audit verify` with `args` after the database URL.
async fn cli_verify_args(s: &TestServer, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["audit", "verify", "--database-url", &s.database_url])
        .args(args)
        .env_remove("ACCESSGRANT_CONFIG")
        .env_remove("ACCESSGRANT_DATABASE_URL")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

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

/// `n` AuthorizeAssumption calls on `id`; returns their audit event ids in order.
async fn authorize_n(s: &TestServer, id: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(s.authorize(id).await.audit_event_id);
    }
    ids
}

/// A trial account `id` (one ACCOUNT_CREATED event) plus `n` assumption events: `n + 1` events.
async fn trial_with_events(s: &TestServer, id: &str, n: usize) {
    s.create_account(id, pb::AccountPlan::Trial).await;
    authorize_n(s, id, n).await;
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

/// The event ids of a page.
fn ids(events: &[pb::AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

/// The sequences of a page.
fn sequences(events: &[pb::AuditEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

/// The field named by the single violation of an INVALID_ARGUMENT status.
fn single_violation(status: &Status) -> String {
    let fields = violated_fields(status);
    assert_eq!(fields.len(), 1, "expected one violation: {fields:?}");
    fields[0].clone()
}

/// A protobuf timestamp.
fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Replaces the character at `index` of `token` with a different base64url character.
fn change_char(token: &str, index: usize) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Asserts both the RPC and the CLI report `account`'s chain broken at `expected`.
async fn assert_broken_at(s: &TestServer, account: &str, expected: &str) {
    let v = verify(s, account).await.unwrap();
    assert!(!v.intact, "RPC reported intact: {v:?}");
    assert_eq!(v.first_broken_event_id, expected, "RPC: {v:?}");
    let (code, stdout) = cli_verify(s, account).await;
    assert_eq!(code, Some(1), "CLI stdout: {stdout}");
    assert!(
        stdout.contains(&format!("{account}: BROKEN at event {expected}")),
        "CLI stdout: {stdout}"
    );
}

/// A server with trial account `acme` holding 4 events (created + 3 assumptions); its events.
async fn four_event_chain() -> (TestServer, Vec<AuditEvent>) {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 3).await;
    let events = s.events("acme").await;
    assert_eq!(sequences_of(&events), [1, 2, 3, 4]);
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact && v.events_checked == 4, "{v:?}");
    (s, events)
}

/// Sequences of stored events.
fn sequences_of(events: &[AuditEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

// ----------------------------------------------------------------------------------------
// ListAuditEvents
// ----------------------------------------------------------------------------------------

/// Events come newest first: sequences strictly decreasing, ids matching the stored log.
#[tokio::test]
async fn list_returns_newest_first() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 6).await;
    let page = list(&s, list_request("acme")).await.unwrap();
    assert_eq!(sequences(&page.events), [7, 6, 5, 4, 3, 2, 1]);
    let mut stored: Vec<String> = s
        .events("acme")
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    stored.reverse();
    assert_eq!(ids(&page.events), stored);
    assert!(page.next_page_token.is_empty());
    assert!(page.events.iter().all(|e| e.account_id == "acme"));
}

/// page_size 0 means 50, and anything above 500 is lowered to 500.
#[tokio::test]
async fn page_size_defaults_to_50_and_is_capped_at_500() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 9).await; // 10 real events
    // 510 more rows like the newest real one, written straight into the database: 500+ real
    // calls would cost seconds of fsyncs, and listing does not look at the hashes.
    s.sql(
        "WITH RECURSIVE n(i) AS (SELECT CAST(11 AS BIGINT) UNION ALL SELECT i + 1 FROM n \
         WHERE i < 520) \
         INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) \
         SELECT 'seeded-' || n.i, e.account_id, n.i, e.occur_time_us, e.kind, e.actor_type, \
         e.actor_value, e.detail_json, e.request_id, e.hash, e.hash \
         FROM n, audit_events e WHERE e.account_id = 'acme' AND e.sequence = 10",
    )
    .await;
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_events WHERE account_id = 'acme'")
            .await,
        520
    );
    let page = list(&s, list_request("acme")).await.unwrap();
    assert_eq!(page.events.len(), 50);
    assert_eq!(page.events[0].sequence, 520);
    assert!(!page.next_page_token.is_empty());
    for size in [501, 1_000, i32::MAX] {
        let page = list(
            &s,
            pb::ListAuditEventsRequest {
                page_size: size,
                ..list_request("acme")
            },
        )
        .await
        .unwrap();
        assert_eq!(page.events.len(), 500, "page_size {size}");
        assert!(
            page.events
                .windows(2)
                .all(|w| w[0].sequence > w[1].sequence)
        );
        assert!(!page.next_page_token.is_empty());
        let rest = list(
            &s,
            pb::ListAuditEventsRequest {
                page_size: size,
                page_token: page.next_page_token,
                ..list_request("acme")
            },
        )
        .await
        .unwrap();
        assert_eq!(sequences(&rest.events), (1..=20).rev().collect::<Vec<_>>());
        assert!(rest.next_page_token.is_empty());
    }
}

/// A page of the largest events still fits the 4 MiB a default gRPC client accepts (this
/// test's client included): the page stops short at a byte budget and carries a token, and
/// following the tokens returns every event once.
#[tokio::test]
async fn large_events_make_shorter_pages_that_clients_accept() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 9).await; // 10 real events
    // 300 more rows of ~17 KB each (the size of an emergency decision with every free-text
    // field at its limit in 4-byte characters): ~5 MB for a page of 500.
    let big = format!("{{\"reason_detail\":\"{}\"}}", "\u{1F600}".repeat(4_300));
    s.sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT CAST(11 AS BIGINT) UNION ALL SELECT i + 1 FROM n \
         WHERE i < 310) \
         INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) \
         SELECT 'seeded-' || n.i, e.account_id, n.i, e.occur_time_us, e.kind, e.actor_type, \
         e.actor_value, '{big}', e.request_id, e.hash, e.hash \
         FROM n, audit_events e WHERE e.account_id = 'acme' AND e.sequence = 10"
    ))
    .await;
    let pages = all_pages(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 500,
            ..list_request("acme")
        },
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert!(sizes.len() >= 2, "one page of ~5 MB: {sizes:?}");
    assert!(
        sizes[0] >= 150,
        "the budget is ~3 MiB, not a few events: {sizes:?}"
    );
    let all: Vec<pb::AuditEvent> = pages.into_iter().flatten().collect();
    assert_eq!(sequences(&all), (1..=310).rev().collect::<Vec<_>>());
}

/// A negative page_size is INVALID_ARGUMENT naming `page_size`.
#[tokio::test]
async fn negative_page_size_is_invalid() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    for size in [-1, i32::MIN] {
        let status = list(
            &s,
            pb::ListAuditEventsRequest {
                page_size: size,
                ..list_request("acme")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(single_violation(&status), "page_size");
    }
}

/// Paging returns every event exactly once, without gaps, and the last page has no token.
#[tokio::test]
async fn paging_returns_every_event_exactly_once() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 22).await; // 23 events
    let pages = all_pages(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 5,
            ..list_request("acme")
        },
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    let all: Vec<pb::AuditEvent> = pages.into_iter().flatten().collect();
    assert_eq!(sequences(&all), (1..=23).rev().collect::<Vec<_>>());
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), 23);

    // An exact multiple of the page size ends with an empty token too (no empty extra page).
    let pages = all_pages(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 23,
            ..list_request("acme")
        },
    )
    .await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].len(), 23);
}

/// Events committed while a client pages are not in later pages, and nothing that existed
/// at the start is repeated or skipped.
#[tokio::test]
async fn paging_is_stable_while_new_events_arrive() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 11).await; // 12 events
    let mut at_start: Vec<String> = s
        .events("acme")
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    at_start.reverse();

    let mut req = pb::ListAuditEventsRequest {
        page_size: 5,
        ..list_request("acme")
    };
    let mut seen = Vec::new();
    let mut new_ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = list(&s, req.clone()).await.unwrap();
        pages += 1;
        assert!(pages <= 10, "paging did not end");
        seen.extend(page.events);
        // Newer events arrive between page requests.
        new_ids.extend(authorize_n(&s, "acme", 2).await);
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(ids(&seen), at_start);
    assert!(seen.windows(2).all(|w| w[0].sequence > w[1].sequence));
    for id in &new_ids {
        assert!(
            !ids(&seen).contains(id),
            "new event {id} leaked into a later page"
        );
    }

    // A fresh listing starts with the new events.
    let fresh = list(&s, list_request("acme")).await.unwrap();
    assert_eq!(fresh.events.len(), 12 + new_ids.len());
    let mut newest: Vec<String> = new_ids.clone();
    newest.reverse();
    assert_eq!(ids(&fresh.events[..new_ids.len()]), newest);
}

/// A page token is bound to its account: using it for another account is INVALID_ARGUMENT
/// naming `page_token`.
#[tokio::test]
async fn page_token_is_bound_to_the_account() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 4).await;
    trial_with_events(&s, "globex", 4).await;
    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert!(!page.next_page_token.is_empty());
    let status = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: page.next_page_token.clone(),
            ..list_request("globex")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(single_violation(&status), "page_token");
    // The same token still works for its own account.
    let next_page = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(sequences(&next_page.events), [3, 2]);
}

/// A page token is bound to its filters: other kinds or another time range is
/// INVALID_ARGUMENT naming `page_token`.
#[tokio::test]
async fn page_token_is_bound_to_the_filters() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 4).await;
    let allowed = vec![Kind::AssumptionAllowed as i32];
    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            kinds: allowed.clone(),
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert!(!page.next_page_token.is_empty());
    let token = page.next_page_token;
    let variants = [
        // No kinds at all.
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            ..list_request("acme")
        },
        // Other kinds.
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            kinds: vec![Kind::AssumptionDenied as i32],
            ..list_request("acme")
        },
        // More kinds.
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            kinds: vec![Kind::AssumptionAllowed as i32, Kind::AccountCreated as i32],
            ..list_request("acme")
        },
        // Same kinds, plus a time range.
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            kinds: allowed.clone(),
            start_time: Some(ts(t0())),
            ..list_request("acme")
        },
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            kinds: allowed.clone(),
            end_time: Some(ts(t0() + chrono::Duration::hours(1))),
            ..list_request("acme")
        },
    ];
    for req in variants {
        let status = list(&s, req.clone()).await.unwrap_err();
        assert_eq!(single_violation(&status), "page_token", "{req:?}");
    }
    // With the same filters it continues.
    let rest = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: token,
            kinds: allowed,
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(sequences(&rest.events), [3, 2]);
    assert!(rest.next_page_token.is_empty());
}

/// Garbage and corrupted page tokens are INVALID_ARGUMENT naming `page_token`.
#[tokio::test]
async fn garbage_page_tokens_are_invalid() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 4).await;
    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    let token = page.next_page_token;
    assert!(token.len() > 2);
    let mut bad = vec![
        "abc".to_owned(),
        ".".to_owned(),
        "abc.def".to_owned(),
        "!!!.???".to_owned(),
        "x".repeat(2_000),
        change_char(&token, 0),
        change_char(&token, token.len() / 2),
        change_char(&token, token.len() - 1),
        format!("{token}x"),
        token[..token.len() - 1].to_owned(),
    ];
    bad.dedup();
    for garbage in bad {
        if garbage == token {
            continue;
        }
        let status = list(
            &s,
            pb::ListAuditEventsRequest {
                page_size: 2,
                page_token: garbage.clone(),
                ..list_request("acme")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(single_violation(&status), "page_token", "token {garbage:?}");
    }
}

/// `kinds` keeps only the listed kinds, newest first, and pages within the filter.
#[tokio::test]
async fn kinds_filter_keeps_only_those_kinds() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await; // 1 created
    s.authorize("acme").await; // 2 denied (disabled)
    s.enable("acme", pb::AccessDuration::OneWeek).await.unwrap(); // 3 enabled
    s.authorize("acme").await; // 4 allowed
    s.authorize("acme").await; // 5 allowed
    s.disable("acme").await.unwrap(); // 6 disabled
    s.authorize("acme").await; // 7 denied
    s.authorize("acme").await; // 8 denied

    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            kinds: vec![Kind::AssumptionAllowed as i32],
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(sequences(&page.events), [5, 4]);
    assert!(
        page.events
            .iter()
            .all(|e| e.kind() == Kind::AssumptionAllowed)
    );

    let denied_or_allowed = vec![
        Kind::AssumptionDenied as i32,
        Kind::AssumptionAllowed as i32,
    ];
    let pages = all_pages(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 2,
            kinds: denied_or_allowed,
            ..list_request("acme")
        },
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let all: Vec<pb::AuditEvent> = pages.into_iter().flatten().collect();
    assert_eq!(sequences(&all), [8, 7, 5, 4, 2]);

    let grant_changes = list(
        &s,
        pb::ListAuditEventsRequest {
            kinds: vec![Kind::GrantEnabled as i32, Kind::GrantDisabled as i32],
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        grant_changes
            .events
            .iter()
            .map(|e| e.kind())
            .collect::<Vec<_>>(),
        [Kind::GrantDisabled, Kind::GrantEnabled]
    );

    // A kind the account never had: an empty page, not an error.
    let none = list(
        &s,
        pb::ListAuditEventsRequest {
            kinds: vec![Kind::GrantExpired as i32],
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert!(none.events.is_empty());
    assert!(none.next_page_token.is_empty());
}

/// The time range includes events at start_time and excludes events at end_time.
#[tokio::test]
async fn time_range_is_start_inclusive_end_exclusive() {
    let s = spawn_server().await;
    let minute = chrono::Duration::minutes(1);
    s.create_account("acme", pb::AccountPlan::Trial).await; // seq 1 at t0
    for _ in 0..4 {
        s.clock.advance(minute);
        s.authorize("acme").await; // seq 2..5 at t0+1m..t0+4m
    }
    let at = |m: i32| t0() + minute * m;
    let range = |start: Option<i32>, end: Option<i32>| pb::ListAuditEventsRequest {
        start_time: start.map(|m| ts(at(m))),
        end_time: end.map(|m| ts(at(m))),
        ..list_request("acme")
    };

    let page = list(&s, range(Some(1), Some(3))).await.unwrap();
    assert_eq!(sequences(&page.events), [3, 2]);
    for e in &page.events {
        let t = time(e.occur_time.as_ref().unwrap());
        assert!(t >= at(1) && t < at(3), "{t}");
    }
    let page = list(&s, range(Some(2), None)).await.unwrap();
    assert_eq!(sequences(&page.events), [5, 4, 3]);
    let page = list(&s, range(None, Some(2))).await.unwrap();
    assert_eq!(sequences(&page.events), [2, 1]);
    let page = list(&s, range(Some(0), Some(5))).await.unwrap();
    assert_eq!(sequences(&page.events), [5, 4, 3, 2, 1]);
    let page = list(&s, range(Some(5), Some(6))).await.unwrap();
    assert!(page.events.is_empty());

    // Paging within a range.
    let pages = all_pages(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 1,
            ..range(Some(1), Some(4))
        },
    )
    .await;
    let all: Vec<pb::AuditEvent> = pages.into_iter().flatten().collect();
    assert_eq!(sequences(&all), [4, 3, 2]);
}

/// Bounds finer than a microsecond keep their meaning: an event at T is before T+500ns.
#[tokio::test]
async fn time_range_honours_sub_microsecond_bounds() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await; // seq 1 at t0
    s.clock.advance(chrono::Duration::minutes(1));
    s.authorize("acme").await; // seq 2 at t0+1m
    let t1 = t0() + chrono::Duration::minutes(1);
    let half_us = chrono::Duration::nanoseconds(500);

    // start = t1 + 0.5µs: the event at t1 is before the start: nothing is left.
    let after_start = list(
        &s,
        pb::ListAuditEventsRequest {
            start_time: Some(ts(t1 + half_us)),
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    // end = t1 + 0.5µs: the event at t1 is before the end, so both events are in range.
    let before_end = list(
        &s,
        pb::ListAuditEventsRequest {
            end_time: Some(ts(t1 + half_us)),
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            sequences(&after_start.events),
            sequences(&before_end.events)
        ),
        (vec![], vec![2, 1]),
        "(start = t1+500ns, end = t1+500ns)"
    );
}

/// start_time at or after end_time is INVALID_ARGUMENT naming `end_time`.
/// A time range is found by sequence (there is no time index): over a log with runs of equal
/// times and uneven gaps, every range lists exactly the events a scan of the whole log
/// selects, including bounds before the first event, between events, on an event and after
/// the last one.
#[tokio::test]
async fn time_ranges_over_a_long_log_match_a_full_scan() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    for i in 0..60_i64 {
        // Every third event shares its predecessor's time; the others are 1..=7 s apart.
        if i % 3 != 0 {
            s.clock.advance(chrono::Duration::seconds(1 + i % 7));
        }
        s.authorize("acme").await;
    }
    let all = s.events("acme").await;
    assert_eq!(all.len(), 61);
    let first = all[0].occur_time;
    let last = all[60].occur_time;
    let mut bounds: Vec<DateTime<Utc>> = all.iter().map(|e| e.occur_time).collect();
    bounds.extend(
        all.iter()
            .map(|e| e.occur_time + chrono::Duration::milliseconds(500)),
    );
    bounds.extend([
        first - chrono::Duration::hours(1),
        last + chrono::Duration::hours(1),
    ]);
    bounds.sort();
    bounds.dedup();
    let listed = |start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>| {
        let s = &s;
        async move {
            let page = list(
                s,
                pb::ListAuditEventsRequest {
                    page_size: 500,
                    start_time: start.map(ts),
                    end_time: end.map(ts),
                    ..list_request("acme")
                },
            )
            .await
            .unwrap();
            sequences(&page.events)
        }
    };
    let scanned = |start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>| -> Vec<i64> {
        all.iter()
            .rev()
            .filter(|e| start.is_none_or(|t| e.occur_time >= t))
            .filter(|e| end.is_none_or(|t| e.occur_time < t))
            .map(|e| e.sequence)
            .collect()
    };
    let mut checked = 0;
    for (i, &start) in bounds.iter().enumerate() {
        assert_eq!(
            listed(Some(start), None).await,
            scanned(Some(start), None),
            "start {start}"
        );
        assert_eq!(
            listed(None, Some(start)).await,
            scanned(None, Some(start)),
            "end {start}"
        );
        // Every fifth later bound as an end, so ranges of all widths are covered.
        for &end in bounds[i + 1..].iter().step_by(5) {
            assert_eq!(
                listed(Some(start), Some(end)).await,
                scanned(Some(start), Some(end)),
                "[{start}, {end})"
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked} ranges");
}

/// The sequence search probes "the first event at or after" a sequence, so a log with
/// holes (rows deleted by hand — tampering that verification reports) still lists every time
/// range exactly as a scan of what is left.
#[tokio::test]
async fn time_ranges_stay_exact_over_missing_events() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    for _ in 0..15 {
        s.clock.advance(chrono::Duration::seconds(10));
        s.authorize("acme").await;
    }
    s.sql("DELETE FROM audit_events WHERE account_id = 'acme' AND sequence IN (5, 6, 7, 12)")
        .await;
    let left = s.events("acme").await;
    assert_eq!(left.len(), 12);
    for e in &left {
        for bound in [e.occur_time, e.occur_time - chrono::Duration::seconds(5)] {
            let page = list(
                &s,
                pb::ListAuditEventsRequest {
                    start_time: Some(ts(bound)),
                    ..list_request("acme")
                },
            )
            .await
            .unwrap();
            let scanned: Vec<i64> = left
                .iter()
                .rev()
                .filter(|e| e.occur_time >= bound)
                .map(|e| e.sequence)
                .collect();
            assert_eq!(sequences(&page.events), scanned, "start {bound}");
            let page = list(
                &s,
                pb::ListAuditEventsRequest {
                    end_time: Some(ts(bound)),
                    ..list_request("acme")
                },
            )
            .await
            .unwrap();
            let scanned: Vec<i64> = left
                .iter()
                .rev()
                .filter(|e| e.occur_time < bound)
                .map(|e| e.sequence)
                .collect();
            assert_eq!(sequences(&page.events), scanned, "end {bound}");
        }
    }
}

/// A clock that steps back does not put an event before its predecessor: it takes the
/// previous event's time, the chain verifies, and time ranges still find it. The decision
/// made meanwhile carries the same time as its event.
#[tokio::test]
async fn event_times_never_go_back_along_a_chain() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await; // seq 1 at t0
    s.clock.advance(chrono::Duration::hours(1));
    s.authorize("acme").await; // seq 2 at t0+1h
    s.clock.advance(chrono::Duration::minutes(-30));
    let behind = s.authorize("acme").await; // seq 3: the clock reads t0+30m
    s.clock.advance(chrono::Duration::hours(1));
    s.authorize("acme").await; // seq 4 at t0+1h30m

    let times: Vec<DateTime<Utc>> = s
        .events("acme")
        .await
        .iter()
        .map(|e| e.occur_time)
        .collect();
    let hour = t0() + chrono::Duration::hours(1);
    assert_eq!(
        times,
        [t0(), hour, hour, hour + chrono::Duration::minutes(30)]
    );
    let assumption = behind.assumption.unwrap();
    assert_eq!(
        time(assumption.start_time.as_ref().unwrap()),
        hour,
        "the assumption starts when its event says it did"
    );
    assert_eq!(
        s.assumption(&assumption.assumption_id).await.start_time,
        assumption.start_time
    );
    assert!(verify(&s, "acme").await.unwrap().intact);
    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            start_time: Some(ts(hour)),
            end_time: Some(ts(hour + chrono::Duration::minutes(1))),
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(sequences(&page.events), [3, 2]);
}

/// Times outside `google.protobuf.Timestamp`'s range (years 1 to 9999) or with bad nanos are
/// INVALID_ARGUMENT naming the field; the range's own ends are accepted.
#[tokio::test]
async fn timestamps_outside_the_protobuf_range_are_invalid() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let at = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
    let (first, last) = (-62_135_596_800, 253_402_300_799);
    for (field, bad) in [
        ("start_time", at(last + 1, 0)),
        ("start_time", at(first - 1, 999_999_999)),
        ("end_time", at(last + 1, 0)),
        ("end_time", at(0, -1)),
        ("end_time", at(0, 1_000_000_000)),
    ] {
        let mut req = list_request("acme");
        if field == "start_time" {
            req.start_time = bad;
        } else {
            req.end_time = bad;
        }
        let status = list(&s, req).await.unwrap_err();
        assert_eq!(single_violation(&status), field, "{bad:?}");
    }
    let page = list(
        &s,
        pb::ListAuditEventsRequest {
            start_time: at(first, 0),
            end_time: at(last, 999_999_999),
            ..list_request("acme")
        },
    )
    .await
    .unwrap();
    assert_eq!(page.events.len(), 2);
}

#[tokio::test]
async fn empty_time_range_is_invalid() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let t = t0();
    for (start, end) in [(t, t), (t + chrono::Duration::seconds(1), t)] {
        let status = list(
            &s,
            pb::ListAuditEventsRequest {
                start_time: Some(ts(start)),
                end_time: Some(ts(end)),
                ..list_request("acme")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(single_violation(&status), "end_time");
    }
}

/// KIND_UNSPECIFIED in `kinds` is INVALID_ARGUMENT naming its index.
#[tokio::test]
async fn unspecified_kind_is_invalid() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let status = list(
        &s,
        pb::ListAuditEventsRequest {
            kinds: vec![Kind::Unspecified as i32],
            ..list_request("acme")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(single_violation(&status), "kinds[0]");
    let status = list(
        &s,
        pb::ListAuditEventsRequest {
            kinds: vec![Kind::AssumptionAllowed as i32, Kind::Unspecified as i32],
            ..list_request("acme")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(single_violation(&status), "kinds[1]");
}

/// An account that never had an event is NOT_FOUND ACCOUNT_NOT_FOUND.
#[tokio::test]
async fn listing_an_unknown_account_is_not_found() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let status = list(&s, list_request("nobody")).await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// Offline verify of a named account: a typo (unknown or malformed id) is a usage error
/// (exit 2), not "broken" (exit 1); a provisioned account whose whole log was deleted is broken.
#[tokio::test]
async fn cli_verify_tells_a_typo_from_a_deleted_log() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    s.create_account("globex", pb::AccountPlan::Paid).await;
    for typo in ["nobody", "not an id"] {
        let (code, stdout) = cli_verify(&s, typo).await;
        assert_eq!(code, Some(2), "{typo}: {stdout}");
    }
    s.sql("DELETE FROM audit_events WHERE account_id = 'globex'")
        .await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'globex'")
        .await;
    let (code, stdout) = cli_verify(&s, "globex").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("globex: BROKEN"), "{stdout}");
    assert_eq!(cli_verify(&s, "acme").await.0, Some(0));
    // The whole database: the account table names it even with no event or head left.
    let (code, stdout) = cli_verify_args(&s, &[]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("globex: BROKEN"), "{stdout}");
    assert!(stdout.contains("acme: intact"), "{stdout}");
}

/// A deleted account's log stays listed and still verifies, over the RPC and offline.
#[tokio::test]
async fn deleted_account_log_is_listed_and_verifies() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 2).await;
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let page = list(&s, list_request("acme")).await.unwrap();
    assert_eq!(sequences(&page.events), [4, 3, 2, 1]);
    assert_eq!(page.events[0].kind(), Kind::AccountDeleted);
    assert_eq!(
        page.events[0].actor,
        Some(Actor::ServicePrincipal("development".into()))
    );
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.events_checked, 4);
    assert!(v.first_broken_event_id.is_empty());
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(0), "{stdout}");
}

/// Events carry the actor oneof and link into a chain anyone can recompute.
#[tokio::test]
async fn events_carry_actors_and_link_hashes() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    let decision = s.authorize("acme").await;
    let mut page = list(&s, list_request("acme")).await.unwrap().events;
    page.reverse(); // oldest first
    assert_eq!(sequences(&page), [1, 2, 3]);
    assert_eq!(
        page.iter().map(|e| e.kind()).collect::<Vec<_>>(),
        [
            Kind::AccountCreated,
            Kind::GrantEnabled,
            Kind::AssumptionAllowed
        ]
    );
    assert_eq!(
        page[0].actor,
        Some(Actor::ServicePrincipal("development".into()))
    );
    assert_eq!(page[1].actor, Some(Actor::CustomerUserId("alice".into())));
    assert_eq!(page[2].actor, Some(Actor::StaffId("sam".into())));
    assert_eq!(page[2].event_id, decision.audit_event_id);

    assert_eq!(page[0].prev_hash, vec![0u8; 32]);
    for e in &page {
        assert_eq!(e.hash.len(), 32);
        assert_eq!(e.account_id, "acme");
        assert!(
            serde_json::from_str::<serde_json::Value>(&e.detail_json)
                .unwrap()
                .is_object()
        );
    }
    for w in page.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }

    // The listed fields are exactly what was hashed: recompute every hash from them.
    for e in &page {
        let kind_name = e.kind().as_str_name();
        let kind = EventKind::from_str_name(kind_name.strip_prefix("KIND_").unwrap()).unwrap();
        let actor = match e.actor.clone().unwrap() {
            Actor::CustomerUserId(id) => EventActor::CustomerUser(id),
            Actor::StaffId(id) => EventActor::Staff(id),
            Actor::ServicePrincipal(name) => EventActor::ServicePrincipal(name),
            Actor::System(_) => EventActor::System,
        };
        let fields = CanonicalFields {
            event_id: &e.event_id,
            account_id: &e.account_id,
            sequence: e.sequence,
            occur_time: time(e.occur_time.as_ref().unwrap()),
            kind,
            actor: &actor,
            detail_json: &e.detail_json,
            request_id: &e.request_id,
        };
        assert_eq!(
            link_hash(&e.prev_hash, &fields),
            e.hash,
            "event {}",
            e.sequence
        );
    }

    // And they match the stored log.
    let stored = s.events("acme").await;
    for (listed, stored) in page.iter().zip(&stored) {
        assert_eq!(listed.event_id, stored.event_id);
        assert_eq!(listed.hash, stored.hash);
        assert_eq!(listed.prev_hash, stored.prev_hash);
        assert_eq!(time(listed.occur_time.as_ref().unwrap()), stored.occur_time);
    }
}

// ----------------------------------------------------------------------------------------
// VerifyAuditChain and `accessgrant audit verify`
// ----------------------------------------------------------------------------------------

/// An untouched chain is intact, every event checked, and the CLI exits 0.
#[tokio::test]
async fn intact_chain_verifies() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", pb::AccessDuration::OneDay).await.unwrap();
    authorize_n(&s, "acme", 3).await;
    s.disable("acme").await.unwrap();
    trial_with_events(&s, "globex", 2).await;
    let n = s
        .count("SELECT COUNT(*) FROM audit_events WHERE account_id = 'acme'")
        .await;
    assert_eq!(n, 6);
    let v = verify(&s, "acme").await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.events_checked, n);
    assert!(v.first_broken_event_id.is_empty());
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("acme: intact"), "{stdout}");
}

/// An edited field breaks the chain at the edited event.
#[tokio::test]
async fn verify_detects_an_edited_field() {
    let (s, events) = four_event_chain().await;
    s.sql(
        r#"UPDATE audit_events SET detail_json = '{"x":1}'
           WHERE account_id = 'acme' AND sequence = 2"#,
    )
    .await;
    assert_broken_at(&s, "acme", &events[1].event_id).await;
}

/// A deleted event in the middle breaks the chain at the event after the gap.
#[tokio::test]
async fn verify_detects_a_deleted_middle_event() {
    let (s, events) = four_event_chain().await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'acme' AND sequence = 2")
        .await;
    assert_broken_at(&s, "acme", &events[2].event_id).await;
}

/// A deleted newest event is caught by the chain head: `missing-after-sequence-3`.
#[tokio::test]
async fn verify_detects_a_deleted_newest_event() {
    let (s, _events) = four_event_chain().await;
    s.sql("DELETE FROM audit_events WHERE account_id = 'acme' AND sequence = 4")
        .await;
    assert_eq!(
        s.count("SELECT last_sequence FROM audit_chain_heads WHERE account_id = 'acme'")
            .await,
        4
    );
    assert_broken_at(&s, "acme", "missing-after-sequence-3").await;
}

/// The whole-database check (`audit verify` without `--account`) covers every account with
/// events, also one whose chain-head row was deleted: that account is reported broken and the
/// command exits 1.
#[tokio::test]
async fn whole_database_verify_covers_accounts_without_a_chain_head() {
    let (s, _events) = four_event_chain().await;
    s.create_account("other", pb::AccountPlan::Trial).await;
    s.sql("DELETE FROM audit_chain_heads WHERE account_id = 'acme'")
        .await;
    let (code, stdout) = cli_verify_args(&s, &[]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("acme: BROKEN")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("other: intact")),
        "{stdout}"
    );
}

/// A write whose key collides with a stored one (the account's chain head row was deleted,
/// so its next event takes sequence 1 again) is damage, not an outage: `INTERNAL`, the same
/// on every retry, not `UNAVAILABLE` ("retry later"). Nothing is written, other accounts go
/// on, and the decision path (its own connection on SQLite) answers like a grant change.
#[tokio::test]
async fn a_write_colliding_with_a_stored_key_is_internal() {
    let s = spawn_server().await;
    for id in ["acme", "paid", "fine"] {
        s.create_account(id, pb::AccountPlan::Paid).await;
        s.enable(id, pb::AccessDuration::OneWeek).await.unwrap();
    }
    s.sql("DELETE FROM audit_chain_heads WHERE account_id IN ('acme', 'paid')")
        .await;
    let events = s.count("SELECT COUNT(*) FROM audit_events").await;
    for _ in 0..2 {
        let status = s
            .support()
            .authorize_assumption(authorize_request("acme"))
            .await
            .unwrap_err();
        assert_error(&status, Code::Internal, "INTERNAL");
    }
    let status = s
        .enable("paid", pb::AccessDuration::OneDay)
        .await
        .unwrap_err();
    assert_error(&status, Code::Internal, "INTERNAL");
    assert_eq!(s.count("SELECT COUNT(*) FROM audit_events").await, events);
    assert_eq!(s.authorize("fine").await.decision(), pb::Decision::Allow);
}

/// A stored text that is not UTF-8 (SQLite stores whatever bytes it is given) is corruption,
/// not an outage: verification reports the chain broken at that event (the CLI exits 1), and
/// a page that would show it fails `INTERNAL`, not `UNAVAILABLE` ("retry later").
#[tokio::test]
async fn an_undecodable_stored_event_is_reported_as_broken() {
    if sqlite_only("an_undecodable_stored_event_is_reported_as_broken") {
        return;
    }
    let (s, events) = four_event_chain().await;
    s.sql(
        "UPDATE audit_events SET detail_json = CAST(X'7BC328' AS TEXT) \
           WHERE account_id = 'acme' AND sequence = 3",
    )
    .await;
    assert_broken_at(&s, "acme", &events[2].event_id).await;
    let status = list(&s, list_request("acme")).await.unwrap_err();
    assert_error(&status, Code::Internal, "INTERNAL");
}

/// Swapping two events' sequences breaks the chain at one of them.
#[tokio::test]
async fn verify_detects_reordered_events() {
    let (s, events) = four_event_chain().await;
    s.sql("UPDATE audit_events SET sequence = -2 WHERE account_id = 'acme' AND sequence = 2")
        .await;
    s.sql("UPDATE audit_events SET sequence = 2 WHERE account_id = 'acme' AND sequence = 3")
        .await;
    s.sql("UPDATE audit_events SET sequence = 3 WHERE account_id = 'acme' AND sequence = -2")
        .await;
    let swapped = [events[1].event_id.clone(), events[2].event_id.clone()];
    let v = verify(&s, "acme").await.unwrap();
    assert!(!v.intact, "{v:?}");
    assert!(swapped.contains(&v.first_broken_event_id), "{v:?}");
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("BROKEN at event {}", v.first_broken_event_id)),
        "{stdout}"
    );
}

/// A forged event appended with a garbage hash (and the head moved along) is the break.
#[tokio::test]
async fn verify_detects_a_forged_event_with_a_garbage_hash() {
    let (s, events) = four_event_chain().await;
    let last = events.last().unwrap();
    s.sql(&format!(
        "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
         ('forged-1', 'acme', 5, {}, 'ASSUMPTION_ALLOWED', 'staff_id', 'mallory', '{{}}', '', \
         {}, {})",
        last.occur_time.timestamp_micros(),
        blob(&last.hash),
        blob(&[0xab; 32]),
    ))
    .await;
    s.sql(&format!(
        "UPDATE audit_chain_heads SET last_sequence = 5, last_hash = {} WHERE account_id = 'acme'",
        blob(&[0xab; 32])
    ))
    .await;
    assert_broken_at(&s, "acme", "forged-1").await;
}

/// A forged event with a correctly computed hash, without moving the head, is detected.
#[tokio::test]
async fn verify_detects_a_forged_event_with_a_valid_hash() {
    let (s, events) = four_event_chain().await;
    let last = events.last().unwrap();
    let actor = EventActor::Staff("mallory".into());
    let fields = CanonicalFields {
        event_id: "forged-2",
        account_id: "acme",
        sequence: 5,
        occur_time: last.occur_time,
        kind: EventKind::AssumptionAllowed,
        actor: &actor,
        detail_json: "{}",
        request_id: "",
    };
    let hash = link_hash(&last.hash, &fields);
    s.sql(&format!(
        "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
         actor_type, actor_value, detail_json, request_id, prev_hash, hash) VALUES \
         ('forged-2', 'acme', 5, {}, 'ASSUMPTION_ALLOWED', 'staff_id', 'mallory', '{{}}', '', \
         {}, {})",
        last.occur_time.timestamp_micros(),
        blob(&last.hash),
        blob(&hash),
    ))
    .await;
    // The forged row itself checks out: the stored log now reads as a valid 5-event chain.
    let stored = s.events("acme").await;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[4].hash, hash);

    let v = verify(&s, "acme").await.unwrap();
    assert!(!v.intact, "{v:?}");
    // The chain head still names sequence 4: the event beyond it is the forgery.
    assert_eq!(v.first_broken_event_id, "forged-2", "{v:?}");
    let (code, stdout) = cli_verify(&s, "acme").await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "acme: BROKEN at event {}",
            v.first_broken_event_id
        )),
        "{stdout}"
    );
}

/// Verifying an account that never had an event is NOT_FOUND ACCOUNT_NOT_FOUND.
#[tokio::test]
async fn verifying_an_unknown_account_is_not_found() {
    let s = spawn_server().await;
    trial_with_events(&s, "acme", 1).await;
    let status = verify(&s, "nobody").await.unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    let status = verify(&s, "Not An Id").await.unwrap_err();
    assert_eq!(single_violation(&status), "account_id");
}

// ----------------------------------------------------------------------------------------
// WatchAuditEvents
// ----------------------------------------------------------------------------------------

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
