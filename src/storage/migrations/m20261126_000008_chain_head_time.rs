//! `audit_chain_heads.last_occur_time_us`, and no `(account_id, occur_time_us)` index.
//!
//! The time index cost every appended event one more random index page to write and fsync
//! (measured: ~30% of durable `AuthorizeAssumption` throughput on SQLite). Time-filtered
//! pages now find their sequence range by binary search on `(account_id, sequence)`, which
//! needs an event's time never to be below its predecessor's: appends take
//! `max(now, last_occur_time_us)`, so the head carries the last event's time. Existing heads
//! get it from their last event.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditChainHeads::Table)
                    .add_column(big_integer(AuditChainHeads::LastOccurTimeUs).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE audit_chain_heads SET last_occur_time_us = COALESCE((\
                 SELECT e.occur_time_us FROM audit_events e \
                 WHERE e.account_id = audit_chain_heads.account_id \
                 AND e.sequence = audit_chain_heads.last_sequence), 0)",
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("audit_events_account_time")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("audit_events_account_time")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::AccountId)
                    .col(AuditEvents::OccurTimeUs)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditChainHeads::Table)
                    .drop_column(AuditChainHeads::LastOccurTimeUs)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    AccountId,
    OccurTimeUs,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    LastOccurTimeUs,
}
