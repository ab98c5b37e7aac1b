//! Set-based reads of what a batch announced: one statement per table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    Statement, Value,
};

use crate::{
    domain::{Error, access_request::RequestState, assumption::Basis},
    storage::{
        entities::{access_request, assumption, audit_chain_head, idempotency_record},
        grants::{AccountGrantRow, JOINED_SELECT},
        to_us,
        write::{
            columns,
            keys::{Keys, Loaded},
            rows::{ChainHead, StoredResponse},
        },
    },
};

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `keys` inside the open transaction.
pub(super) async fn load(
    txn: &DatabaseTransaction,
    keys: &Keys,
    now: DateTime<Utc>,
) -> Result<Loaded, Error> {
    let mut loaded = Loaded::default();
    let mut accounts: Vec<String> = keys.accounts.clone();
    if !keys.assumptions.is_empty() {
        let found = assumption::Entity::find()
            .filter(assumption::Column::AssumptionId.is_in(keys.assumptions.iter().cloned()))
            .all(txn)
            .await?;
        for m in found {
            if !accounts.contains(&m.account_id) {
                accounts.push(m.account_id.clone());
            }
            loaded.assumptions.push(columns::assumption(m)?);
        }
    }
    if !accounts.is_empty() {
        let backend = txn.get_database_backend();
        let sql = format!(
            "{JOINED_SELECT} WHERE a.account_id IN ({})",
            placeholders(1, accounts.len())
        );
        let values: Vec<Value> = accounts.iter().map(|id| Value::from(id.as_str())).collect();
        let rows = AccountGrantRow::find_by_statement(Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .all(txn)
        .await?;
        for row in rows {
            let (account, grant) = row.into_models();
            loaded
                .accounts
                .push(columns::account_with_grant(account, grant)?);
        }
        let heads = audit_chain_head::Entity::find()
            .filter(audit_chain_head::Column::AccountId.is_in(accounts.iter().cloned()))
            .all(txn)
            .await?;
        loaded.heads = heads
            .into_iter()
            .map(|h| {
                (
                    h.account_id,
                    ChainHead {
                        last_sequence: h.last_sequence,
                        last_hash: h.last_hash,
                        last_occur_time_us: h.last_occur_time_us,
                    },
                )
            })
            .collect();
    }
    if !keys.open_assumptions.is_empty() {
        let backend = txn.get_database_backend();
        let n = keys.open_assumptions.len();
        // Unended and in force now, or grant-based and ending with the grant's period (a
        // lapse being recorded names them).
        let sql = format!(
            "SELECT s.* FROM assumptions s WHERE s.account_id IN ({}) \
             AND s.end_reason IS NULL AND (s.expire_time_us > ${} OR (s.basis = ${} AND \
             s.expire_time_us = (SELECT g.expire_time_us FROM access_grants g \
             WHERE g.account_id = s.account_id)))",
            placeholders(1, n),
            n + 1,
            n + 2
        );
        let mut values: Vec<Value> = keys
            .open_assumptions
            .iter()
            .map(|id| Value::from(id.as_str()))
            .collect();
        values.push(Value::from(to_us(now)));
        values.push(Value::from(Basis::CustomerGrant.as_str()));
        let rows = assumption::Model::find_by_statement(Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .all(txn)
        .await?;
        for m in rows {
            loaded.open_assumptions.push(columns::assumption(m)?);
        }
    }
    if !keys.access_requests.is_empty() {
        let found = access_request::Entity::find()
            .filter(
                access_request::Column::AccessRequestId.is_in(keys.access_requests.iter().cloned()),
            )
            .all(txn)
            .await?;
        for m in found {
            loaded.access_requests.push(columns::access_request(m)?);
        }
    }
    if !keys.open_requests.is_empty() {
        // Stored open, lapsed or not: the commands evaluate them at their `now`.
        let found = access_request::Entity::find()
            .filter(access_request::Column::AccountId.is_in(keys.open_requests.iter().cloned()))
            .filter(access_request::Column::Status.is_in([
                RequestState::Pending.as_str(),
                RequestState::Approved.as_str(),
            ]))
            .all(txn)
            .await?;
        for m in found {
            loaded.access_requests.push(columns::access_request(m)?);
        }
    }
    let mut scopes: HashMap<&str, Vec<&str>> = HashMap::new();
    for (scope, request_id) in &keys.responses {
        scopes.entry(scope).or_default().push(request_id);
    }
    for (scope, ids) in scopes {
        let rows = idempotency_record::Entity::find()
            .filter(idempotency_record::Column::Scope.eq(scope))
            .filter(idempotency_record::Column::RequestId.is_in(ids.iter().copied()))
            .all(txn)
            .await?;
        loaded.responses.extend(rows.into_iter().map(|r| {
            (
                (r.scope, r.request_id),
                StoredResponse {
                    fingerprint: r.fingerprint,
                    response_json: r.response_json,
                },
            )
        }));
    }
    Ok(loaded)
}
