use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(string_len(Accounts::AccountId, 63).primary_key())
                    .col(string_len(Accounts::Plan, 16))
                    .col(big_integer(Accounts::CreateTimeUs))
                    .col(big_integer(Accounts::UpdateTimeUs))
                    .col(big_integer_null(Accounts::DeleteTimeUs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    AccountId,
    Plan,
    CreateTimeUs,
    UpdateTimeUs,
    DeleteTimeUs,
}
