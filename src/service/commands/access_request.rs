//! The life of an access request: created pending, reviewed to approved or denied, closed
//! early (cancelled by support, revoked by the customer), or lapsed. Closing a request ends
//! every assumption made under it in the same transaction: deleting an approval must end the
//! access it gave.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::open_account;
use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{
        Error,
        access_request::{
            AccessRequest, AccessRequestView, Closing, NewAccessRequest, RequestState,
            Review as ReviewEntry, ReviewRequest, Verdict, check_etag,
        },
        account::Plan,
        assumption::EndReason,
        ids::AccountId,
    },
    storage::write::{Command, Draft, Keys},
};

/// Support asks for access to one account, for one ticket, for a while.
#[derive(Debug, Clone)]
pub struct Create {
    /// The validated request.
    pub req: NewAccessRequest,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
    /// How long it waits for its reviews.
    pub pending_lifetime: Duration,
}

impl Command for Create {
    type Answer = AccessRequestView;

    fn announce(&self, keys: &mut Keys) {
        keys.account(self.req.account_id.as_str());
    }

    fn time_account(&self) -> Option<&str> {
        Some(self.req.account_id.as_str())
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<AccessRequestView, Error> {
        let req = &self.req;
        let (account, grant) = open_account(draft.account(req.account_id.as_str())?)?;
        if account.plan == Plan::Trial {
            return Err(Error::TrialAccountAlwaysOn);
        }
        let policy = grant.policy;
        if !policy.requests_enabled {
            return Err(Error::AccessRequestsDisabled);
        }
        if req.requested_duration_us > policy.max_request_duration_us {
            return Err(Error::invalid(
                "requested_duration",
                format!(
                    "longer than the account's max_request_duration ({}s)",
                    policy.max_request_duration_us / 1_000_000
                ),
            ));
        }
        let created = AccessRequest {
            // Time-ordered: appends to the primary key index, and sorts newest-last.
            access_request_id: uuid::Uuid::now_v7().to_string(),
            account_id: req.account_id.as_str().to_owned(),
            staff_id: req.staff_id.clone(),
            ticket_id: req.ticket_id.clone(),
            reason: req.reason,
            reason_detail: req.reason_detail.clone(),
            requested_duration_us: req.requested_duration_us,
            status: RequestState::Pending,
            reviews: Vec::new(),
            required_approvals: policy.required_approvals,
            create_time: now,
            request_expire_time: now + self.pending_lifetime,
            approve_time: None,
            expire_time: None,
            update_time: now,
            version: 1,
        };
        draft.put_access_request(created.clone());
        draft.append(
            NewEvent {
                account_id: req.account_id.clone(),
                kind: EventKind::AccessRequestCreated,
                actor: EventActor::Staff(req.staff_id.clone()),
                detail: json!({
                    "access_request_id": created.access_request_id,
                    "ticket_id": req.ticket_id,
                    "reason": req.reason.as_str(),
                    "reason_detail": req.reason_detail,
                    "requested_duration_seconds": req.requested_duration_us / 1_000_000,
                    "required_approvals": created.required_approvals,
                    "request_expire_time": format_time(created.request_expire_time),
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(AccessRequestView::at(created, now))
    }
}

/// A customer admin approves or denies a pending request.
#[derive(Debug, Clone)]
pub struct Review {
    /// The validated review.
    pub review: ReviewRequest,
    /// The request's account (read before the write: it never changes).
    pub account_id: AccountId,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Review {
    type Answer = AccessRequestView;

    fn announce(&self, keys: &mut Keys) {
        keys.account(self.account_id.as_str());
        keys.access_request(&self.review.access_request_id);
    }

    fn time_account(&self) -> Option<&str> {
        Some(self.account_id.as_str())
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<AccessRequestView, Error> {
        let r = &self.review;
        let found = request_of(draft, &r.access_request_id, &self.account_id)?;
        open_account(draft.account(self.account_id.as_str())?)?;
        // Not pending says more than a stale etag: nothing the caller re-reads makes it
        // reviewable again.
        if found.state_at(now) != RequestState::Pending {
            return Err(Error::AccessRequestNotPending);
        }
        check_etag(r.etag.as_deref(), &found.etag())?;
        if found.reviewed_by(&r.actor.user_id) {
            return Err(Error::AlreadyReviewed);
        }
        let mut next = AccessRequest {
            update_time: now,
            version: found.version + 1,
            ..found
        };
        next.reviews.push(ReviewEntry {
            user_id: r.actor.user_id.clone(),
            verdict: r.verdict,
            comment: r.comment.clone(),
            review_time: now,
        });
        let approvals = next.approvals();
        let mut detail = json!({
            "access_request_id": next.access_request_id,
            "comment": r.comment,
            "principal": self.principal,
        });
        let kind = match r.verdict {
            Verdict::Deny => {
                next.status = RequestState::Denied;
                EventKind::AccessRequestDenied
            }
            Verdict::Approve => {
                let approved = i64::try_from(approvals).unwrap_or(i64::MAX)
                    >= i64::from(next.required_approvals);
                if approved {
                    next.status = RequestState::Approved;
                    next.approve_time = Some(now);
                    // The duration is a stored value: a damaged one is an internal error,
                    // never a panic on the write loop.
                    let end = now
                        .checked_add_signed(Duration::microseconds(next.requested_duration_us))
                        .ok_or_else(|| {
                            Error::Internal(format!(
                                "access request {}: stored duration {} µs is out of range",
                                next.access_request_id, next.requested_duration_us
                            ))
                        })?;
                    next.expire_time = Some(end);
                    detail["expire_time"] = json!(next.expire_time.map(format_time));
                }
                detail["approvals"] = json!(approvals);
                detail["required_approvals"] = json!(next.required_approvals);
                detail["approved"] = json!(approved);
                EventKind::AccessRequestApproved
            }
        };
        draft.put_access_request(next.clone());
        draft.append(
            NewEvent {
                account_id: self.account_id.clone(),
                kind,
                actor: EventActor::CustomerUser(r.actor.user_id.clone()),
                detail,
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(AccessRequestView::at(next, now))
    }
}

/// Support cancels, or a customer admin revokes, an open request.
#[derive(Debug, Clone)]
pub struct Close {
    /// The request.
    pub access_request_id: String,
    /// The request's account (read before the write: it never changes).
    pub account_id: AccountId,
    /// Who closes it, and how.
    pub closing: Closing,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Close {
    /// The request as it is now, and whether this call closed it.
    type Answer = (AccessRequestView, bool);

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(self.account_id.as_str());
        keys.access_request(&self.access_request_id);
    }

    fn time_account(&self) -> Option<&str> {
        Some(self.account_id.as_str())
    }

    fn apply(
        &self,
        draft: &mut Draft<'_>,
        now: DateTime<Utc>,
    ) -> Result<(AccessRequestView, bool), Error> {
        let found = request_of(draft, &self.access_request_id, &self.account_id)?;
        // One already final is returned as it is, whatever etag came with it.
        if !found.state_at(now).is_open() {
            return Ok((AccessRequestView::at(found, now), false));
        }
        let by = match &self.closing {
            Closing::Cancel => ClosedBy {
                to: RequestState::Cancelled,
                actor: EventActor::ServicePrincipal(self.principal.clone()),
                cause: None,
                principal: &self.principal,
                request_id: self.request_id.as_ref(),
            },
            Closing::Revoke { actor, etag } => {
                check_etag(etag.as_deref(), &found.etag())?;
                ClosedBy {
                    to: RequestState::Revoked,
                    actor: EventActor::CustomerUser(actor.user_id.clone()),
                    cause: Some("REVOKED_BY_ADMIN"),
                    principal: &self.principal,
                    request_id: self.request_id.as_ref(),
                }
            }
        };
        let closed = close(draft, found, &by, now)?;
        Ok((AccessRequestView::at(closed, now), true))
    }
}

/// Record the lapse of a pending request nobody reviewed in time, exactly once: the claim is
/// the stored status moving from pending to expired inside the serialized write transaction,
/// so of several replicas sweeping, one records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRequestLapse {
    /// The request.
    pub access_request_id: String,
    /// Its account.
    pub account_id: AccountId,
}

impl Command for RecordRequestLapse {
    /// True when this command recorded it.
    type Answer = bool;

    fn announce(&self, keys: &mut Keys) {
        keys.account(self.account_id.as_str());
        keys.access_request(&self.access_request_id);
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<bool, Error> {
        let Some(found) = draft.access_request(&self.access_request_id)? else {
            return Ok(false);
        };
        if found.status != RequestState::Pending || now < found.request_expire_time {
            return Ok(false);
        }
        let lapsed = AccessRequest {
            status: RequestState::Expired,
            update_time: now,
            version: found.version + 1,
            ..found
        };
        draft.put_access_request(lapsed.clone());
        // Nothing is written after an account's deletion event (which revoked it anyway).
        let open = draft
            .account(self.account_id.as_str())?
            .is_some_and(|(a, _)| !a.is_deleted());
        if open {
            draft.append(
                NewEvent {
                    account_id: self.account_id.clone(),
                    kind: EventKind::AccessRequestExpired,
                    actor: EventActor::System,
                    detail: json!({
                        "access_request_id": lapsed.access_request_id,
                        "request_expire_time": format_time(lapsed.request_expire_time),
                        "approvals": lapsed.approvals(),
                    }),
                    request_id: None,
                },
                now,
            )?;
        }
        Ok(open)
    }
}

/// Who closes a request, and how: what its event records.
#[derive(Debug, Clone)]
pub(crate) struct ClosedBy<'a> {
    /// `Cancelled` or `Revoked`.
    pub to: RequestState,
    /// The event's actor.
    pub actor: EventActor,
    /// Why a revocation happened (`REVOKED_BY_ADMIN`, `GRANT_DISABLED`, `ACCOUNT_DELETED`);
    /// `None` for a cancellation.
    pub cause: Option<&'static str>,
    /// The calling service, named in the event.
    pub principal: &'a str,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<&'a String>,
}

/// Revokes every open (pending or approved, not lapsed) request of the account, each with its
/// own event; returns their ids. The account must have been announced with
/// `Keys::account_with_requests` and `account_with_assumptions`.
pub(crate) fn revoke_open_requests(
    draft: &mut Draft<'_>,
    account_id: &AccountId,
    by: &ClosedBy<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let mut ids = Vec::new();
    for found in draft.open_requests(account_id.as_str())? {
        if !found.state_at(now).is_open() {
            continue;
        }
        ids.push(found.access_request_id.clone());
        close(draft, found, by, now)?;
    }
    Ok(ids)
}

/// Moves an open request to `by.to`, revokes the assumptions made under it, and appends the
/// event.
fn close(
    draft: &mut Draft<'_>,
    found: AccessRequest,
    by: &ClosedBy<'_>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, Error> {
    let account_id = AccountId::parse(&found.account_id, "account_id")
        .map_err(|_| Error::Internal(format!("stored account id {:?}", found.account_id)))?;
    let closed = AccessRequest {
        status: by.to,
        update_time: now,
        version: found.version + 1,
        ..found
    };
    draft.put_access_request(closed.clone());
    let mut revoked = Vec::new();
    for mut a in draft.open_assumptions(account_id.as_str(), None, now)? {
        if a.access_request_id.as_deref() == Some(closed.access_request_id.as_str()) {
            a.end_time = Some(now);
            a.end_reason = Some(EndReason::Revoked);
            revoked.push(a.assumption_id.clone());
            draft.change_assumption(a);
        }
    }
    let mut detail = json!({
        "access_request_id": closed.access_request_id,
        "revoked_assumption_ids": revoked,
        "principal": by.principal,
    });
    if let Some(cause) = by.cause {
        detail["cause"] = json!(cause);
    }
    let kind = match by.to {
        RequestState::Cancelled => EventKind::AccessRequestCancelled,
        _ => EventKind::AccessRequestRevoked,
    };
    draft.append(
        NewEvent {
            account_id,
            kind,
            actor: by.actor.clone(),
            detail,
            request_id: by.request_id.cloned(),
        },
        now,
    )?;
    Ok(closed)
}

/// The announced request, which must belong to `account_id` (the account read before the
/// write; a mismatch means the row changed under us, which ids never do).
fn request_of(draft: &Draft<'_>, id: &str, account_id: &AccountId) -> Result<AccessRequest, Error> {
    let found = draft
        .access_request(id)?
        .ok_or(Error::AccessRequestNotFound)?;
    if found.account_id != account_id.as_str() {
        return Err(Error::Internal(format!(
            "access request {id} moved between accounts"
        )));
    }
    Ok(found)
}
