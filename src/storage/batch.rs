//! The group-commit transaction as its jobs see it: the open write transaction plus the rows
//! its jobs have **buffered** for set-based writes.
//!
//! A decision used to cost five to seven statements inside the batch transaction (grant read,
//! `request_id` lookup, assumption insert, chain-head read, event insert, chain-head update,
//! response insert), one after another. Each statement is a round trip: a channel hop to
//! sqlx's SQLite worker thread, or a network round trip to PostgreSQL, and the writer is
//! serial, so those round trips, not the disk, were what capped durable decisions. A batch
//! instead:
//!
//! - **reads up front** what its jobs announced (their accounts and `request_id`s) with one
//!   statement per table, before the first job runs;
//! - keeps **chain heads** in memory for the pass, so consecutive appends to one account
//!   chain off each other without reading the row back;
//! - **buffers** assumption, event, chain-head and stored-response rows and writes each kind
//!   with multi-row statements when the batch is flushed, just before commit.
//!
//! Buffered rows stay invisible to plain SQL until flushed, so any job that needs the
//! connection itself calls [`Batch::conn`], which flushes first (the statement then sees every
//! earlier job's writes, as if they had run alone) and forgets the prefetched account rows,
//! which such a job may change. The writer treats a failed flush as a failure it cannot pin on
//! one job: it rolls the pass back and re-runs the batch one job per savepoint, flushing after
//! each, so only the job whose rows fail is refused.
//!
//! On PostgreSQL every write transaction holds the write fence (see [`super::Store`]), so the
//! rows read up front cannot change under the batch: no other replica writes meanwhile.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard},
};

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    sea_query::OnConflict,
};

use super::{
    entities::{assumption, audit_chain_head, audit_event, idempotency_record},
    grants,
};
use crate::{
    audit::chain::GENESIS_HASH,
    domain::{Error, account::Account, grant::GrantRecord},
};

/// Rows per multi-row statement come in these sizes only, so a database's statement cache
/// holds a handful of shapes per table instead of one per batch size.
const CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// An account's chain head as the batch sees it.
#[derive(Debug, Clone)]
pub struct ChainHead {
    /// Sequence of the account's last event (0: none yet).
    pub last_sequence: i64,
    /// Hash of the account's last event (the genesis hash: none yet).
    pub last_hash: Vec<u8>,
    /// Time of the account's last event, in microseconds (0: none yet). The next event's
    /// time is never below it, so time ranges map to sequence ranges.
    pub last_occur_time_us: i64,
}

/// A response stored for a `request_id`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// SHA-256 of the request it answered.
    pub fingerprint: String,
    /// The response, as JSON.
    pub response_json: String,
}

/// A `request_id` within its RPC.
type IdemKey = (String, String);

/// What the batch knows and holds for this pass.
#[derive(Default)]
struct State {
    /// Chain heads read, prefetched or advanced in this pass.
    heads: HashMap<String, ChainHead>,
    /// Accounts whose head advanced since the last flush.
    moved_heads: Vec<String>,
    /// Events to insert, in append order (their global positions follow this order).
    events: Vec<EventRow>,
    /// Assumptions to insert.
    assumptions: Vec<AssumptionRow>,
    /// Responses known for request ids: prefetched (`None`: no record) or stored this pass.
    responses: HashMap<IdemKey, Option<StoredResponse>>,
    /// Responses to insert.
    new_responses: Vec<ResponseRow>,
    /// Accounts with grants read up front (`None`: no such account). Cleared whenever a job
    /// takes the connection, since it may change them.
    grants: HashMap<String, Option<(Account, GrantRecord)>>,
    /// A flush failed: the pass cannot tell which job's rows caused it.
    flush_failed: bool,
}

/// The batch transaction handed to write jobs.
pub struct Batch<'a> {
    /// The transaction (or, re-running one job at a time, the job's savepoint). `None` for a
    /// batch whose statements run elsewhere (the SQLite decision connection,
    /// [`super::sqlite_writer`]): its jobs may only use what was read up front and buffer.
    txn: Option<&'a DatabaseTransaction>,
    /// Buffers and prefetched rows. Never held across an `.await`.
    state: Mutex<State>,
}

impl<'a> Batch<'a> {
    /// A batch over an open transaction, with nothing read or buffered yet.
    pub(crate) fn new(txn: &'a DatabaseTransaction) -> Self {
        Self {
            txn: Some(txn),
            state: Mutex::new(State::default()),
        }
    }

    /// A batch without a connection: reads come only from [`Batch::install`], writes are
    /// taken with [`Batch::take_rows`] and written by the caller.
    pub(crate) fn detached() -> Batch<'static> {
        Batch {
            txn: None,
            state: Mutex::new(State::default()),
        }
    }

    /// The transaction, or the error a detached batch gives a job that needs one.
    fn txn(&self) -> Result<&'a DatabaseTransaction, Error> {
        self.txn.ok_or_else(|| {
            Error::Internal("a batch-only write job read something it had not announced".into())
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A job that panicked mid-update cannot leave the buffers half-changed in a way
        // that matters: the writer never commits a pass in which a job did not finish.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The transaction for statements the batch does not buffer. Everything buffered so far
    /// is written first, so the statement sees all earlier jobs' writes; prefetched account
    /// rows are forgotten, since the caller may change them.
    pub async fn conn(&self) -> Result<&'a DatabaseTransaction, Error> {
        let txn = self.txn()?;
        self.flush().await?;
        self.state().grants.clear();
        Ok(txn)
    }

    /// True once a flush failed in this pass.
    pub(crate) fn flush_failed(&self) -> bool {
        self.state().flush_failed
    }

    /// Reads, in one statement per table, what the batch's jobs announced: the accounts
    /// (with grants and chain heads) and the `(rpc, request_id)` keys they will look up.
    pub(crate) async fn prefetch(
        &self,
        accounts: &[&str],
        keys: &[(&'static str, &str)],
    ) -> Result<(), Error> {
        let txn = self.txn()?;
        let mut found = Prefetched::default();
        if !accounts.is_empty() {
            found.grants = grants::read_many_for_update(txn, accounts).await?;
            found.heads = audit_chain_head::Entity::find()
                .filter(audit_chain_head::Column::AccountId.is_in(accounts.iter().copied()))
                .all(txn)
                .await?
                .into_iter()
                .map(|h| HeadRow {
                    account_id: h.account_id,
                    last_sequence: h.last_sequence,
                    last_hash: h.last_hash,
                    last_occur_time_us: h.last_occur_time_us,
                })
                .collect();
        }
        let mut scopes: HashMap<&'static str, Vec<&str>> = HashMap::new();
        for (scope, request_id) in keys {
            scopes.entry(scope).or_default().push(request_id);
        }
        for (scope, ids) in scopes {
            let rows = idempotency_record::Entity::find()
                .filter(idempotency_record::Column::Scope.eq(scope))
                .filter(idempotency_record::Column::RequestId.is_in(ids.iter().copied()))
                .all(txn)
                .await?;
            found
                .responses
                .extend(rows.into_iter().map(|r| ResponseRow {
                    scope: r.scope,
                    request_id: r.request_id,
                    fingerprint: r.fingerprint,
                    response_json: r.response_json,
                    create_time_us: r.create_time_us,
                }));
        }
        self.install(accounts, keys, found);
        Ok(())
    }

    /// Takes in what was read for the announced `accounts` and `keys`: anything announced
    /// but not found is known to be absent.
    pub(crate) fn install(
        &self,
        accounts: &[&str],
        keys: &[(&'static str, &str)],
        found: Prefetched,
    ) {
        let mut state = self.state();
        for id in accounts {
            state.grants.insert((*id).to_owned(), None);
            state.heads.insert((*id).to_owned(), genesis());
        }
        for (account, grant) in found.grants {
            state.grants.insert(
                account.account_id.as_str().to_owned(),
                Some((account, grant)),
            );
        }
        for h in found.heads {
            let head = h.head();
            state.heads.insert(h.account_id, head);
        }
        for (scope, request_id) in keys {
            state
                .responses
                .insert(((*scope).to_owned(), (*request_id).to_owned()), None);
        }
        for r in found.responses {
            state.responses.insert(
                (r.scope, r.request_id),
                Some(StoredResponse {
                    fingerprint: r.fingerprint,
                    response_json: r.response_json,
                }),
            );
        }
    }

    /// An account with its grant, as of this point in the batch: from the prefetch when the
    /// account was announced and no job has taken the connection since, else read now (and
    /// on PostgreSQL locked).
    pub async fn account_with_grant(
        &self,
        id: &str,
    ) -> Result<Option<(Account, GrantRecord)>, Error> {
        if let Some(known) = self.state().grants.get(id) {
            return Ok(known.clone());
        }
        grants::read_for_update(self.txn()?, id).await
    }

    /// The account's chain head as of this point in the batch (buffered appends included).
    pub(crate) async fn chain_head(&self, account_id: &str) -> Result<ChainHead, Error> {
        if let Some(head) = self.state().heads.get(account_id) {
            return Ok(head.clone());
        }
        let stored = audit_chain_head::Entity::find_by_id(account_id.to_owned())
            .one(self.txn()?)
            .await?;
        let head = stored
            .map(|h| ChainHead {
                last_sequence: h.last_sequence,
                last_hash: h.last_hash,
                last_occur_time_us: h.last_occur_time_us,
            })
            .unwrap_or_else(genesis);
        self.state()
            .heads
            .insert(account_id.to_owned(), head.clone());
        Ok(head)
    }

    /// Buffers an event and moves its account's head to it.
    pub(crate) fn push_event(&self, event: EventRow) {
        let head = ChainHead {
            last_sequence: event.sequence,
            last_hash: event.hash.clone(),
            last_occur_time_us: event.occur_time_us,
        };
        let mut state = self.state();
        if !state.moved_heads.contains(&event.account_id) {
            state.moved_heads.push(event.account_id.clone());
        }
        state.heads.insert(event.account_id.clone(), head);
        state.events.push(event);
    }

    /// Buffers a new assumption.
    pub(crate) fn push_assumption(&self, row: AssumptionRow) {
        self.state().assumptions.push(row);
    }

    /// The response stored for `(scope, request_id)`, earlier in this batch or before.
    pub(crate) async fn stored_response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> Result<Option<StoredResponse>, Error> {
        let key = (scope.to_owned(), request_id.to_owned());
        if let Some(known) = self.state().responses.get(&key) {
            return Ok(known.clone());
        }
        let found = idempotency_record::Entity::find_by_id(key.clone())
            .one(self.txn()?)
            .await?
            .map(|r| StoredResponse {
                fingerprint: r.fingerprint,
                response_json: r.response_json,
            });
        self.state().responses.insert(key, found.clone());
        Ok(found)
    }

    /// Buffers a response for its `request_id`; later lookups in the batch see it.
    pub(crate) fn push_response(&self, row: ResponseRow) {
        let stored = StoredResponse {
            fingerprint: row.fingerprint.clone(),
            response_json: row.response_json.clone(),
        };
        let key = (row.scope.clone(), row.request_id.clone());
        let mut state = self.state();
        state.responses.insert(key, Some(stored));
        state.new_responses.push(row);
    }

    /// Takes every buffered row, for writing. The chain heads are those the events moved,
    /// as they stand after the last of them.
    pub(crate) fn take_rows(&self) -> Rows {
        let mut state = self.state();
        let moved = std::mem::take(&mut state.moved_heads);
        let heads = moved
            .into_iter()
            .filter_map(|account_id| {
                let head = state.heads.get(&account_id)?;
                Some(HeadRow {
                    last_sequence: head.last_sequence,
                    last_hash: head.last_hash.clone(),
                    last_occur_time_us: head.last_occur_time_us,
                    account_id,
                })
            })
            .collect();
        Rows {
            assumptions: std::mem::take(&mut state.assumptions),
            events: std::mem::take(&mut state.events),
            heads,
            responses: std::mem::take(&mut state.new_responses),
        }
    }

    /// Writes every buffered row: assumptions, events (in append order), the chain heads they
    /// moved, stored responses. On failure the pass is marked failed; the writer rolls it
    /// back.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        let rows = self.take_rows();
        if rows.is_empty() {
            return Ok(());
        }
        let result = write_rows(self.txn()?, rows).await;
        if result.is_err() {
            self.state().flush_failed = true;
        }
        result
    }
}

/// Writes `rows` with multi-row statements.
async fn write_rows(txn: &DatabaseTransaction, rows: Rows) -> Result<(), Error> {
    for chunk in chunked(rows.assumptions) {
        let models = chunk.into_iter().map(|a| assumption::ActiveModel {
            assumption_id: Set(a.assumption_id),
            account_id: Set(a.account_id),
            staff_id: Set(a.staff_id),
            ticket_id: Set(a.ticket_id),
            basis: Set(a.basis),
            start_time_us: Set(a.start_time_us),
            expire_time_us: Set(a.expire_time_us),
            end_time_us: Set(a.end_time_us),
            end_reason: Set(a.end_reason),
        });
        assumption::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    for chunk in chunked(rows.events) {
        let models = chunk.into_iter().map(|e| audit_event::ActiveModel {
            global_position: NotSet,
            event_id: Set(e.event_id),
            account_id: Set(e.account_id),
            sequence: Set(e.sequence),
            occur_time_us: Set(e.occur_time_us),
            kind: Set(e.kind),
            actor_type: Set(e.actor_type),
            actor_value: Set(e.actor_value),
            detail_json: Set(e.detail_json),
            request_id: Set(e.request_id),
            prev_hash: Set(e.prev_hash),
            hash: Set(e.hash),
        });
        audit_event::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    for chunk in chunked(rows.heads) {
        let models = chunk.into_iter().map(|h| audit_chain_head::ActiveModel {
            account_id: Set(h.account_id),
            last_sequence: Set(h.last_sequence),
            last_hash: Set(h.last_hash),
            last_occur_time_us: Set(h.last_occur_time_us),
        });
        audit_chain_head::Entity::insert_many(models)
            .on_conflict(
                OnConflict::column(audit_chain_head::Column::AccountId)
                    .update_columns([
                        audit_chain_head::Column::LastSequence,
                        audit_chain_head::Column::LastHash,
                        audit_chain_head::Column::LastOccurTimeUs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    for chunk in chunked(rows.responses) {
        let models = chunk.into_iter().map(|r| idempotency_record::ActiveModel {
            scope: Set(r.scope),
            request_id: Set(r.request_id),
            fingerprint: Set(r.fingerprint),
            response_json: Set(r.response_json),
            create_time_us: Set(r.create_time_us),
        });
        idempotency_record::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// A new audit event row.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) event_id: String,
    pub(crate) account_id: String,
    pub(crate) sequence: i64,
    pub(crate) occur_time_us: i64,
    pub(crate) kind: String,
    pub(crate) actor_type: String,
    pub(crate) actor_value: String,
    pub(crate) detail_json: String,
    pub(crate) request_id: String,
    pub(crate) prev_hash: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

/// A new assumption row.
#[derive(Debug, Clone)]
pub(crate) struct AssumptionRow {
    pub(crate) assumption_id: String,
    pub(crate) account_id: String,
    pub(crate) staff_id: String,
    pub(crate) ticket_id: String,
    pub(crate) basis: String,
    pub(crate) start_time_us: i64,
    pub(crate) expire_time_us: i64,
    pub(crate) end_time_us: Option<i64>,
    pub(crate) end_reason: Option<String>,
}

/// A chain head row (new, or moved).
#[derive(Debug, Clone)]
pub(crate) struct HeadRow {
    pub(crate) account_id: String,
    pub(crate) last_sequence: i64,
    pub(crate) last_hash: Vec<u8>,
    pub(crate) last_occur_time_us: i64,
}

impl HeadRow {
    /// The head this row stores.
    fn head(&self) -> ChainHead {
        ChainHead {
            last_sequence: self.last_sequence,
            last_hash: self.last_hash.clone(),
            last_occur_time_us: self.last_occur_time_us,
        }
    }
}

/// A stored response row.
#[derive(Debug, Clone)]
pub(crate) struct ResponseRow {
    pub(crate) scope: String,
    pub(crate) request_id: String,
    pub(crate) fingerprint: String,
    pub(crate) response_json: String,
    pub(crate) create_time_us: i64,
}

/// Everything a batch buffered, in write order.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub(crate) assumptions: Vec<AssumptionRow>,
    pub(crate) events: Vec<EventRow>,
    pub(crate) heads: Vec<HeadRow>,
    pub(crate) responses: Vec<ResponseRow>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        self.assumptions.is_empty()
            && self.events.is_empty()
            && self.heads.is_empty()
            && self.responses.is_empty()
    }
}

/// What was read for a batch's announcements (absent rows are simply missing).
#[derive(Debug, Default)]
pub(crate) struct Prefetched {
    pub(crate) grants: Vec<(Account, GrantRecord)>,
    pub(crate) heads: Vec<HeadRow>,
    pub(crate) responses: Vec<ResponseRow>,
}

fn genesis() -> ChainHead {
    ChainHead {
        last_sequence: 0,
        last_hash: GENESIS_HASH.to_vec(),
        last_occur_time_us: 0,
    }
}

/// Splits `rows` (keeping their order) into chunks of the sizes in [`CHUNKS`].
fn chunked<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = rows.len();
    let mut taken = Vec::new();
    for size in CHUNKS {
        while rest >= size {
            taken.push(size);
            rest -= size;
        }
    }
    for size in taken {
        let tail = rows.split_off(size);
        out.push(std::mem::replace(&mut rows, tail));
    }
    out
}

/// The distinct accounts of a batch's announcements, in first-seen order.
pub(crate) fn distinct<'s>(ids: impl Iterator<Item = &'s str>) -> Vec<&'s str> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_order_and_use_few_sizes() {
        for n in [0_usize, 1, 2, 3, 7, 64, 127, 128, 129, 255, 256, 1000] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = chunked(rows);
            assert!(chunks.iter().all(|c| CHUNKS.contains(&c.len())), "{n}");
            let flat: Vec<usize> = chunks.into_iter().flatten().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn distinct_keeps_first_seen_order() {
        assert_eq!(
            distinct(["b", "a", "b", "c", "a"].into_iter()),
            vec!["b", "a", "c"]
        );
    }
}
