//! Conformance cases for the newest-first pages of access requests and assumptions, the
//! sweep's lapsed pending requests and the pending gauge: the read functions filter by the
//! state *at `now`* and continue by keyset cursor the same way on both backends.

use super::requests::{approved, request, request_ids};
use super::*;
use accessgrant::{
    domain::{
        access_request::{AccessRequest, RequestState},
        assumption::AssumptionState,
    },
    storage::{access_requests, assumptions, page::Cursor},
};

/// Requests of every effective state for `acme` (and one elsewhere), by creation time.
fn requests_of_every_state(now: DateTime<Utc>) -> Vec<AccessRequest> {
    let at = |h: i64| now - Duration::hours(h);
    let r = |id: &str, status, create, request_expire| {
        request(id, "acme", status, create, request_expire)
    };
    let pending = r(
        "p-open",
        RequestState::Pending,
        at(10),
        now + Duration::hours(1),
    );
    let lapsed = r(
        "p-lapsed",
        RequestState::Pending,
        at(9),
        now - Duration::hours(1),
    );
    // Half-open: lapses at exactly `now`.
    let lapses_now = r("p-lapses-now", RequestState::Pending, at(8), now);
    let base = r("a", RequestState::Pending, at(7), now + Duration::hours(1));
    let approved_open = AccessRequest {
        access_request_id: "a-open".into(),
        ..approved(&base, at(7), Some(now + Duration::hours(1)))
    };
    let approved_over = AccessRequest {
        access_request_id: "a-over".into(),
        create_time: at(6),
        ..approved(&base, at(6), Some(now))
    };
    let approved_no_end = AccessRequest {
        access_request_id: "a-no-end".into(),
        create_time: at(5),
        ..approved(&base, at(5), None)
    };
    // Two created in the same microsecond: the id breaks the tie.
    let tie_a = r("d-tie-a", RequestState::Denied, at(4), at(3));
    let tie_b = r("d-tie-b", RequestState::Denied, at(4), at(3));
    let cancelled = r(
        "c",
        RequestState::Cancelled,
        at(3),
        now + Duration::hours(1),
    );
    let revoked = r("v", RequestState::Revoked, at(2), now + Duration::hours(1));
    let expired = r("e", RequestState::Expired, at(1), at(0));
    let elsewhere = request(
        "x-elsewhere",
        "other",
        RequestState::Pending,
        at(1),
        now - Duration::minutes(1),
    );
    vec![
        pending,
        lapsed,
        lapses_now,
        approved_open,
        approved_over,
        approved_no_end,
        tie_a,
        tie_b,
        cancelled,
        revoked,
        expired,
        elsewhere,
    ]
}

/// Pages of requests: newest first with the id breaking ties, the state filter evaluated at
/// `now` (a lapsed pending or approved request reads expired), and the cursor continuing
/// strictly after the last row.
#[tokio::test]
async fn access_request_pages_filter_by_state_at_now_and_continue_by_cursor() {
    let mut db = Db::fresh().await;
    let now = t0();
    db.commit(&Changes {
        access_requests: requests_of_every_state(now),
        ..Changes::default()
    })
    .await;
    let reader = db.store.reader();
    let page = |states: Vec<RequestState>, after: Option<Cursor>, limit| async move {
        access_requests::page(reader, "acme", &states, now, after.as_ref(), limit)
            .await
            .unwrap()
    };
    let newest_first = vec![
        "e",
        "v",
        "c",
        "d-tie-b",
        "d-tie-a",
        "a-no-end",
        "a-over",
        "a-open",
        "p-lapses-now",
        "p-lapsed",
        "p-open",
    ];
    let all = page(vec![], None, 100).await;
    assert_eq!(request_ids(&all), newest_first);
    for r in &all {
        assert_eq!(
            access_requests::find(reader, &r.access_request_id)
                .await
                .unwrap()
                .as_ref(),
            Some(r)
        );
    }

    use RequestState::*;
    let cases = [
        (vec![Pending], vec!["p-open"]),
        (vec![Approved], vec!["a-open"]),
        (
            vec![Expired],
            vec!["e", "a-no-end", "a-over", "p-lapses-now", "p-lapsed"],
        ),
        (vec![Denied], vec!["d-tie-b", "d-tie-a"]),
        (vec![Cancelled], vec!["c"]),
        (vec![Revoked], vec!["v"]),
        (vec![Pending, Approved], vec!["a-open", "p-open"]),
    ];
    for (states, expected) in cases {
        let rows = page(states.clone(), None, 100).await;
        assert_eq!(request_ids(&rows), expected, "{states:?}");
        for r in &rows {
            assert!(states.contains(&r.state_at(now)), "{states:?}: {r:?}");
        }
    }
    // An hour and a half earlier, the lapsed pending ones were still pending.
    let earlier = access_requests::page(
        reader,
        "acme",
        &[Pending],
        now - Duration::minutes(90),
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        request_ids(&earlier),
        vec!["p-lapses-now", "p-lapsed", "p-open"]
    );

    // Pages of four, each after the previous page's last row, walk the whole list once
    // (the tie of "d-tie-b"/"d-tie-a" falls across a page boundary).
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let rows = page(vec![], after.clone(), 4).await;
        let Some(last) = rows.last() else { break };
        after = Some(Cursor {
            time_us: to_us(last.create_time),
            id: last.access_request_id.clone(),
        });
        walked.extend(rows.iter().map(|r| r.access_request_id.clone()));
    }
    assert_eq!(walked, newest_first);
    // A cursor combines with the filter.
    let after_tie = Cursor {
        time_us: to_us(now - Duration::hours(4)),
        id: "d-tie-b".into(),
    };
    assert_eq!(
        request_ids(&page(vec![Denied, Expired], Some(after_tie), 2).await),
        vec!["d-tie-a", "a-no-end"]
    );
    assert!(
        access_requests::page(reader, "nobody", &[], now, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The sweep finds requests still stored pending past their lapse (every account's, by id,
/// after its cursor); the gauge counts those pending at `now`.
#[tokio::test]
async fn lapsed_pending_requests_and_the_pending_count() {
    let mut db = Db::fresh().await;
    let now = t0();
    db.commit(&Changes {
        access_requests: requests_of_every_state(now),
        ..Changes::default()
    })
    .await;
    let reader = db.store.reader();
    let lapsed = access_requests::lapsed_pending(reader, now, None, 100)
        .await
        .unwrap();
    let pair = |id: &str, account: &str| (id.to_owned(), account.to_owned());
    assert_eq!(
        lapsed,
        vec![
            pair("p-lapsed", "acme"),
            pair("p-lapses-now", "acme"),
            pair("x-elsewhere", "other"),
        ]
    );
    assert_eq!(
        access_requests::lapsed_pending(reader, now, Some("p-lapsed"), 1)
            .await
            .unwrap(),
        vec![pair("p-lapses-now", "acme")]
    );
    assert!(
        access_requests::lapsed_pending(reader, now, Some("x-elsewhere"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        access_requests::count_pending(reader, now).await.unwrap(),
        1
    );
    assert_eq!(
        access_requests::count_pending(reader, now - Duration::minutes(90))
            .await
            .unwrap(),
        4,
        "p-open, p-lapsed, p-lapses-now and x-elsewhere were pending then"
    );
}

/// Pages of assumptions: newest first by start (the id breaking ties), the state filter
/// evaluated at `now`, and the cursor continuing strictly after the last row.
#[tokio::test]
async fn assumption_pages_filter_by_state_at_now_and_continue_by_cursor() {
    let mut db = Db::fresh().await;
    let now = t0();
    let at = |h: i64| now - Duration::hours(h);
    let a = |id: &str, start, expire| assumption(id, "acme", Basis::Emergency, start, expire);
    let mut ended = a("ended", at(4), now + Duration::hours(1));
    ended.end_time = Some(at(3));
    ended.end_reason = Some(EndReason::Ended);
    let mut revoked = a("revoked", at(3), now + Duration::hours(1));
    revoked.end_time = Some(at(2));
    revoked.end_reason = Some(EndReason::Revoked);
    let rows = vec![
        a("active", at(6), now + Duration::minutes(1)),
        a("expires-now", at(5), now),
        a("expired", at(5), at(1)),
        ended,
        revoked,
        a("tie-1", at(2), now + Duration::hours(1)),
        a("tie-2", at(2), now + Duration::hours(1)),
        assumption("elsewhere", "other", Basis::Emergency, at(1), now),
    ];
    db.commit(&Changes {
        new_assumptions: rows,
        ..Changes::default()
    })
    .await;
    let reader = db.store.reader();
    let page = |states: Vec<AssumptionState>, after: Option<Cursor>, limit| async move {
        assumptions::page(reader, "acme", &states, now, after.as_ref(), limit)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.assumption_id)
            .collect::<Vec<_>>()
    };
    let newest_first = vec![
        "tie-2",
        "tie-1",
        "revoked",
        "ended",
        "expires-now",
        "expired",
        "active",
    ];
    assert_eq!(page(vec![], None, 100).await, newest_first);
    use AssumptionState::*;
    assert_eq!(
        page(vec![Active], None, 100).await,
        vec!["tie-2", "tie-1", "active"]
    );
    assert_eq!(
        page(vec![Expired], None, 100).await,
        vec!["expires-now", "expired"]
    );
    assert_eq!(page(vec![Ended], None, 100).await, vec!["ended"]);
    assert_eq!(page(vec![Revoked], None, 100).await, vec!["revoked"]);
    assert_eq!(
        page(vec![Ended, Revoked], None, 100).await,
        vec!["revoked", "ended"]
    );

    // Pages of five: the tie of "expires-now"/"expired" falls across the boundary.
    let mut walked = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let rows = assumptions::page(reader, "acme", &[], now, after.as_ref(), 5)
            .await
            .unwrap();
        let Some(last) = rows.last() else { break };
        after = Some(Cursor {
            time_us: to_us(last.start_time),
            id: last.assumption_id.clone(),
        });
        walked.extend(rows.into_iter().map(|a| a.assumption_id));
    }
    assert_eq!(walked, newest_first);
    let after_tie = Cursor {
        time_us: to_us(at(2)),
        id: "tie-2".into(),
    };
    assert_eq!(
        page(vec![Active, Expired], Some(after_tie), 2).await,
        vec!["tie-1", "expires-now"]
    );
}
