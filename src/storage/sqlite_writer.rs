//! The SQLite connection that writes **decision batches**: a plain SQLite connection on a
//! thread of its own, with prepared statements kept for its lifetime.
//!
//! Why not the pool: every statement through sqlx-sqlite is a hop to the connection's worker
//! thread and back to the async writer task. On two busy cores each hop waits for a
//! scheduler slot (0.3–1.5 ms measured), and a batch was a dozen statements, so the writer
//! sat idle between statements while decisions queued. The SQLite writer instead runs on a
//! thread of its own ([`super::writer`]) and calls this connection directly: a decision batch
//! is `BEGIN IMMEDIATE`, a few point reads of what its jobs announced, the jobs against the
//! batch's memory (a detached `Batch`, see [`super::batch`]), prepared inserts, `COMMIT` —
//! with no hop in between.
//!
//! Only batch-only jobs (assumption decisions, which announce their account and request id)
//! come here; other changes use the pool's writer connection. The writer runs one batch at a
//! time and holds the store's write lock, so transactions of the two connections never
//! overlap. Durability is the same: WAL with `synchronous=FULL`, the commit returns once the
//! WAL is on disk, and only then is anyone answered.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    batch::{HeadRow, Prefetched, ResponseRow, Rows},
    grants::{AccountGrantRow, JOINED_SELECT},
};
use crate::domain::Error;

/// Page cache of the connection, in KiB (negative `cache_size`): the hot index pages of
/// every table a batch appends to stay in memory (SQLite's default is 2 MiB).
const CACHE_SIZE_KIB: i64 = 32_768;
/// How long a write waits for another process's write lock before failing.
const BUSY_TIMEOUT_MS: i64 = 5_000;

/// Why writing a batch failed.
#[derive(Debug)]
pub enum WriteFailure {
    /// A row was refused (the transaction is rolled back; no job can be blamed yet).
    Rows(Error),
    /// The commit itself failed: nothing of the batch is durable.
    Commit(Error),
}

/// The decision connection. Owned by the writer thread; every call blocks that thread.
#[derive(Debug)]
pub struct DecisionConnection {
    conn: Connection,
}

impl DecisionConnection {
    /// Opens the database file, which must exist: the pool created and migrated it. Never
    /// creating one means a path that does not name the pool's file fails here (and decisions
    /// fall back to the pool) instead of writing into a new, empty file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
             PRAGMA cache_size = -{CACHE_SIZE_KIB};"
        ))
        .map_err(storage)?;
        Ok(Self { conn })
    }

    /// `BEGIN IMMEDIATE`, then reads the announced accounts (with grants and chain heads) and
    /// request ids. On failure nothing stays open.
    pub(crate) fn begin(
        &self,
        accounts: &[String],
        requests: &[(&'static str, String)],
    ) -> Result<Prefetched, Error> {
        let result = begin(&self.conn, accounts, requests);
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Writes the rows and commits; on failure rolls back.
    pub(crate) fn commit(&self, rows: &Rows) -> Result<(), WriteFailure> {
        let result = write(&self.conn, rows)
            .map_err(WriteFailure::Rows)
            .and_then(|()| {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| WriteFailure::Commit(storage(e)))
            });
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Rolls back the open transaction, if any.
    pub(crate) fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a decision batch");
        }
    }
}

fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

fn begin(
    conn: &Connection,
    accounts: &[String],
    requests: &[(&'static str, String)],
) -> Result<Prefetched, Error> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
    let mut found = Prefetched::default();
    let mut grant = conn
        .prepare_cached(&format!("{JOINED_SELECT} WHERE a.account_id = ?1"))
        .map_err(storage)?;
    let mut head = conn
        .prepare_cached(
            "SELECT last_sequence, last_hash, last_occur_time_us FROM audit_chain_heads \
             WHERE account_id = ?1",
        )
        .map_err(storage)?;
    for id in accounts {
        let row = grant
            .query_row(params![id], |r| {
                Ok(AccountGrantRow {
                    account_id: r.get(0)?,
                    plan: r.get(1)?,
                    create_time_us: r.get(2)?,
                    update_time_us: r.get(3)?,
                    delete_time_us: r.get(4)?,
                    enabled: r.get(5)?,
                    duration: r.get(6)?,
                    enable_time_us: r.get(7)?,
                    expire_time_us: r.get(8)?,
                    grant_update_time_us: r.get(9)?,
                    update_user_id: r.get(10)?,
                    version: r.get(11)?,
                })
            })
            .optional()
            .map_err(storage)?;
        if let Some(row) = row {
            found.grants.push(row.into_domain()?);
        }
        let stored = head
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(storage)?;
        if let Some((last_sequence, last_hash, last_occur_time_us)) = stored {
            found.heads.push(HeadRow {
                account_id: id.clone(),
                last_sequence,
                last_hash,
                last_occur_time_us,
            });
        }
    }
    let mut response = conn
        .prepare_cached(
            "SELECT fingerprint, response_json, create_time_us FROM idempotency_records \
             WHERE scope = ?1 AND request_id = ?2",
        )
        .map_err(storage)?;
    for (scope, request_id) in requests {
        let stored = response
            .query_row(params![scope, request_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(storage)?;
        if let Some((fingerprint, response_json, create_time_us)) = stored {
            found.responses.push(ResponseRow {
                scope: (*scope).to_owned(),
                request_id: request_id.clone(),
                fingerprint,
                response_json,
                create_time_us,
            });
        }
    }
    Ok(found)
}

fn write(conn: &Connection, rows: &Rows) -> Result<(), Error> {
    if !rows.assumptions.is_empty() {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO assumptions (assumption_id, account_id, staff_id, ticket_id, basis, \
                 start_time_us, expire_time_us, end_time_us, end_reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(storage)?;
        for a in &rows.assumptions {
            insert
                .execute(params![
                    a.assumption_id,
                    a.account_id,
                    a.staff_id,
                    a.ticket_id,
                    a.basis,
                    a.start_time_us,
                    a.expire_time_us,
                    a.end_time_us,
                    a.end_reason,
                ])
                .map_err(storage)?;
        }
    }
    if !rows.events.is_empty() {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
                 actor_type, actor_value, detail_json, request_id, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(storage)?;
        // In append order: global positions follow it.
        for e in &rows.events {
            insert
                .execute(params![
                    e.event_id,
                    e.account_id,
                    e.sequence,
                    e.occur_time_us,
                    e.kind,
                    e.actor_type,
                    e.actor_value,
                    e.detail_json,
                    e.request_id,
                    e.prev_hash,
                    e.hash,
                ])
                .map_err(storage)?;
        }
    }
    if !rows.heads.is_empty() {
        let mut upsert = conn
            .prepare_cached(
                "INSERT INTO audit_chain_heads (account_id, last_sequence, last_hash, \
                 last_occur_time_us) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id) \
                 DO UPDATE SET last_sequence = excluded.last_sequence, \
                 last_hash = excluded.last_hash, \
                 last_occur_time_us = excluded.last_occur_time_us",
            )
            .map_err(storage)?;
        for h in &rows.heads {
            upsert
                .execute(params![
                    h.account_id,
                    h.last_sequence,
                    h.last_hash,
                    h.last_occur_time_us
                ])
                .map_err(storage)?;
        }
    }
    if !rows.responses.is_empty() {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO idempotency_records (scope, request_id, fingerprint, \
                 response_json, create_time_us) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(storage)?;
        for r in &rows.responses {
            insert
                .execute(params![
                    r.scope,
                    r.request_id,
                    r.fingerprint,
                    r.response_json,
                    r.create_time_us
                ])
                .map_err(storage)?;
        }
    }
    Ok(())
}
