//! The storage conformance suite: the same cases through the write path's `Backend` trait,
//! on whichever database `ACCESSGRANT_TEST_BACKEND` names (`scripts/test` runs this binary
//! once per backend). What one backend loads, writes, commits and rolls back, the other must
//! too, so the group-commit loop and the commands above it need not know which one runs.

mod common;
#[path = "storage_conformance/pages.rs"]
mod pages;
#[path = "storage_conformance/requests.rs"]
mod requests;

use accessgrant::{
    audit::{EventActor, EventKind, chain::GENESIS_HASH},
    domain::{
        Error,
        access_request::AccessPolicy,
        account::{Account, Plan},
        assumption::{Assumption, Basis, EndReason},
        duration::AccessDuration,
        grant::GrantRecord,
        ids::AccountId,
    },
    storage::{
        Store,
        entities::{assumption as assumption_entity, audit_event},
        sqlite_file, to_us,
        write::{
            Backend, ChainHead, Changes, CheckpointRow, GrantRow, Keys, Loaded,
            postgres::PostgresBackend,
            rows::{EventRow, ResponseRow, StoredResponse, TreeTip},
            sqlite::SqliteBackend,
        },
    },
};
use std::collections::HashMap;

use accessgrant::transparency::{Checkpoint, Hash, NodeKey, merkle};
use chrono::{DateTime, Duration, Utc};
use common::{Backend as Which, backend, migrated_store, t0};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

/// The backend under test, behind the trait.
enum Under {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

impl Backend for Under {
    async fn begin(&mut self) -> Result<(), Error> {
        match self {
            Under::Sqlite(b) => b.begin().await,
            Under::Postgres(b) => b.begin().await,
        }
    }

    async fn load(&mut self, keys: &Keys, now: DateTime<Utc>) -> Result<Loaded, Error> {
        match self {
            Under::Sqlite(b) => b.load(keys, now).await,
            Under::Postgres(b) => b.load(keys, now).await,
        }
    }

    async fn tree_tip(&mut self) -> Result<TreeTip, Error> {
        match self {
            Under::Sqlite(b) => b.tree_tip().await,
            Under::Postgres(b) => b.tree_tip().await,
        }
    }

    async fn tree_nodes(&mut self, keys: &[NodeKey]) -> Result<HashMap<NodeKey, Hash>, Error> {
        match self {
            Under::Sqlite(b) => b.tree_nodes(keys).await,
            Under::Postgres(b) => b.tree_nodes(keys).await,
        }
    }

    async fn latest_checkpoint(&mut self, origin: &str) -> Result<Option<CheckpointRow>, Error> {
        match self {
            Under::Sqlite(b) => b.latest_checkpoint(origin).await,
            Under::Postgres(b) => b.latest_checkpoint(origin).await,
        }
    }

    async fn write(&mut self, changes: &Changes) -> Result<(), Error> {
        match self {
            Under::Sqlite(b) => b.write(changes).await,
            Under::Postgres(b) => b.write(changes).await,
        }
    }

    async fn commit(&mut self) -> Result<(), Error> {
        match self {
            Under::Sqlite(b) => b.commit().await,
            Under::Postgres(b) => b.commit().await,
        }
    }

    async fn rollback(&mut self) {
        match self {
            Under::Sqlite(b) => b.rollback().await,
            Under::Postgres(b) => b.rollback().await,
        }
    }
}

/// A fresh, migrated database with the backend the loop would run on it.
struct Db {
    store: Store,
    backend: Under,
    _dir: tempfile::TempDir,
}

impl Db {
    async fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, url) = migrated_store(dir.path()).await;
        let backend = match backend() {
            Which::Sqlite => {
                let path = sqlite_file::path_of(&url).expect("a SQLite file URL");
                Under::Sqlite(SqliteBackend::open(&path, store.clone()).unwrap())
            }
            Which::Postgres => Under::Postgres(PostgresBackend::new(store.clone())),
        };
        Self {
            store,
            backend,
            _dir: dir,
        }
    }

    /// Writes `changes` in a transaction of their own and commits.
    async fn commit(&mut self, changes: &Changes) {
        self.backend.begin().await.unwrap();
        self.backend.write(changes).await.unwrap();
        self.backend.commit().await.unwrap();
    }

    /// Loads `keys` at `now` in a transaction of its own (rolled back: nothing to write).
    async fn load(&mut self, keys: &Keys, now: DateTime<Utc>) -> Loaded {
        self.backend.begin().await.unwrap();
        let loaded = self.backend.load(keys, now).await.unwrap();
        self.backend.rollback().await;
        loaded
    }

    /// The stored event rows of `account`, in sequence order.
    async fn events(&self, account: &str) -> Vec<audit_event::Model> {
        audit_event::Entity::find()
            .filter(audit_event::Column::AccountId.eq(account))
            .order_by_asc(audit_event::Column::Sequence)
            .all(self.store.reader())
            .await
            .unwrap()
    }

    async fn event_count(&self) -> u64 {
        audit_event::Entity::find()
            .count(self.store.reader())
            .await
            .unwrap()
    }
}

fn account(id: &str, plan: Plan, at: DateTime<Utc>) -> Account {
    Account {
        account_id: AccountId::parse(id, "account_id").unwrap(),
        plan,
        create_time: at,
        update_time: at,
        delete_time: None,
    }
}

/// A grant enabled at `at` for one week, with a recorded lapse marker.
fn enabled_grant(at: DateTime<Utc>) -> GrantRow {
    GrantRow {
        record: GrantRecord {
            enabled: true,
            duration: Some(AccessDuration::OneWeek),
            enable_time: Some(at),
            expire_time: AccessDuration::OneWeek.expire_time(at),
            update_time: at,
            update_user_id: "ada".into(),
            version: 2,
            policy: AccessPolicy::default(),
        },
        expiry_recorded_us: Some(to_us(at - Duration::days(3))),
    }
}

fn initial_grant(at: DateTime<Utc>) -> GrantRow {
    GrantRow {
        record: GrantRecord::initial(at),
        expiry_recorded_us: None,
    }
}

fn assumption(
    id: &str,
    account: &str,
    basis: Basis,
    start: DateTime<Utc>,
    expire: DateTime<Utc>,
) -> Assumption {
    Assumption {
        assumption_id: id.into(),
        account_id: account.into(),
        staff_id: "sam".into(),
        ticket_id: format!("ticket-{id}"),
        access_request_id: None,
        basis,
        start_time: start,
        expire_time: expire,
        end_time: None,
        end_reason: None,
    }
}

/// Events `first..first+n` of `account`, chained off `prev` (any bytes do for storage).
fn events(account: &str, first: i64, n: i64, prev: &[u8], at: DateTime<Utc>) -> Vec<EventRow> {
    let mut prev = prev.to_vec();
    (first..first + n)
        .map(|sequence| {
            let hash = format!("hash-{account}-{sequence}").into_bytes();
            let (actor_type, actor_value) = EventActor::System.parts();
            let e = EventRow {
                event_id: uuid::Uuid::now_v7().to_string(),
                account_id: account.into(),
                sequence,
                occur_time_us: to_us(at) + sequence,
                kind: EventKind::AccountCreated.as_str().into(),
                actor_type: actor_type.into(),
                actor_value: actor_value.into(),
                detail_json: format!("{{\"n\":{sequence}}}"),
                request_id: format!("req-{sequence}"),
                prev_hash: prev.clone(),
                hash: hash.clone(),
                leaf_index: sequence - 1,
            };
            prev = hash;
            e
        })
        .collect()
}

fn head_after(events: &[EventRow]) -> ChainHead {
    let last = events.last().unwrap();
    ChainHead {
        last_sequence: last.sequence,
        last_hash: last.hash.clone(),
        last_occur_time_us: last.occur_time_us,
    }
}

fn response(scope: &str, request_id: &str, at: DateTime<Utc>) -> ResponseRow {
    ResponseRow {
        scope: scope.into(),
        request_id: request_id.into(),
        response: StoredResponse {
            fingerprint: format!("fp-{request_id}"),
            response_json: format!("{{\"answer\":\"{request_id}\"}}"),
        },
        create_time_us: to_us(at),
    }
}

/// Everything one transaction may write for `id`: account, grant, an open grant-based
/// assumption, two chained events with their head, a stored response.
fn full_changes(id: &str, now: DateTime<Utc>) -> (Changes, Assumption) {
    let grant = enabled_grant(now - Duration::hours(1));
    let open = assumption(
        &format!("{id}-a1"),
        id,
        Basis::CustomerGrant,
        now,
        grant.record.expire_time.unwrap(),
    );
    let evs = events(id, 1, 2, &GENESIS_HASH, now);
    let changes = Changes {
        accounts: vec![account(id, Plan::Paid, now - Duration::days(2))],
        grants: vec![(id.into(), grant)],
        new_assumptions: vec![open.clone()],
        heads: vec![(id.into(), head_after(&evs))],
        events: evs,
        responses: vec![response("EnableAccessGrant", &format!("{id}-r1"), now)],
        ..Changes::default()
    };
    (changes, open)
}

/// Keys announcing everything [`full_changes`] writes for `id`.
fn full_keys(id: &str) -> Keys {
    let mut keys = Keys::default();
    keys.account_with_assumptions(id);
    keys.assumption(&format!("{id}-a1"));
    keys.response("EnableAccessGrant", &format!("{id}-r1"));
    keys
}

fn assert_nothing_loaded(loaded: &Loaded) {
    assert!(loaded.accounts.is_empty(), "{:?}", loaded.accounts);
    assert!(loaded.heads.is_empty(), "{:?}", loaded.heads);
    assert!(
        loaded.open_assumptions.is_empty(),
        "{:?}",
        loaded.open_assumptions
    );
    assert!(loaded.assumptions.is_empty(), "{:?}", loaded.assumptions);
    assert!(
        loaded.access_requests.is_empty(),
        "{:?}",
        loaded.access_requests
    );
    assert!(loaded.responses.is_empty(), "{:?}", loaded.responses);
}

fn ids(assumptions: &[Assumption]) -> Vec<&str> {
    let mut ids: Vec<&str> = assumptions
        .iter()
        .map(|a| a.assumption_id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

/// Rows announced but never written load as absent, without an error.
#[tokio::test]
async fn announced_but_missing_rows_load_as_absent() {
    let mut db = Db::fresh().await;
    let mut keys = full_keys("ghost");
    keys.account("other-ghost");
    keys.access_request("no-such-request");
    keys.account_with_requests("ghost");
    let loaded = db.load(&keys, t0()).await;
    assert_nothing_loaded(&loaded);
}

/// What one transaction writes (account, grant, assumption, events, head, response) loads back identically in the next.
#[tokio::test]
async fn what_a_transaction_writes_loads_back_identically() {
    let mut db = Db::fresh().await;
    let now = t0();
    let (changes, open) = full_changes("acme", now);
    db.commit(&changes).await;

    let loaded = db.load(&full_keys("acme"), now).await;
    assert_eq!(
        loaded.accounts,
        vec![(changes.accounts[0].clone(), changes.grants[0].1.clone())]
    );
    assert_eq!(loaded.heads, changes.heads);
    assert_eq!(loaded.open_assumptions, vec![open.clone()]);
    assert_eq!(loaded.assumptions, vec![open.clone()]);
    let r = &changes.responses[0];
    assert_eq!(
        loaded.responses,
        vec![((r.scope.clone(), r.request_id.clone()), r.response.clone())]
    );

    let stored = db.events("acme").await;
    assert_eq!(stored.len(), changes.events.len());
    for (s, e) in stored.iter().zip(&changes.events) {
        let back = EventRow {
            event_id: s.event_id.clone(),
            account_id: s.account_id.clone(),
            sequence: s.sequence,
            occur_time_us: s.occur_time_us,
            kind: s.kind.clone(),
            actor_type: s.actor_type.clone(),
            actor_value: s.actor_value.clone(),
            detail_json: s.detail_json.clone(),
            request_id: s.request_id.clone(),
            prev_hash: s.prev_hash.clone(),
            hash: s.hash.clone(),
            leaf_index: s.leaf_index,
        };
        assert_eq!(&back, e);
    }
    assert!(
        stored[0].global_position < stored[1].global_position,
        "global positions follow append order"
    );
    let ticket = assumption_entity::Entity::find_by_id(open.assumption_id.clone())
        .one(db.store.reader())
        .await
        .unwrap()
        .unwrap()
        .ticket_id;
    assert_eq!(ticket, "ticket-acme-a1");
}

/// A rolled-back transaction leaves nothing behind, and the backend serves the next one.
#[tokio::test]
async fn rollback_leaves_nothing() {
    let mut db = Db::fresh().await;
    let now = t0();
    let (changes, _) = full_changes("acme", now);
    db.backend.begin().await.unwrap();
    db.backend.write(&changes).await.unwrap();
    db.backend.rollback().await;

    assert_nothing_loaded(&db.load(&full_keys("acme"), now).await);
    assert_eq!(db.event_count().await, 0);

    db.commit(&changes).await;
    assert_eq!(db.load(&full_keys("acme"), now).await.accounts.len(), 1);
}

/// An assumption announced by id brings its account, grant and chain head, as if announced.
#[tokio::test]
async fn an_announced_assumption_brings_its_account_and_head() {
    let mut db = Db::fresh().await;
    let now = t0();
    let (changes, open) = full_changes("acme", now);
    db.commit(&changes).await;
    // Another account, not named by the assumption: not loaded.
    let (other, _) = full_changes("other", now);
    db.commit(&other).await;

    let mut keys = Keys::default();
    keys.assumption(&open.assumption_id);
    let loaded = db.load(&keys, now).await;
    assert_eq!(loaded.assumptions, vec![open]);
    assert_eq!(
        loaded.accounts,
        vec![(changes.accounts[0].clone(), changes.grants[0].1.clone())]
    );
    assert_eq!(loaded.heads, changes.heads);
    assert!(loaded.open_assumptions.is_empty());
}

/// Open assumptions: in force at `now`, or grant-based and ending exactly with the grant's period; never expired, ended, or another account's.
#[tokio::test]
async fn open_assumptions_are_those_in_force_or_ending_with_the_grant() {
    let mut db = Db::fresh().await;
    let now = t0();
    // The grant's period ended an hour ago (a lapse not yet recorded).
    let grant_end = now - Duration::hours(1);
    let mut grant = enabled_grant(grant_end - Duration::days(7));
    grant.record.expire_time = Some(grant_end);
    let start = now - Duration::hours(5);
    let a = |id: &str, basis, expire| assumption(id, "acme", basis, start, expire);
    let mut ended = a("ended", Basis::Emergency, now + Duration::hours(1));
    ended.end_time = Some(now - Duration::minutes(1));
    ended.end_reason = Some(EndReason::Ended);
    let mut revoked_with_grant = a("revoked-with-grant", Basis::CustomerGrant, grant_end);
    revoked_with_grant.end_time = Some(grant_end - Duration::minutes(1));
    revoked_with_grant.end_reason = Some(EndReason::Revoked);
    let all = vec![
        a("in-force", Basis::Emergency, now + Duration::minutes(30)),
        a("with-grant", Basis::CustomerGrant, grant_end),
        a("expired", Basis::Emergency, now - Duration::minutes(30)),
        a("expires-now", Basis::TrialAccount, now),
        a("emergency-at-grant-end", Basis::Emergency, grant_end),
        a(
            "grant-based-earlier",
            Basis::CustomerGrant,
            grant_end - Duration::minutes(1),
        ),
        ended,
        revoked_with_grant,
        assumption(
            "elsewhere",
            "other",
            Basis::Emergency,
            start,
            now + Duration::hours(1),
        ),
    ];
    db.commit(&Changes {
        accounts: vec![
            account("acme", Plan::Paid, start),
            account("other", Plan::Paid, start),
        ],
        grants: vec![
            ("acme".into(), grant),
            ("other".into(), initial_grant(start)),
        ],
        new_assumptions: all.clone(),
        ..Changes::default()
    })
    .await;

    let mut keys = Keys::default();
    keys.account_with_assumptions("acme");
    let loaded = db.load(&keys, now).await;
    assert_eq!(
        ids(&loaded.open_assumptions),
        vec!["in-force", "with-grant"]
    );
    let with_grant = all
        .iter()
        .find(|a| a.assumption_id == "with-grant")
        .unwrap();
    assert!(loaded.open_assumptions.contains(with_grant));
}

/// Changed assumptions (a revoke, a cap) are updated in place; other fields are kept.
#[tokio::test]
async fn changed_assumptions_are_updated() {
    let mut db = Db::fresh().await;
    let now = t0();
    let start = now - Duration::hours(1);
    let first = assumption(
        "one",
        "acme",
        Basis::Emergency,
        start,
        now + Duration::hours(1),
    );
    let second = assumption(
        "two",
        "acme",
        Basis::CustomerGrant,
        start,
        now + Duration::hours(6),
    );
    let third = assumption(
        "three",
        "acme",
        Basis::CustomerGrant,
        start,
        now + Duration::hours(6),
    );
    db.commit(&Changes {
        accounts: vec![account("acme", Plan::Paid, start)],
        grants: vec![("acme".into(), enabled_grant(start))],
        new_assumptions: vec![first.clone(), second.clone(), third.clone()],
        ..Changes::default()
    })
    .await;

    let revoked = Assumption {
        end_time: Some(now),
        end_reason: Some(EndReason::Revoked),
        ..first.clone()
    };
    let capped = Assumption {
        expire_time: now + Duration::hours(2),
        ..second.clone()
    };
    let capped_too = Assumption {
        expire_time: now + Duration::hours(2),
        ..third.clone()
    };
    db.commit(&Changes {
        changed_assumptions: vec![revoked.clone(), capped.clone(), capped_too.clone()],
        ..Changes::default()
    })
    .await;

    let mut keys = Keys::default();
    for id in ["one", "two", "three"] {
        keys.assumption(id);
    }
    keys.account_with_assumptions("acme");
    let loaded = db.load(&keys, now).await;
    let mut by_id = loaded.assumptions.clone();
    by_id.sort_by(|a, b| a.assumption_id.cmp(&b.assumption_id));
    assert_eq!(by_id, vec![revoked, capped_too.clone(), capped.clone()]);
    assert_eq!(ids(&loaded.open_assumptions), vec!["three", "two"]);
}

/// Changing an assumption that is not stored fails as damaged state, on every backend.
#[tokio::test]
async fn changing_a_missing_assumption_is_damage() {
    let mut db = Db::fresh().await;
    let now = t0();
    db.backend.begin().await.unwrap();
    let missing = assumption(
        "gone",
        "acme",
        Basis::Emergency,
        now,
        now + Duration::hours(1),
    );
    let failed = db
        .backend
        .write(&Changes {
            changed_assumptions: vec![missing],
            ..Changes::default()
        })
        .await;
    db.backend.rollback().await;
    assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
}

/// Account and grant rows are replaced whole (upsert), nullable columns and the lapse marker included.
#[tokio::test]
async fn account_and_grant_rows_are_replaced() {
    let mut db = Db::fresh().await;
    let now = t0();
    let created = account("acme", Plan::Trial, now - Duration::days(3));
    db.commit(&Changes {
        accounts: vec![created.clone()],
        grants: vec![("acme".into(), initial_grant(created.create_time))],
        ..Changes::default()
    })
    .await;

    let converted = Account {
        plan: Plan::Paid,
        update_time: now - Duration::days(1),
        ..created.clone()
    };
    let enabled = enabled_grant(now - Duration::days(1));
    assert!(enabled.expiry_recorded_us.is_some());
    db.commit(&Changes {
        accounts: vec![converted.clone()],
        grants: vec![("acme".into(), enabled.clone())],
        ..Changes::default()
    })
    .await;
    let mut keys = Keys::default();
    keys.account("acme");
    assert_eq!(
        db.load(&keys, now).await.accounts,
        vec![(converted.clone(), enabled.clone())]
    );

    // Back to null columns: disabled, no period, no marker; the account deleted.
    let deleted = Account {
        update_time: now,
        delete_time: Some(now),
        ..converted
    };
    let off = GrantRow {
        record: GrantRecord {
            enabled: false,
            expire_time: None,
            update_time: now,
            version: enabled.record.version + 1,
            ..enabled.record.clone()
        },
        expiry_recorded_us: None,
    };
    db.commit(&Changes {
        accounts: vec![deleted.clone()],
        grants: vec![("acme".into(), off.clone())],
        ..Changes::default()
    })
    .await;
    assert_eq!(db.load(&keys, now).await.accounts, vec![(deleted, off)]);
}

/// Pruning deletes the responses created strictly before the cutoff, and only those.
#[tokio::test]
async fn pruning_deletes_only_older_responses() {
    let mut db = Db::fresh().await;
    let now = t0();
    let cutoff = now - Duration::hours(1);
    let older = response("UpsertAccount", "older", cutoff - Duration::microseconds(1));
    let at_cutoff = response("UpsertAccount", "at-cutoff", cutoff);
    let newer = response("UpsertAccount", "newer", now);
    db.commit(&Changes {
        responses: vec![older, at_cutoff.clone(), newer.clone()],
        ..Changes::default()
    })
    .await;
    db.commit(&Changes {
        prune_responses_before: Some(to_us(cutoff)),
        ..Changes::default()
    })
    .await;

    let mut keys = Keys::default();
    for id in ["older", "at-cutoff", "newer"] {
        keys.response("UpsertAccount", id);
    }
    let mut kept: Vec<String> = db
        .load(&keys, now)
        .await
        .responses
        .into_iter()
        .map(|((_, id), r)| {
            let expected = if id == "newer" { &newer } else { &at_cutoff };
            assert_eq!(r, expected.response);
            id
        })
        .collect();
    kept.sort();
    assert_eq!(kept, vec!["at-cutoff", "newer"]);
}

/// An event whose (account, sequence) is already stored makes `write` fail as damaged state, and nothing of its transaction stays.
#[tokio::test]
async fn a_colliding_event_is_damage_and_leaves_nothing() {
    let mut db = Db::fresh().await;
    let now = t0();
    let (changes, _) = full_changes("acme", now);
    db.commit(&changes).await;
    let before = db.load(&full_keys("acme"), now).await;

    // A transaction that changes the account first, then appends at a taken sequence.
    let later = now + Duration::minutes(5);
    let head = &changes.heads[0].1;
    let colliding = events("acme", head.last_sequence, 1, &head.last_hash, later);
    let newcomer = assumption(
        "newcomer",
        "acme",
        Basis::Emergency,
        later,
        later + Duration::hours(1),
    );
    let damaged = Changes {
        accounts: vec![Account {
            update_time: later,
            delete_time: Some(later),
            ..changes.accounts[0].clone()
        }],
        grants: vec![("acme".into(), initial_grant(later))],
        new_assumptions: vec![newcomer],
        heads: vec![("acme".into(), head_after(&colliding))],
        events: colliding,
        responses: vec![response("DeleteAccount", "acme-r2", later)],
        ..Changes::default()
    };
    db.backend.begin().await.unwrap();
    let failed = db.backend.write(&damaged).await;
    db.backend.rollback().await;
    assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");

    let mut keys = full_keys("acme");
    keys.assumption("newcomer");
    keys.response("DeleteAccount", "acme-r2");
    let after = db.load(&keys, later).await;
    assert_eq!(after.accounts, before.accounts);
    assert_eq!(after.heads, before.heads);
    assert_eq!(after.assumptions, before.assumptions);
    assert_eq!(after.responses, before.responses);
    let stored = db.events("acme").await;
    assert_eq!(
        stored.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
        changes
            .events
            .iter()
            .map(|e| &e.event_id)
            .collect::<Vec<_>>()
    );

    // The backend is usable again after the failed transaction.
    let next = events("acme", head.last_sequence + 1, 1, &head.last_hash, later);
    db.commit(&Changes {
        heads: vec![("acme".into(), head_after(&next))],
        events: next,
        ..Changes::default()
    })
    .await;
    assert_eq!(db.events("acme").await.len(), 3);
}

/// Tree nodes, the tree's head and checkpoints written through a backend read back through
/// it: the head as written, nodes by key (absent ones left out), and the latest checkpoint is
/// the origin's largest.
#[tokio::test]
async fn tree_nodes_and_checkpoints_round_trip() {
    let mut db = Db::fresh().await;
    db.backend.begin().await.unwrap();
    assert_eq!(db.backend.tree_tip().await.unwrap(), TreeTip::default());
    assert_eq!(db.backend.latest_checkpoint("o").await.unwrap(), None);
    db.backend.rollback().await;

    let leaves: Vec<Vec<u8>> = (0..11_u8).map(|i| vec![i; 32]).collect();
    let slices: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
    let appended = merkle::append(0, &[], &slices).unwrap();
    let checkpoint = |size: u64| CheckpointRow {
        checkpoint: Checkpoint {
            origin: "o".into(),
            size,
            root: [size as u8; 32],
        },
        note: format!("note {size}"),
        sign_time_us: size as i64,
    };
    let changes = Changes {
        tree_nodes: appended.nodes.clone(),
        tree_tip: Some(TreeTip {
            size: 11,
            frontier: appended.frontier.clone(),
        }),
        checkpoints: vec![checkpoint(3), checkpoint(11)],
        ..Changes::default()
    };
    db.commit(&changes).await;

    db.backend.begin().await.unwrap();
    let tip = db.backend.tree_tip().await.unwrap();
    assert_eq!((tip.size, tip.frontier.len()), (11, 3));
    assert_eq!(tip.frontier, appended.frontier);
    let mut keys: Vec<NodeKey> = appended.nodes.iter().map(|(k, _)| *k).collect();
    keys.push(NodeKey { level: 4, index: 0 });
    let nodes = db.backend.tree_nodes(&keys).await.unwrap();
    assert_eq!(
        nodes,
        appended.nodes.iter().copied().collect::<HashMap<_, _>>()
    );
    assert_eq!(
        db.backend.latest_checkpoint("o").await.unwrap(),
        Some(checkpoint(11))
    );
    assert_eq!(db.backend.latest_checkpoint("other").await.unwrap(), None);
    db.backend.rollback().await;
}
