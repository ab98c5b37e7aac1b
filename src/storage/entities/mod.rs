//! sea-orm entities: one module per table. Times are stored as microseconds since the Unix
//! epoch in 64-bit integers, identical on SQLite and PostgreSQL, so ordering, equality and the
//! audit hash never depend on a driver's text format for timestamps.

pub mod access_grant;
pub mod access_request;
pub mod account;
pub mod assumption;
pub mod audit_chain_head;
pub mod audit_checkpoint;
pub mod audit_event;
pub mod audit_tree_node;
pub mod idempotency_record;
