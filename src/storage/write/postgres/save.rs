//! Writes a batch's changes with multi-row statements, in dependency order (accounts before
//! the rows that reference them; events in append order, which their global positions
//! follow).

use std::collections::BTreeMap;

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    Statement, Value,
    sea_query::{Expr, OnConflict},
};

use crate::{
    domain::Error,
    storage::{
        entities::{
            access_grant, access_request, account, assumption, audit_chain_head, audit_event,
            idempotency_record,
        },
        to_us,
        write::{columns, rows::Changes},
    },
};

/// Rows per multi-row statement come in these sizes only, so the database's statement cache
/// holds a handful of shapes per table instead of one per batch size.
const CHUNKS: [usize; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// Splits `rows` (keeping their order) into chunks of the sizes in [`CHUNKS`].
fn chunked<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = rows.len();
    let mut sizes = Vec::new();
    for size in CHUNKS {
        while rest >= size {
            sizes.push(size);
            rest -= size;
        }
    }
    for size in sizes {
        let tail = rows.split_off(size);
        out.push(std::mem::replace(&mut rows, tail));
    }
    out
}

/// An assumption's changed columns: expiry, end time, end reason.
type NewColumns<'a> = (i64, Option<i64>, Option<&'a str>);

/// Writes `changes` inside the open transaction.
pub(super) async fn save(txn: &DatabaseTransaction, changes: &Changes) -> Result<(), Error> {
    let accounts: Vec<account::ActiveModel> = changes
        .accounts
        .iter()
        .map(|a| {
            let m = columns::account_model(a);
            account::ActiveModel {
                account_id: Set(m.account_id),
                plan: Set(m.plan),
                create_time_us: Set(m.create_time_us),
                update_time_us: Set(m.update_time_us),
                delete_time_us: Set(m.delete_time_us),
            }
        })
        .collect();
    for chunk in chunked(accounts) {
        account::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::column(account::Column::AccountId)
                    .update_columns([
                        account::Column::Plan,
                        account::Column::CreateTimeUs,
                        account::Column::UpdateTimeUs,
                        account::Column::DeleteTimeUs,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    let grants: Vec<access_grant::ActiveModel> = changes
        .grants
        .iter()
        .map(|(id, g)| {
            let m = columns::grant_model(id, g);
            access_grant::ActiveModel {
                account_id: Set(m.account_id),
                enabled: Set(m.enabled),
                duration: Set(m.duration),
                enable_time_us: Set(m.enable_time_us),
                expire_time_us: Set(m.expire_time_us),
                update_time_us: Set(m.update_time_us),
                update_user_id: Set(m.update_user_id),
                version: Set(m.version),
                expiry_recorded_us: Set(m.expiry_recorded_us),
                requests_enabled: Set(m.requests_enabled),
                required_approvals: Set(m.required_approvals),
                max_request_duration_us: Set(m.max_request_duration_us),
                policy_version: Set(m.policy_version),
            }
        })
        .collect();
    for chunk in chunked(grants) {
        access_grant::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::column(access_grant::Column::AccountId)
                    .update_columns([
                        access_grant::Column::Enabled,
                        access_grant::Column::Duration,
                        access_grant::Column::EnableTimeUs,
                        access_grant::Column::ExpireTimeUs,
                        access_grant::Column::UpdateTimeUs,
                        access_grant::Column::UpdateUserId,
                        access_grant::Column::Version,
                        access_grant::Column::ExpiryRecordedUs,
                        access_grant::Column::RequestsEnabled,
                        access_grant::Column::RequiredApprovals,
                        access_grant::Column::MaxRequestDurationUs,
                        access_grant::Column::PolicyVersion,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    let new_assumptions: Vec<assumption::ActiveModel> = changes
        .new_assumptions
        .iter()
        .map(|a| {
            let m = columns::assumption_model(a);
            assumption::ActiveModel {
                assumption_id: Set(m.assumption_id),
                account_id: Set(m.account_id),
                staff_id: Set(m.staff_id),
                ticket_id: Set(m.ticket_id),
                basis: Set(m.basis),
                start_time_us: Set(m.start_time_us),
                expire_time_us: Set(m.expire_time_us),
                end_time_us: Set(m.end_time_us),
                end_reason: Set(m.end_reason),
                access_request_id: Set(m.access_request_id),
            }
        })
        .collect();
    for chunk in chunked(new_assumptions) {
        assumption::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    // Revoking or capping many assumptions gives them the same new columns: one statement
    // per distinct set of values.
    let mut updates: BTreeMap<NewColumns<'_>, Vec<String>> = BTreeMap::new();
    for a in &changes.changed_assumptions {
        updates
            .entry((
                to_us(a.expire_time),
                a.end_time.map(to_us),
                a.end_reason.map(|r| r.as_str()),
            ))
            .or_default()
            .push(a.assumption_id.clone());
    }
    for ((expire, end, reason), ids) in updates {
        let expected = ids.len() as u64;
        let result = assumption::Entity::update_many()
            .col_expr(assumption::Column::ExpireTimeUs, Expr::value(expire))
            .col_expr(assumption::Column::EndTimeUs, Expr::value(end))
            .col_expr(
                assumption::Column::EndReason,
                Expr::value(reason.map(str::to_owned)),
            )
            .filter(assumption::Column::AssumptionId.is_in(ids))
            .exec(txn)
            .await?;
        if result.rows_affected != expected {
            return Err(Error::Internal(
                "an assumption vanished while it was changed".into(),
            ));
        }
    }
    save_access_requests(txn, changes).await?;
    let events: Vec<audit_event::ActiveModel> = changes
        .events
        .iter()
        .map(|e| audit_event::ActiveModel {
            global_position: NotSet,
            event_id: Set(e.event_id.clone()),
            account_id: Set(e.account_id.clone()),
            sequence: Set(e.sequence),
            occur_time_us: Set(e.occur_time_us),
            kind: Set(e.kind.clone()),
            actor_type: Set(e.actor_type.clone()),
            actor_value: Set(e.actor_value.clone()),
            detail_json: Set(e.detail_json.clone()),
            request_id: Set(e.request_id.clone()),
            prev_hash: Set(e.prev_hash.clone()),
            hash: Set(e.hash.clone()),
            leaf_index: Set(e.leaf_index),
        })
        .collect();
    for chunk in chunked(events) {
        audit_event::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    let heads: Vec<audit_chain_head::ActiveModel> = changes
        .heads
        .iter()
        .map(|(id, h)| audit_chain_head::ActiveModel {
            account_id: Set(id.clone()),
            last_sequence: Set(h.last_sequence),
            last_hash: Set(h.last_hash.clone()),
            last_occur_time_us: Set(h.last_occur_time_us),
        })
        .collect();
    for chunk in chunked(heads) {
        audit_chain_head::Entity::insert_many(chunk)
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
    let responses: Vec<idempotency_record::ActiveModel> = changes
        .responses
        .iter()
        .map(|r| idempotency_record::ActiveModel {
            scope: Set(r.scope.clone()),
            request_id: Set(r.request_id.clone()),
            fingerprint: Set(r.response.fingerprint.clone()),
            response_json: Set(r.response.response_json.clone()),
            create_time_us: Set(r.create_time_us),
        })
        .collect();
    for chunk in chunked(responses) {
        idempotency_record::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    if let Some(cutoff) = changes.prune_responses_before {
        idempotency_record::Entity::delete_many()
            .filter(idempotency_record::Column::CreateTimeUs.lt(cutoff))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Inserts or replaces the batch's access requests (one final row per id, so no chunk
/// names an id twice, which `ON CONFLICT DO UPDATE` would refuse).
async fn save_access_requests(txn: &DatabaseTransaction, changes: &Changes) -> Result<(), Error> {
    use access_request::Column as C;
    let rows: Vec<access_request::ActiveModel> = changes
        .access_requests
        .iter()
        .map(|r| {
            let m = columns::access_request_model(r);
            access_request::ActiveModel {
                access_request_id: Set(m.access_request_id),
                account_id: Set(m.account_id),
                staff_id: Set(m.staff_id),
                ticket_id: Set(m.ticket_id),
                reason: Set(m.reason),
                reason_detail: Set(m.reason_detail),
                requested_duration_us: Set(m.requested_duration_us),
                status: Set(m.status),
                reviews_json: Set(m.reviews_json),
                required_approvals: Set(m.required_approvals),
                create_time_us: Set(m.create_time_us),
                request_expire_time_us: Set(m.request_expire_time_us),
                approve_time_us: Set(m.approve_time_us),
                expire_time_us: Set(m.expire_time_us),
                update_time_us: Set(m.update_time_us),
                version: Set(m.version),
            }
        })
        .collect();
    for chunk in chunked(rows) {
        access_request::Entity::insert_many(chunk)
            .on_conflict(
                OnConflict::column(C::AccessRequestId)
                    .update_columns([
                        C::AccountId,
                        C::StaffId,
                        C::TicketId,
                        C::Reason,
                        C::ReasonDetail,
                        C::RequestedDurationUs,
                        C::Status,
                        C::ReviewsJson,
                        C::RequiredApprovals,
                        C::CreateTimeUs,
                        C::RequestExpireTimeUs,
                        C::ApproveTimeUs,
                        C::ExpireTimeUs,
                        C::UpdateTimeUs,
                        C::Version,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Writes the tree nodes a batch completed and the tree's new head in as few statements as
/// the nodes need: the head's update rides along with the first node insert (a
/// data-modifying `WITH`), so a batch of events costs one round trip more, not two.
pub(super) async fn save_tree(txn: &DatabaseTransaction, changes: &Changes) -> Result<(), Error> {
    let Some(tip) = &changes.tree_tip else {
        return Ok(());
    };
    let head = "WITH head AS (UPDATE write_fence SET tree_size = $1, tree_frontier = $2 \
                WHERE id = 1 RETURNING id) ";
    let mut values = vec![
        Value::from(tip.size as i64),
        Value::from(tip.frontier_bytes()),
    ];
    let mut prefix = head;
    for chunk in chunked(changes.tree_nodes.clone()) {
        let mut sql =
            format!("{prefix}INSERT INTO audit_tree_nodes (last_leaf, level, hash) VALUES ");
        for (i, (key, hash)) in chunk.iter().enumerate() {
            let n = values.len();
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
            values.push(Value::from(key.last_leaf() as i64));
            values.push(Value::from(i16::from(key.level)));
            values.push(Value::from(hash.to_vec()));
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            std::mem::take(&mut values),
        ))
        .await?;
        prefix = "";
    }
    if !prefix.is_empty() {
        // No node completed (cannot happen with events, but the head must still be written).
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE write_fence SET tree_size = $1, tree_frontier = $2 WHERE id = 1",
            values,
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks use only the fixed sizes and keep the rows' order.
    #[test]
    fn chunks_keep_order_and_use_few_sizes() {
        for n in [0_usize, 1, 2, 3, 7, 64, 127, 128, 129, 255, 256, 1000] {
            let chunks = chunked((0..n).collect::<Vec<_>>());
            assert!(chunks.iter().all(|c| CHUNKS.contains(&c.len())), "{n}");
            let flat: Vec<usize> = chunks.into_iter().flatten().collect();
            assert_eq!(flat, (0..n).collect::<Vec<_>>());
        }
    }
}
