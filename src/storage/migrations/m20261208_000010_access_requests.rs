//! Access requests: the `access_requests` table, each account's request policy as four more
//! columns of its `access_grants` row (read and written with the grant, so a request's
//! decision sees the policy of the same snapshot), and `assumptions.access_request_id` (the
//! request an assumption was allowed under).
//!
//! Reviews are one JSON array per request rather than a table: a request has at most a
//! handful (the quorum is at most five, and one denial ends it), they are always read and
//! written with their request, and never queried on their own.
//!
//! SQLite adds one column per `ALTER TABLE`, so every column is its own statement; `down`
//! drops them again (SQLite has `DROP COLUMN` since 3.35) after the indexes that name them.

use sea_orm_migration::{prelude::*, schema::*};

/// The policy's default `max_request_duration`: eight hours, in µs.
const DEFAULT_MAX_REQUEST_DURATION_US: i64 = 8 * 3_600 * 1_000_000;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessRequests::Table)
                    .if_not_exists()
                    .col(string_len(AccessRequests::AccessRequestId, 64).primary_key())
                    .col(string_len(AccessRequests::AccountId, 63))
                    .col(string_len(AccessRequests::StaffId, 128))
                    .col(string_len(AccessRequests::TicketId, 128))
                    .col(string_len(AccessRequests::Reason, 48))
                    .col(text(AccessRequests::ReasonDetail))
                    .col(big_integer(AccessRequests::RequestedDurationUs))
                    .col(string_len(AccessRequests::Status, 16))
                    .col(text(AccessRequests::ReviewsJson))
                    .col(integer(AccessRequests::RequiredApprovals))
                    .col(big_integer(AccessRequests::CreateTimeUs))
                    .col(big_integer(AccessRequests::RequestExpireTimeUs))
                    .col(big_integer_null(AccessRequests::ApproveTimeUs))
                    .col(big_integer_null(AccessRequests::ExpireTimeUs))
                    .col(big_integer(AccessRequests::UpdateTimeUs))
                    .col(big_integer(AccessRequests::Version))
                    .to_owned(),
            )
            .await?;
        // An account's requests, newest first (keyset pages).
        manager
            .create_index(
                Index::create()
                    .name("access_requests_account_time")
                    .table(AccessRequests::Table)
                    .col(AccessRequests::AccountId)
                    .col(AccessRequests::CreateTimeUs)
                    .to_owned(),
            )
            .await?;
        // The sweep of lapsed pending requests, and the pending gauge: a range, not a scan.
        manager
            .create_index(
                Index::create()
                    .name("access_requests_status_expiry")
                    .table(AccessRequests::Table)
                    .col(AccessRequests::Status)
                    .col(AccessRequests::RequestExpireTimeUs)
                    .to_owned(),
            )
            .await?;
        for column in [
            boolean(AccessGrants::RequestsEnabled)
                .default(true)
                .to_owned(),
            integer(AccessGrants::RequiredApprovals)
                .default(1)
                .to_owned(),
            big_integer(AccessGrants::MaxRequestDurationUs)
                .default(DEFAULT_MAX_REQUEST_DURATION_US)
                .to_owned(),
            big_integer(AccessGrants::PolicyVersion)
                .default(1)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AccessGrants::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Assumptions::Table)
                    .add_column(string_len_null(Assumptions::AccessRequestId, 64))
                    .to_owned(),
            )
            .await?;
        // An account's assumptions, newest first (keyset pages).
        manager
            .create_index(
                Index::create()
                    .name("assumptions_account_start")
                    .table(Assumptions::Table)
                    .col(Assumptions::AccountId)
                    .col(Assumptions::StartTimeUs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("assumptions_account_start")
                    .table(Assumptions::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Assumptions::Table)
                    .drop_column(Assumptions::AccessRequestId)
                    .to_owned(),
            )
            .await?;
        for column in [
            AccessGrants::PolicyVersion,
            AccessGrants::MaxRequestDurationUs,
            AccessGrants::RequiredApprovals,
            AccessGrants::RequestsEnabled,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AccessGrants::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Dropping the table drops its indexes with it.
        manager
            .drop_table(Table::drop().table(AccessRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AccessRequests {
    Table,
    AccessRequestId,
    AccountId,
    StaffId,
    TicketId,
    Reason,
    ReasonDetail,
    RequestedDurationUs,
    Status,
    ReviewsJson,
    RequiredApprovals,
    CreateTimeUs,
    RequestExpireTimeUs,
    ApproveTimeUs,
    ExpireTimeUs,
    UpdateTimeUs,
    Version,
}

#[derive(DeriveIden)]
enum AccessGrants {
    Table,
    RequestsEnabled,
    RequiredApprovals,
    MaxRequestDurationUs,
    PolicyVersion,
}

#[derive(DeriveIden)]
enum Assumptions {
    Table,
    AccountId,
    StartTimeUs,
    AccessRequestId,
}
