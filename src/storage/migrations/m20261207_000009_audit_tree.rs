//! The audit log's Merkle tree: `audit_events.leaf_index` (dense, in commit order),
//! `audit_tree_nodes` (every complete subtree, keyed so appends land at the table's end;
//! `WITHOUT ROWID` on SQLite, so the key is the only B-tree) and `audit_checkpoints` (every
//! signed checkpoint), and the tree's head (`write_fence.tree_size`, `tree_frontier`: the
//! size and right edge the next batch appends to, on the row every write transaction locks
//! first). Existing events become the tree's first leaves, in global-position order, and
//! their nodes and the head are computed here.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

use crate::transparency::merkle::{self, Hash};

/// Events read per round trip while building the tree of an existing log.
const CHUNK: u64 = 10_000;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(big_integer(AuditEvents::LeafIndex).default(-1))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE audit_events SET leaf_index = r.n - 1 FROM (SELECT global_position AS p, \
             ROW_NUMBER() OVER (ORDER BY global_position) AS n FROM audit_events) AS r \
             WHERE audit_events.global_position = r.p",
        )
        .await?;
        let sqlite = manager.get_database_backend() == DbBackend::Sqlite;
        db.execute_unprepared(if sqlite {
            "ALTER TABLE write_fence ADD COLUMN tree_size INTEGER NOT NULL DEFAULT 0"
        } else {
            "ALTER TABLE write_fence ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0"
        })
        .await?;
        db.execute_unprepared(if sqlite {
            "ALTER TABLE write_fence ADD COLUMN tree_frontier BLOB NOT NULL DEFAULT x''"
        } else {
            "ALTER TABLE write_fence ADD COLUMN tree_frontier BYTEA NOT NULL DEFAULT ''::bytea"
        })
        .await?;
        db.execute_unprepared(match manager.get_database_backend() {
            DbBackend::Sqlite => {
                "CREATE TABLE audit_tree_nodes (last_leaf INTEGER NOT NULL, level INTEGER NOT \
                 NULL, hash BLOB NOT NULL, PRIMARY KEY (last_leaf, level)) WITHOUT ROWID"
            }
            _ => {
                "CREATE TABLE audit_tree_nodes (last_leaf BIGINT NOT NULL, level SMALLINT NOT \
                 NULL, hash BYTEA NOT NULL, PRIMARY KEY (last_leaf, level))"
            }
        })
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(string_len(AuditCheckpoints::Origin, 255))
                    .col(big_integer(AuditCheckpoints::TreeSize))
                    .col(binary(AuditCheckpoints::RootHash))
                    .col(text(AuditCheckpoints::Note))
                    .col(big_integer(AuditCheckpoints::SignTimeUs))
                    .primary_key(
                        Index::create()
                            .col(AuditCheckpoints::Origin)
                            .col(AuditCheckpoints::TreeSize),
                    )
                    .to_owned(),
            )
            .await?;
        build_existing_tree(db).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditCheckpoints::Table).to_owned())
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE audit_tree_nodes").await?;
        db.execute_unprepared("ALTER TABLE write_fence DROP COLUMN tree_frontier")
            .await?;
        db.execute_unprepared("ALTER TABLE write_fence DROP COLUMN tree_size")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::LeafIndex)
                    .to_owned(),
            )
            .await
    }
}

/// Appends every existing event to the (empty) tree, in leaf order, a chunk at a time, then
/// records the tree's head on the `write_fence` row.
async fn build_existing_tree(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    let mut size = 0_u64;
    let mut frontier: Vec<Hash> = Vec::new();
    loop {
        let select = Query::select()
            .column(AuditEvents::Hash)
            .from(AuditEvents::Table)
            .and_where(Expr::col(AuditEvents::LeafIndex).gte(size as i64))
            .order_by(AuditEvents::LeafIndex, Order::Asc)
            .limit(CHUNK)
            .to_owned();
        let rows = db.query_all(&select).await?;
        if rows.is_empty() {
            break;
        }
        let hashes: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| r.try_get_by_index::<Vec<u8>>(0))
            .collect::<Result<_, _>>()?;
        let leaves: Vec<&[u8]> = hashes.iter().map(Vec::as_slice).collect();
        let appended = merkle::append(size, &frontier, &leaves).map_err(DbErr::Custom)?;
        for chunk in appended.nodes.chunks(500) {
            let mut insert = Query::insert()
                .into_table(AuditTreeNodes::Table)
                .columns([
                    AuditTreeNodes::LastLeaf,
                    AuditTreeNodes::Level,
                    AuditTreeNodes::Hash,
                ])
                .to_owned();
            for (key, hash) in chunk {
                insert.values_panic([
                    (key.last_leaf() as i64).into(),
                    i16::from(key.level).into(),
                    hash.to_vec().into(),
                ]);
            }
            db.execute(&insert).await?;
        }
        size += leaves.len() as u64;
        frontier = appended.frontier;
    }
    let head = Query::update()
        .table(WriteFence::Table)
        .value(WriteFence::TreeSize, size as i64)
        .value(WriteFence::TreeFrontier, frontier.concat())
        .and_where(Expr::col(WriteFence::Id).eq(1))
        .to_owned();
    db.execute(&head).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum WriteFence {
    Table,
    Id,
    TreeSize,
    TreeFrontier,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Hash,
    LeafIndex,
}

#[derive(DeriveIden)]
enum AuditTreeNodes {
    Table,
    LastLeaf,
    Level,
    Hash,
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    Origin,
    TreeSize,
    RootHash,
    Note,
    SignTimeUs,
}
