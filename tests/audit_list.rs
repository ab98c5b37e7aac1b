//! ListAuditEvents through the real server: customer-visible pages (order, sizes, tokens,
//! filters, time ranges) and what each event carries.

mod common;

use std::collections::HashSet;

use accessgrant::{
    audit::{EventActor, EventKind, canonical::CanonicalFields, chain::link_hash},
    proto::v1 as pb,
};
use chrono::{DateTime, Utc};
use common::{audit::*, *};
use pb::audit_event::{Actor, Kind};
use tonic::Code;

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

/// The event ids of a page.
fn ids(events: &[pb::AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
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

/// start_time at or after end_time is INVALID_ARGUMENT naming `end_time`.
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
