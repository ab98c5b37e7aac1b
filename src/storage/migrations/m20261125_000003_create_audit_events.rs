use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::GlobalPosition))
                    .col(string_len_uniq(AuditEvents::EventId, 64))
                    .col(string_len(AuditEvents::AccountId, 63))
                    .col(big_integer(AuditEvents::Sequence))
                    .col(big_integer(AuditEvents::OccurTimeUs))
                    .col(string_len(AuditEvents::Kind, 64))
                    .col(string_len(AuditEvents::ActorType, 32))
                    .col(string_len(AuditEvents::ActorValue, 128))
                    .col(text(AuditEvents::DetailJson))
                    .col(string_len(AuditEvents::RequestId, 128))
                    .col(binary(AuditEvents::PrevHash))
                    .col(binary(AuditEvents::Hash))
                    .to_owned(),
            )
            .await?;
        // Gap-free, duplicate-free sequences are enforced by the database, not only by code;
        // the index also serves "newest first" pages of one account without OFFSET scans.
        manager
            .create_index(
                Index::create()
                    .name("audit_events_account_sequence")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::AccountId)
                    .col(AuditEvents::Sequence)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChainHeads::Table)
                    .if_not_exists()
                    .col(string_len(AuditChainHeads::AccountId, 63).primary_key())
                    .col(big_integer(AuditChainHeads::LastSequence))
                    .col(binary(AuditChainHeads::LastHash))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditChainHeads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    GlobalPosition,
    EventId,
    AccountId,
    Sequence,
    OccurTimeUs,
    Kind,
    ActorType,
    ActorValue,
    DetailJson,
    RequestId,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    AccountId,
    LastSequence,
    LastHash,
}
