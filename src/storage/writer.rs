//! The single writer path with **group commit**.
//!
//! Every change is a job sent to one writer (a task; on a SQLite file a thread of its own, see
//! [`super::sqlite_writer`]). The writer takes whatever jobs are waiting (up to
//! [`MAX_BATCH`]), reads what they announced (accounts, request ids) in a few statements, runs
//! them one after another inside **one** transaction — their new rows buffered and written
//! with multi-row statements ([`super::batch`]) — and commits once. Only after that commit is
//! durable does any job's caller get its answer. One fsync then covers a whole batch instead
//! of one per request, while every job still sees the effects of the jobs before it (chain
//! heads, sequences, grant state), so per-account ordering and hash chains are exactly those
//! of running the jobs one by one.
//!
//! **A failing job fails alone.** Jobs are re-runnable (they answer through a reply the writer
//! calls at most once), so the common case needs no per-job savepoint — two statements, and on
//! PostgreSQL two network round trips, per job saved. The batch first runs *optimistically*:
//! no savepoints. If a job fails, the whole transaction is rolled back (undoing that job's
//! partial writes along with everything else), the failed job gets its error, and the others
//! run again in a new transaction — in the same order, now without it. A second failure in
//! the same batch switches to the careful mode: a savepoint per job, so each further failure
//! is rolled back alone. Writing the buffered rows can fail without any job to blame (a row
//! of an earlier job is refused): then the batch goes straight to the careful mode, where each
//! job's rows are written inside its own savepoint. Either way a job's answer is sent once,
//! after the commit that holds its writes (or with the error that kept them out).
//!
//! If the commit fails, every job of the batch answers with the error: nothing of the batch
//! was written, and nothing was acknowledged. The writer owns the jobs, so a client that
//! disconnects never cuts a transaction in half.

use std::{future::Future, pin::Pin};

use sea_orm::{DatabaseTransaction, TransactionTrait};
use tokio::{runtime::Handle, sync::mpsc};

use super::{
    Store,
    batch::{self, Batch},
    sqlite_writer::{DecisionConnection, WriteFailure},
    thread_priority::{WRITER_NICE, set_current_thread_nice},
};
use crate::domain::Error;

/// Most jobs committed together. Bounded so one transaction (and the latency of its first
/// job) stays short even under a burst.
pub const MAX_BATCH: usize = 256;
/// Jobs that may wait for the writer; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// What the writer does with a job's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The job succeeded: keep its writes; answer after the commit.
    Keep,
    /// The job failed: its writes must not commit; answer now.
    Discard,
}

/// Delivers a job's answer, given the outcome of the batch commit. Dropping a reply without
/// calling it answers nothing: the writer does that to the replies of a pass it rolls back,
/// and runs those jobs again.
pub type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// A job's work inside the batch.
pub type JobFuture<'t> = Pin<Box<dyn Future<Output = (Disposition, Reply)> + Send + 't>>;
/// A job's work: called with the batch (or, re-run alone, a batch over the job's savepoint),
/// or with the error that prevented opening one. May be called again after a rolled-back pass.
pub type JobFn = Box<dyn for<'t> FnMut(Result<&'t Batch<'t>, Error>) -> JobFuture<'t> + Send>;

/// A change for the writer, with what it will read, so a batch reads all of that up front in
/// a few statements instead of a few per job.
pub struct Job {
    /// The account the job decides on, if known before it runs.
    pub account: Option<String>,
    /// The `(rpc, request_id)` it will look up, if any.
    pub request: Option<(&'static str, String)>,
    /// The job reads only what it announced and writes only through the batch's buffers
    /// (never [`Batch::conn`]), so its batch can run on SQLite's decision connection.
    pub batch_only: bool,
    /// The work.
    pub run: JobFn,
}

/// Optimistic passes (no savepoints) before a batch falls back to a savepoint per job.
const OPTIMISTIC_PASSES: usize = 2;

/// How an optimistic pass ended.
enum Pass {
    /// Committed (or failed to begin/commit): every job of the pass has its answer.
    Done,
    /// The job at this index failed and has its answer; the pass was rolled back and the
    /// other jobs have none yet.
    Failed(usize),
    /// Writing the buffered rows failed: no job can be blamed, none has an answer, the pass
    /// was rolled back.
    FlushFailed,
}

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Queue of pending jobs.
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer over `store` (needs a Tokio runtime): on a SQLite file, a thread of
    /// its own with the decision connection; otherwise a task.
    pub fn start(store: Store) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let decisions = store.sqlite_path().map(DecisionConnection::open);
        match decisions {
            Some(Ok(decisions)) => {
                let runtime = Handle::current();
                let spawned = std::thread::Builder::new()
                    .name("accessgrant-writer".into())
                    .spawn(move || run_on_thread(store, decisions, runtime, rx));
                if let Err(e) = spawned {
                    // The receiver is gone with the closure: writes fail and readiness says
                    // NOT_SERVING (fail closed).
                    tracing::error!(error = %e, "could not start the writer thread");
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "no decision connection; decisions use the pool");
                tokio::spawn(run(store, rx));
            }
            None => {
                tokio::spawn(run(store, rx));
            }
        }
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

/// The async writer (PostgreSQL, in-memory SQLite): every batch through the pool.
async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = std::time::Instant::now();
        metrics::histogram!(crate::metrics::AUDIT_BATCH_SIZE).record(batch.len() as f64);
        commit_pooled(&store, std::mem::take(&mut batch)).await;
        metrics::histogram!(crate::metrics::AUDIT_WRITE_DURATION)
            .record(started.elapsed().as_secs_f64());
    }
}

/// The SQLite writer thread: runs of decisions on the decision connection, inline; other
/// changes through the pool (driven on this thread with the runtime's handle), one run after
/// another in arrival order.
fn run_on_thread(
    store: Store,
    decisions: DecisionConnection,
    runtime: Handle,
    mut rx: mpsc::Receiver<Job>,
) {
    match set_current_thread_nice(WRITER_NICE) {
        Ok(()) => tracing::debug!(nice = WRITER_NICE, "writer thread priority raised"),
        Err(e) => tracing::info!(
            error = %e,
            "writer thread keeps the default priority (raising it needs CAP_SYS_NICE); \
             `accessgrant serve` runs its request workers at nice +5 instead, below it"
        ),
    }
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let started = std::time::Instant::now();
        metrics::histogram!(crate::metrics::AUDIT_BATCH_SIZE).record(batch.len() as f64);
        for (batch_only, run) in runs(std::mem::take(&mut batch)) {
            if batch_only {
                commit_decisions(&store, &decisions, &runtime, run);
            } else {
                runtime.block_on(commit_pooled(&store, run));
            }
        }
        metrics::histogram!(crate::metrics::AUDIT_WRITE_DURATION)
            .record(started.elapsed().as_secs_f64());
    }
}

/// Splits a batch into maximal runs of consecutive jobs that are (or are not) batch-only.
fn runs(batch: Vec<Job>) -> Vec<(bool, Vec<Job>)> {
    let mut out: Vec<(bool, Vec<Job>)> = Vec::new();
    for job in batch {
        match out.last_mut() {
            Some((kind, run)) if *kind == job.batch_only => run.push(job),
            _ => out.push((job.batch_only, vec![job])),
        }
    }
    out
}

/// Commits batch-only jobs on SQLite's decision connection, on the writer thread: begin and
/// read what they announced, run the jobs against the batch's memory (their futures never
/// wait: everything they read is already there), write the buffered rows, commit. A job that
/// fails is answered and the others run again without it; rows that fail to write send the
/// run to the careful mode on the pool, which finds the job they belong to.
fn commit_decisions(
    store: &Store,
    decisions: &DecisionConnection,
    runtime: &Handle,
    mut jobs: Vec<Job>,
) {
    let lock = store.lock_writes_blocking();
    while !jobs.is_empty() {
        if let Err(lost) = store.confirm_file() {
            runtime.block_on(fail_all(&mut jobs, lost));
            return;
        }
        let (accounts, requests) = announced(&jobs);
        let prefetched = match decisions.begin(&accounts, &requests) {
            Ok(found) => found,
            Err(e) => {
                runtime.block_on(fail_all(&mut jobs, e));
                return;
            }
        };
        let batch = Batch::detached();
        {
            let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
            let requests: Vec<(&'static str, &str)> = requests
                .iter()
                .map(|(rpc, id)| (*rpc, id.as_str()))
                .collect();
            batch.install(&accounts, &requests, prefetched);
        }
        let mut pending: Vec<Reply> = Vec::with_capacity(jobs.len());
        let mut failed = None;
        for (index, job) in jobs.iter_mut().enumerate() {
            let (disposition, reply) = futures::executor::block_on((job.run)(Ok(&batch)));
            if disposition == Disposition::Keep {
                pending.push(reply);
            } else {
                failed = Some((index, reply));
                break;
            }
        }
        if let Some((index, reply)) = failed {
            // Nothing was written yet: roll back, answer the failed job, re-run the rest.
            drop(pending);
            decisions.rollback();
            reply(Ok(()));
            drop(jobs.remove(index));
            continue;
        }
        match decisions.commit(&batch.take_rows()) {
            // Committed, but into a file that was deleted or replaced meanwhile: nobody will
            // read it again, so nobody is told it is durable.
            Ok(()) => match store.confirm_file() {
                Ok(()) => {
                    store.notify_commit();
                    answer_all(pending, Ok(()));
                }
                Err(lost) => answer_all(pending, Err(lost)),
            },
            Err(WriteFailure::Commit(e)) => answer_all(pending, Err(e)),
            Err(WriteFailure::Rows(_)) => {
                // Some job's rows were refused: find it, one savepoint per job.
                drop((pending, lock));
                runtime.block_on(commit_isolated(store, jobs));
            }
        }
        return;
    }
}

/// Commits jobs through the pool's writer connection (every job on PostgreSQL).
async fn commit_pooled(store: &Store, batch: Vec<Job>) {
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
            Pass::FlushFailed => {
                commit_isolated(store, jobs).await;
                break;
            }
        }
    }
}

/// Answers every job with the error that kept the batch from starting.
async fn fail_all(jobs: &mut [Job], error: Error) {
    metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "begin")
        .increment(jobs.len() as u64);
    for job in jobs.iter_mut() {
        let (_, reply) = (job.run)(Err(error.clone())).await;
        reply(Ok(()));
    }
}

/// What the jobs announced they will read: distinct accounts, and request ids.
type Announced = (Vec<String>, Vec<(&'static str, String)>);

fn announced(jobs: &[Job]) -> Announced {
    let accounts = batch::distinct(jobs.iter().filter_map(|j| j.account.as_deref()))
        .into_iter()
        .map(str::to_owned)
        .collect();
    let requests = jobs.iter().filter_map(|j| j.request.clone()).collect();
    (accounts, requests)
}

/// Reads what the jobs announced, in a few statements.
async fn prefetch(batch: &Batch<'_>, (accounts, requests): Announced) -> Result<(), Error> {
    let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
    let requests: Vec<(&'static str, &str)> = requests
        .iter()
        .map(|(rpc, id)| (*rpc, id.as_str()))
        .collect();
    batch.prefetch(&accounts, &requests).await
}

/// Rolls back a pass that will not commit.
async fn roll_back(txn: super::WriteTxn) {
    if let Err(e) = txn.rollback().await {
        tracing::warn!(error = %e, "rolling back a failed batch pass");
    }
}

/// Runs every job in one batch (no savepoints), writes the buffered rows and commits. On the
/// first failing job: roll back, answer that job, and report which one it was.
async fn commit_optimistic(store: &Store, jobs: &mut [Job]) -> Pass {
    let txn = match store.begin_write().await {
        Ok(txn) => txn,
        Err(e) => {
            fail_all(jobs, e).await;
            return Pass::Done;
        }
    };
    let batch = Batch::new(&txn);
    if let Err(e) = prefetch(&batch, announced(jobs)).await {
        drop(batch);
        roll_back(txn).await;
        fail_all(jobs, e).await;
        return Pass::Done;
    }
    let mut pending: Vec<Reply> = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter_mut().enumerate() {
        let (disposition, reply) = (job.run)(Ok(&batch)).await;
        if disposition == Disposition::Keep {
            pending.push(reply);
            continue;
        }
        // The jobs before it run again in the next pass: their replies are dropped
        // unanswered. The failed job's partial writes go with the rollback.
        let blame = !batch.flush_failed();
        drop((pending, batch));
        roll_back(txn).await;
        if !blame {
            // The job failed writing rows buffered by earlier jobs: not its fault.
            return Pass::FlushFailed;
        }
        reply(Ok(()));
        return Pass::Failed(index);
    }
    if batch.flush().await.is_err() {
        drop((pending, batch));
        roll_back(txn).await;
        return Pass::FlushFailed;
    }
    drop(batch);
    commit_and_answer(txn, pending).await;
    Pass::Done
}

/// The careful mode: each job in its own savepoint, its buffered rows written before the
/// savepoint is released, so a failing job (or failing rows) is rolled back alone.
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
                let (_, reply) = (job.run)(Err(Error::from(e))).await;
                reply(Ok(()));
                continue;
            }
        };
        let (disposition, reply, written) = run_alone(&savepoint, &mut job).await;
        match (disposition, written) {
            (Disposition::Keep, Ok(())) => match savepoint.commit().await {
                Ok(()) => pending.push(reply),
                Err(e) => reply(Err(Error::from(e))),
            },
            (keep_or_discard, written) => {
                if let Err(e) = savepoint.rollback().await {
                    // The batch transaction is now suspect: fail everything still pending.
                    let error = Error::from(e);
                    reply(Err(error.clone()));
                    for r in pending {
                        r(Err(error.clone()));
                    }
                    return;
                }
                match (keep_or_discard, written) {
                    // Its rows could not be written: the caller gets that error.
                    (Disposition::Keep, Err(e)) => {
                        metrics::counter!(
                            crate::metrics::AUDIT_WRITE_FAILURES,
                            "stage" => "change"
                        )
                        .increment(1);
                        reply(Err(e))
                    }
                    // It failed by itself and carries its own answer.
                    _ => reply(Ok(())),
                }
            }
        }
    }
    commit_and_answer(txn, pending).await;
}

/// Commits, then answers every pending job with the outcome: its writes are durable, or
/// none of the batch's are.
async fn commit_and_answer(txn: super::WriteTxn, pending: Vec<Reply>) {
    let outcome = txn.commit().await;
    answer_all(pending, outcome);
}

/// Answers every pending job with a commit's outcome (counting a failed commit).
fn answer_all(pending: Vec<Reply>, outcome: Result<(), Error>) {
    if outcome.is_err() {
        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES, "stage" => "commit")
            .increment(pending.len() as u64);
    }
    for reply in pending {
        reply(outcome.clone());
    }
}

/// Runs one job in a batch of its own over `savepoint` and writes its rows.
async fn run_alone(
    savepoint: &DatabaseTransaction,
    job: &mut Job,
) -> (Disposition, Reply, Result<(), Error>) {
    let batch = Batch::new(savepoint);
    let (disposition, reply) = (job.run)(Ok(&batch)).await;
    let written = match disposition {
        Disposition::Keep => batch.flush().await,
        Disposition::Discard => Ok(()),
    };
    (disposition, reply, written)
}
