//! The one error type of the service. Transport maps each variant to a gRPC status in exactly
//! one place (`grpc::status`), with no catch-all arm, so a new variant cannot ship unmapped.

/// A request field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `actor.user_id`.
    pub field: String,
    /// What is wrong, for the caller's developer.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Everything that can go wrong in a request. `Clone` because one failed group commit is
/// the answer of every request in the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was read or written.
    #[error("invalid argument")]
    InvalidArgument(Vec<FieldViolation>),
    /// The account does not exist (or was deleted).
    #[error("account not found")]
    AccountNotFound,
    /// The actor is not admin of Support, Chat or Sell.
    #[error("actor is not an admin of Support, Chat or Sell")]
    ActorNotAccountAdmin,
    /// Trial accounts always allow access; their grant cannot change.
    #[error("trial accounts always allow access")]
    TrialAccountAlwaysOn,
    /// A paid account cannot go back to trial.
    #[error("a paid account cannot become a trial")]
    PaidAccountCannotBecomeTrial,
    /// The account was deleted; its id is not reused.
    #[error("account was deleted")]
    AccountDeleted,
    /// The caller's etag no longer matches the stored grant.
    #[error("etag does not match the current grant")]
    EtagMismatch,
    /// A request id was reused for a different request.
    #[error("request_id was already used for a different request")]
    RequestIdReused,
    /// No valid credentials (missing, unknown token, unknown certificate).
    #[error("unauthenticated")]
    Unauthenticated,
    /// The server is at its concurrency limit; the call was shed without doing any work.
    #[error("server overloaded")]
    Overloaded,
    /// The call did not finish within its deadline (the client's `grpc-timeout`, capped by
    /// the server's `max_deadline`). A write in progress still commits whole or not at all.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The request body is not a valid encoding of its message (truncated, a wrong wire
    /// type, a string that is not UTF-8): the caller's bug, not the server's.
    #[error("malformed request message")]
    MalformedRequest,
    /// The request message is larger than the server accepts.
    #[error("request too large")]
    RequestTooLarge,
    /// The calling service lacks the permission this request needs.
    #[error("caller lacks permission {0}")]
    CallerLacksPermission(&'static str),
    /// No such assumption.
    #[error("assumption not found")]
    AssumptionNotFound,
    /// A watch asked to resume after a position the log never reached: the position comes
    /// from another history (the database was restored from a backup, or another
    /// deployment), so resuming from it would silently skip events.
    #[error("position {after} is beyond the log's last position {last}")]
    PositionAheadOfLog {
        /// The position asked for.
        after: i64,
        /// The log's last position.
        last: i64,
    },
    /// A tree size above the latest signed checkpoint's, or an event whose leaf is not in a
    /// tree of the size asked for: nothing signed covers it yet.
    #[error("tree size {requested} is out of range (latest signed size {latest})")]
    TreeSizeOutOfRange {
        /// The field that named it.
        field: &'static str,
        /// The size asked for (or needed by the event's leaf).
        requested: u64,
        /// The latest signed checkpoint's size.
        latest: u64,
    },
    /// No access request has this id.
    #[error("access request not found")]
    AccessRequestNotFound,
    /// The account's policy switched requests off.
    #[error("access requests are switched off for this account")]
    AccessRequestsDisabled,
    /// The request is no longer pending (approved, denied, cancelled, expired or revoked).
    #[error("access request is not pending")]
    AccessRequestNotPending,
    /// This user has reviewed the request already.
    #[error("this user already reviewed the request")]
    AlreadyReviewed,
    /// No audit event has this id.
    #[error("audit event not found")]
    EventNotFound,
    /// The server has not signed its first checkpoint yet (it does so right after start).
    #[error("no checkpoint signed yet")]
    NoCheckpointYet,
    /// The database could not complete the operation; nothing was committed. The cause is
    /// logged server-side and never sent to the client.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// A stored value could not be read back (corruption or a bug); the cause is logged.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<FieldViolation> for Error {
    fn from(v: FieldViolation) -> Self {
        Self::InvalidArgument(vec![v])
    }
}

/// Collects field violations while converting a request, so the caller hears about every bad
/// field at once rather than one per round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records the violation and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// Records a violation.
    pub fn push(&mut self, v: FieldViolation) {
        self.0.push(v);
    }

    /// The converted value when nothing was recorded. `value` is built from the checked
    /// fields (`None` exactly when one of them failed, which also recorded a violation).
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        match (self.0.is_empty(), value) {
            (true, Some(v)) => Ok(v),
            (false, _) => Err(Error::InvalidArgument(self.0)),
            (true, None) => Err(Error::Internal(
                "a field failed conversion without a violation".into(),
            )),
        }
    }
}
