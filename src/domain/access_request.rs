//! Per-request approval: a support staff member asks for access to one account, for one
//! ticket, for a short time; the account's admins approve (a quorum of distinct users) or
//! deny. Like the grant, a request's *effective* state is computed at read time from what
//! is stored and `now`, so a lapsed request reads expired without any background job.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Error,
    actor::Actor,
    assumption::{AccessReason, AssumptionRequest, Basis, Decision, DenyReason},
    ids::AccountId,
};

/// Shortest duration a request may ask for.
pub const MIN_REQUEST_DURATION: Duration = Duration::minutes(1);
/// Longest `max_request_duration` a policy may set.
pub const MAX_POLICY_DURATION: Duration = Duration::days(30);
/// Most approvals a policy may require.
pub const MAX_REQUIRED_APPROVALS: i32 = 5;

/// A request's stored status: what the last change made it. `Expired` is stored only once the
/// sweep recorded a pending request's lapse; [`AccessRequest::state_at`] is what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestState {
    /// Waiting for reviews.
    Pending,
    /// Approved by the quorum; usable until `expire_time`.
    Approved,
    /// Denied by one reviewer.
    Denied,
    /// Cancelled by support (the work is done).
    Cancelled,
    /// Pending past `request_expire_time`, or approved past `expire_time`.
    Expired,
    /// Revoked by a customer admin, by disabling the grant, or by deleting the account.
    Revoked,
}

impl RequestState {
    /// Stable name for storage, metrics and audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Denied => "DENIED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Denied,
            Self::Cancelled,
            Self::Expired,
            Self::Revoked,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }

    /// True while the request can still be reviewed, used, cancelled or revoked.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }
}

/// A reviewer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Counts towards the quorum.
    Approve,
    /// Denies the request at once.
    Deny,
}

impl Verdict {
    /// Stable name for storage and audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "APPROVE",
            Self::Deny => "DENY",
        }
    }

    /// Parses a stable name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "APPROVE" => Some(Self::Approve),
            "DENY" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// One customer admin's review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewing customer user.
    pub user_id: String,
    /// Approve or deny.
    pub verdict: Verdict,
    /// Free text (may be empty).
    pub comment: String,
    /// When.
    pub review_time: DateTime<Utc>,
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Server-assigned id (UUIDv7).
    pub access_request_id: String,
    /// The account.
    pub account_id: String,
    /// The staff member who will assume.
    pub staff_id: String,
    /// The support ticket.
    pub ticket_id: String,
    /// Why.
    pub reason: AccessReason,
    /// Free-text detail (may be empty).
    pub reason_detail: String,
    /// How long access lasts once approved (µs).
    pub requested_duration_us: i64,
    /// The stored state (see [`RequestState`]).
    pub status: RequestState,
    /// Reviews, in order.
    pub reviews: Vec<Review>,
    /// Distinct approvals needed, copied from the policy at creation.
    pub required_approvals: i32,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When a pending request lapses.
    pub request_expire_time: DateTime<Utc>,
    /// When the quorum was reached.
    pub approve_time: Option<DateTime<Utc>>,
    /// When an approved request lapses.
    pub expire_time: Option<DateTime<Utc>>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Incremented on every change; the etag is derived from it.
    pub version: i64,
}

impl AccessRequest {
    /// The state at `now`; both lapses are half-open like the grant's.
    pub fn state_at(&self, now: DateTime<Utc>) -> RequestState {
        match self.status {
            RequestState::Pending if now >= self.request_expire_time => RequestState::Expired,
            RequestState::Approved if self.expire_time.is_none_or(|end| now >= end) => {
                RequestState::Expired
            }
            stored => stored,
        }
    }

    /// The opaque etag of this version (AIP-154).
    pub fn etag(&self) -> String {
        format!("v{}", self.version)
    }

    /// Distinct users who approved so far.
    pub fn approvals(&self) -> usize {
        self.reviews
            .iter()
            .filter(|r| r.verdict == Verdict::Approve)
            .count()
    }

    /// True when `user_id` has reviewed it already.
    pub fn reviewed_by(&self, user_id: &str) -> bool {
        self.reviews.iter().any(|r| r.user_id == user_id)
    }
}

/// A request as clients see it: evaluated at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequestView {
    /// The stored request.
    pub request: AccessRequest,
    /// Its state when the view was taken.
    pub state: RequestState,
}

impl AccessRequestView {
    /// Evaluates at `now`.
    pub fn at(request: AccessRequest, now: DateTime<Utc>) -> Self {
        let state = request.state_at(now);
        Self { request, state }
    }
}

/// A validated `CreateAccessRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewAccessRequest {
    /// The account.
    pub account_id: AccountId,
    /// The staff member.
    pub staff_id: String,
    /// The support ticket (required).
    pub ticket_id: String,
    /// Why.
    pub reason: AccessReason,
    /// Free-text detail (may be empty).
    pub reason_detail: String,
    /// How long access should last once approved (µs, at least a minute).
    pub requested_duration_us: i64,
}

/// A validated review (`ApproveAccessRequest` / `DenyAccessRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// The request.
    pub access_request_id: String,
    /// The reviewing customer admin.
    pub actor: Actor,
    /// Approve or deny.
    pub verdict: Verdict,
    /// Free text.
    pub comment: String,
    /// Conditional-change tag, if the caller sent one.
    pub etag: Option<String>,
}

/// How an open request is closed early.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Closing {
    /// Support cancels it: the work is done.
    Cancel,
    /// A customer admin revokes it.
    Revoke {
        /// The admin.
        actor: Actor,
        /// Conditional-change tag, if the caller sent one.
        etag: Option<String>,
    },
}

/// An account's rules for requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Whether support may ask at all.
    pub requests_enabled: bool,
    /// Distinct approvals a request needs (1–5).
    pub required_approvals: i32,
    /// Longest duration a request may ask for (µs, 1 minute–30 days).
    pub max_request_duration_us: i64,
    /// Incremented on every change; the etag is derived from it.
    pub version: i64,
}

impl Default for AccessPolicy {
    /// The contract's defaults: requests on, one approval, at most eight hours.
    fn default() -> Self {
        Self {
            requests_enabled: true,
            required_approvals: 1,
            max_request_duration_us: Duration::hours(8).num_microseconds().unwrap_or(i64::MAX),
            version: 1,
        }
    }
}

impl AccessPolicy {
    /// The opaque etag of this version.
    pub fn etag(&self) -> String {
        format!("p{}", self.version)
    }
}

/// A validated `UpdateAccessPolicy`: `None` fields are outside the update mask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyUpdate {
    /// The account.
    pub account_id: AccountId,
    /// New `access_requests_enabled`.
    pub requests_enabled: Option<bool>,
    /// New `required_approvals` (1–5).
    pub required_approvals: Option<i32>,
    /// New `max_request_duration` (µs).
    pub max_request_duration_us: Option<i64>,
    /// The customer admin.
    pub actor: Actor,
    /// Conditional-change tag, if the caller sent one.
    pub etag: Option<String>,
}

impl PolicyUpdate {
    /// The policy after this update, or `None` when it changes nothing.
    pub fn apply_to(&self, current: &AccessPolicy) -> Option<AccessPolicy> {
        let next = AccessPolicy {
            requests_enabled: self.requests_enabled.unwrap_or(current.requests_enabled),
            required_approvals: self
                .required_approvals
                .unwrap_or(current.required_approvals),
            max_request_duration_us: self
                .max_request_duration_us
                .unwrap_or(current.max_request_duration_us),
            version: current.version + 1,
        };
        let same = AccessPolicy {
            version: current.version,
            ..next
        } == *current;
        (!same).then_some(next)
    }
}

/// An account's policy as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The account.
    pub account_id: AccountId,
    /// The policy.
    pub policy: AccessPolicy,
}

/// Decides an assumption on a request alone (`AuthorizeAssumption.access_request_id`):
/// allowed only while the request is approved, and only for its own account, staff member and
/// ticket; the assumption ends no later than the request, nor than `max` from now.
pub fn decide_on_request(
    account_open: bool,
    request: Option<&AccessRequest>,
    asked: &AssumptionRequest,
    now: DateTime<Utc>,
    max: Duration,
) -> Decision {
    if !account_open {
        return Decision::Deny(DenyReason::AccountNotFound);
    }
    let Some(request) = request else {
        return Decision::Deny(DenyReason::AccessRequestNotApproved);
    };
    if request.account_id != asked.account_id.as_str()
        || request.staff_id != asked.staff_id
        || request.ticket_id != asked.ticket_id
    {
        return Decision::Deny(DenyReason::AccessRequestMismatch);
    }
    match (request.state_at(now), request.expire_time) {
        (RequestState::Approved, Some(end)) => Decision::Allow {
            basis: Basis::AccessRequest,
            expire_time: end.min(now + max),
        },
        _ => Decision::Deny(DenyReason::AccessRequestNotApproved),
    }
}

/// Checks an etag the caller sent against the current one.
pub fn check_etag(sent: Option<&str>, current: &str) -> Result<(), Error> {
    match sent {
        Some(tag) if tag != current => Err(Error::EtagMismatch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn request(status: RequestState) -> AccessRequest {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        AccessRequest {
            access_request_id: "r".into(),
            account_id: "acme".into(),
            staff_id: "sam".into(),
            ticket_id: "T-1".into(),
            reason: AccessReason::Other,
            reason_detail: String::new(),
            requested_duration_us: 3_600_000_000,
            status,
            reviews: vec![],
            required_approvals: 1,
            create_time: t,
            request_expire_time: t + Duration::hours(24),
            approve_time: None,
            expire_time: Some(t + Duration::hours(2)),
            update_time: t,
            version: 1,
        }
    }

    /// Lapses are evaluated at read time and half-open; final states stay as stored.
    #[test]
    fn states_are_evaluated_at_read_time() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let pending = request(RequestState::Pending);
        assert_eq!(pending.state_at(t), RequestState::Pending);
        assert_eq!(
            pending.state_at(t + Duration::hours(24)),
            RequestState::Expired
        );
        let approved = request(RequestState::Approved);
        assert_eq!(
            approved.state_at(t + Duration::hours(2) - Duration::microseconds(1)),
            RequestState::Approved
        );
        assert_eq!(
            approved.state_at(t + Duration::hours(2)),
            RequestState::Expired
        );
        let revoked = request(RequestState::Revoked);
        assert_eq!(
            revoked.state_at(t + Duration::days(9)),
            RequestState::Revoked
        );
    }

    /// An update that sets the values already stored changes nothing (and bumps nothing).
    #[test]
    fn an_update_to_the_same_values_is_no_change() {
        let current = AccessPolicy::default();
        let mut update = PolicyUpdate {
            account_id: AccountId::parse("acme", "f").unwrap(),
            requests_enabled: Some(true),
            required_approvals: None,
            max_request_duration_us: None,
            actor: Actor {
                user_id: "ada".into(),
                roles: vec![],
            },
            etag: None,
        };
        assert_eq!(update.apply_to(&current), None);
        update.required_approvals = Some(2);
        let next = update.apply_to(&current).unwrap();
        assert_eq!((next.required_approvals, next.version), (2, 2));
    }

    #[test]
    fn state_names_round_trip() {
        for s in [
            RequestState::Pending,
            RequestState::Approved,
            RequestState::Denied,
            RequestState::Cancelled,
            RequestState::Expired,
            RequestState::Revoked,
        ] {
            assert_eq!(RequestState::from_str_name(s.as_str()), Some(s));
        }
    }
}
