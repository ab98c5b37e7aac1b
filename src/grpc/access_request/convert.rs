//! `AccessRequestService` messages ↔ domain: request commands and list queries in, requests
//! out. Request conversions validate every field and report all violations at once; they
//! destructure messages completely, so a field added to a proto fails to compile here until it
//! is handled.

use crate::{
    domain::{
        Error, FieldViolation,
        access_request::{
            AccessRequestView, Closing, MAX_POLICY_DURATION, MIN_REQUEST_DURATION,
            NewAccessRequest, RequestState, Review, ReviewRequest, Verdict,
        },
        error::Violations,
        ids::{self, AccountId},
    },
    grpc::{
        access_grant::convert::{actor, etag},
        fields::{self, duration_us_from_pb, duration_us_to_pb, enum_value, timestamp},
        support_access::convert::{access_reason, access_reason_to_pb},
    },
    proto::v1 as pb,
    service::access_requests::{RequestListQuery, RequestPage},
};

/// Most `states` a list request may name: each of the six at most twice (duplicates are
/// harmless), so a huge list cannot make the query expensive.
const MAX_STATES: usize = 12;

/// Validates a bare access request id field (server-assigned, but checked like every id so a
/// malformed one is INVALID_ARGUMENT rather than NOT_FOUND).
pub fn access_request_id(value: &str) -> Result<String, Error> {
    ids::parse_printable_id(value, "access_request_id").map_err(Error::from)
}

/// A validated `CreateAccessRequest` request. The duration is checked against the widest
/// bounds any policy allows; the account's own maximum is checked by the command, which reads
/// the policy in the same transaction.
pub fn create_request(
    req: pb::CreateAccessRequestRequest,
) -> Result<(NewAccessRequest, Option<String>), Error> {
    let pb::CreateAccessRequestRequest {
        account_id,
        staff_id,
        ticket_id,
        reason,
        reason_detail,
        requested_duration,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let staff_id = v.check(ids::parse_printable_id(&staff_id, "staff_id"));
    let ticket_id = v.check(ids::parse_printable_id(&ticket_id, "ticket_id"));
    let reason = v.check(access_reason(reason, "reason"));
    let reason_detail = v.check(ids::parse_free_text(&reason_detail, "reason_detail"));
    let requested_duration_us = v.check(duration_us_from_pb(
        requested_duration,
        "requested_duration",
        MIN_REQUEST_DURATION..=MAX_POLICY_DURATION,
        "at least 1 minute and at most the account policy's max_request_duration (30 days at most)",
    ));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            NewAccessRequest {
                account_id: account_id?,
                staff_id: staff_id?,
                ticket_id: ticket_id?,
                reason: reason?,
                reason_detail: reason_detail?,
                requested_duration_us: requested_duration_us?,
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

fn state_from_pb(value: i32, field: &str) -> Result<RequestState, FieldViolation> {
    use pb::access_request::State as S;
    match enum_value(value, field)? {
        S::Unspecified => Err(FieldViolation::new(field, "must be a specific state")),
        S::Pending => Ok(RequestState::Pending),
        S::Approved => Ok(RequestState::Approved),
        S::Denied => Ok(RequestState::Denied),
        S::Cancelled => Ok(RequestState::Cancelled),
        S::Expired => Ok(RequestState::Expired),
        S::Revoked => Ok(RequestState::Revoked),
    }
}

fn state_to_pb(state: RequestState) -> pb::access_request::State {
    use pb::access_request::State as S;
    match state {
        RequestState::Pending => S::Pending,
        RequestState::Approved => S::Approved,
        RequestState::Denied => S::Denied,
        RequestState::Cancelled => S::Cancelled,
        RequestState::Expired => S::Expired,
        RequestState::Revoked => S::Revoked,
    }
}

/// A validated `ListAccessRequests` request.
pub fn list_request(req: pb::ListAccessRequestsRequest) -> Result<RequestListQuery, Error> {
    let pb::ListAccessRequestsRequest {
        account_id,
        page_size,
        page_token,
        states,
    } = req;
    let f = fields::list_fields(
        &account_id,
        page_size,
        page_token,
        &states,
        MAX_STATES,
        state_from_pb,
    )?;
    Ok(RequestListQuery {
        account_id: f.account_id,
        states: f.states,
        page_size: f.page_size,
        page_token: f.page_token,
    })
}

/// The fields `ApproveAccessRequest` and `DenyAccessRequest` share; the RPC decides the verdict.
pub struct ReviewFields {
    /// `access_request_id`.
    pub access_request_id: String,
    /// `actor`.
    pub actor: Option<pb::Actor>,
    /// `comment`.
    pub comment: String,
    /// `etag`.
    pub etag: String,
    /// `request_id`.
    pub request_id: String,
}

impl From<pb::ApproveAccessRequestRequest> for ReviewFields {
    fn from(req: pb::ApproveAccessRequestRequest) -> Self {
        let pb::ApproveAccessRequestRequest {
            access_request_id,
            actor,
            comment,
            etag,
            request_id,
        } = req;
        Self {
            access_request_id,
            actor,
            comment,
            etag,
            request_id,
        }
    }
}

impl From<pb::DenyAccessRequestRequest> for ReviewFields {
    fn from(req: pb::DenyAccessRequestRequest) -> Self {
        let pb::DenyAccessRequestRequest {
            access_request_id,
            actor,
            comment,
            etag,
            request_id,
        } = req;
        Self {
            access_request_id,
            actor,
            comment,
            etag,
            request_id,
        }
    }
}

/// A validated `ApproveAccessRequest` (`Verdict::Approve`) or `DenyAccessRequest`
/// (`Verdict::Deny`) request.
pub fn review_request(
    req: ReviewFields,
    verdict: Verdict,
) -> Result<(ReviewRequest, Option<String>), Error> {
    let ReviewFields {
        access_request_id,
        actor: actor_value,
        comment,
        etag: etag_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(
        &access_request_id,
        "access_request_id",
    ));
    let actor = actor(actor_value, "actor", &mut v);
    let comment = v.check(ids::parse_free_text(&comment, "comment"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            ReviewRequest {
                access_request_id: id?,
                actor: actor?,
                verdict,
                comment: comment?,
                etag: etag(etag_value),
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// A validated `CancelAccessRequest` request: the id, how it closes, the idempotency key.
pub fn cancel_request(
    req: pb::CancelAccessRequestRequest,
) -> Result<(String, Closing, Option<String>), Error> {
    let pb::CancelAccessRequestRequest {
        access_request_id,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(
        &access_request_id,
        "access_request_id",
    ));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| Some((id?, Closing::Cancel, request_id?)))();
    v.finish(cmd)
}

/// A validated `RevokeAccessRequest` request: the id, how it closes, the idempotency key.
pub fn revoke_request(
    req: pb::RevokeAccessRequestRequest,
) -> Result<(String, Closing, Option<String>), Error> {
    let pb::RevokeAccessRequestRequest {
        access_request_id,
        actor: actor_value,
        etag: etag_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(
        &access_request_id,
        "access_request_id",
    ));
    let actor = actor(actor_value, "actor", &mut v);
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            id?,
            Closing::Revoke {
                actor: actor?,
                etag: etag(etag_value),
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

impl From<Review> for pb::AccessRequestReview {
    fn from(r: Review) -> Self {
        let Review {
            user_id,
            verdict,
            comment,
            review_time,
        } = r;
        let verdict = match verdict {
            Verdict::Approve => pb::access_request_review::Verdict::Approve,
            Verdict::Deny => pb::access_request_review::Verdict::Deny,
        };
        Self {
            user_id,
            verdict: verdict.into(),
            comment,
            review_time: Some(timestamp(review_time)),
        }
    }
}

impl From<AccessRequestView> for pb::AccessRequest {
    fn from(view: AccessRequestView) -> Self {
        let AccessRequestView { request: r, state } = view;
        // Computed before the fields are moved out.
        let etag = r.etag();
        Self {
            access_request_id: r.access_request_id,
            account_id: r.account_id,
            staff_id: r.staff_id,
            ticket_id: r.ticket_id,
            reason: access_reason_to_pb(r.reason).into(),
            reason_detail: r.reason_detail,
            requested_duration: Some(duration_us_to_pb(r.requested_duration_us)),
            state: state_to_pb(state).into(),
            reviews: r.reviews.into_iter().map(Into::into).collect(),
            required_approvals: r.required_approvals,
            create_time: Some(timestamp(r.create_time)),
            request_expire_time: Some(timestamp(r.request_expire_time)),
            approve_time: r.approve_time.map(timestamp),
            expire_time: r.expire_time.map(timestamp),
            update_time: Some(timestamp(r.update_time)),
            etag,
        }
    }
}

impl From<RequestPage> for pb::ListAccessRequestsResponse {
    fn from(page: RequestPage) -> Self {
        let RequestPage {
            requests,
            next_page_token,
        } = page;
        Self {
            access_requests: requests.into_iter().map(Into::into).collect(),
            next_page_token: next_page_token.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn create(seconds: i64, nanos: i32) -> pb::CreateAccessRequestRequest {
        pb::CreateAccessRequestRequest {
            account_id: "acme".into(),
            staff_id: "sam".into(),
            ticket_id: "T-1".into(),
            reason: pb::AccessReason::Other.into(),
            reason_detail: String::new(),
            requested_duration: Some(prost_types::Duration { seconds, nanos }),
            request_id: String::new(),
        }
    }

    /// Every bad field of a create is reported in one answer.
    #[test]
    fn create_reports_every_bad_field() {
        let req = pb::CreateAccessRequestRequest {
            account_id: "Not An Id".into(),
            staff_id: String::new(),
            ticket_id: String::new(),
            reason: pb::AccessReason::Unspecified.into(),
            reason_detail: "x".repeat(2001),
            requested_duration: None,
            request_id: "\u{7}".into(),
        };
        let fields = fields_of(create_request(req).unwrap_err());
        assert_eq!(
            fields,
            [
                "account_id",
                "staff_id",
                "ticket_id",
                "reason",
                "reason_detail",
                "requested_duration",
                "request_id"
            ]
        );
    }

    /// A requested duration runs from one minute to 30 days, well formed, stored to the µs.
    #[test]
    fn requested_duration_bounds() {
        let day = 86_400;
        for (seconds, nanos) in [(59, 999_999_999), (30 * day, 1_000), (60, -1), (-60, 0)] {
            let fields = fields_of(create_request(create(seconds, nanos)).unwrap_err());
            assert_eq!(fields, ["requested_duration"], "{seconds}s {nanos}ns");
        }
        for (seconds, nanos, us) in [
            (60, 0, 60_000_000),
            (30 * day, 0, 30 * day * 1_000_000),
            (90, 1_999, 90_000_001),
        ] {
            let (cmd, _) = create_request(create(seconds, nanos)).unwrap();
            assert_eq!(cmd.requested_duration_us, us);
            assert_eq!(
                duration_us_to_pb(us),
                prost_types::Duration {
                    seconds,
                    nanos: nanos / 1_000 * 1_000
                }
            );
        }
    }

    /// States must be specific and known; page size and token follow ListAuditEvents.
    #[test]
    fn list_validates_states_and_paging() {
        let req = |states: Vec<i32>, page_size| pb::ListAccessRequestsRequest {
            account_id: "acme".into(),
            page_size,
            page_token: String::new(),
            states,
        };
        let fields = fields_of(list_request(req(vec![2, 0, 99], -1)).unwrap_err());
        assert_eq!(fields, ["page_size", "states[1]", "states[2]"]);
        let q = list_request(req(vec![1, 6], 0)).unwrap();
        assert_eq!(q.states, [RequestState::Pending, RequestState::Revoked]);
        assert_eq!((q.page_size, q.page_token), (50, None));
        assert_eq!(list_request(req(vec![], 10_000)).unwrap().page_size, 500);
    }

    /// Approve and deny differ only by verdict; an empty etag is no condition.
    #[test]
    fn reviews_take_the_verdict_from_the_rpc() {
        let req = pb::DenyAccessRequestRequest {
            access_request_id: "r-1".into(),
            actor: Some(pb::Actor {
                user_id: "ada".into(),
                roles: vec![],
            }),
            comment: "not now".into(),
            etag: String::new(),
            request_id: String::new(),
        };
        let (review, request_id) = review_request(req.into(), Verdict::Deny).unwrap();
        assert_eq!(
            (review.verdict, review.etag, request_id),
            (Verdict::Deny, None, None)
        );
        let fields = fields_of(
            review_request(
                pb::ApproveAccessRequestRequest::default().into(),
                Verdict::Approve,
            )
            .unwrap_err(),
        );
        assert_eq!(fields, ["access_request_id", "actor"]);
    }
}
