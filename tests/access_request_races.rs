//! Per-request approval through the real server, part three: the races between using a
//! request and taking it away (revoke, cancel, disable, delete), an approval or a creation
//! racing a disable, and replicas deciding on every acknowledged change. No ALLOW is ever
//! answered after the change that ended the request was acknowledged.

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration as StdDuration,
};

use accessgrant::{audit::EventKind, proto::v1 as pb};
use chrono::Duration;
use common::{requests::*, *};
use pb::{AccessDuration as D, access_request::State as R, assumption::State as A};
use tonic::Code;

/// What takes an approved request away in [`authorize_race`].
#[derive(Clone, Copy, Debug)]
enum Closer {
    /// `RevokeAccessRequest` by a customer admin.
    Revoke,
    /// `CancelAccessRequest` by support.
    Cancel,
    /// `DisableAccessGrant` (the grant itself is off all along).
    Disable,
    /// `DeleteAccount`.
    Delete,
}

impl Closer {
    /// The kinds of the events the closing call writes.
    fn kinds(self) -> &'static [EventKind] {
        match self {
            Closer::Revoke => &[EventKind::AccessRequestRevoked],
            Closer::Cancel => &[EventKind::AccessRequestCancelled],
            // The grant was off: only the request's event (it names the assumptions).
            Closer::Disable => &[EventKind::AccessRequestRevoked],
            Closer::Delete => &[EventKind::AccessRequestRevoked, EventKind::AccountDeleted],
        }
    }

    /// The request's state once closed.
    fn state(self) -> R {
        match self {
            Closer::Cancel => R::Cancelled,
            _ => R::Revoked,
        }
    }

    /// Why decisions after the close are denied.
    fn deny_reason(self) -> pb::DenyReason {
        match self {
            Closer::Delete => pb::DenyReason::AccountNotFound,
            _ => pb::DenyReason::AccessRequestNotApproved,
        }
    }

    async fn close(self, s: &TestServer, account: &str, id: &str) {
        match self {
            Closer::Revoke => {
                s.revoke_request(id, admin("ada")).await.unwrap();
            }
            Closer::Cancel => {
                s.cancel_request(id).await.unwrap();
            }
            Closer::Disable => {
                s.disable(account).await.unwrap();
            }
            Closer::Delete => {
                s.accounts()
                    .delete_account(pb::DeleteAccountRequest {
                        account_id: account.into(),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
        }
    }
}

/// The race between using a request and taking it away: eight clients keep calling
/// `AuthorizeAssumption` on an approved request while `closer` ends it. Every ALLOW's event
/// precedes the closing events in the account's log and every DENY's follows them; every
/// assumption allowed reads REVOKED afterwards and is named by the closing events; no call
/// sent after the close was acknowledged is allowed.
async fn authorize_race(closer: Closer) {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let id = s
        .approved_request_for("acme", Duration::hours(8))
        .await
        .access_request_id;
    let acked = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let mut support = s.support();
        let acked = acked.clone();
        let id = id.clone();
        workers.push(tokio::spawn(async move {
            // (sent after the ack, decision, deny reason, assumption id, audit event id)
            let mut seen = Vec::new();
            let mut after_ack = 0;
            for _ in 0..400 {
                let sent_after_ack = acked.load(Ordering::SeqCst);
                let r = support
                    .authorize_assumption(authorize_with_request("acme", &id))
                    .await
                    .unwrap()
                    .into_inner();
                seen.push((
                    sent_after_ack,
                    r.decision(),
                    r.deny_reason(),
                    r.assumption.map(|a| a.assumption_id),
                    r.audit_event_id,
                ));
                if sent_after_ack {
                    after_ack += 1;
                    if after_ack >= 5 {
                        break;
                    }
                }
            }
            seen
        }));
    }
    // Let some calls through before closing.
    for _ in 0..200 {
        if s.events_of_kind("acme", EventKind::AssumptionAllowed)
            .await
            .len()
            >= 8
        {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    closer.close(&s, "acme", &id).await;
    acked.store(true, Ordering::SeqCst);
    assert_eq!(s.access_request(&id).await.state(), closer.state());
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.unwrap());
    }

    let events = s.events("acme").await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1, "gap-free sequence");
    }
    let closing: Vec<_> = events
        .iter()
        .filter(|e| closer.kinds().contains(&e.kind))
        .collect();
    assert_eq!(
        closing.iter().map(|e| e.kind).collect::<Vec<_>>(),
        closer.kinds(),
        "{closer:?}"
    );
    let (first, last) = (closing[0].sequence, closing[closing.len() - 1].sequence);
    assert_eq!(
        last - first + 1,
        closing.len() as i64,
        "one transaction's events are contiguous"
    );
    let seq_of: HashMap<&str, i64> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.sequence))
        .collect();
    let mut allowed = BTreeSet::new();
    let (mut allows, mut denies, mut sent_after) = (0, 0, 0);
    for (sent_after_ack, decision, deny_reason, assumption, event_id) in &results {
        let seq = seq_of[event_id.as_str()];
        if *sent_after_ack {
            sent_after += 1;
        }
        match decision {
            pb::Decision::Allow => {
                allows += 1;
                assert!(
                    !sent_after_ack,
                    "{closer:?}: ALLOW for a call sent after the close was acknowledged"
                );
                assert!(
                    seq < first,
                    "{closer:?}: ALLOW at {seq} after the close at {first}"
                );
                allowed.insert(assumption.clone().unwrap());
            }
            pb::Decision::Deny => {
                denies += 1;
                assert_eq!(*deny_reason, closer.deny_reason(), "{closer:?}");
                assert!(
                    seq > last,
                    "{closer:?}: DENY at {seq} before the close at {last}"
                );
            }
            other => panic!("unexpected decision {other:?}"),
        }
    }
    eprintln!(
        "{closer:?}: allowed {allows}, denied {denies}, sent after the close's ack {sent_after}"
    );
    assert!(
        allows > 0,
        "some calls must have been allowed before the close"
    );
    assert!(
        denies > 0 && sent_after > 0,
        "some calls must follow the close"
    );
    for a in &allowed {
        assert_eq!(s.assumption(a).await.state(), A::Revoked, "{closer:?}: {a}");
    }
    let mut named = BTreeSet::new();
    for e in &closing {
        if let Some(ids) = detail(e)["revoked_assumption_ids"].as_array() {
            for i in ids {
                assert!(
                    named.insert(i.as_str().unwrap().to_owned()),
                    "{closer:?}: {i} named twice"
                );
            }
        }
    }
    assert_eq!(
        named, allowed,
        "{closer:?}: the closing events name exactly the assumptions it ended"
    );
    let store = accessgrant::storage::Store::connect(&s.database_url)
        .await
        .unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "acme")
        .await
        .unwrap();
    assert!(v.intact());
}

/// [`authorize_race`] against `RevokeAccessRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_its_revocation() {
    authorize_race(Closer::Revoke).await;
}

/// [`authorize_race`] against `CancelAccessRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_its_cancellation() {
    authorize_race(Closer::Cancel).await;
}

/// [`authorize_race`] against `DisableAccessGrant` on a grant that is off all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_a_disable() {
    authorize_race(Closer::Disable).await;
}

/// [`authorize_race`] against `DeleteAccount`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_allow_on_a_request_after_the_account_is_deleted() {
    authorize_race(Closer::Delete).await;
}

/// The race between approving and disabling: whichever commits first, a request is never
/// left APPROVED once the disable is acknowledged (approved then revoked, or revoked while
/// pending so the approval is refused), and an approval event never follows the revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_stays_approved_after_a_racing_disable() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let (mut approved_first, mut refused) = (0, 0);
    for round in 0..15 {
        let ids: Vec<String> = {
            let mut ids = Vec::new();
            for _ in 0..4 {
                ids.push(s.pending_request("acme").await.access_request_id);
            }
            ids
        };
        let approvals: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut client = s.requests();
                let id = id.clone();
                tokio::spawn(async move {
                    client
                        .approve_access_request(pb::ApproveAccessRequestRequest {
                            access_request_id: id,
                            actor: Some(admin("ada")),
                            ..Default::default()
                        })
                        .await
                })
            })
            .collect();
        // Vary who tends to win: disable at once, or give the approvals a head start.
        match round % 3 {
            0 => {}
            1 => tokio::time::sleep(StdDuration::from_millis(1)).await,
            _ => tokio::time::sleep(StdDuration::from_millis(4)).await,
        }
        s.disable("acme").await.unwrap();
        // The disable is acknowledged: none of the requests may read APPROVED from now on.
        for id in &ids {
            assert_eq!(
                s.access_request(id).await.state(),
                R::Revoked,
                "round {round}"
            );
        }
        for a in approvals {
            match a.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.into_inner().access_request.unwrap().state(), R::Approved);
                    approved_first += 1;
                }
                Err(status) => {
                    assert_error(
                        &status,
                        Code::FailedPrecondition,
                        "ACCESS_REQUEST_NOT_PENDING",
                    );
                    refused += 1;
                }
            }
        }
        for id in &ids {
            assert_eq!(
                s.access_request(id).await.state(),
                R::Revoked,
                "round {round}"
            );
            assert_eq!(
                s.authorize_on("acme", id).await.deny_reason(),
                pb::DenyReason::AccessRequestNotApproved
            );
        }
    }
    eprintln!("approved before the disable: {approved_first}, refused after it: {refused}");
    // In the log, each request's approval (if any) precedes its revocation.
    let events = s.events("acme").await;
    let mut revoked_at: HashMap<String, i64> = HashMap::new();
    for e in &events {
        let id = detail(e)["access_request_id"].as_str().map(str::to_owned);
        match (e.kind, id) {
            (EventKind::AccessRequestRevoked, Some(id)) => {
                assert!(revoked_at.insert(id, e.sequence).is_none(), "revoked twice");
            }
            (EventKind::AccessRequestApproved, Some(id)) => {
                assert!(
                    !revoked_at.contains_key(&id),
                    "approval of {id} at {} after its revocation",
                    e.sequence
                );
            }
            _ => {}
        }
    }
    assert_eq!(revoked_at.len(), 60);
}

/// The race between asking and disabling: a request whose `ACCESS_REQUEST_CREATED` precedes a
/// `GRANT_DISABLED` in the log was revoked by it; one created after the last disable is still
/// pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disable_revokes_every_request_created_before_it() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let mut ids = Vec::new();
    for round in 0..12 {
        // Enabled, so that every disable writes GRANT_DISABLED.
        s.enable("acme", D::Indefinite).await.unwrap();
        // Vary the order the calls leave in: creates first, the disable first, or both at once.
        let mut grants = s.grants();
        let disable = async move {
            if round % 3 == 0 {
                tokio::time::sleep(StdDuration::from_millis(1)).await;
            }
            grants
                .disable_access_grant(pb::DisableAccessGrantRequest {
                    account_id: "acme".into(),
                    actor: Some(support_admin()),
                    etag: String::new(),
                    request_id: String::new(),
                })
                .await
                .unwrap();
        };
        let disable = tokio::spawn(disable);
        if round % 3 == 1 {
            tokio::time::sleep(StdDuration::from_millis(1)).await;
        }
        let creates: Vec<_> = (0..4)
            .map(|_| {
                let mut client = s.requests();
                tokio::spawn(async move { client.create_access_request(new_request("acme")).await })
            })
            .collect();
        disable.await.unwrap();
        for c in creates {
            let r = c
                .await
                .unwrap()
                .unwrap()
                .into_inner()
                .access_request
                .unwrap();
            ids.push(r.access_request_id);
        }
    }
    let events = s.events("acme").await;
    let disables: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::GrantDisabled)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(disables.len(), 12);
    let created_at: HashMap<String, i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::AccessRequestCreated)
        .map(|e| {
            (
                detail(e)["access_request_id"].as_str().unwrap().to_owned(),
                e.sequence,
            )
        })
        .collect();
    let (mut revoked, mut pending) = (0, 0);
    for id in &ids {
        let created = created_at[id];
        let state = s.access_request(id).await.state();
        if disables.iter().any(|d| *d > created) {
            assert_eq!(state, R::Revoked, "{id} created at {created}");
            revoked += 1;
        } else {
            assert_eq!(state, R::Pending, "{id} created at {created}");
            pending += 1;
        }
    }
    eprintln!("revoked by a later disable: {revoked}, created after the last one: {pending}");
}

/// Several replicas on one PostgreSQL database: every change acknowledged by one is what the
/// others read and decide on at once (no cache may hide a review, a revocation or a policy
/// change).
#[tokio::test]
async fn replicas_read_and_decide_on_every_acknowledged_change() {
    if postgres_only("replicas_read_and_decide_on_every_acknowledged_change") {
        return;
    }
    let a = spawn_server().await;
    let b = spawn_replica(&a, |_| {}).await;
    a.create_account("acme", pb::AccountPlan::Paid).await;
    // The policy is read on the other replica right after the update.
    assert_eq!(b.policy("acme").await.required_approvals, 1);
    a.require_approvals("acme", 2).await;
    assert_eq!(b.policy("acme").await.required_approvals, 2);
    let id = b.pending_request("acme").await.access_request_id;
    assert_eq!(a.access_request(&id).await.required_approvals, 2);
    a.approve(&id, admin("ada")).await.unwrap();
    assert_eq!(b.access_request(&id).await.reviews.len(), 1);
    let status = b.approve(&id, admin("ada")).await.unwrap_err();
    assert_error(&status, Code::FailedPrecondition, "ALREADY_REVIEWED");
    assert_eq!(
        a.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
    b.approve(&id, admin("bob")).await.unwrap();
    assert_eq!(a.access_request(&id).await.state(), R::Approved);
    let allowed = a.authorize_on("acme", &id).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow);
    let assumption = allowed.assumption.unwrap().assumption_id;
    assert_eq!(
        b.all_assumptions("acme", &[A::Active], 0).await[0].assumption_id,
        assumption
    );
    b.revoke_request(&id, admin("ada")).await.unwrap();
    assert_eq!(a.assumption(&assumption).await.state(), A::Revoked);
    assert_eq!(
        a.all_requests("acme", &[R::Revoked], 0).await[0].access_request_id,
        id
    );
    assert_eq!(
        a.authorize_on("acme", &id).await.deny_reason(),
        pb::DenyReason::AccessRequestNotApproved
    );
    // Switched off on one replica, refused on the other.
    b.update_policy(
        pb::AccessPolicy {
            account_id: "acme".into(),
            access_requests_enabled: false,
            ..Default::default()
        },
        &["access_requests_enabled"],
    )
    .await
    .unwrap();
    let status = a.create_request(new_request("acme")).await.unwrap_err();
    assert_error(
        &status,
        Code::FailedPrecondition,
        "ACCESS_REQUESTS_DISABLED",
    );
}
