//! The single writer path with **group commit**.
//!
//! Every change is a job sent to one writer task. The writer takes whatever jobs are waiting
//! (up to [`MAX_BATCH`]), runs them one after another inside **one** transaction and commits
//! once. Only after that commit is durable does any job's caller get its answer. One fsync
//! then covers a whole batch instead of one per request, while every job still sees the
//! effects of the jobs before it (chain heads, sequences, grant state), so per-account ordering
//! and hash chains are exactly those of running the jobs one by one.
//!
//! **A failing job fails alone.** Jobs are re-runnable (they answer through a reply the writer
//! calls at most once), so the common case needs no per-job savepoint — two statements, and on
//! PostgreSQL two network round trips, per job saved. The batch first runs *optimistically*:
//! no savepoints. If a job fails, the whole transaction is rolled back (undoing that job's
//! partial writes along with everything else), the failed job gets its error, and the others
//! run again in a new transaction — in the same order, now without it. A second failure in
//! the same batch switches to the careful mode: a savepoint per job, so each further failure
//! is rolled back alone. Either way a job's answer is sent once, after the commit that holds
//! its writes (or with the error that kept them out).
//!
//! If the commit fails, every job of the batch answers with the error: nothing of the batch
//! was written, and nothing was acknowledged. The writer runs on its own task, so a client
//! that disconnects never cuts a transaction in half.

use std::{future::Future, pin::Pin};

use sea_orm::{DatabaseTransaction, TransactionTrait};
use tokio::sync::mpsc;

use super::Store;
use crate::domain::Error;

/// Most jobs committed together. Bounded so one transaction (and the latency of its first
/// job) stays short even under a burst.
pub const MAX_BATCH: usize = 256;
/// Jobs that may wait for the writer; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// What the writer does with a job's savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The job succeeded: keep its writes; answer after the commit.
    Keep,
    /// The job failed: roll its savepoint back; answer now.
    Discard,
}

/// Delivers a job's answer, given the outcome of the batch commit. Dropping a reply without
/// calling it answers nothing: the writer does that to the replies of a pass it rolls back,
/// and runs those jobs again.
pub type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// A job's work inside the batch transaction.
pub type JobFuture<'t> = Pin<Box<dyn Future<Output = (Disposition, Reply)> + Send + 't>>;
/// A job: called with the batch transaction (or the job's savepoint), or with the error that
/// prevented opening one. May be called again after a rolled-back pass.
pub type Job =
    Box<dyn for<'t> FnMut(Result<&'t DatabaseTransaction, Error>) -> JobFuture<'t> + Send>;

/// Optimistic passes (no savepoints) before a batch falls back to a savepoint per job.
const OPTIMISTIC_PASSES: usize = 2;

/// How an optimistic pass ended.
enum Pass {
    /// Committed (or failed to begin/commit): every job of the pass has its answer.
    Done,
    /// The job at this index failed and has its answer; the pass was rolled back and the
    /// other jobs have none yet.
    Failed(usize),
}

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Queue of pending jobs.
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task over `store`.
    pub fn start(store: Store) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        Self { jobs }
    }

    /// False once the writer task has stopped (it only stops if it panicked): every write
    /// would fail, so readiness must say so.
    pub fn is_alive(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// Queues a job. Fails only if the writer has stopped (shutdown).
    pub async fn submit(&self, job: Job) -> Result<(), Error> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::Storage("the writer has stopped".into()))
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&store, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(store: &Store, batch: Vec<Job>) {
    let started = std::time::Instant::now();
    metrics::histogram!(crate::metrics::AUDIT_BATCH_SIZE).record(batch.len() as f64);
    let mut jobs = batch;
    let mut passes = 0;
    while !jobs.is_empty() {
        if passes == OPTIMISTIC_PASSES {
            commit_isolated(store, jobs).await;
            break;
        }
        passes += 1;
        match commit_optimistic(store, &mut jobs).await {
            Pass::Done => break,
            Pass::Failed(index) => {
                // Answered already; the others run again without it.
                drop(jobs.remove(index));
            }
        }
    }
    metrics::histogram!(crate::metrics::AUDIT_WRITE_DURATION)
        .record(started.elapsed().as_secs_f64());
}

/// Answers every job with the error that kept the batch transaction from opening.
async fn fail_all(jobs: &mut [Job], error: Error) {
    metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "begin")
        .increment(jobs.len() as u64);
    for job in jobs.iter_mut() {
        let (_, reply) = job(Err(error.clone())).await;
        reply(Ok(()));
    }
}

/// Runs every job straight in the batch transaction (no savepoints) and commits. On the first
/// failing job: roll back, answer that job, and report which one it was.
async fn commit_optimistic(store: &Store, jobs: &mut [Job]) -> Pass {
    let txn = match store.begin_write().await {
        Ok(txn) => txn,
        Err(e) => {
            fail_all(jobs, e).await;
            return Pass::Done;
        }
    };
    let mut pending: Vec<Reply> = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter_mut().enumerate() {
        let (disposition, reply) = job(Ok(&txn)).await;
        match disposition {
            Disposition::Keep => pending.push(reply),
            Disposition::Discard => {
                // The jobs before it run again in the next pass: their replies are dropped
                // unanswered. The failed job's partial writes go with the rollback.
                drop(pending);
                if let Err(e) = txn.rollback().await {
                    tracing::warn!(error = %e, "rolling back a failed batch pass");
                }
                reply(Ok(()));
                return Pass::Failed(index);
            }
        }
    }
    let outcome = txn.commit().await;
    if outcome.is_err() {
        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "commit")
            .increment(pending.len() as u64);
    }
    for reply in pending {
        reply(outcome.clone());
    }
    Pass::Done
}

/// The careful mode: each job in its own savepoint, so a failing job is rolled back alone.
async fn commit_isolated(store: &Store, mut jobs: Vec<Job>) {
    let txn = match store.begin_write().await {
        Ok(txn) => txn,
        Err(e) => {
            fail_all(&mut jobs, e).await;
            return;
        }
    };
    let mut pending: Vec<Reply> = Vec::with_capacity(jobs.len());
    for mut job in jobs {
        let savepoint = match txn.begin().await {
            Ok(sp) => sp,
            Err(e) => {
                let (_, reply) = job(Err(Error::from(e))).await;
                reply(Ok(()));
                continue;
            }
        };
        let (disposition, reply) = job(Ok(&savepoint)).await;
        match disposition {
            Disposition::Keep => match savepoint.commit().await {
                Ok(()) => pending.push(reply),
                Err(e) => reply(Err(Error::from(e))),
            },
            Disposition::Discard => {
                if let Err(e) = savepoint.rollback().await {
                    // The batch transaction is now suspect: fail everything still pending.
                    let error = Error::from(e);
                    reply(Ok(()));
                    for r in pending {
                        r(Err(error.clone()));
                    }
                    return;
                }
                reply(Ok(()));
            }
        }
    }
    let outcome = txn.commit().await;
    if outcome.is_err() {
        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "commit")
            .increment(pending.len() as u64);
    }
    for reply in pending {
        reply(outcome.clone());
    }
}
