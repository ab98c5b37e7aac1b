//! The SQLite connection that writes **decision batches**: a plain SQLite connection on a
//! thread of its own, with prepared statements kept for its lifetime.
//!
//! Why not the pool: every statement through sqlx-sqlite is a hop to the connection's worker
//! thread and back to the async writer task. On two busy cores each hop waits for a
//! scheduler slot (0.3–1.5 ms measured), and a batch is a dozen statements, so the writer sat
//! idle between statements while decisions queued. Here a batch is **two** hops: one to begin
//! and read what its jobs announced, one to write their buffered rows and commit. Everything
//! in between (the decisions, hashing, JSON) runs on the writer task against the batch's
//! in-memory state ([`super::batch::Batch::detached`]).
//!
//! Only batch-only jobs (assumption decisions, which announce their account and request id)
//! come here; other changes use the pool's writer connection. The async writer runs one batch
//! at a time and holds the store's write lock, so transactions of the two connections never
//! overlap. Durability is the same: WAL with `synchronous=FULL`, the commit returns once the
//! WAL is on disk, and only then is anyone answered.

use std::{
    path::Path,
    sync::mpsc::{self, Receiver, Sender},
};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    batch::{HeadRow, Prefetched, ResponseRow, Rows},
    grants::{AccountGrantRow, JOINED_SELECT},
};
use crate::domain::Error;

/// Page cache of the connection, in KiB (negative `cache_size`), as for the pool's writer.
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

/// What the connection's thread is asked to do.
enum Command {
    /// `BEGIN IMMEDIATE`, then read the announced accounts and request ids.
    Begin {
        accounts: Vec<String>,
        requests: Vec<(&'static str, String)>,
        reply: oneshot::Sender<Result<Prefetched, Error>>,
    },
    /// Write the rows and commit (or roll back on failure).
    Commit {
        rows: Rows,
        reply: oneshot::Sender<Result<(), WriteFailure>>,
    },
    /// Roll back the open transaction.
    Rollback { reply: oneshot::Sender<()> },
}

/// Handle to the decision connection's thread. Dropping every handle stops the thread and
/// closes the connection.
#[derive(Debug)]
pub struct DecisionConnection {
    commands: Sender<Command>,
}

impl DecisionConnection {
    /// Opens the database file on a new thread.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open(path).map_err(storage)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
             PRAGMA cache_size = -{CACHE_SIZE_KIB};"
        ))
        .map_err(storage)?;
        let (commands, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("accessgrant-sqlite-decisions".into())
            .spawn(move || serve(conn, rx))
            .map_err(|e| Error::Storage(format!("starting the decision writer: {e}")))?;
        Ok(Self { commands })
    }

    /// Begins the batch transaction and reads what the jobs announced.
    pub(crate) async fn begin(
        &self,
        accounts: Vec<String>,
        requests: Vec<(&'static str, String)>,
    ) -> Result<Prefetched, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Begin {
            accounts,
            requests,
            reply,
        })?;
        answer.await.map_err(|_| stopped())?
    }

    /// Writes the batch's rows and commits.
    pub(crate) async fn commit(&self, rows: Rows) -> Result<(), WriteFailure> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Commit { rows, reply })
            .map_err(WriteFailure::Commit)?;
        answer.await.map_err(|_| WriteFailure::Commit(stopped()))?
    }

    /// Rolls the open transaction back.
    pub(crate) async fn rollback(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send(Command::Rollback { reply }).is_ok() {
            let _ = answer.await;
        }
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::Storage("the decision writer has stopped".into())
}

fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

/// The thread: one command at a time, until every handle is gone.
fn serve(conn: Connection, commands: Receiver<Command>) {
    for command in commands {
        match command {
            Command::Begin {
                accounts,
                requests,
                reply,
            } => {
                let result = begin(&conn, &accounts, &requests);
                if result.is_err() {
                    roll_back(&conn);
                }
                let _ = reply.send(result);
            }
            Command::Commit { rows, reply } => {
                let result = write(&conn, &rows)
                    .map_err(WriteFailure::Rows)
                    .and_then(|()| {
                        conn.execute_batch("COMMIT")
                            .map_err(|e| WriteFailure::Commit(storage(e)))
                    });
                if result.is_err() {
                    roll_back(&conn);
                }
                let _ = reply.send(result);
            }
            Command::Rollback { reply } => {
                roll_back(&conn);
                let _ = reply.send(());
            }
        }
    }
}

fn roll_back(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "rolling back a decision batch");
    }
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
            "SELECT last_sequence, last_hash FROM audit_chain_heads WHERE account_id = ?1",
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
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(storage)?;
        if let Some((last_sequence, last_hash)) = stored {
            found.heads.push(HeadRow {
                account_id: id.clone(),
                last_sequence,
                last_hash,
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
                "INSERT INTO audit_chain_heads (account_id, last_sequence, last_hash) \
                 VALUES (?1, ?2, ?3) ON CONFLICT (account_id) DO UPDATE SET \
                 last_sequence = excluded.last_sequence, last_hash = excluded.last_hash",
            )
            .map_err(storage)?;
        for h in &rows.heads {
            upsert
                .execute(params![h.account_id, h.last_sequence, h.last_hash])
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
