//! Schema migrations, applied in order at start (`accessgrant serve`) or by
//! `accessgrant migrate`. One migration per file: `DeriveMigrationName` takes the name from it.

use sea_orm_migration::prelude::*;

mod m20261125_000001_create_accounts;
mod m20261125_000002_create_access_grants;
mod m20261125_000003_create_audit_events;
mod m20261125_000004_create_idempotency_records;
mod m20261125_000005_create_assumptions;
mod m20261126_000006_create_write_fence;
mod m20261126_000007_add_grant_expiry_recorded;
mod m20261126_000008_chain_head_time;
mod m20261207_000009_audit_tree;
mod m20261208_000010_access_requests;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_accounts::Migration),
            Box::new(m20261125_000002_create_access_grants::Migration),
            Box::new(m20261125_000003_create_audit_events::Migration),
            Box::new(m20261125_000004_create_idempotency_records::Migration),
            Box::new(m20261125_000005_create_assumptions::Migration),
            Box::new(m20261126_000006_create_write_fence::Migration),
            Box::new(m20261126_000007_add_grant_expiry_recorded::Migration),
            Box::new(m20261126_000008_chain_head_time::Migration),
            Box::new(m20261207_000009_audit_tree::Migration),
            Box::new(m20261208_000010_access_requests::Migration),
        ]
    }
}
