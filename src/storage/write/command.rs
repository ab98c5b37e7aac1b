//! A write as data: a [`Command`] announces what it reads and applies its rule to a
//! [`Draft`]; the group-commit loop does everything else (loading, `request_id` replay,
//! writing, committing, answering). The loop sees commands through [`Job`], which erases
//! their answer type.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{
    draft::Draft,
    keys::Keys,
    rows::{Changes, StoredResponse},
    view::View,
};
use crate::domain::Error;

/// One mutating use case, as a value. `apply` is a pure, synchronous function of the
/// announced rows (through the draft) and `now`: no I/O, so the rule is unit-testable and the
/// loop may run it again (in a transaction of its own) after a batch it was part of failed.
pub trait Command: Send + 'static {
    /// What the caller gets back; stored as JSON for `request_id` replays.
    type Answer: Serialize + DeserializeOwned + Send + 'static;

    /// Announces the rows `apply` will read.
    fn announce(&self, keys: &mut Keys);

    /// The account whose chain this command's time follows: its `now` is never before that
    /// chain's last event, so what it returns carries the time of the event it writes.
    fn time_account(&self) -> Option<&str> {
        None
    }

    /// The rule: reads and writes through `draft`, returns the answer or why not.
    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<Self::Answer, Error>;
}

/// Identifies a retried request: scope (the RPC), the client's key, and a fingerprint of the
/// request's content **and the calling principal**, so a key reused for another request, or
/// by another caller, is refused. (Without the principal, a second service replaying a first
/// one's key would receive the first one's ALLOW, with no audit event naming the second.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The RPC.
    scope: &'static str,
    /// The client's key.
    request_id: String,
    /// SHA-256 of the principal and the validated command.
    fingerprint: String,
}

impl Idempotency {
    /// `None` when the client sent no request id. A command that cannot be serialized (a
    /// bug, never the client's input) is an internal error rather than an empty fingerprint,
    /// which would make different requests under one `request_id` look alike.
    pub fn new<C: Serialize>(
        scope: &'static str,
        request_id: Option<String>,
        principal: &str,
        command: &C,
    ) -> Result<Option<Self>, Error> {
        let Some(request_id) = request_id else {
            return Ok(None);
        };
        let json = serde_json::to_vec(command)
            .map_err(|e| Error::Internal(format!("cannot fingerprint a {scope} request: {e}")))?;
        // Length-prefixed, so no principal/command split can collide with another.
        let mut hasher = Sha256::new();
        hasher.update((principal.len() as u64).to_be_bytes());
        hasher.update(principal.as_bytes());
        hasher.update(json);
        Ok(Some(Self {
            scope,
            request_id,
            fingerprint: hex::encode(hasher.finalize()),
        }))
    }
}

/// A command as the loop handles it: announce, run against the batch's view, answer once.
pub trait Job: Send {
    /// Announces what the command reads, and its `request_id`.
    fn announce(&self, keys: &mut Keys);
    /// Replays the stored answer, or applies the command; keeps the answer until the commit.
    /// May run again after a batch it was part of failed to write.
    fn run(&mut self, view: &View, now: DateTime<Utc>) -> Result<Changes, Error>;
    /// Answers the caller: the kept answer once the commit holding its changes is durable,
    /// or the error that kept them out.
    fn answer(self: Box<Self>, outcome: Result<(), Error>);
}

/// A submitted command with its caller's reply channel.
pub struct Submitted<C: Command> {
    /// The command.
    command: C,
    /// Its `request_id`, if the client sent one.
    idempotency: Option<Idempotency>,
    /// The answer of the last run, sent once committed.
    answer: Option<C::Answer>,
    /// Where the answer goes.
    reply: oneshot::Sender<Result<C::Answer, Error>>,
    /// The request's span: storage work shows under the RPC that asked for it.
    span: tracing::Span,
}

impl<C: Command> Submitted<C> {
    /// Wraps a command; the receiver gets its answer.
    pub fn new(
        command: C,
        idempotency: Option<Idempotency>,
    ) -> (Self, oneshot::Receiver<Result<C::Answer, Error>>) {
        let (reply, answered) = oneshot::channel();
        let span = tracing::info_span!(parent: &tracing::Span::current(), "storage.transaction");
        (
            Self {
                command,
                idempotency,
                answer: None,
                reply,
                span,
            },
            answered,
        )
    }
}

impl<C: Command> Job for Submitted<C> {
    fn announce(&self, keys: &mut Keys) {
        self.command.announce(keys);
        if let Some(k) = &self.idempotency {
            keys.response(k.scope, &k.request_id);
        }
    }

    fn run(&mut self, view: &View, now: DateTime<Utc>) -> Result<Changes, Error> {
        let _entered = self.span.enter();
        self.answer = None;
        let now = match self.command.time_account() {
            Some(account) => view.next_event_time(account, now)?,
            None => now,
        };
        if let Some(k) = &self.idempotency
            && let Some(stored) = view.response(k.scope, &k.request_id)?
        {
            if stored.fingerprint != k.fingerprint {
                return Err(Error::RequestIdReused);
            }
            let first = serde_json::from_str(&stored.response_json)
                .map_err(|e| Error::Internal(format!("stored response for {}: {e}", k.scope)))?;
            self.answer = Some(first);
            return Ok(Changes::default());
        }
        let mut draft = Draft::new(view);
        let answer = self.command.apply(&mut draft, now)?;
        if let Some(k) = &self.idempotency {
            let response_json = serde_json::to_string(&answer)
                .map_err(|e| Error::Internal(format!("encoding response for {}: {e}", k.scope)))?;
            draft.remember(
                k.scope,
                &k.request_id,
                StoredResponse {
                    fingerprint: k.fingerprint.clone(),
                    response_json,
                },
                now,
            );
        }
        self.answer = Some(answer);
        Ok(draft.into_changes())
    }

    fn answer(self: Box<Self>, outcome: Result<(), Error>) {
        let Submitted { answer, reply, .. } = *self;
        let sent = match (outcome, answer) {
            (Ok(()), Some(answer)) => Ok(answer),
            (Ok(()), None) => Err(Error::Internal("a committed command had no answer".into())),
            (Err(e), _) => Err(e),
        };
        // The caller may have gone (deadline, disconnect): the outcome stands regardless.
        let _ = reply.send(sent);
    }
}
