//! `write_fence`: one row that every write transaction locks first on PostgreSQL.
//!
//! Several replicas write to one database. Locking this row (`SELECT … FOR UPDATE`) as the
//! first statement of every write transaction makes write transactions run one at a time
//! across all replicas, so audit `global_position`s (an identity column) are handed out in
//! commit order and a watcher resuming "after N" can never skip an event that commits late
//! (the outbox trap). Group commit keeps this cheap: one lock per batch, not per request.
//! SQLite does not need the row (its writers are already serialized by `BEGIN IMMEDIATE`)
//! but gets it too, so the schema is the same on both.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WriteFence::Table)
                    .if_not_exists()
                    .col(integer(WriteFence::Id).primary_key())
                    .to_owned(),
            )
            .await?;
        let mut insert = Query::insert();
        insert
            .into_table(WriteFence::Table)
            .columns([WriteFence::Id])
            .values([1.into()])
            .map_err(|e| DbErr::Migration(format!("write_fence row: {e}")))?
            .on_conflict(OnConflict::column(WriteFence::Id).do_nothing().to_owned());
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WriteFence::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WriteFence {
    Table,
    Id,
}
