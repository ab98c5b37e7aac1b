//! Auditing lapsed grants: `GRANT_EXPIRED` is recorded exactly once per lapsed period.
//!
//! Nothing reads these events to decide anything: a grant's effective state is computed from
//! its `expire_time` at read time, so a lapsed grant denies at once whether or not the sweep
//! has run. The sweep only makes the lapse visible in the customer's audit log.
//!
//! Every replica runs the sweep. Exactly-once comes from the database, not from electing a
//! leader: a lapse is *claimed* by a conditional update of the grant row
//! ([`grants::claim_lapse`]) inside the same write transaction as its event, so of several
//! replicas (or a sweep racing an admin's change) exactly one claim changes the row and
//! writes the event; the others see zero rows and write nothing. A grant change also records
//! a pending lapse first, so the log never shows a re-enable without the expiry before it.

use serde_json::json;

use super::App;
use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{Error, grant::GrantRecord, ids::AccountId},
    storage::{accounts, assumptions, audit_log, batch::Batch, from_us, grants, to_us},
};

/// Most lapses recorded by one sweep transaction.
const SWEEP_BATCH: u64 = 200;
/// Most sweep transactions per tick (so a tick records at most 10,000 lapses).
const SWEEP_ROUNDS: usize = 50;

impl App {
    /// One sweep: records the lapse of every grant whose period ended and is not audited yet,
    /// `SWEEP_BATCH` (200) per transaction, at most `SWEEP_ROUNDS` (50) transactions (a backlog,
    /// e.g. after downtime, drains over the next sweeps). Returns how many lapses this replica
    /// recorded.
    ///
    /// Accounts whose lapse cannot be written because their stored state is damaged (a
    /// deleted chain head: `Error::Internal`) fail alone, however many there are: a batch that
    /// fails that way is retried one lapse per transaction, and the rounds move on from a
    /// cursor, so those lapses do not come back before the next sweep. A storage failure
    /// (`Error::Storage`: the database is down, the disk is full) ends the sweep at once; the
    /// next tick retries.
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
            if due.is_empty() {
                break;
            }
            recorded += match self.record_lapses(due.clone()).await {
                Ok(n) => n,
                Err(e) => match due.as_slice() {
                    [(account_id, _)] => {
                        lapse_failed(e, account_id)?;
                        0
                    }
                    _ => {
                        metrics::counter!(crate::metrics::EXPIRY_SWEEP_FAILURES).increment(1);
                        if matches!(e, Error::Storage(_)) {
                            return Err(e);
                        }
                        tracing::warn!(error = %e, lapses = due.len(), "expiry sweep transaction failed; recording its lapses one by one");
                        self.record_lapses_one_by_one(due).await?
                    }
                },
            };
            if !full {
                break;
            }
        }
        Ok(recorded)
    }

    /// Records each lapse in a write job of its own, logging and counting those that fail
    /// (damaged accounts); a storage failure ends it (see [`Self::sweep_expired_grants`]).
    async fn record_lapses_one_by_one(&self, due: Vec<(String, i64)>) -> Result<usize, Error> {
        let mut recorded = 0;
        for lapse in due {
            let account_id = lapse.0.clone();
            match self.record_lapses(vec![lapse]).await {
                Ok(n) => recorded += n,
                Err(e) => lapse_failed(e, &account_id)?,
            }
        }
        Ok(recorded)
    }

    /// Records the given lapses in one write job; those claimed meanwhile (by another replica
    /// or a grant change) are skipped.
    async fn record_lapses(&self, due: Vec<(String, i64)>) -> Result<usize, Error> {
        self.write(None, move |batch, now| {
            Box::pin(async move {
                let mut recorded = 0;
                for (account_id, expire_time_us) in due {
                    let id = AccountId::parse(&account_id, "account_id").map_err(|_| {
                        Error::Internal(format!("stored account id {account_id:?}"))
                    })?;
                    if record_lapse(batch, &id, expire_time_us, now).await? {
                        recorded += 1;
                    }
                }
                Ok(recorded)
            })
        })
        .await
    }
}

/// One account's lapse could not be written: counted; a storage failure is passed on (it
/// ends the sweep), anything else is damage to that account, logged so the others go on.
fn lapse_failed(e: Error, account_id: &str) -> Result<(), Error> {
    metrics::counter!(crate::metrics::EXPIRY_SWEEP_FAILURES).increment(1);
    if matches!(e, Error::Storage(_)) {
        return Err(e);
    }
    tracing::warn!(error = %e, account_id, "cannot record this grant's lapse; other accounts go on");
    Ok(())
}

/// Before changing a grant: if its period has lapsed and no sweep recorded that yet, record
/// it now, so `GRANT_EXPIRED` precedes the change in the account's log.
pub(crate) async fn record_pending_lapse(
    batch: &Batch<'_>,
    account_id: &AccountId,
    record: &GrantRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    if let (true, Some(end)) = (record.enabled, record.expire_time)
        && end <= now
    {
        record_lapse(batch, account_id, to_us(end), now).await?;
    }
    Ok(())
}

/// Claims the lapse of the period ending at `expire_time_us` and writes its event. False when
/// there was nothing to claim (already recorded, or the grant changed meanwhile).
async fn record_lapse(
    batch: &Batch<'_>,
    account_id: &AccountId,
    expire_time_us: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, Error> {
    let txn = batch.conn().await?;
    if !grants::claim_lapse(txn, account_id.as_str(), expire_time_us, now).await? {
        return Ok(false);
    }
    // A deleted account's grant is moot: mark the lapse handled, write nothing after the
    // account's deletion event.
    let open = accounts::find(txn, account_id)
        .await?
        .is_some_and(|a| !a.is_deleted());
    if !open {
        return Ok(false);
    }
    let end = from_us(expire_time_us)?;
    // Grant-based assumptions were capped to the grant's end, so they ran out with it; their
    // state already reads EXPIRED. Name them so the customer sees what the lapse ended.
    let expired = assumptions::lapsed_with_grant(txn, account_id.as_str(), end).await?;
    audit_log::append(
        batch,
        NewEvent {
            account_id: account_id.clone(),
            kind: EventKind::GrantExpired,
            actor: EventActor::System,
            detail: json!({
                "expire_time": format_time(end),
                "expired_assumption_ids": expired,
            }),
            request_id: None,
        },
        now,
    )
    .await?;
    Ok(true)
}
