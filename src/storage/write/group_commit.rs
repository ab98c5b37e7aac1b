//! The one group-commit loop every write goes through.
//!
//! The loop takes whatever commands are waiting (up to [`MAX_BATCH`]) and, in **one**
//! transaction: loads the rows they announced, applies each command in order against the
//! batch's view (each sees the changes of those before it), writes every changed row, and
//! commits once. Only after that commit is durable is any caller answered. One fsync covers
//! a whole batch, while per-account order and hash chains are exactly those of running the
//! commands one by one.
//!
//! **A command that fails fails alone**: its rule refused (or its `request_id` was reused),
//! so nothing of it reached the view; it is answered with its error and the others go on.
//! **One retry policy**: if writing the batch's rows fails (a key colliding with damaged
//! stored state, a row the database refuses), no command can be blamed, so each command of
//! the batch runs again in a transaction of its own, and only those whose own rows fail are
//! refused. While retrying, a failure to open a transaction or to load means the database
//! itself is failing: the remaining commands are answered with that error at once instead of
//! each waiting for it. If a commit fails, every command of that transaction is answered with
//! the error: nothing of it was written, nothing acknowledged.
//!
//! Events become the Merkle tree's next leaves right before the batch's rows are written,
//! in the same transaction (`write::tree`): the tree never differs from what was committed.
//!
//! The loop owns the commands: a client that disconnects never cuts a transaction in half.

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{
    backend::Backend,
    command::{Command, Idempotency, Job, Submitted},
    keys::{Keys, Loaded},
    rows::Changes,
    tree,
    view::View,
};
use crate::{
    clock::SharedClock,
    domain::{Error, access_request::RequestState},
    storage::Store,
};

/// Most commands committed together. Bounded so one transaction (and the latency of its
/// first command) stays short even under a burst.
pub const MAX_BATCH: usize = 256;
/// Commands that may wait for the loop; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// A queued command.
type Queued = Box<dyn Job>;

/// Handle to the loop.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Queue of pending commands.
    jobs: mpsc::Sender<Queued>,
}

impl Writer {
    /// A writer whose loop runs on whatever drives the returned future (a thread of its own
    /// for SQLite, a task for PostgreSQL).
    pub(crate) fn new<B: Backend>(
        backend: B,
        store: Store,
        clock: SharedClock,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let looped = run(
            Loop {
                backend,
                store,
                clock,
            },
            rx,
        );
        (Self { jobs }, looped)
    }

    /// A writer that refuses every command (its backend could not start): writes answer
    /// `UNAVAILABLE` and readiness reports NOT_SERVING, instead of the server writing
    /// somewhere it should not.
    pub(crate) fn stopped() -> Self {
        let (jobs, _) = mpsc::channel(1);
        Self { jobs }
    }

    /// False once the loop has stopped: every write would fail, so readiness must say so.
    pub fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Runs `command` through the loop and answers once its batch commit is durable (or with
    /// the error that kept it out). A known `request_id` replays the first answer.
    pub async fn submit<C: Command>(
        &self,
        command: C,
        idempotency: Option<Idempotency>,
    ) -> Result<C::Answer, Error> {
        let (job, answered) = Submitted::new(command, idempotency);
        self.jobs
            .send(Box::new(job))
            .await
            .map_err(|_| Error::Storage("the writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Internal("the writer dropped a command".into()))?
    }
}

/// The loop's state.
struct Loop<B> {
    /// The database's side.
    backend: B,
    /// For the SQLite read cache and commit notifications.
    store: Store,
    /// "Now" of each batch.
    clock: SharedClock,
}

async fn run<B: Backend>(mut state: Loop<B>, mut rx: mpsc::Receiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = Instant::now();
        metrics::histogram!(crate::metrics::AUDIT_BATCH_SIZE).record(batch.len() as f64);
        let jobs = std::mem::take(&mut batch);
        if let Attempt::WriteFailed(refused) = state.commit(jobs, Mode::Batch).await {
            // Each command alone, so only those whose rows fail are refused.
            let mut refused = refused.into_iter();
            while let Some(job) = refused.next() {
                if let Attempt::DatabaseFailed(e) = state.commit(vec![job], Mode::Alone).await {
                    fail_all(refused.collect(), &e, "begin");
                    break;
                }
            }
        }
        metrics::histogram!(crate::metrics::AUDIT_WRITE_DURATION)
            .record(started.elapsed().as_secs_f64());
    }
}

/// How a transaction is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every waiting command together.
    Batch,
    /// One command, after its batch failed to write.
    Alone,
}

/// How a transaction ended.
enum Attempt {
    /// Every command has its answer.
    Answered,
    /// Writing the batch's rows failed: these commands have no answer yet (batch mode only).
    WriteFailed(Vec<Queued>),
    /// The transaction could not begin or load (its command is answered): the database is
    /// failing, not a command.
    DatabaseFailed(Error),
}

/// Answers every command with `error`, counting it at `stage`.
fn fail_all(jobs: Vec<Queued>, error: &Error, stage: &'static str) {
    metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => stage)
        .increment(jobs.len() as u64);
    for job in jobs {
        job.answer(Err(error.clone()));
    }
}

impl<B: Backend> Loop<B> {
    /// One transaction over `jobs` (see the module doc and [`Attempt`]).
    async fn commit(&mut self, jobs: Vec<Queued>, mode: Mode) -> Attempt {
        if let Err(e) = self.backend.begin().await {
            fail_all(jobs, &e, "begin");
            return Attempt::DatabaseFailed(e);
        }
        let now = self.clock.now();
        let mut keys = Keys::default();
        for job in &jobs {
            job.announce(&mut keys);
        }
        let mut view = match self.load(&keys, now).await {
            Ok(loaded) => View::new(&keys, loaded),
            Err(e) => {
                self.backend.rollback().await;
                fail_all(jobs, &e, "begin");
                return Attempt::DatabaseFailed(e);
            }
        };
        let mut changes = Changes::default();
        let mut kept = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            match job.run(&view, now) {
                Ok(change) => {
                    view.absorb(&change);
                    changes.extend(change);
                    kept.push(job);
                }
                Err(e) => {
                    if matches!(e, Error::Storage(_)) {
                        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "change")
                            .increment(1);
                    }
                    job.answer(Err(e));
                }
            }
        }
        if changes.is_empty() {
            // Replays and changes that change nothing: what they read is committed.
            self.backend.rollback().await;
            for job in kept {
                job.answer(Ok(()));
            }
            return Attempt::Answered;
        }
        let written = match tree::place_events(&mut self.backend, &mut changes).await {
            Ok(()) => self.backend.write(&changes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            self.backend.rollback().await;
            if mode == Mode::Batch && kept.len() > 1 {
                return Attempt::WriteFailed(kept);
            }
            fail_all(kept, &e, "change");
            return Attempt::Answered;
        }
        if let Err(e) = self.backend.commit().await {
            fail_all(kept, &e, "commit");
            return Attempt::Answered;
        }
        self.after_commit(&changes);
        for job in kept {
            job.answer(Ok(()));
        }
        Attempt::Answered
    }

    /// Reads what `keys` announced, the tree's state included.
    async fn load(&mut self, keys: &Keys, now: DateTime<Utc>) -> Result<Loaded, Error> {
        let mut loaded = self.backend.load(keys, now).await?;
        if let Some(tree_keys) = &keys.tree {
            loaded.tree = Some(tree::load_state(&mut self.backend, tree_keys).await?);
        }
        Ok(loaded)
    }

    /// After the commit, before anyone is answered: count the events by kind and the access
    /// requests' state transitions, drop the accounts whose rows changed from the read cache,
    /// wake audit watchers.
    fn after_commit(&self, changes: &Changes) {
        for event in &changes.events {
            metrics::counter!(crate::metrics::AUDIT_EVENTS, "kind" => event.kind.clone())
                .increment(1);
        }
        // A request's final row in the batch: new (version 1, pending) or moved out of
        // pending. An approval short of the quorum leaves it pending: no transition.
        for r in &changes.access_requests {
            if r.version == 1 || r.status != RequestState::Pending {
                metrics::counter!(
                    crate::metrics::ACCESS_REQUEST_TRANSITIONS,
                    "to" => r.status.as_str()
                )
                .increment(1);
            }
        }
        if let Some(cache) = self.store.grant_cache() {
            cache.invalidate(changes.changed_accounts());
        }
        self.store.notify_commit();
    }
}
