use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyRecords::Table)
                    .if_not_exists()
                    .col(string_len(IdempotencyRecords::Scope, 64))
                    .col(string_len(IdempotencyRecords::RequestId, 128))
                    .col(string_len(IdempotencyRecords::Fingerprint, 64))
                    .col(text(IdempotencyRecords::ResponseJson))
                    .col(big_integer(IdempotencyRecords::CreateTimeUs))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyRecords::Scope)
                            .col(IdempotencyRecords::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning deletes by age.
        manager
            .create_index(
                Index::create()
                    .name("idempotency_records_create_time")
                    .table(IdempotencyRecords::Table)
                    .col(IdempotencyRecords::CreateTimeUs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyRecords::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyRecords {
    Table,
    Scope,
    RequestId,
    Fingerprint,
    ResponseJson,
    CreateTimeUs,
}
