//! Grant rows.

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};

use chrono::{DateTime, Utc};

use super::{
    accounts,
    entities::{access_grant, account},
    from_us, from_us_opt, to_us,
};
use crate::domain::{
    Error, account::Account, duration::AccessDuration, grant::GrantRecord, ids::AccountId,
};

fn to_domain(m: access_grant::Model) -> Result<GrantRecord, Error> {
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
    })
}

fn to_model(id: &AccountId, g: &GrantRecord) -> access_grant::ActiveModel {
    access_grant::ActiveModel {
        account_id: Set(id.as_str().to_owned()),
        enabled: Set(g.enabled),
        duration: Set(g.duration.map(|d| d.as_str().to_owned())),
        enable_time_us: Set(g.enable_time.map(to_us)),
        expire_time_us: Set(g.expire_time.map(to_us)),
        update_time_us: Set(to_us(g.update_time)),
        update_user_id: Set(g.update_user_id.clone()),
        version: Set(g.version),
        // Owned by the expiry sweeper; a grant change never touches it.
        expiry_recorded_us: NotSet,
    }
}

/// Reads one account's grant. Every account has one (created with it), so absence is an
/// internal error.
pub async fn get(db: &impl ConnectionTrait, id: &AccountId) -> Result<GrantRecord, Error> {
    let model = access_grant::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .ok_or_else(|| Error::Internal(format!("account {id} has no grant row")))?;
    to_domain(model)
}

/// Reads several grants, keyed by account id.
pub async fn get_many(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(String, GrantRecord)>, Error> {
    access_grant::Entity::find()
        .filter(access_grant::Column::AccountId.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| Ok((m.account_id.clone(), to_domain(m)?)))
        .collect()
}

/// Inserts the grant of a new account.
pub async fn insert(
    db: &impl ConnectionTrait,
    id: &AccountId,
    g: &GrantRecord,
) -> Result<(), Error> {
    access_grant::Entity::insert(to_model(id, g))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Replaces a grant.
pub async fn update(
    db: &impl ConnectionTrait,
    id: &AccountId,
    g: &GrantRecord,
) -> Result<(), Error> {
    access_grant::Entity::update(to_model(id, g))
        .exec(db)
        .await?;
    Ok(())
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
}

/// The account ⋈ grant read, up to its `WHERE`.
pub(crate) const JOINED_SELECT: &str = "SELECT a.account_id, a.plan, a.create_time_us, \
     a.update_time_us, a.delete_time_us, g.enabled, g.duration, g.enable_time_us, \
     g.expire_time_us, g.update_time_us AS grant_update_time_us, g.update_user_id, g.version \
     FROM accounts a JOIN access_grants g ON g.account_id = a.account_id";

impl AccountGrantRow {
    /// Decodes the row.
    pub(crate) fn into_domain(self) -> Result<(Account, GrantRecord), Error> {
        let r = self;
        let account = accounts::to_domain(account::Model {
            account_id: r.account_id.clone(),
            plan: r.plan,
            create_time_us: r.create_time_us,
            update_time_us: r.update_time_us,
            delete_time_us: r.delete_time_us,
        })?;
        let grant = to_domain(access_grant::Model {
            account_id: r.account_id,
            enabled: r.enabled,
            duration: r.duration,
            enable_time_us: r.enable_time_us,
            expire_time_us: r.expire_time_us,
            update_time_us: r.grant_update_time_us,
            update_user_id: r.update_user_id,
            version: r.version,
            expiry_recorded_us: None,
        })?;
        Ok((account, grant))
    }
}

/// Reads accounts with their grants in **one statement** (one snapshot, one round trip):
/// the hot read path of `GetAccessGrant` and `BatchGetAccessGrants`. Unknown ids are absent.
pub async fn read_with_accounts(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(Account, GrantRecord)>, Error> {
    read_joined(db, ids, false).await
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

/// Reads one account with its grant for a change: on PostgreSQL the account row stays locked
/// until the transaction ends, serializing every change to the account across replicas.
pub async fn read_for_update(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<(Account, GrantRecord)>, Error> {
    Ok(read_joined(db, &[id], true).await?.into_iter().next())
}

/// [`read_for_update`] for several accounts in one statement (a write batch's prefetch).
pub async fn read_many_for_update(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<Vec<(Account, GrantRecord)>, Error> {
    read_joined(db, ids, true).await
}

async fn read_joined(
    db: &impl ConnectionTrait,
    ids: &[&str],
    for_update: bool,
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
        "{JOINED_SELECT} WHERE a.account_id IN ({}){}",
        placeholders.join(", "),
        // SQLite has no row locks (its writers are serialized anyway).
        if for_update && backend == DbBackend::Postgres {
            " FOR UPDATE OF a"
        } else {
            ""
        }
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

/// Claims the audit of one lapse: marks the period ending at `expire_time_us` as recorded,
/// if it is still the account's enabled, lapsed, unrecorded period. True when this call made
/// the change (and must write the event); false when the grant changed meanwhile or another
/// replica already claimed it. A conditional update, so it is exactly-once on any backend.
pub async fn claim_lapse(
    db: &impl ConnectionTrait,
    account_id: &str,
    expire_time_us: i64,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    use sea_orm::{Condition, sea_query::Expr};
    let result = access_grant::Entity::update_many()
        .col_expr(
            access_grant::Column::ExpiryRecordedUs,
            Expr::value(expire_time_us),
        )
        .filter(access_grant::Column::AccountId.eq(account_id))
        .filter(access_grant::Column::Enabled.eq(true))
        .filter(access_grant::Column::ExpireTimeUs.eq(expire_time_us))
        .filter(access_grant::Column::ExpireTimeUs.lte(to_us(now)))
        .filter(
            Condition::any()
                .add(access_grant::Column::ExpiryRecordedUs.is_null())
                .add(access_grant::Column::ExpiryRecordedUs.ne(expire_time_us)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
