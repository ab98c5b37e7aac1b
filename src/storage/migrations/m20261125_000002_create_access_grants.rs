use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessGrants::Table)
                    .if_not_exists()
                    .col(string_len(AccessGrants::AccountId, 63).primary_key())
                    .col(boolean(AccessGrants::Enabled))
                    .col(string_len_null(AccessGrants::Duration, 16))
                    .col(big_integer_null(AccessGrants::EnableTimeUs))
                    .col(big_integer_null(AccessGrants::ExpireTimeUs))
                    .col(big_integer(AccessGrants::UpdateTimeUs))
                    .col(string_len(AccessGrants::UpdateUserId, 128))
                    .col(big_integer(AccessGrants::Version))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AccessGrants::Table, AccessGrants::AccountId)
                            .to(Accounts::Table, Accounts::AccountId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessGrants::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AccessGrants {
    Table,
    AccountId,
    Enabled,
    Duration,
    EnableTimeUs,
    ExpireTimeUs,
    UpdateTimeUs,
    UpdateUserId,
    Version,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    AccountId,
}
