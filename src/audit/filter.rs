//! Which events of an account's log a reader asks for. A plain value, so that transport builds
//! it from a request and storage turns it into a query without either knowing the other.

use chrono::{DateTime, Utc};

use super::EventKind;

/// Filters of a customer-visible page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    /// Only events at or after this time.
    pub start_time: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub end_time: Option<DateTime<Utc>>,
}
