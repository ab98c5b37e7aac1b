//! The audit log's model and its tamper evidence: the event types, the filter a reader pages
//! by, the one canonical byte encoding of an event, and the per-account SHA-256 hash chain
//! built over it.
//!
//! Nothing here does I/O; `storage::audit_log` is the one place that appends events.

pub mod canonical;
pub mod chain;
pub mod event;
pub mod filter;

pub use event::{AuditEvent, EventActor, EventKind, NewEvent};
pub use filter::EventFilter;
