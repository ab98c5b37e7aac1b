use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Assumptions::Table)
                    .if_not_exists()
                    .col(string_len(Assumptions::AssumptionId, 64).primary_key())
                    .col(string_len(Assumptions::AccountId, 63))
                    .col(string_len(Assumptions::StaffId, 128))
                    .col(string_len(Assumptions::TicketId, 128))
                    .col(string_len(Assumptions::Basis, 32))
                    .col(big_integer(Assumptions::StartTimeUs))
                    .col(big_integer(Assumptions::ExpireTimeUs))
                    .col(big_integer_null(Assumptions::EndTimeUs))
                    .col(string_len_null(Assumptions::EndReason, 16))
                    .to_owned(),
            )
            .await?;
        // Revoking "every open assumption of an account" finds them through this index.
        manager
            .create_index(
                Index::create()
                    .name("assumptions_account_open")
                    .table(Assumptions::Table)
                    .col(Assumptions::AccountId)
                    .col(Assumptions::EndReason)
                    .to_owned(),
            )
            .await?;
        // Customer-visible pages filter by time; keep that an index range, not a scan.
        manager
            .create_index(
                Index::create()
                    .name("audit_events_account_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::AccountId)
                    .col(AuditEvents::OccurTimeUs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("audit_events_account_time")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Assumptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Assumptions {
    Table,
    AssumptionId,
    AccountId,
    StaffId,
    TicketId,
    Basis,
    StartTimeUs,
    ExpireTimeUs,
    EndTimeUs,
    EndReason,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    AccountId,
    OccurTimeUs,
}
