//! The only mapping from [`Error`] to a gRPC [`Status`]. Every status carries
//! `google.rpc.ErrorInfo` (domain `accessgrant`), and `INVALID_ARGUMENT` carries `BadRequest`
//! field violations. Internal causes are logged, never sent.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Error;

/// `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "accessgrant";

fn status(code: Code, reason: &str, message: &str, details: ErrorDetails) -> Status {
    status_with_metadata(code, reason, &[], message, details)
}

/// A status whose `ErrorInfo` also carries `metadata`: what a client acts on, by key.
fn status_with_metadata(
    code: Code,
    reason: &str,
    metadata: &[(&str, String)],
    message: &str,
    mut details: ErrorDetails,
) -> Status {
    let metadata: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        // No catch-all arm on purpose: a new error variant must be given a code and a reason
        // here before the crate compiles.
        match e {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                status(
                    Code::InvalidArgument,
                    "INVALID_ARGUMENT",
                    "the request has invalid fields; see BadRequest details",
                    details,
                )
            }
            Error::AccountNotFound => status(
                Code::NotFound,
                "ACCOUNT_NOT_FOUND",
                "account not found",
                ErrorDetails::new(),
            ),
            Error::ActorNotAccountAdmin => status(
                Code::PermissionDenied,
                "ACTOR_NOT_ACCOUNT_ADMIN",
                "only admins of Support, Chat or Sell may change account assumption",
                ErrorDetails::new(),
            ),
            Error::TrialAccountAlwaysOn => status(
                Code::FailedPrecondition,
                "TRIAL_ACCOUNT_ALWAYS_ON",
                "trial accounts always allow assumption; the setting cannot change until the account is paid",
                ErrorDetails::new(),
            ),
            Error::PaidAccountCannotBecomeTrial => status(
                Code::FailedPrecondition,
                "PAID_ACCOUNT_CANNOT_BECOME_TRIAL",
                "a paid account cannot become a trial",
                ErrorDetails::new(),
            ),
            Error::AccountDeleted => status(
                Code::FailedPrecondition,
                "ACCOUNT_DELETED",
                "the account was deleted and its id cannot be reused",
                ErrorDetails::new(),
            ),
            Error::EtagMismatch => status(
                Code::Aborted,
                "ETAG_MISMATCH",
                "the grant, policy or access request changed since it was read; read it again and retry",
                ErrorDetails::new(),
            ),
            Error::RequestIdReused => status(
                Code::InvalidArgument,
                "REQUEST_ID_REUSED",
                "request_id was already used for a different request",
                ErrorDetails::with_bad_request_violation(
                    "request_id",
                    "already used for a different request",
                ),
            ),
            // Say how to authenticate, never which part of the credentials was wrong.
            Error::Unauthenticated => status_with_metadata(
                Code::Unauthenticated,
                "UNAUTHENTICATED",
                &[(
                    "www_authenticate",
                    "Bearer realm=\"accessgrant\"".to_owned(),
                )],
                "missing or invalid credentials: send `authorization: Bearer <token>` or a client certificate",
                ErrorDetails::new(),
            ),
            Error::Overloaded => status(
                Code::ResourceExhausted,
                "SERVER_OVERLOADED",
                "too many calls in flight; retry with backoff",
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(100))),
            ),
            Error::DeadlineExceeded => status(
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
                "the call did not finish within its deadline; a change in progress commits whole or not at all: read before retrying, or retry with the same request_id",
                ErrorDetails::new(),
            ),
            Error::MalformedRequest => status(
                Code::InvalidArgument,
                "MALFORMED_REQUEST",
                "the request body is not a valid protobuf message of this RPC's request type",
                ErrorDetails::new(),
            ),
            Error::RequestTooLarge => status(
                Code::ResourceExhausted,
                "REQUEST_TOO_LARGE",
                "the request message exceeds the server's limit",
                ErrorDetails::new(),
            ),
            Error::CallerLacksPermission(permission) => status_with_metadata(
                Code::PermissionDenied,
                "CALLER_LACKS_PERMISSION",
                &[("permission", permission.to_owned())],
                &format!("the calling service lacks the {permission} permission"),
                ErrorDetails::new(),
            ),
            Error::AssumptionNotFound => status(
                Code::NotFound,
                "ASSUMPTION_NOT_FOUND",
                "assumption not found",
                ErrorDetails::new(),
            ),
            Error::PositionAheadOfLog { after: _, last } => status_with_metadata(
                Code::OutOfRange,
                "POSITION_AHEAD_OF_LOG",
                &[("last_global_position", last.to_string())],
                "after_global_position is beyond the end of the audit log; watch again from 0 and deduplicate by event_id",
                ErrorDetails::with_bad_request_violation(
                    "after_global_position",
                    "beyond the log's last position: it comes from another history (a restore from backup?); watch again from 0 and skip the event_ids you already have",
                ),
            ),
            Error::TreeSizeOutOfRange {
                field,
                requested,
                latest,
            } => status_with_metadata(
                Code::OutOfRange,
                "TREE_SIZE_OUT_OF_RANGE",
                &[
                    ("requested_tree_size", requested.to_string()),
                    ("latest_tree_size", latest.to_string()),
                ],
                "no signed checkpoint covers that tree size yet; ask for the latest checkpoint and use its size",
                ErrorDetails::with_bad_request_violation(
                    field,
                    "above the latest signed checkpoint's tree size (or the event's leaf is not inside a tree of that size)",
                ),
            ),
            Error::AccessRequestNotFound => status(
                Code::NotFound,
                "ACCESS_REQUEST_NOT_FOUND",
                "access request not found",
                ErrorDetails::new(),
            ),
            Error::AccessRequestsDisabled => status(
                Code::FailedPrecondition,
                "ACCESS_REQUESTS_DISABLED",
                "the account's access policy does not allow access requests",
                ErrorDetails::new(),
            ),
            Error::AccessRequestNotPending => status(
                Code::FailedPrecondition,
                "ACCESS_REQUEST_NOT_PENDING",
                "the access request is no longer pending; read it to see its state",
                ErrorDetails::new(),
            ),
            Error::AlreadyReviewed => status(
                Code::FailedPrecondition,
                "ALREADY_REVIEWED",
                "this user already reviewed the access request; approvals must come from distinct users",
                ErrorDetails::new(),
            ),
            Error::EventNotFound => status(
                Code::NotFound,
                "EVENT_NOT_FOUND",
                "no audit event has that event_id",
                ErrorDetails::new(),
            ),
            Error::NoCheckpointYet => status(
                Code::Unavailable,
                "NO_CHECKPOINT_YET",
                "the server has not signed its first checkpoint yet; retry in a second",
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
            ),
            Error::Storage(cause) => {
                tracing::warn!(%cause, "request failed: storage unavailable");
                status(
                    Code::Unavailable,
                    "STORAGE_UNAVAILABLE",
                    "storage is unavailable; nothing was changed, retry later",
                    ErrorDetails::new(),
                )
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "request failed: internal error");
                status(
                    Code::Internal,
                    "INTERNAL",
                    "internal error",
                    ErrorDetails::new(),
                )
            }
        }
    }
}
