//! Reads never return a state older than an acknowledged write, even while other readers keep
//! (re)filling the SQLite read cache of accounts and grants concurrently. On PostgreSQL (no
//! cache) the same test checks plain read-your-writes.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use accessgrant::proto::v1::{self as pb, AccessDuration as D, access_grant::State};
use common::spawn_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_after_an_acknowledged_change_see_it_despite_racing_readers() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.create_account("other", pb::AccountPlan::Paid).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Readers fill the cache as fast as they can, racing every commit below.
    let readers: Vec<_> = (0..6)
        .map(|i| {
            let mut grants = s.grants();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut reads = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = if i % 2 == 0 { "acme" } else { "other" };
                    grants
                        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
                            account_ids: vec![id.into(), "acme".into()],
                        })
                        .await
                        .unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..60 {
        let enabled = s.enable("acme", D::OneWeek).await.unwrap();
        let got = s.grant("acme").await;
        assert_eq!(got.state(), State::Enabled, "round {round}");
        assert_eq!(got.etag, enabled.etag, "round {round}");
        let disabled = s.disable("acme").await.unwrap();
        let got = s.grant("acme").await;
        assert_eq!(got.state(), State::Disabled, "round {round}");
        assert_eq!(got.etag, disabled.etag, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap_or(0);
    }
    assert!(total > 100, "readers barely ran ({total} reads)");
    // Deletion is an account change: visible at once too (the cache holds "acme" now).
    assert_eq!(s.grant("acme").await.state(), State::Disabled);
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let status = s
        .grants()
        .get_access_grant(pb::GetAccessGrantRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap_err();
    common::assert_error(&status, tonic::Code::NotFound, "ACCOUNT_NOT_FOUND");
}
