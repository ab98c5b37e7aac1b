//! Reads of the audit log: pages, positions, and chain verification. Events are appended
//! only by the write loop (`storage::write::Draft::append`), with the change they record.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{
    Store,
    entities::{audit_chain_head, audit_event},
    from_us, to_us_ceil,
};
use crate::{
    audit::{
        AuditEvent, EventActor, EventKind,
        chain::{ChainVerifier, Verification},
    },
    domain::Error,
};
// The filter is an audit-model value (transport builds it without importing storage); named
// here too so the readers of this module's `page` keep their path.
pub use crate::audit::EventFilter;

/// Decodes a stored row. A row that cannot be decoded (edited by hand) is an error.
pub fn to_domain(m: audit_event::Model) -> Result<AuditEvent, Error> {
    Ok(AuditEvent {
        kind: EventKind::from_str_name(&m.kind)
            .ok_or_else(|| Error::Internal(format!("stored event kind {:?}", m.kind)))?,
        actor: EventActor::from_parts(&m.actor_type, &m.actor_value)
            .ok_or_else(|| Error::Internal(format!("stored actor type {:?}", m.actor_type)))?,
        occur_time: from_us(m.occur_time_us)?,
        global_position: m.global_position,
        leaf_index: m.leaf_index,
        event_id: m.event_id,
        account_id: m.account_id,
        sequence: m.sequence,
        detail_json: m.detail_json,
        request_id: m.request_id,
        prev_hash: m.prev_hash,
        hash: m.hash,
    })
}

/// Rows read per round trip while verifying, so memory stays bounded on long chains.
const VERIFY_BATCH: u64 = 1_000;

/// Verifies one account's chain, streaming its events in commit order. The head and the
/// events are read in one snapshot, so appends committed meanwhile are not mistaken for
/// tampering.
pub async fn verify(store: &Store, account_id: &str) -> Result<Verification, Error> {
    let txn = store.begin_snapshot().await?;
    let head = audit_chain_head::Entity::find_by_id(account_id.to_owned())
        .one(&txn)
        .await?;
    let mut verifier = ChainVerifier::new(head.map(|h| (h.last_sequence, h.last_hash)));
    // Page by global position (commit order), not by sequence, so that a duplicated or
    // reordered sequence is still read and flagged rather than skipped.
    let mut after_position = 0_i64;
    'pages: loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::AccountId.eq(account_id))
            .filter(audit_event::Column::GlobalPosition.gt(after_position))
            .order_by_asc(audit_event::Column::GlobalPosition)
            .limit(VERIFY_BATCH)
            .all(&txn)
            .await;
        let rows = match page {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            // A row of this page does not even decode (text that is not UTF-8): find it, so
            // it is reported as the broken event rather than as an outage.
            Err(e) if super::is_undecodable(&e) => {
                rows_one_by_one(&txn, account_id, after_position).await?
            }
            Err(e) => return Err(e.into()),
        };
        let Some(last) = rows.last() else { break };
        after_position = match last {
            Ok(row) => row.global_position,
            Err((position, _)) => *position,
        };
        for row in rows {
            let ok = match row.map(|r| (r.event_id.clone(), to_domain(r))) {
                Ok((_, Ok(event))) => verifier.push(&event),
                Ok((event_id, Err(_))) | Err((_, event_id)) => {
                    verifier.push_undecodable(event_id);
                    false
                }
            };
            if !ok {
                break 'pages;
            }
        }
    }
    txn.commit().await?;
    Ok(verifier.finish())
}

/// The page of `verify` after `after_position`, read row by row: each row decoded, or its
/// `(global_position, event_id)` when it does not decode. Only for a page that failed to
/// decode as a whole.
async fn rows_one_by_one(
    txn: &sea_orm::DatabaseTransaction,
    account_id: &str,
    after_position: i64,
) -> Result<Vec<Result<audit_event::Model, (i64, String)>>, Error> {
    let keys: Vec<(i64, String)> = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::GlobalPosition)
        .column(audit_event::Column::EventId)
        .filter(audit_event::Column::AccountId.eq(account_id))
        .filter(audit_event::Column::GlobalPosition.gt(after_position))
        .order_by_asc(audit_event::Column::GlobalPosition)
        .limit(VERIFY_BATCH)
        .into_tuple()
        .all(txn)
        .await?;
    let mut rows = Vec::with_capacity(keys.len());
    for (position, event_id) in keys {
        match audit_event::Entity::find_by_id(position).one(txn).await {
            Ok(Some(row)) => rows.push(Ok(row)),
            Ok(None) => {}
            Err(e) if super::is_undecodable(&e) => rows.push(Err((position, event_id))),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rows)
}

/// Every account that has or should have an audit chain, for offline verification of the
/// whole database: those with a chain head, those with events, **and** every provisioned
/// account (its creation is an event, so it must have a log). Listing heads alone would let
/// one deleted head row hide an account's whole log from the check.
pub async fn chain_accounts(db: &impl ConnectionTrait) -> Result<Vec<String>, Error> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT account_id FROM audit_chain_heads \
             UNION SELECT DISTINCT account_id FROM audit_events \
             UNION SELECT account_id FROM accounts \
             ORDER BY account_id",
        ))
        .await?;
    rows.into_iter()
        .map(|row| row.try_get_by_index::<String>(0).map_err(Error::from))
        .collect()
}

/// One account's events in sequence order (oldest first), up to `limit`.
pub async fn events_of(
    db: &impl ConnectionTrait,
    account_id: &str,
    limit: u64,
) -> Result<Vec<AuditEvent>, Error> {
    audit_event::Entity::find()
        .filter(audit_event::Column::AccountId.eq(account_id))
        .order_by_asc(audit_event::Column::Sequence)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// One page of an account's events, newest first: those with a sequence below
/// `before_sequence` (all when `None`) that match `filter`, at most `limit`. Keyset paging on
/// the `(account_id, sequence)` index: the cost of a page does not grow with its depth. A
/// time range becomes a sequence range first ([`first_sequence_at`]), so a narrow range deep
/// in a long log is found without scanning the events after it.
pub async fn page(
    db: &impl ConnectionTrait,
    account_id: &str,
    filter: &EventFilter,
    before_sequence: Option<i64>,
    limit: u64,
) -> Result<Vec<AuditEvent>, Error> {
    let mut query =
        audit_event::Entity::find().filter(audit_event::Column::AccountId.eq(account_id));
    if let Some(before) = before_sequence {
        query = query.filter(audit_event::Column::Sequence.lt(before));
    }
    if !filter.kinds.is_empty() {
        query =
            query.filter(audit_event::Column::Kind.is_in(filter.kinds.iter().map(|k| k.as_str())));
    }
    // Stored times are whole microseconds; a bound with a fraction of one rounds up, so
    // "at or after start" and "before end" stay exact. The time conditions stay next to the
    // sequence bounds they imply: they cost nothing on the rows in range.
    if let Some(start) = filter.start_time {
        let start_us = to_us_ceil(start);
        let first = first_sequence_at(db, account_id, start_us).await?;
        query = query
            .filter(audit_event::Column::Sequence.gte(first))
            .filter(audit_event::Column::OccurTimeUs.gte(start_us));
    }
    if let Some(end) = filter.end_time {
        let end_us = to_us_ceil(end);
        let past_end = first_sequence_at(db, account_id, end_us).await?;
        query = query
            .filter(audit_event::Column::Sequence.lt(past_end))
            .filter(audit_event::Column::OccurTimeUs.lt(end_us));
    }
    query
        .order_by_desc(audit_event::Column::Sequence)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// The smallest sequence of the account's events at or after `time_us` (one past the last
/// event when none is). Binary search over `(account_id, sequence)`: ~log₂(events) halvings
/// of a few index probes each, in one statement. There is no time index — it cost every
/// append one more random page to write — because appends never give an event a time below
/// its predecessor's ([`append`]), so sequence order is time order.
pub async fn first_sequence_at(
    db: &impl ConnectionTrait,
    account_id: &str,
    time_us: i64,
) -> Result<i64, Error> {
    let last = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::Sequence)
        .column(audit_event::Column::OccurTimeUs)
        .filter(audit_event::Column::AccountId.eq(account_id))
        .order_by_desc(audit_event::Column::Sequence)
        .limit(1)
        .into_tuple::<(i64, i64)>()
        .one(db)
        .await?;
    let last = match last {
        None => return Ok(1),
        // The usual "up to now" bound: past the whole log, no search.
        Some((last, last_time_us)) if last_time_us < time_us => return Ok(last.saturating_add(1)),
        Some((last, _)) => last,
    };
    binary_search_sequence(db, account_id, time_us, last).await
}

/// The search of [`first_sequence_at`] as one recursive query, so it costs one round trip
/// rather than one per probe. Each step probes the first event at or after the middle of
/// `[low, high)` (`>=` rather than `=`, so gaps in sequences cannot mislead it): before
/// `time_us` moves `low` past it, otherwise `high` comes down to the middle. Invariant: every
/// event below `low` is before `time_us`, none at or after `high` is.
async fn binary_search_sequence(
    db: &impl ConnectionTrait,
    account_id: &str,
    time_us: i64,
    last: i64,
) -> Result<i64, Error> {
    use sea_orm::{DbBackend, Statement, Value};
    let backend = db.get_database_backend();
    let (account, time, end) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?1", "?2", "?3"),
    };
    let probe = |column: &str| {
        format!(
            "(SELECT {column} FROM audit_events WHERE account_id = {account} \
             AND sequence >= low + (high - low) / 2 ORDER BY sequence LIMIT 1)"
        )
    };
    let (probe_time, probe_sequence) = (probe("occur_time_us"), probe("sequence"));
    let sql = format!(
        "WITH RECURSIVE search(low, high) AS (\
         SELECT CAST(1 AS BIGINT), CAST({end} AS BIGINT) \
         UNION ALL SELECT \
         CASE WHEN {probe_time} < {time} THEN {probe_sequence} + 1 ELSE low END, \
         CASE WHEN {probe_time} < {time} THEN high ELSE low + (high - low) / 2 END \
         FROM search WHERE low < high) \
         SELECT MAX(low) FROM search"
    );
    let values = vec![
        Value::from(account_id),
        Value::from(time_us),
        Value::from(last.saturating_add(1)),
    ];
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| Error::Internal("time search returned no row".into()))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Events after `after_position` in global commit order, for one account or all, at most
/// `limit`.
pub async fn after_position(
    db: &impl ConnectionTrait,
    account_id: Option<&str>,
    after_position: i64,
    limit: u64,
) -> Result<Vec<AuditEvent>, Error> {
    let mut query =
        audit_event::Entity::find().filter(audit_event::Column::GlobalPosition.gt(after_position));
    if let Some(account) = account_id {
        query = query.filter(audit_event::Column::AccountId.eq(account));
    }
    query
        .order_by_asc(audit_event::Column::GlobalPosition)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// The position of the newest committed event, 0 for an empty log. Positions only grow in a
/// database's life, so a watcher's position above it comes from another history.
pub async fn last_position(db: &impl ConnectionTrait) -> Result<i64, Error> {
    Ok(audit_event::Entity::find()
        .select_only()
        .column_as(audit_event::Column::GlobalPosition.max(), "last")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten()
        .unwrap_or(0))
}

/// True when the account has an audit chain (any event was ever recorded for it).
pub async fn has_chain(db: &impl ConnectionTrait, account_id: &str) -> Result<bool, Error> {
    let head = audit_chain_head::Entity::find_by_id(account_id.to_owned())
        .one(db)
        .await?;
    if head.is_some() {
        return Ok(true);
    }
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::AccountId.eq(account_id))
        .one(db)
        .await?
        .is_some())
}
