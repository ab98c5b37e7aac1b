//! Conformance cases for access requests, request policies and assumptions allowed under a
//! request: what the write path stores, both backends load back equal (and damage reads as
//! damage, never a panic).

use super::*;
use accessgrant::{
    domain::{
        access_request::{AccessRequest, RequestState, Review, Verdict},
        assumption::AccessReason,
    },
    storage::{access_requests, assumptions, grants},
};

/// A request of `account` created at `create`, pending until `request_expire`.
pub(crate) fn request(
    id: &str,
    account: &str,
    status: RequestState,
    create: DateTime<Utc>,
    request_expire: DateTime<Utc>,
) -> AccessRequest {
    AccessRequest {
        access_request_id: id.into(),
        account_id: account.into(),
        staff_id: "sam".into(),
        ticket_id: format!("T-{id}"),
        reason: AccessReason::IpConfiguration,
        reason_detail: "the VPN \"profile\" — ünïcode".into(),
        requested_duration_us: 3_600_000_000,
        status,
        reviews: vec![],
        required_approvals: 2,
        create_time: create,
        request_expire_time: request_expire,
        approve_time: None,
        expire_time: None,
        update_time: create,
        version: 1,
    }
}

/// `r` approved at `at` by a quorum of two, until `until`.
pub(crate) fn approved(
    r: &AccessRequest,
    at: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> AccessRequest {
    let review = |user: &str, comment: &str, when| Review {
        user_id: user.into(),
        verdict: Verdict::Approve,
        comment: comment.into(),
        review_time: when,
    };
    AccessRequest {
        status: RequestState::Approved,
        reviews: vec![
            review("ada", "", at - Duration::minutes(5)),
            review("bob", "ok, \"quoted\" and\nmultiline", at),
        ],
        approve_time: Some(at),
        expire_time: until,
        update_time: at,
        version: r.version + 2,
        ..r.clone()
    }
}

pub(crate) fn request_ids(rows: &[AccessRequest]) -> Vec<&str> {
    rows.iter().map(|r| r.access_request_id.as_str()).collect()
}

fn sorted_request_ids(rows: &[AccessRequest]) -> Vec<&str> {
    let mut ids = request_ids(rows);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A request is stored, loaded by id and as one of its account's open requests, replaced
/// whole when approved (reviews included), and a denied one is no longer open.
#[tokio::test]
async fn access_requests_round_trip_and_open_ones_load_by_account() {
    let mut db = Db::fresh().await;
    let now = t0();
    let pending = request(
        "r-pending",
        "acme",
        RequestState::Pending,
        now - Duration::hours(1),
        now + Duration::hours(23),
    );
    let mut denied = request(
        "r-denied",
        "acme",
        RequestState::Denied,
        now - Duration::hours(2),
        now + Duration::hours(22),
    );
    denied.reviews = vec![Review {
        user_id: "ada".into(),
        verdict: Verdict::Deny,
        comment: "not today".into(),
        review_time: now - Duration::minutes(90),
    }];
    // Stored pending but lapsed: still loaded (the command evaluates it at its `now`).
    let lapsed = request(
        "r-lapsed",
        "acme",
        RequestState::Pending,
        now - Duration::days(2),
        now - Duration::days(1),
    );
    let elsewhere = request(
        "r-elsewhere",
        "other",
        RequestState::Pending,
        now - Duration::hours(1),
        now + Duration::hours(23),
    );
    db.commit(&Changes {
        accounts: vec![account("acme", Plan::Paid, now - Duration::days(3))],
        grants: vec![("acme".into(), initial_grant(now - Duration::days(3)))],
        access_requests: vec![
            pending.clone(),
            denied.clone(),
            lapsed.clone(),
            elsewhere.clone(),
        ],
        ..Changes::default()
    })
    .await;

    let mut by_id = Keys::default();
    by_id.access_request("r-pending");
    by_id.access_request("r-denied");
    let loaded = db.load(&by_id, now).await;
    assert!(loaded.accounts.is_empty(), "only the requests are loaded");
    let mut found = loaded.access_requests.clone();
    found.sort_by(|a, b| a.access_request_id.cmp(&b.access_request_id));
    assert_eq!(found, vec![denied.clone(), pending.clone()]);

    let mut open = Keys::default();
    open.account_with_requests("acme");
    let loaded = db.load(&open, now).await;
    assert_eq!(
        sorted_request_ids(&loaded.access_requests),
        vec!["r-lapsed", "r-pending"]
    );
    assert!(loaded.access_requests.contains(&pending));
    assert_eq!(loaded.accounts.len(), 1);

    // Approved with two reviews: replaced whole, and still open.
    let approved_now = approved(&pending, now, Some(now + Duration::hours(1)));
    db.commit(&Changes {
        access_requests: vec![approved_now.clone()],
        ..Changes::default()
    })
    .await;
    let mut both = Keys::default();
    both.access_request("r-pending");
    both.account_with_requests("acme");
    let loaded = db.load(&both, now).await;
    assert!(
        loaded
            .access_requests
            .iter()
            .all(|r| r.access_request_id != "r-pending" || *r == approved_now),
        "{:?}",
        loaded.access_requests
    );
    assert_eq!(
        sorted_request_ids(&loaded.access_requests),
        vec!["r-lapsed", "r-pending"]
    );
    assert_eq!(
        access_requests::find(db.store.reader(), "r-pending")
            .await
            .unwrap(),
        Some(approved_now)
    );
    assert_eq!(
        access_requests::find(db.store.reader(), "nope")
            .await
            .unwrap(),
        None
    );
}

/// A request whose stored status does not decode reads as damage, not a panic.
#[tokio::test]
async fn a_damaged_request_row_is_an_internal_error() {
    let mut db = Db::fresh().await;
    let now = t0();
    let r = request(
        "r1",
        "acme",
        RequestState::Pending,
        now,
        now + Duration::hours(1),
    );
    db.commit(&Changes {
        access_requests: vec![r],
        ..Changes::default()
    })
    .await;
    use sea_orm::ConnectionTrait;
    db.store
        .reader()
        .execute_unprepared("UPDATE access_requests SET reviews_json = '[{\"user_id\": 1}]'")
        .await
        .unwrap();
    let failed = access_requests::find(db.store.reader(), "r1").await;
    assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
}

/// The request policy stored on the grant row round-trips through the write path and the
/// joined read; a grant written without a change of policy keeps the defaults.
#[tokio::test]
async fn grant_policy_columns_round_trip() {
    let mut db = Db::fresh().await;
    let now = t0();
    let mut grant = enabled_grant(now - Duration::hours(1));
    grant.record.policy = AccessPolicy {
        requests_enabled: false,
        required_approvals: 3,
        max_request_duration_us: 90 * 60 * 1_000_000,
        version: 4,
    };
    db.commit(&Changes {
        accounts: vec![
            account("acme", Plan::Paid, now - Duration::days(1)),
            account("plain", Plan::Paid, now - Duration::days(1)),
        ],
        grants: vec![
            ("acme".into(), grant.clone()),
            ("plain".into(), initial_grant(now - Duration::days(1))),
        ],
        ..Changes::default()
    })
    .await;
    let mut keys = Keys::default();
    keys.account("acme");
    keys.account("plain");
    let loaded = db.load(&keys, now).await;
    let policy_of = |id: &str| {
        loaded
            .accounts
            .iter()
            .find(|(a, _)| a.account_id.as_str() == id)
            .map(|(_, g)| g.record.policy)
            .unwrap()
    };
    assert_eq!(policy_of("acme"), grant.record.policy);
    assert_eq!(policy_of("plain"), AccessPolicy::default());

    let read = grants::read_with_accounts(db.store.reader(), &["acme"])
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1, grant.record);
}

/// An assumption allowed under a request keeps the request's id and its ticket.
#[tokio::test]
async fn an_assumption_with_an_access_request_round_trips() {
    let mut db = Db::fresh().await;
    let now = t0();
    let mut a = assumption(
        "by-request",
        "acme",
        Basis::AccessRequest,
        now,
        now + Duration::hours(1),
    );
    a.access_request_id = Some("r-7".into());
    db.commit(&Changes {
        accounts: vec![account("acme", Plan::Paid, now - Duration::days(1))],
        grants: vec![("acme".into(), initial_grant(now - Duration::days(1)))],
        new_assumptions: vec![a.clone()],
        ..Changes::default()
    })
    .await;
    let mut keys = Keys::default();
    keys.assumption("by-request");
    keys.account_with_assumptions("acme");
    let loaded = db.load(&keys, now).await;
    assert_eq!(loaded.assumptions, vec![a.clone()]);
    assert_eq!(loaded.open_assumptions, vec![a.clone()]);

    // Ending it keeps the request id.
    let ended = Assumption {
        end_time: Some(now + Duration::minutes(5)),
        end_reason: Some(EndReason::Ended),
        ..a.clone()
    };
    db.commit(&Changes {
        changed_assumptions: vec![ended.clone()],
        ..Changes::default()
    })
    .await;
    assert_eq!(
        assumptions::find(db.store.reader(), "by-request")
            .await
            .unwrap(),
        Some(ended)
    );
}

/// The access requests migration can be undone and redone on a database with rows: `down`
/// drops the table and the added columns (SQLite: one `DROP COLUMN` each, after the index
/// naming one), and `up` gives existing grants the default policy.
#[tokio::test]
async fn the_access_requests_migration_is_reversible() {
    use accessgrant::storage::migrations::Migrator;
    use sea_orm::ConnectionTrait;
    use sea_orm_migration::MigratorTrait;

    let mut db = Db::fresh().await;
    let now = t0();
    let (changes, _) = full_changes("acme", now);
    db.commit(&changes).await;
    let conn = db.store.reader();
    let added = [
        "SELECT requests_enabled FROM access_grants",
        "SELECT required_approvals FROM access_grants",
        "SELECT max_request_duration_us FROM access_grants",
        "SELECT policy_version FROM access_grants",
        "SELECT access_request_id FROM assumptions",
        "SELECT COUNT(*) FROM access_requests",
    ];
    let readable = || async {
        let mut ok = Vec::new();
        for sql in added {
            ok.push(conn.execute_unprepared(sql).await.is_ok());
        }
        ok
    };
    assert_eq!(readable().await, [true; 6]);
    Migrator::down(conn, Some(1)).await.unwrap();
    assert_eq!(readable().await, [false; 6]);
    Migrator::up(conn, None).await.unwrap();
    assert_eq!(readable().await, [true; 6]);
    let mut keys = Keys::default();
    keys.account("acme");
    let loaded = db.load(&keys, now).await;
    assert_eq!(loaded.accounts[0].1.record.policy, AccessPolicy::default());
    assert_eq!(loaded.accounts[0].1, changes.grants[0].1);
}
