//! What an insider with database access does to the audit log, done as they would: through
//! the database, recomputing every hash (chains, chain heads and even the Merkle tree's
//! stored nodes) exactly as docs/audit-log.md documents, so that only a signed checkpoint
//! held outside the database can reveal it.

use accessgrant::{
    audit::{canonical::CanonicalFields, chain::link_hash},
    storage::{
        audit_log::to_domain,
        entities::{audit_chain_head, audit_event, audit_tree_node},
    },
    transparency::merkle,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};

async fn connect(url: &str) -> DatabaseConnection {
    Database::connect(url).await.unwrap()
}

/// Replaces the `detail_json` of `account`'s event `sequence`, then recomputes the hash of
/// that event and every later one of the account, and the chain head.
pub async fn rewrite_event(url: &str, account: &str, sequence: i64, detail_json: &str) {
    let db = connect(url).await;
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::AccountId.eq(account))
        .order_by_asc(audit_event::Column::Sequence)
        .all(&db)
        .await
        .unwrap();
    let mut prev: Option<Vec<u8>> = None;
    for row in events {
        if row.sequence < sequence {
            prev = Some(row.hash.clone());
            continue;
        }
        let mut model = row.clone();
        if row.sequence == sequence {
            model.detail_json = detail_json.to_owned();
        }
        if let Some(p) = &prev {
            model.prev_hash = p.clone();
        }
        let e = to_domain(model.clone()).unwrap();
        let fields = CanonicalFields {
            event_id: &e.event_id,
            account_id: &e.account_id,
            sequence: e.sequence,
            occur_time: e.occur_time,
            kind: e.kind,
            actor: &e.actor,
            detail_json: &e.detail_json,
            request_id: &e.request_id,
        };
        model.hash = link_hash(&model.prev_hash, &fields);
        prev = Some(model.hash.clone());
        let mut active = row.into_active_model();
        active.detail_json = Set(model.detail_json);
        active.prev_hash = Set(model.prev_hash);
        active.hash = Set(model.hash);
        active.update(&db).await.unwrap();
    }
    set_head(&db, account).await;
}

/// Deletes the newest `n` events of the whole log (highest leaves) and moves every touched
/// account's chain head back to its new last event.
pub async fn cut_tail(url: &str, n: u64) -> Vec<String> {
    let db = connect(url).await;
    let newest = audit_event::Entity::find()
        .order_by_desc(audit_event::Column::LeafIndex)
        .all(&db)
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for row in newest.into_iter().take(n as usize) {
        if !accounts.contains(&row.account_id) {
            accounts.push(row.account_id.clone());
        }
        audit_event::Entity::delete_by_id(row.global_position)
            .exec(&db)
            .await
            .unwrap();
    }
    for account in &accounts {
        set_head(&db, account).await;
    }
    accounts
}

/// Moves `account`'s chain head to its last remaining event.
async fn set_head(db: &DatabaseConnection, account: &str) {
    let last = audit_event::Entity::find()
        .filter(audit_event::Column::AccountId.eq(account))
        .order_by_desc(audit_event::Column::Sequence)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut head = audit_chain_head::Entity::find_by_id(account.to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    head.last_sequence = Set(last.sequence);
    head.last_hash = Set(last.hash);
    head.last_occur_time_us = Set(last.occur_time_us);
    head.update(db).await.unwrap();
}

/// Recomputes every stored Merkle tree node from the event rows as they now are.
pub async fn rebuild_tree(url: &str) {
    let db = connect(url).await;
    audit_tree_node::Entity::delete_many()
        .exec(&db)
        .await
        .unwrap();
    let hashes: Vec<Vec<u8>> = audit_event::Entity::find()
        .order_by_asc(audit_event::Column::LeafIndex)
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.hash)
        .collect();
    let leaves: Vec<&[u8]> = hashes.iter().map(Vec::as_slice).collect();
    let appended = merkle::append(0, &[], &leaves).unwrap();
    for chunk in appended.nodes.chunks(200) {
        let rows = chunk
            .iter()
            .map(|(key, hash)| audit_tree_node::ActiveModel {
                last_leaf: Set(key.last_leaf() as i64),
                level: Set(i16::from(key.level)),
                hash: Set(hash.to_vec()),
            });
        audit_tree_node::Entity::insert_many(rows)
            .exec_without_returning(&db)
            .await
            .unwrap();
    }
    // And the head the next append starts from.
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                "UPDATE write_fence SET tree_size = $1, tree_frontier = $2 WHERE id = 1"
            }
            _ => "UPDATE write_fence SET tree_size = ?, tree_frontier = ? WHERE id = 1",
        },
        [
            (leaves.len() as i64).into(),
            appended.frontier.concat().into(),
        ],
    ))
    .await
    .unwrap();
}

/// Deletes every stored checkpoint.
pub async fn delete_checkpoints(url: &str) {
    let db = connect(url).await;
    db.execute_unprepared("DELETE FROM audit_checkpoints")
        .await
        .unwrap();
}
