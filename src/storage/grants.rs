//! Grant rows.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use chrono::{DateTime, Utc};

use super::{
    accounts,
    entities::{access_grant, account},
    from_us, from_us_opt, to_us,
};
use crate::domain::{
    Error, access_request::AccessPolicy, account::Account, duration::AccessDuration,
    grant::GrantRecord,
};

pub(crate) fn to_domain(m: access_grant::Model) -> Result<GrantRecord, Error> {
    let duration = m
        .duration
        .as_deref()
        .map(|d| {
            AccessDuration::from_str_name(d)
                .ok_or_else(|| Error::Internal(format!("stored duration {d:?}")))
        })
        .transpose()?;
    Ok(GrantRecord {
        enabled: m.enabled,
        duration,
        enable_time: from_us_opt(m.enable_time_us)?,
        expire_time: from_us_opt(m.expire_time_us)?,
        update_time: from_us(m.update_time_us)?,
        update_user_id: m.update_user_id,
        version: m.version,
        policy: AccessPolicy {
            requests_enabled: m.requests_enabled,
            required_approvals: m.required_approvals,
            max_request_duration_us: m.max_request_duration_us,
            version: m.policy_version,
        },
    })
}

/// One row of the account ⋈ grant read (columns in [`JOINED_SELECT`] order).
#[derive(Debug, sea_orm::FromQueryResult)]
pub(crate) struct AccountGrantRow {
    pub(crate) account_id: String,
    pub(crate) plan: String,
    pub(crate) create_time_us: i64,
    pub(crate) update_time_us: i64,
    pub(crate) delete_time_us: Option<i64>,
    pub(crate) enabled: bool,
    pub(crate) duration: Option<String>,
    pub(crate) enable_time_us: Option<i64>,
    pub(crate) expire_time_us: Option<i64>,
    pub(crate) grant_update_time_us: i64,
    pub(crate) update_user_id: String,
    pub(crate) version: i64,
    pub(crate) expiry_recorded_us: Option<i64>,
    pub(crate) requests_enabled: bool,
    pub(crate) required_approvals: i32,
    pub(crate) max_request_duration_us: i64,
    pub(crate) policy_version: i64,
}

/// The account ⋈ grant read, up to its `WHERE`.
pub(crate) const JOINED_SELECT: &str = "SELECT a.account_id, a.plan, a.create_time_us, \
     a.update_time_us, a.delete_time_us, g.enabled, g.duration, g.enable_time_us, \
     g.expire_time_us, g.update_time_us AS grant_update_time_us, g.update_user_id, g.version, \
     g.expiry_recorded_us, g.requests_enabled, g.required_approvals, \
     g.max_request_duration_us, g.policy_version FROM accounts a JOIN access_grants g ON g.account_id = a.account_id";

impl AccountGrantRow {
    /// The row's columns, per table.
    pub(crate) fn into_models(self) -> (account::Model, access_grant::Model) {
        let r = self;
        (
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
                requests_enabled: r.requests_enabled,
                required_approvals: r.required_approvals,
                max_request_duration_us: r.max_request_duration_us,
                policy_version: r.policy_version,
            },
        )
    }

    /// Decodes the row.
    pub(crate) fn into_domain(self) -> Result<(Account, GrantRecord), Error> {
        let (account, grant) = self.into_models();
        Ok((accounts::to_domain(account)?, to_domain(grant)?))
    }
}

/// Reads accounts with their grants in **one statement** (one snapshot, one round trip):
/// the hot read path of `GetAccessGrant` and `BatchGetAccessGrants`. Unknown ids are absent.
pub async fn read_with_accounts(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(Account, GrantRecord)>, Error> {
    read_joined(db, ids).await
}

/// [`read_with_accounts`] through the read cache when the store has one (SQLite; see
/// [`super::grant_cache`]): hits cost no database round trip.
pub async fn read_cached(
    store: &super::Store,
    ids: &[&str],
) -> Result<Vec<(Account, GrantRecord)>, Error> {
    let Some(cache) = store.grant_cache() else {
        return read_with_accounts(store.reader(), ids).await;
    };
    let (mut rows, misses, since) = cache.lookup(ids);
    if !misses.is_empty() {
        let loaded = read_with_accounts(store.reader(), &misses).await?;
        cache.fill(since, &loaded);
        rows.extend(loaded);
    }
    Ok(rows)
}

async fn read_joined(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(Account, GrantRecord)>, Error> {
    use sea_orm::{DbBackend, FromQueryResult, Statement, Value};
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let placeholders: Vec<String> = (1..=ids.len())
        .map(|i| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect();
    let sql = format!(
        "{JOINED_SELECT} WHERE a.account_id IN ({})",
        placeholders.join(", ")
    );
    let values: Vec<Value> = ids.iter().map(|id| Value::from(*id)).collect();
    let rows =
        AccountGrantRow::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db)
            .await?;
    rows.into_iter().map(AccountGrantRow::into_domain).collect()
}

/// Enabled grants whose period ended at or before `now` and whose lapse has not been audited
/// yet: `(account_id, expire_time_us)`, oldest first (then by account), at most `limit`, and
/// only those after `after` in that order (a sweep's cursor: lapses it could not record do
/// not come back in the same sweep).
pub async fn unrecorded_lapses(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after: Option<&(String, i64)>,
    limit: u64,
) -> Result<Vec<(String, i64)>, Error> {
    use sea_orm::{
        Condition, QueryOrder, QuerySelect,
        sea_query::{Expr, ExprTrait},
    };
    let mut query = access_grant::Entity::find();
    if let Some((account_id, expire_time_us)) = after {
        query = query.filter(
            Condition::any()
                .add(access_grant::Column::ExpireTimeUs.gt(*expire_time_us))
                .add(
                    Condition::all()
                        .add(access_grant::Column::ExpireTimeUs.eq(*expire_time_us))
                        .add(access_grant::Column::AccountId.gt(account_id.as_str())),
                ),
        );
    }
    let rows: Vec<(String, Option<i64>)> = query
        .select_only()
        .column(access_grant::Column::AccountId)
        .column(access_grant::Column::ExpireTimeUs)
        .filter(access_grant::Column::Enabled.eq(true))
        .filter(access_grant::Column::ExpireTimeUs.lte(to_us(now)))
        .filter(
            Condition::any()
                .add(access_grant::Column::ExpiryRecordedUs.is_null())
                .add(ExprTrait::ne(
                    Expr::col(access_grant::Column::ExpiryRecordedUs),
                    Expr::col(access_grant::Column::ExpireTimeUs),
                )),
        )
        .order_by_asc(access_grant::Column::ExpireTimeUs)
        .order_by_asc(access_grant::Column::AccountId)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, end)| end.map(|end| (id, end)))
        .collect())
}
