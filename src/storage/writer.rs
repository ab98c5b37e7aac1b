//! The single writer path with **group commit**.
//!
//! Every change is a job sent to one writer task. The writer takes whatever jobs are waiting
//! (up to [`MAX_BATCH`]), runs them one after another inside **one** transaction — each inside
//! its own savepoint, so a job that fails is rolled back alone — and commits once. Only after
//! that commit is durable does any job's caller get its answer. One fsync then covers a whole
//! batch instead of one per request, while every job still sees the effects of the jobs before
//! it (chain heads, sequences, grant state), so per-account ordering and hash chains are exactly
//! those of running the jobs one by one.
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

/// Delivers a job's answer, given the outcome of the batch commit.
pub type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// A job's work inside the batch transaction.
pub type JobFuture<'t> = Pin<Box<dyn Future<Output = (Disposition, Reply)> + Send + 't>>;
/// A job: called with the job's savepoint, or with the error that prevented opening one.
pub type Job =
    Box<dyn for<'t> FnOnce(Result<&'t DatabaseTransaction, Error>) -> JobFuture<'t> + Send>;

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
    let txn = match store.begin_write().await {
        Ok(txn) => txn,
        Err(e) => {
            metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "begin")
                .increment(batch.len() as u64);
            for job in batch {
                let (_, reply) = job(Err(e.clone())).await;
                reply(Ok(()));
            }
            return;
        }
    };
    let mut pending: Vec<Reply> = Vec::with_capacity(batch.len());
    for job in batch {
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
    metrics::histogram!(crate::metrics::AUDIT_WRITE_DURATION)
        .record(started.elapsed().as_secs_f64());
    for reply in pending {
        reply(outcome.clone());
    }
}
