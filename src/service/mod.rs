//! Use cases: each public method is one request's work. A method reads what it needs, asks
//! `domain` what the rules say, and writes the result and its audit event in one transaction
//! through `storage`. Transport calls these; nothing here knows about gRPC.

pub mod accounts;
pub mod audit;
pub mod expiry;
pub mod grants;
pub mod support_access;

pub use crate::domain::permission::Caller;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{
    audit::EventKind,
    clock::SharedClock,
    domain::Error,
    storage::{
        Store, audit_log,
        batch::Batch,
        idempotency::{self, Replay},
        writer::{Disposition, Job, JobFn, Reply, Writer},
    },
};

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long `request_id` responses are kept (at least 24 h).
    pub idempotency_retention: Duration,
    /// Caps on assumption lifetimes.
    pub lifetimes: crate::domain::assumption::Lifetimes,
}

/// The defaults of `[assumptions]` and `[idempotency]` (docs/configuration.md): a support
/// session lasts a working day at most, an emergency one an hour; a `request_id` replays
/// for two days.
impl Default for Settings {
    fn default() -> Self {
        Self {
            idempotency_retention: Duration::from_secs(48 * 3600),
            lifetimes: crate::domain::assumption::Lifetimes {
                max: chrono::Duration::hours(8),
                emergency: chrono::Duration::hours(1),
            },
        }
    }
}

/// The application: storage, clock and settings shared by every request.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub(crate) store: Store,
    /// The only source of "now".
    pub(crate) clock: SharedClock,
    /// Tunables.
    pub(crate) settings: Arc<Settings>,
    /// The group-commit writer every change goes through.
    writer: Writer,
}

/// After a job's commit, before its caller is answered: counts its events by kind (never
/// replays or rolled-back jobs) and drops the accounts it changed from the read cache.
fn after_commit(store: &Store, appended: &[(EventKind, String)]) {
    for (kind, _) in appended {
        metrics::counter!(crate::metrics::AUDIT_EVENTS, "kind" => kind.as_str()).increment(1);
    }
    if let Some(cache) = store.grant_cache() {
        cache.invalidate(
            appended
                .iter()
                .filter(|(kind, _)| changes_account_or_grant(*kind))
                .map(|(_, account)| account.as_str()),
        );
    }
}

/// Whether an event of this kind records a change to the account or grant rows (which the
/// read cache holds). Every such change writes one: that is what keeps the cache exact.
fn changes_account_or_grant(kind: EventKind) -> bool {
    match kind {
        EventKind::AccountCreated
        | EventKind::AccountConvertedToPaid
        | EventKind::AccountDeleted
        | EventKind::GrantEnabled
        | EventKind::GrantDurationChanged
        | EventKind::GrantDisabled
        // Only the sweep's own marker changes; invalidating is harmless and keeps it simple.
        | EventKind::GrantExpired => true,
        EventKind::AssumptionAllowed
        | EventKind::AssumptionDenied
        | EventKind::EmergencyAssumption
        | EventKind::AssumptionEnded => false,
    }
}

/// Replay or run-and-remember, inside the write batch.
async fn run_idempotent<T, F>(
    batch: &Batch<'_>,
    now: DateTime<Utc>,
    idem: Option<Idempotency>,
    op: F,
) -> Result<T, Error>
where
    T: Response,
    F: WriteOp<T>,
{
    if let Some(k) = &idem
        && let Replay::Stored(first) =
            idempotency::lookup(batch, k.scope, &k.request_id, &k.fingerprint).await?
    {
        return Ok(first);
    }
    let out = op(batch, now).await?;
    if let Some(k) = &idem {
        idempotency::remember(batch, k.scope, &k.request_id, &k.fingerprint, &out, now)?;
    }
    Ok(out)
}

/// What a change answers: remembered as JSON for `request_id` replays, sent across tasks.
pub trait Response: Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Response for T {}

/// A change's work inside the write batch, given "now". `Clone`: the writer may run it more
/// than once (a pass it rolled back); only the committed attempt is answered.
pub trait WriteOp<T>:
    for<'t> FnOnce(&'t Batch<'t>, DateTime<Utc>) -> TxnFuture<'t, T> + Clone + Send + 'static
{
}
impl<T, F> WriteOp<T> for F where
    F: for<'t> FnOnce(&'t Batch<'t>, DateTime<Utc>) -> TxnFuture<'t, T> + Clone + Send + 'static
{
}

/// A boxed future borrowing the write batch.
pub type TxnFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 't>>;

/// Identifies a retried request: scope (the RPC), the client's key, and a fingerprint of the
/// request's content **and the calling principal**, so a key reused for another request, or
/// by another caller, is refused. (Without the principal, a second service replaying a first
/// one's key would receive the first one's ALLOW, with no audit event naming the second.)
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The RPC.
    scope: &'static str,
    /// The client's key.
    request_id: String,
    /// SHA-256 of the validated command.
    fingerprint: String,
}

impl Idempotency {
    /// `None` when the client sent no request id.
    pub fn new<C: Serialize>(
        scope: &'static str,
        request_id: Option<String>,
        principal: &str,
        command: &C,
    ) -> Option<Self> {
        let request_id = request_id?;
        let json = serde_json::to_vec(command).unwrap_or_default();
        // Length-prefixed, so no principal/command split can collide with another.
        let mut hasher = Sha256::new();
        hasher.update((principal.len() as u64).to_be_bytes());
        hasher.update(principal.as_bytes());
        hasher.update(json);
        Some(Self {
            scope,
            request_id,
            fingerprint: hex::encode(hasher.finalize()),
        })
    }
}

impl App {
    /// Assembles the application and starts its writer task (needs a Tokio runtime).
    pub fn new(store: Store, clock: SharedClock, settings: Settings) -> Self {
        Self {
            writer: Writer::start(store.clone()),
            store,
            clock,
            settings: Arc::new(settings),
        }
    }

    /// True while the group-commit writer runs (readiness).
    pub fn writer_alive(&self) -> bool {
        self.writer.is_alive()
    }

    /// The store (for the server's lifecycle and offline tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one change through the group-commit writer: replays the first response for a
    /// known request id, otherwise runs `op` and remembers its response, inside the batch
    /// transaction. Answers only once the batch commit is durable. `op` may run more than
    /// once (the writer re-runs a rolled-back pass), so it is `Clone` and must have no effect
    /// outside the transaction; only the committed attempt's result is answered.
    ///
    /// The work runs on the writer: if the client disconnects or its deadline passes,
    /// the change still either commits whole or rolls back whole; it is never cut between the
    /// change and its audit event.
    pub(crate) async fn write<T, F>(&self, idem: Option<Idempotency>, op: F) -> Result<T, Error>
    where
        T: Response,
        F: WriteOp<T>,
    {
        self.write_on(None, idem, op).await
    }

    /// [`App::write`] for a change that reads `account` (with its grant and chain head) and
    /// only the batch's own state otherwise: the batch reads the account up front, together
    /// with every other job's, instead of once per job.
    pub(crate) async fn write_on<T, F>(
        &self,
        account: Option<String>,
        idem: Option<Idempotency>,
        op: F,
    ) -> Result<T, Error>
    where
        T: Response,
        F: WriteOp<T>,
    {
        let request = idem.as_ref().map(|k| (k.scope, k.request_id.clone()));
        let (answer, answered) = oneshot::channel::<Result<T, Error>>();
        // The writer may run a job more than once (a pass it rolled back because another job
        // failed); only the attempt whose reply it calls answers, once.
        let answer = Arc::new(std::sync::Mutex::new(Some(answer)));
        let clock = self.clock.clone();
        let store = self.store.clone();
        // The job runs on the writer task; its span is a child of the request's span, so a
        // trace shows the storage work under the RPC that asked for it.
        let span = tracing::info_span!(parent: &tracing::Span::current(), "storage.transaction");
        let announced_account = account.clone();
        let run: JobFn = Box::new(move |batch| {
            let (op, idem, clock, answer, store, announced) = (
                op.clone(),
                idem.clone(),
                clock.clone(),
                answer.clone(),
                store.clone(),
                announced_account.clone(),
            );
            Box::pin(tracing::Instrument::instrument(
                async move {
                    let (result, appended) = audit_log::APPENDED
                        .scope(std::cell::RefCell::new(Vec::new()), async move {
                            let result = match batch {
                                // Read the clock inside the batch, in commit order; a
                                // change on an announced account takes the time its audit
                                // event will carry.
                                Ok(batch) => match &announced {
                                    Some(account) => {
                                        match audit_log::next_event_time(
                                            batch,
                                            account,
                                            clock.now(),
                                        )
                                        .await
                                        {
                                            Ok(now) => run_idempotent(batch, now, idem, op).await,
                                            Err(e) => Err(e),
                                        }
                                    }
                                    None => run_idempotent(batch, clock.now(), idem, op).await,
                                },
                                Err(e) => Err(e),
                            };
                            (result, audit_log::APPENDED.with(|a| a.take()))
                        })
                        .await;
                    let send = move |outcome: Result<T, Error>| {
                        let sender = answer.lock().ok().and_then(|mut slot| slot.take());
                        if let Some(sender) = sender {
                            let _ = sender.send(outcome);
                        }
                    };
                    match result {
                        Ok(value) => {
                            let reply: Reply = Box::new(move |committed: Result<(), Error>| {
                                if committed.is_ok() {
                                    after_commit(&store, &appended);
                                }
                                send(committed.map(|()| value));
                            });
                            (Disposition::Keep, reply)
                        }
                        Err(e) => {
                            let reply: Reply = Box::new(move |_| {
                                if matches!(e, Error::Storage(_)) {
                                    metrics::counter!(
                                        crate::metrics::AUDIT_WRITE_FAILURES,
                                        "stage" => "change"
                                    )
                                    .increment(1);
                                }
                                send(Err(e));
                            });
                            (Disposition::Discard, reply)
                        }
                    }
                },
                span.clone(),
            ))
        });
        let job = Job {
            // Only changes that announce their account stay within the batch's own state.
            batch_only: account.is_some(),
            account,
            request,
            run,
        };
        self.writer.submit(job).await?;
        answered
            .await
            .map_err(|_| Error::Internal("the writer dropped a job".into()))?
    }

    /// Deletes idempotency records past their retention; run periodically by the server.
    pub async fn prune_idempotency_records(&self) -> Result<u64, Error> {
        let retention = chrono::Duration::from_std(self.settings.idempotency_retention)
            .unwrap_or(chrono::Duration::days(1));
        let cutoff = self.clock.now() - retention;
        let txn = self.store.begin_write().await?;
        let n = idempotency::prune(&*txn, cutoff).await?;
        txn.commit().await?;
        Ok(n)
    }
}
