//! Writes a batch's changes with prepared statements, in dependency order (accounts before
//! the rows that reference them; events in append order, which their global positions
//! follow).

use rusqlite::{Connection, params};

use crate::{
    domain::Error,
    storage::{
        to_us,
        write::{columns, rows::Changes},
    },
};

/// Writes `changes` inside the open transaction.
pub(super) fn save(conn: &Connection, changes: &Changes) -> Result<(), Error> {
    if !changes.accounts.is_empty() {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO accounts (account_id, plan, create_time_us, update_time_us, \
             delete_time_us) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account_id) DO UPDATE \
             SET plan = excluded.plan, create_time_us = excluded.create_time_us, \
             update_time_us = excluded.update_time_us, delete_time_us = excluded.delete_time_us",
        )?;
        for a in &changes.accounts {
            let m = columns::account_model(a);
            upsert.execute(params![
                m.account_id,
                m.plan,
                m.create_time_us,
                m.update_time_us,
                m.delete_time_us
            ])?;
        }
    }
    if !changes.grants.is_empty() {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO access_grants (account_id, enabled, duration, enable_time_us, \
             expire_time_us, update_time_us, update_user_id, version, expiry_recorded_us, \
             requests_enabled, required_approvals, max_request_duration_us, policy_version) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (account_id) DO UPDATE \
             SET enabled = excluded.enabled, duration = excluded.duration, \
             enable_time_us = excluded.enable_time_us, expire_time_us = excluded.expire_time_us, \
             update_time_us = excluded.update_time_us, update_user_id = excluded.update_user_id, \
             version = excluded.version, expiry_recorded_us = excluded.expiry_recorded_us, \
             requests_enabled = excluded.requests_enabled, \
             required_approvals = excluded.required_approvals, \
             max_request_duration_us = excluded.max_request_duration_us, \
             policy_version = excluded.policy_version",
        )?;
        for (id, g) in &changes.grants {
            let m = columns::grant_model(id, g);
            upsert.execute(params![
                m.account_id,
                m.enabled,
                m.duration,
                m.enable_time_us,
                m.expire_time_us,
                m.update_time_us,
                m.update_user_id,
                m.version,
                m.expiry_recorded_us,
                m.requests_enabled,
                m.required_approvals,
                m.max_request_duration_us,
                m.policy_version
            ])?;
        }
    }
    if !changes.new_assumptions.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO assumptions (assumption_id, account_id, staff_id, ticket_id, basis, \
             start_time_us, expire_time_us, end_time_us, end_reason, access_request_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for a in &changes.new_assumptions {
            let m = columns::assumption_model(a);
            insert.execute(params![
                m.assumption_id,
                m.account_id,
                m.staff_id,
                m.ticket_id,
                m.basis,
                m.start_time_us,
                m.expire_time_us,
                m.end_time_us,
                m.end_reason,
                m.access_request_id
            ])?;
        }
    }
    if !changes.changed_assumptions.is_empty() {
        let mut update = conn.prepare_cached(
            "UPDATE assumptions SET expire_time_us = ?2, end_time_us = ?3, end_reason = ?4 \
             WHERE assumption_id = ?1",
        )?;
        for a in &changes.changed_assumptions {
            let changed = update.execute(params![
                a.assumption_id,
                to_us(a.expire_time),
                a.end_time.map(to_us),
                a.end_reason.map(|r| r.as_str())
            ])?;
            if changed != 1 {
                return Err(Error::Internal(format!(
                    "assumption {} vanished while it was changed",
                    a.assumption_id
                )));
            }
        }
    }
    if !changes.access_requests.is_empty() {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO access_requests (access_request_id, account_id, staff_id, ticket_id, \
             reason, reason_detail, requested_duration_us, status, reviews_json, \
             required_approvals, create_time_us, request_expire_time_us, approve_time_us, \
             expire_time_us, update_time_us, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
             ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT (access_request_id) DO UPDATE \
             SET account_id = excluded.account_id, staff_id = excluded.staff_id, \
             ticket_id = excluded.ticket_id, reason = excluded.reason, \
             reason_detail = excluded.reason_detail, \
             requested_duration_us = excluded.requested_duration_us, status = excluded.status, \
             reviews_json = excluded.reviews_json, \
             required_approvals = excluded.required_approvals, \
             create_time_us = excluded.create_time_us, \
             request_expire_time_us = excluded.request_expire_time_us, \
             approve_time_us = excluded.approve_time_us, expire_time_us = excluded.expire_time_us, \
             update_time_us = excluded.update_time_us, version = excluded.version",
        )?;
        for r in &changes.access_requests {
            let m = columns::access_request_model(r);
            upsert.execute(params![
                m.access_request_id,
                m.account_id,
                m.staff_id,
                m.ticket_id,
                m.reason,
                m.reason_detail,
                m.requested_duration_us,
                m.status,
                m.reviews_json,
                m.required_approvals,
                m.create_time_us,
                m.request_expire_time_us,
                m.approve_time_us,
                m.expire_time_us,
                m.update_time_us,
                m.version
            ])?;
        }
    }
    if !changes.events.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO audit_events (event_id, account_id, sequence, occur_time_us, kind, \
             actor_type, actor_value, detail_json, request_id, prev_hash, hash, leaf_index) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for e in &changes.events {
            insert.execute(params![
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
                e.leaf_index
            ])?;
        }
    }
    if !changes.heads.is_empty() {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO audit_chain_heads (account_id, last_sequence, last_hash, \
             last_occur_time_us) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id) \
             DO UPDATE SET last_sequence = excluded.last_sequence, \
             last_hash = excluded.last_hash, last_occur_time_us = excluded.last_occur_time_us",
        )?;
        for (id, h) in &changes.heads {
            upsert.execute(params![
                id,
                h.last_sequence,
                h.last_hash,
                h.last_occur_time_us
            ])?;
        }
    }
    if !changes.responses.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO idempotency_records (scope, request_id, fingerprint, response_json, \
             create_time_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in &changes.responses {
            insert.execute(params![
                r.scope,
                r.request_id,
                r.response.fingerprint,
                r.response.response_json,
                r.create_time_us
            ])?;
        }
    }
    if !changes.tree_nodes.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO audit_tree_nodes (last_leaf, level, hash) VALUES (?1, ?2, ?3)",
        )?;
        for (key, hash) in &changes.tree_nodes {
            insert.execute(params![key.last_leaf() as i64, key.level, hash.as_slice()])?;
        }
    }
    if let Some(tip) = &changes.tree_tip {
        conn.prepare_cached(
            "UPDATE write_fence SET tree_size = ?1, tree_frontier = ?2 WHERE id = 1",
        )?
        .execute(params![tip.size as i64, tip.frontier_bytes()])?;
    }
    if !changes.checkpoints.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO audit_checkpoints (origin, tree_size, root_hash, note, sign_time_us) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in &changes.checkpoints {
            insert.execute(params![
                c.checkpoint.origin,
                c.checkpoint.size as i64,
                c.checkpoint.root.as_slice(),
                c.note,
                c.sign_time_us
            ])?;
        }
    }
    if let Some(cutoff) = changes.prune_responses_before {
        conn.prepare_cached("DELETE FROM idempotency_records WHERE create_time_us < ?1")?
            .execute(params![cutoff])?;
    }
    Ok(())
}
