//! `access_grants.expiry_recorded_us`: which period's lapse has been audited.
//!
//! The expiry sweeper records `GRANT_EXPIRED` once per lapsed period. It claims a lapse with a
//! conditional update (`SET expiry_recorded_us = expire_time_us WHERE expiry_recorded_us IS
//! DISTINCT FROM expire_time_us`): whichever replica's update changes the row writes the
//! event, every other one sees zero rows affected. A new period has a new `expire_time_us`,
//! so it is claimable again without resetting anything.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AccessGrants::Table)
                    .add_column(big_integer_null(AccessGrants::ExpiryRecordedUs))
                    .to_owned(),
            )
            .await?;
        // The sweeper looks for enabled grants whose period ended before now.
        manager
            .create_index(
                Index::create()
                    .name("access_grants_expire_time")
                    .table(AccessGrants::Table)
                    .col(AccessGrants::ExpireTimeUs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("access_grants_expire_time")
                    .table(AccessGrants::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AccessGrants::Table)
                    .drop_column(AccessGrants::ExpiryRecordedUs)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AccessGrants {
    Table,
    ExpireTimeUs,
    ExpiryRecordedUs,
}
