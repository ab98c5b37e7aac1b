//! Deciding an assumption request, and the lifecycle of the resulting assumption.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    account::Account,
    grant::{GrantRecord, GrantState, effective_state},
    ids::AccountId,
};

/// Why support needs access (the help article's cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessReason {
    /// A very technical problem escalated through several support tiers.
    EscalatedTechnicalIssue,
    /// The problem cannot be reproduced outside the account.
    CannotReproduceElsewhere,
    /// The console must be inspected visually.
    VisualConsoleInspection,
    /// Incorrect IP configuration.
    IpConfiguration,
    /// Test tickets must be created.
    TestTickets,
    /// Anything else (explain in the detail).
    Other,
}

impl AccessReason {
    /// Stable name for audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EscalatedTechnicalIssue => "ESCALATED_TECHNICAL_ISSUE",
            Self::CannotReproduceElsewhere => "CANNOT_REPRODUCE_ELSEWHERE",
            Self::VisualConsoleInspection => "VISUAL_CONSOLE_INSPECTION",
            Self::IpConfiguration => "IP_CONFIGURATION",
            Self::TestTickets => "TEST_TICKETS",
            Self::Other => "OTHER",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        [
            Self::EscalatedTechnicalIssue,
            Self::CannotReproduceElsewhere,
            Self::VisualConsoleInspection,
            Self::IpConfiguration,
            Self::TestTickets,
            Self::Other,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The grounds for an emergency assumption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EmergencyReason {
    /// To prevent serious harm to the customer or others.
    PreventSeriousHarm,
    /// A breach of the terms of service is suspected.
    SuspectedTermsViolation,
}

impl EmergencyReason {
    /// Stable name for audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreventSeriousHarm => "PREVENT_SERIOUS_HARM",
            Self::SuspectedTermsViolation => "SUSPECTED_TERMS_VIOLATION",
        }
    }
}

/// Shortest emergency justification, in characters: enough to force a real sentence.
pub const MIN_JUSTIFICATION_CHARS: usize = 20;

/// A justified emergency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Emergency {
    /// The grounds.
    pub reason: EmergencyReason,
    /// The staff member's justification, shown to the customer.
    pub justification: String,
}

/// A request to assume an agent role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AssumptionRequest {
    /// The account.
    pub account_id: AccountId,
    /// The staff member.
    pub staff_id: String,
    /// The support ticket.
    pub ticket_id: String,
    /// Why.
    pub reason: AccessReason,
    /// Free-text detail (may be empty).
    pub reason_detail: String,
    /// Present for an emergency.
    pub emergency: Option<Emergency>,
    /// The approved access request to decide on instead of the grant, if any.
    pub access_request_id: Option<String>,
}

/// Why an assumption was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Basis {
    /// The customer's grant is enabled.
    CustomerGrant,
    /// A trial account.
    TrialAccount,
    /// A justified emergency.
    Emergency,
    /// An access request approved by the account's admins.
    AccessRequest,
}

impl Basis {
    /// Stable name for storage and audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerGrant => "CUSTOMER_GRANT",
            Self::TrialAccount => "TRIAL_ACCOUNT",
            Self::Emergency => "EMERGENCY",
            Self::AccessRequest => "ACCESS_REQUEST",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "CUSTOMER_GRANT" => Some(Self::CustomerGrant),
            "TRIAL_ACCOUNT" => Some(Self::TrialAccount),
            "EMERGENCY" => Some(Self::Emergency),
            "ACCESS_REQUEST" => Some(Self::AccessRequest),
            _ => None,
        }
    }
}

/// Why an assumption was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DenyReason {
    /// The grant is off.
    AccessDisabled,
    /// The grant lapsed.
    AccessExpired,
    /// No such open account.
    AccountNotFound,
    /// The access request named is not approved now (pending, final, lapsed or unknown).
    AccessRequestNotApproved,
    /// The access request named is for another account, staff member or ticket.
    AccessRequestMismatch,
}

impl DenyReason {
    /// Stable name for audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessDisabled => "ACCESS_DISABLED",
            Self::AccessExpired => "ACCESS_EXPIRED",
            Self::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Self::AccessRequestNotApproved => "ACCESS_REQUEST_NOT_APPROVED",
            Self::AccessRequestMismatch => "ACCESS_REQUEST_MISMATCH",
        }
    }
}

/// Lifetime caps from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Cap on every assumption.
    pub max: Duration,
    /// Cap on emergency assumptions.
    pub emergency: Duration,
}

/// The decision on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed until `expire_time`.
    Allow {
        /// Why.
        basis: Basis,
        /// When the assumption ends by itself.
        expire_time: DateTime<Utc>,
    },
    /// Denied.
    Deny(DenyReason),
}

/// Decides a request from the account and grant as they are *now*, inside the transaction
/// that records the decision. `account` is `None` for an unknown account; a deleted account
/// counts as unknown.
pub fn decide(
    account: Option<&Account>,
    grant: Option<&GrantRecord>,
    emergency: bool,
    now: DateTime<Utc>,
    limits: Lifetimes,
) -> Decision {
    let (Some(account), Some(grant)) = (account.filter(|a| !a.is_deleted()), grant) else {
        return Decision::Deny(DenyReason::AccountNotFound);
    };
    let cap = now + limits.max;
    if emergency {
        return Decision::Allow {
            basis: Basis::Emergency,
            expire_time: cap.min(now + limits.emergency),
        };
    }
    match effective_state(account.plan, grant, now) {
        GrantState::AlwaysOnTrial => Decision::Allow {
            basis: Basis::TrialAccount,
            expire_time: cap,
        },
        GrantState::Enabled => Decision::Allow {
            basis: Basis::CustomerGrant,
            expire_time: grant.expire_time.map_or(cap, |end| end.min(cap)),
        },
        GrantState::Disabled => Decision::Deny(DenyReason::AccessDisabled),
        GrantState::Expired => Decision::Deny(DenyReason::AccessExpired),
    }
}

/// How an assumption ended before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// Ended by the support tooling.
    Ended,
    /// The customer disabled access, the account was deleted or converted.
    Revoked,
}

impl EndReason {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ended => "ENDED",
            Self::Revoked => "REVOKED",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "ENDED" => Some(Self::Ended),
            "REVOKED" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// An assumption as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assumption {
    /// Server-assigned id.
    pub assumption_id: String,
    /// The account.
    pub account_id: String,
    /// The staff member.
    pub staff_id: String,
    /// The support ticket it was taken for.
    pub ticket_id: String,
    /// The access request it was allowed under, if any.
    pub access_request_id: Option<String>,
    /// Why allowed.
    pub basis: Basis,
    /// When allowed.
    pub start_time: DateTime<Utc>,
    /// When it ends by itself.
    pub expire_time: DateTime<Utc>,
    /// When it was ended or revoked.
    pub end_time: Option<DateTime<Utc>>,
    /// How it ended, if it did before expiring.
    pub end_reason: Option<EndReason>,
}

/// The state of an assumption at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssumptionState {
    /// In force.
    Active,
    /// Ended by support tooling.
    Ended,
    /// Past its expiry.
    Expired,
    /// Revoked by the customer (disable) or by account deletion.
    Revoked,
}

impl Assumption {
    /// The state at `now`; expiry is half-open like the grant's.
    pub fn state_at(&self, now: DateTime<Utc>) -> AssumptionState {
        match self.end_reason {
            Some(EndReason::Ended) => AssumptionState::Ended,
            Some(EndReason::Revoked) => AssumptionState::Revoked,
            None if now >= self.expire_time => AssumptionState::Expired,
            None => AssumptionState::Active,
        }
    }
}

/// An assumption as clients see it: evaluated at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssumptionView {
    /// The stored assumption.
    pub assumption: Assumption,
    /// Its state when the view was taken.
    pub state: AssumptionState,
}

impl AssumptionView {
    /// Evaluates at `now`.
    pub fn at(assumption: Assumption, now: DateTime<Utc>) -> Self {
        let state = assumption.state_at(now);
        Self { assumption, state }
    }
}

/// A customer admin's request to end one active assumption.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RevokeAssumption {
    /// The assumption.
    pub assumption_id: String,
    /// The customer admin.
    pub actor: super::actor::Actor,
    /// Why (shown in the audit log; may be empty).
    pub reason: String,
}

/// The answer to an assumption request, as replayed for a retried `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssumptionDecision {
    /// Set when allowed.
    pub allowed: Option<AssumptionView>,
    /// Set when denied.
    pub denied: Option<DenyReason>,
    /// The audit event recording the decision.
    pub audit_event_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::Plan;
    use chrono::TimeZone;

    fn account(plan: Plan) -> Account {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Account {
            account_id: AccountId::parse("acme", "f").unwrap(),
            plan,
            create_time: t,
            update_time: t,
            delete_time: None,
        }
    }

    const LIMITS: Lifetimes = Lifetimes {
        max: Duration::hours(8),
        emergency: Duration::hours(1),
    };

    #[test]
    fn decisions() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let off = GrantRecord::initial(now);
        let paid = account(Plan::Paid);
        let trial = account(Plan::Trial);
        assert_eq!(
            decide(Some(&paid), Some(&off), false, now, LIMITS),
            Decision::Deny(DenyReason::AccessDisabled)
        );
        assert_eq!(
            decide(None, None, true, now, LIMITS),
            Decision::Deny(DenyReason::AccountNotFound)
        );
        assert_eq!(
            decide(Some(&trial), Some(&off), false, now, LIMITS),
            Decision::Allow {
                basis: Basis::TrialAccount,
                expire_time: now + Duration::hours(8)
            }
        );
        assert_eq!(
            decide(Some(&paid), Some(&off), true, now, LIMITS),
            Decision::Allow {
                basis: Basis::Emergency,
                expire_time: now + Duration::hours(1)
            }
        );
        let on = GrantRecord {
            enabled: true,
            expire_time: Some(now + Duration::hours(2)),
            ..off.clone()
        };
        assert_eq!(
            decide(Some(&paid), Some(&on), false, now, LIMITS),
            Decision::Allow {
                basis: Basis::CustomerGrant,
                expire_time: now + Duration::hours(2)
            }
        );
        assert_eq!(
            decide(
                Some(&paid),
                Some(&on),
                false,
                now + Duration::hours(2),
                LIMITS
            ),
            Decision::Deny(DenyReason::AccessExpired)
        );
        let forever = GrantRecord {
            expire_time: None,
            ..on
        };
        assert_eq!(
            decide(Some(&paid), Some(&forever), false, now, LIMITS),
            Decision::Allow {
                basis: Basis::CustomerGrant,
                expire_time: now + Duration::hours(8)
            }
        );
    }
}
