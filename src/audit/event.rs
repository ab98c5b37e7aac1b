//! Audit events as the domain sees them.

use chrono::{DateTime, Utc};

use crate::domain::ids::AccountId;

/// What happened. Storage names are the contract's enum names without the `KIND_` prefix and
/// are part of the canonical encoding: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An account was created.
    AccountCreated,
    /// A trial became a paid account.
    AccountConvertedToPaid,
    /// An account was closed.
    AccountDeleted,
    /// The grant was switched on.
    GrantEnabled,
    /// An enabled grant got a new period.
    GrantDurationChanged,
    /// The grant was switched off.
    GrantDisabled,
    /// The grant's period ran out.
    GrantExpired,
    /// An assumption was allowed on the customer's grant or a trial.
    AssumptionAllowed,
    /// An assumption was denied.
    AssumptionDenied,
    /// An assumption was allowed as an emergency.
    EmergencyAssumption,
    /// An assumption was ended.
    AssumptionEnded,
    /// Support asked for access through a request.
    AccessRequestCreated,
    /// An admin approved a request (one event per approving review).
    AccessRequestApproved,
    /// An admin denied a request.
    AccessRequestDenied,
    /// Support cancelled a request.
    AccessRequestCancelled,
    /// A request was revoked (by an admin, by disabling access, or by closing the account).
    AccessRequestRevoked,
    /// A pending request lapsed without its reviews (recorded once, by the sweep).
    AccessRequestExpired,
    /// An admin changed the account's access policy.
    AccessPolicyUpdated,
    /// An admin ended one assumption.
    AssumptionRevoked,
}

impl EventKind {
    /// Every kind, for exhaustive tests and filters.
    pub const ALL: [EventKind; 19] = [
        Self::AccountCreated,
        Self::AccountConvertedToPaid,
        Self::AccountDeleted,
        Self::GrantEnabled,
        Self::GrantDurationChanged,
        Self::GrantDisabled,
        Self::GrantExpired,
        Self::AssumptionAllowed,
        Self::AssumptionDenied,
        Self::EmergencyAssumption,
        Self::AssumptionEnded,
        Self::AccessRequestCreated,
        Self::AccessRequestApproved,
        Self::AccessRequestDenied,
        Self::AccessRequestCancelled,
        Self::AccessRequestRevoked,
        Self::AccessRequestExpired,
        Self::AccessPolicyUpdated,
        Self::AssumptionRevoked,
    ];

    /// Stable name, used in storage and in the canonical encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "ACCOUNT_CREATED",
            Self::AccountConvertedToPaid => "ACCOUNT_CONVERTED_TO_PAID",
            Self::AccountDeleted => "ACCOUNT_DELETED",
            Self::GrantEnabled => "GRANT_ENABLED",
            Self::GrantDurationChanged => "GRANT_DURATION_CHANGED",
            Self::GrantDisabled => "GRANT_DISABLED",
            Self::GrantExpired => "GRANT_EXPIRED",
            Self::AssumptionAllowed => "ASSUMPTION_ALLOWED",
            Self::AssumptionDenied => "ASSUMPTION_DENIED",
            Self::EmergencyAssumption => "EMERGENCY_ASSUMPTION",
            Self::AssumptionEnded => "ASSUMPTION_ENDED",
            Self::AccessRequestCreated => "ACCESS_REQUEST_CREATED",
            Self::AccessRequestApproved => "ACCESS_REQUEST_APPROVED",
            Self::AccessRequestDenied => "ACCESS_REQUEST_DENIED",
            Self::AccessRequestCancelled => "ACCESS_REQUEST_CANCELLED",
            Self::AccessRequestRevoked => "ACCESS_REQUEST_REVOKED",
            Self::AccessRequestExpired => "ACCESS_REQUEST_EXPIRED",
            Self::AccessPolicyUpdated => "ACCESS_POLICY_UPDATED",
            Self::AssumptionRevoked => "ASSUMPTION_REVOKED",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventActor {
    /// A customer user (grant changes).
    CustomerUser(String),
    /// A support staff member (assumptions).
    Staff(String),
    /// A calling service (account changes).
    ServicePrincipal(String),
    /// The service itself (expiry).
    System,
}

impl EventActor {
    /// (type, value) as stored and as encoded canonically.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::CustomerUser(id) => ("customer_user_id", id),
            Self::Staff(id) => ("staff_id", id),
            Self::ServicePrincipal(name) => ("service_principal", name),
            Self::System => ("system", ""),
        }
    }

    /// Rebuilds from stored parts.
    pub fn from_parts(kind: &str, value: &str) -> Option<Self> {
        Some(match kind {
            "customer_user_id" => Self::CustomerUser(value.to_owned()),
            "staff_id" => Self::Staff(value.to_owned()),
            "service_principal" => Self::ServicePrincipal(value.to_owned()),
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// An event about to be appended: storage assigns its id, sequence, hashes and position.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The account the event belongs to.
    pub account_id: AccountId,
    /// What happened.
    pub kind: EventKind,
    /// Who caused it.
    pub actor: EventActor,
    /// Kind-specific details (always a JSON object).
    pub detail: serde_json::Value,
    /// The idempotency key of the causing request, if any.
    pub request_id: Option<String>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the global commit order (for watching).
    pub global_position: i64,
    /// Leaf in the Merkle tree (dense, 0-based, in the same commit order).
    pub leaf_index: i64,
    /// Unique id.
    pub event_id: String,
    /// The account.
    pub account_id: String,
    /// 1, 2, 3 … per account.
    pub sequence: i64,
    /// When it happened.
    pub occur_time: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// Who caused it.
    pub actor: EventActor,
    /// Details, exactly as hashed.
    pub detail_json: String,
    /// Causing request id, or empty.
    pub request_id: String,
    /// Hash of the previous event of the account (zeros for the first).
    pub prev_hash: Vec<u8>,
    /// SHA-256(prev_hash || canonical bytes).
    pub hash: Vec<u8>,
}

impl AuditEvent {
    /// An upper bound on the bytes this event takes in a response: every variable-length
    /// field plus a fixed allowance for tags, lengths, numbers and the timestamp. Pages stop
    /// at a byte budget with it, so no page outgrows what clients accept.
    pub fn encoded_len_bound(&self) -> usize {
        const FIXED: usize = 64;
        let (_, actor) = self.actor.parts();
        FIXED
            + self.event_id.len()
            + self.account_id.len()
            + actor.len()
            + self.detail_json.len()
            + self.request_id.len()
            + self.prev_hash.len()
            + self.hash.len()
    }
}
