//! Set-based reads of what a batch announced: one statement per table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    Statement, Value,
};

use crate::{
    domain::{Error, assumption::Basis},
    storage::{
        entities::{access_grant, account, assumption, audit_chain_head, idempotency_record},
        to_us,
        write::{
            columns,
            keys::{Keys, Loaded},
            rows::{ChainHead, StoredResponse},
        },
    },
};

/// One row of the account ⋈ grant read.
#[derive(Debug, FromQueryResult)]
struct Joined {
    account_id: String,
    plan: String,
    create_time_us: i64,
    update_time_us: i64,
    delete_time_us: Option<i64>,
    enabled: bool,
    duration: Option<String>,
    enable_time_us: Option<i64>,
    expire_time_us: Option<i64>,
    grant_update_time_us: i64,
    update_user_id: String,
    version: i64,
    expiry_recorded_us: Option<i64>,
}

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
            "SELECT a.account_id, a.plan, a.create_time_us, a.update_time_us, a.delete_time_us, \
             g.enabled, g.duration, g.enable_time_us, g.expire_time_us, \
             g.update_time_us AS grant_update_time_us, g.update_user_id, g.version, \
             g.expiry_recorded_us \
             FROM accounts a JOIN access_grants g ON g.account_id = a.account_id \
             WHERE a.account_id IN ({})",
            placeholders(1, accounts.len())
        );
        let values: Vec<Value> = accounts.iter().map(|id| Value::from(id.as_str())).collect();
        let rows = Joined::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(txn)
            .await?;
        for r in rows {
            loaded.accounts.push(columns::account_with_grant(
                account::Model {
                    account_id: r.account_id.clone(),
                    plan: r.plan,
                    create_time_us: r.create_time_us,
                    update_time_us: r.update_time_us,
                    delete_time_us: r.delete_time_us,
                },
                access_grant::Model {
                    account_id: r.account_id,
                    enabled: r.enabled,
                    duration: r.duration,
                    enable_time_us: r.enable_time_us,
                    expire_time_us: r.expire_time_us,
                    update_time_us: r.grant_update_time_us,
                    update_user_id: r.update_user_id,
                    version: r.version,
                    expiry_recorded_us: r.expiry_recorded_us,
                },
            )?);
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
