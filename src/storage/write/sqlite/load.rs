//! Point reads of what a batch announced, with prepared statements.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    domain::{Error, access_request::RequestState, assumption::Basis},
    storage::{
        entities::{access_grant, access_request, account, assumption},
        grants::JOINED_SELECT,
        to_us,
        write::{
            columns,
            keys::{Keys, Loaded},
            rows::{ChainHead, StoredResponse},
        },
    },
};

const ASSUMPTION_COLUMNS: &str = "assumption_id, account_id, staff_id, ticket_id, basis, \
     start_time_us, expire_time_us, end_time_us, end_reason, access_request_id";

const REQUEST_COLUMNS: &str = "access_request_id, account_id, staff_id, ticket_id, reason, \
     reason_detail, requested_duration_us, status, reviews_json, required_approvals, \
     create_time_us, request_expire_time_us, approve_time_us, expire_time_us, update_time_us, \
     version";

fn request_model(r: &Row<'_>) -> rusqlite::Result<access_request::Model> {
    Ok(access_request::Model {
        access_request_id: r.get(0)?,
        account_id: r.get(1)?,
        staff_id: r.get(2)?,
        ticket_id: r.get(3)?,
        reason: r.get(4)?,
        reason_detail: r.get(5)?,
        requested_duration_us: r.get(6)?,
        status: r.get(7)?,
        reviews_json: r.get(8)?,
        required_approvals: r.get(9)?,
        create_time_us: r.get(10)?,
        request_expire_time_us: r.get(11)?,
        approve_time_us: r.get(12)?,
        expire_time_us: r.get(13)?,
        update_time_us: r.get(14)?,
        version: r.get(15)?,
    })
}

fn assumption_model(r: &Row<'_>) -> rusqlite::Result<assumption::Model> {
    Ok(assumption::Model {
        assumption_id: r.get(0)?,
        account_id: r.get(1)?,
        staff_id: r.get(2)?,
        ticket_id: r.get(3)?,
        basis: r.get(4)?,
        start_time_us: r.get(5)?,
        expire_time_us: r.get(6)?,
        end_time_us: r.get(7)?,
        end_reason: r.get(8)?,
        access_request_id: r.get(9)?,
    })
}

/// An account ⋈ grant row, columns in [`JOINED_SELECT`] order.
fn account_models(r: &Row<'_>) -> rusqlite::Result<(account::Model, access_grant::Model)> {
    let account_id: String = r.get(0)?;
    Ok((
        account::Model {
            account_id: account_id.clone(),
            plan: r.get(1)?,
            create_time_us: r.get(2)?,
            update_time_us: r.get(3)?,
            delete_time_us: r.get(4)?,
        },
        access_grant::Model {
            account_id,
            enabled: r.get(5)?,
            duration: r.get(6)?,
            enable_time_us: r.get(7)?,
            expire_time_us: r.get(8)?,
            update_time_us: r.get(9)?,
            update_user_id: r.get(10)?,
            version: r.get(11)?,
            expiry_recorded_us: r.get(12)?,
            requests_enabled: r.get(13)?,
            required_approvals: r.get(14)?,
            max_request_duration_us: r.get(15)?,
            policy_version: r.get(16)?,
        },
    ))
}

/// Reads `keys` inside the open transaction.
pub(super) fn load(conn: &Connection, keys: &Keys, now: DateTime<Utc>) -> Result<Loaded, Error> {
    let mut loaded = Loaded::default();
    let mut accounts: Vec<&str> = keys.accounts.iter().map(String::as_str).collect();
    if !keys.assumptions.is_empty() {
        let mut by_id = conn.prepare_cached(&format!(
            "SELECT {ASSUMPTION_COLUMNS} FROM assumptions WHERE assumption_id = ?1"
        ))?;
        for id in &keys.assumptions {
            if let Some(m) = by_id.query_row(params![id], assumption_model).optional()? {
                loaded.assumptions.push(columns::assumption(m)?);
            }
        }
        for a in &loaded.assumptions {
            if !accounts.contains(&a.account_id.as_str()) {
                accounts.push(a.account_id.as_str());
            }
        }
    }
    if !accounts.is_empty() {
        let mut joined =
            conn.prepare_cached(&format!("{JOINED_SELECT} WHERE a.account_id = ?1"))?;
        let mut head = conn.prepare_cached(
            "SELECT last_sequence, last_hash, last_occur_time_us FROM audit_chain_heads \
             WHERE account_id = ?1",
        )?;
        for id in &accounts {
            if let Some((a, g)) = joined.query_row(params![id], account_models).optional()? {
                loaded.accounts.push(columns::account_with_grant(a, g)?);
            }
            let stored = head
                .query_row(params![id], |r| {
                    Ok(ChainHead {
                        last_sequence: r.get(0)?,
                        last_hash: r.get(1)?,
                        last_occur_time_us: r.get(2)?,
                    })
                })
                .optional()?;
            if let Some(h) = stored {
                loaded.heads.push(((*id).to_owned(), h));
            }
        }
    }
    if !keys.open_assumptions.is_empty() {
        // Unended and in force now, or grant-based and ending with the grant's period (a
        // lapse being recorded names them).
        let mut open = conn.prepare_cached(&format!(
            "SELECT {ASSUMPTION_COLUMNS} FROM assumptions \
             WHERE account_id = ?1 AND end_reason IS NULL AND (expire_time_us > ?2 \
             OR (basis = ?3 AND expire_time_us = \
                 (SELECT g.expire_time_us FROM access_grants g WHERE g.account_id = ?1)))"
        ))?;
        for id in &keys.open_assumptions {
            let rows = open.query_map(
                params![id, to_us(now), Basis::CustomerGrant.as_str()],
                assumption_model,
            )?;
            for m in rows {
                loaded.open_assumptions.push(columns::assumption(m?)?);
            }
        }
    }
    if !keys.access_requests.is_empty() {
        let mut by_id = conn.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE access_request_id = ?1"
        ))?;
        for id in &keys.access_requests {
            if let Some(m) = by_id.query_row(params![id], request_model).optional()? {
                loaded.access_requests.push(columns::access_request(m)?);
            }
        }
    }
    if !keys.open_requests.is_empty() {
        // Stored open, lapsed or not: the command evaluates them at its `now`.
        let mut open = conn.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests \
             WHERE account_id = ?1 AND status IN (?2, ?3)"
        ))?;
        for id in &keys.open_requests {
            let rows = open.query_map(
                params![
                    id,
                    RequestState::Pending.as_str(),
                    RequestState::Approved.as_str()
                ],
                request_model,
            )?;
            for m in rows {
                loaded.access_requests.push(columns::access_request(m?)?);
            }
        }
    }
    if !keys.responses.is_empty() {
        let mut response = conn.prepare_cached(
            "SELECT fingerprint, response_json FROM idempotency_records \
             WHERE scope = ?1 AND request_id = ?2",
        )?;
        for (scope, request_id) in &keys.responses {
            let stored = response
                .query_row(params![scope, request_id], |r| {
                    Ok(StoredResponse {
                        fingerprint: r.get(0)?,
                        response_json: r.get(1)?,
                    })
                })
                .optional()?;
            if let Some(s) = stored {
                loaded
                    .responses
                    .push(((scope.clone(), request_id.clone()), s));
            }
        }
    }
    Ok(loaded)
}
