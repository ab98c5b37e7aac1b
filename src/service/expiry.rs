//! Auditing lapsed grants and requests: `GRANT_EXPIRED` is recorded exactly once per lapsed
//! period (the rule is [`super::commands::lapse`]), `ACCESS_REQUEST_EXPIRED` once per pending
//! request that lapsed unreviewed (`commands::access_request::RecordRequestLapse`).
//!
//! Nothing reads these events to decide anything: a grant's effective state is computed from
//! its `expire_time` at read time, so a lapsed grant denies at once whether or not the sweep
//! has run. The sweep only makes the lapse visible in the customer's audit log. Every replica
//! runs it; the claim inside the write transaction makes each lapse recorded once.

use super::{
    App,
    commands::{access_request::RecordRequestLapse, lapse::RecordLapse},
};
use crate::{
    domain::{Error, ids::AccountId},
    storage::{access_requests, grants},
};

/// Most lapses one sweep round submits (they commit together, as one batch).
const SWEEP_BATCH: u64 = 200;
/// Most rounds per sweep (so a sweep records at most 10,000 lapses; a backlog, e.g. after
/// downtime, drains over the next sweeps).
const SWEEP_ROUNDS: usize = 50;

impl App {
    /// One sweep: records the lapse of every grant whose period ended and is not audited yet.
    /// Returns how many lapses this replica recorded.
    ///
    /// Each lapse is a command of its own, submitted together so they share a transaction;
    /// an account whose lapse cannot be written because its stored state is damaged (a
    /// deleted chain head) fails alone (the write loop's retry), is logged and counted, and
    /// the rounds move on from a cursor, so it does not come back before the next sweep. A
    /// storage failure (the database is down, the disk is full) ends the sweep; the next tick
    /// retries.
    pub async fn sweep_expired_grants(&self) -> Result<usize, Error> {
        let mut recorded = 0;
        let mut cursor = None;
        for _ in 0..SWEEP_ROUNDS {
            let due = grants::unrecorded_lapses(
                self.store.reader(),
                self.clock.now(),
                cursor.as_ref(),
                SWEEP_BATCH,
            )
            .await?;
            let full = due.len() as u64 == SWEEP_BATCH;
            cursor = due.last().cloned();
            let outcomes = futures::future::join_all(due.into_iter().map(
                |(account_id, expire_time_us)| async move {
                    let lapse = RecordLapse {
                        account_id,
                        expire_time_us,
                    };
                    let account_id = lapse.account_id.clone();
                    (account_id, self.write(lapse, None).await)
                },
            ))
            .await;
            let mut unavailable = None;
            for (account_id, outcome) in outcomes {
                match outcome {
                    Ok(true) => recorded += 1,
                    Ok(false) => {}
                    Err(e) => {
                        metrics::counter!(crate::metrics::EXPIRY_SWEEP_FAILURES).increment(1);
                        if matches!(e, Error::Storage(_)) {
                            unavailable = Some(e);
                        } else {
                            tracing::warn!(error = %e, account_id, "cannot record this grant's lapse; other accounts go on");
                        }
                    }
                }
            }
            if let Some(e) = unavailable {
                return Err(e);
            }
            if !full {
                break;
            }
        }
        Ok(recorded + self.sweep_lapsed_requests().await?)
    }

    /// Records `ACCESS_REQUEST_EXPIRED` once for every pending request that lapsed without
    /// its reviews, and refreshes the pending gauge. Same shape as the grants' sweep: each
    /// lapse a command of its own, claimed inside the write transaction (so several replicas
    /// record it once), rounds moving on from a cursor.
    async fn sweep_lapsed_requests(&self) -> Result<usize, Error> {
        let mut recorded = 0;
        let mut cursor: Option<String> = None;
        for _ in 0..SWEEP_ROUNDS {
            let due = access_requests::lapsed_pending(
                self.store.reader(),
                self.clock.now(),
                cursor.as_deref(),
                SWEEP_BATCH,
            )
            .await?;
            let full = due.len() as u64 == SWEEP_BATCH;
            cursor = due.last().map(|(id, _)| id.clone());
            let outcomes = futures::future::join_all(due.into_iter().map(
                |(access_request_id, account_id)| async move {
                    let account_id = AccountId::parse(&account_id, "account_id").map_err(|_| {
                        Error::Internal(format!("stored account id {account_id:?}"))
                    })?;
                    let lapse = RecordRequestLapse {
                        access_request_id,
                        account_id,
                    };
                    self.write(lapse, None).await
                },
            ))
            .await;
            for outcome in outcomes {
                match outcome {
                    Ok(true) => recorded += 1,
                    Ok(false) => {}
                    Err(e @ Error::Storage(_)) => {
                        metrics::counter!(crate::metrics::EXPIRY_SWEEP_FAILURES).increment(1);
                        return Err(e);
                    }
                    Err(e) => {
                        metrics::counter!(crate::metrics::EXPIRY_SWEEP_FAILURES).increment(1);
                        tracing::warn!(error = %e, "cannot record this request's lapse; others go on");
                    }
                }
            }
            if !full {
                break;
            }
        }
        let pending = access_requests::count_pending(self.store.reader(), self.clock.now()).await?;
        metrics::gauge!(crate::metrics::ACCESS_REQUESTS_PENDING).set(pending as f64);
        Ok(recorded)
    }
}
