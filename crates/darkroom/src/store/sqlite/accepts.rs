//! Group commit of new jobs: one task takes every submission waiting, creates them all in
//! one write transaction and one `COMMIT` (one fsync), then answers each.
//!
//! With `synchronous = FULL` a commit costs a disk flush, and SQLite has one writer at a
//! time, so committing each submission alone caps accepts at one flush each. Batching
//! keeps each accepted job as durable as before (its commit is flushed before it is
//! answered) while many share the flush. There is no waiting to fill a batch: what
//! arrived while the last one committed is the next one.
//!
//! Each job runs in its own savepoint, so one that fails (a full queue, a reused
//! idempotency key) is rolled back alone and the others still commit. The queue bounds
//! are checked against the in-memory queue plus the jobs this batch already added, under
//! the writer lock that every write of the queue takes, so the check and the insert are
//! atomic with respect to every other submission and claim.
//!
//! When a backend has room for a new job, a batch commits without the flush and the
//! scheduler is told at once; the log is flushed while it claims and posts the jobs, and
//! the submitters are answered after the flush (`Flush`, and `wal` for why it is safe).
//!
//! The task owns the transaction, not the callers: a caller that goes away (its client
//! hung up) cannot cut a batch short, and its job is committed or not like the others.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::queue_index::QueueIndex;
use super::wal::WalFile;
use super::{Write, Writer, events, jobs};
use crate::jobs::model::JobSummary;
use crate::store::{Durability, JobChange, NewEvent, NewJob, QueueWatch, StoreError};

/// Submissions committed together at most: bounds how long the first of a batch waits
/// behind the others' inserts.
const MAX_BATCH: usize = 256;

/// Batches up to this many jobs keep their prepared statements between batches.
const KEPT_BATCH_TEXTS: usize = 4;
/// Jobs sent to the writer's thread in one trip: their bound copies (each workflow twice,
/// as text, and SQLite's own copy) are held until the trip ends, so a batch of large
/// workflows goes in several trips of one transaction rather than all at once.
const JOBS_PER_TRIP: usize = 16;

/// One submission and where its answer goes.
#[derive(Debug)]
pub(super) struct Accept {
    job: NewJob,
    answer: oneshot::Sender<Result<JobChange, StoreError>>,
}

/// Starts the task that commits submissions; it ends when every sender is gone.
pub(super) fn start(writer: Writer) -> mpsc::UnboundedSender<Accept> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(run(writer, receiver));
    sender
}

/// Hands `job` to the committing task and waits for its outcome.
pub(super) async fn submit(
    accepts: &mpsc::UnboundedSender<Accept>,
    job: NewJob,
) -> Result<JobChange, StoreError> {
    let (answer, answered) = oneshot::channel();
    accepts
        .send(Accept { job, answer })
        .map_err(|_| StoreError::WriterStopped)?;
    answered.await.map_err(|_| StoreError::WriterStopped)?
}

async fn run(writer: Writer, mut requests: mpsc::UnboundedReceiver<Accept>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (jobs, answers): (Vec<NewJob>, Vec<_>) = batch
            .drain(..)
            .map(|accept| (accept.job, accept.answer))
            .unzip();
        let count = jobs.len();
        let flush = Flush::choose(&writer);
        let outcomes = match commit(&writer, jobs, flush.durability()).await {
            Ok(outcomes) => flush.made_durable(outcomes).await,
            Err(error) => {
                tracing::error!(%error, jobs = count, "cannot commit submitted jobs");
                let error = Arc::new(error);
                (0..count)
                    .map(|_| Err(StoreError::SharedWrite(Arc::clone(&error))))
                    .collect()
            }
        };
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // A caller that went away needs no answer.
            let _ = answer.send(outcome);
        }
    }
}

/// How a batch commits, and who hears of it before its submitters do.
enum Flush {
    /// `synchronous = FULL`: the commit returns durable. When no backend has room to take
    /// a new job at once, nothing could overlap a flush of the log, and one inside the
    /// commit costs the writer's thread no hand-over; in memory, as every commit there.
    InCommit,
    /// `synchronous = NORMAL`, then the scheduler is told and the log flushed while it
    /// places the jobs (`wal`).
    After(Arc<WalFile>, Arc<dyn QueueWatch>),
}

impl Flush {
    fn choose(writer: &Writer) -> Self {
        let watch = writer
            .queue_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match (&writer.wal, watch) {
            (Some(wal), Some(watch)) if wal.usable() && watch.placing() => {
                Self::After(Arc::clone(wal), watch)
            }
            _ => Self::InCommit,
        }
    }

    fn durability(&self) -> Durability {
        match self {
            Self::InCommit => Durability::PowerSafe,
            Self::After(..) => Durability::CrashSafe,
        }
    }

    /// After a batch's commit: the outcomes stand once its log is flushed. When the flush
    /// fails, each created job's submitter hears which job was recorded without the disk's
    /// confirmation (`Unconfirmed`): it is committed and may run, so a client that submits
    /// again would run it twice.
    async fn made_durable(
        self,
        outcomes: Vec<Result<JobChange, StoreError>>,
    ) -> Vec<Result<JobChange, StoreError>> {
        let Self::After(wal, watch) = self else {
            return outcomes;
        };
        if !outcomes.iter().any(Result::is_ok) {
            return outcomes;
        }
        watch.committed();
        match wal.flush().await {
            Ok(()) => outcomes,
            Err(error) => {
                // From now on batches flush inside their commit, as SQLite does alone: a
                // failing disk then fails the commit, and nothing is created unconfirmed.
                wal.give_up();
                tracing::error!(%error, "accepted jobs committed but not flushed to disk; accepts flush inside their commits from now on");
                let error = Arc::new(error);
                outcomes
                    .into_iter()
                    .map(|outcome| {
                        let job_id = outcome?.job.id;
                        Err(StoreError::Unconfirmed {
                            job_id,
                            source: Arc::clone(&error),
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Creates `jobs` in one transaction: the outcome of each, or the fault that sank them
/// all (nothing was committed then).
async fn commit(
    writer: &Writer,
    jobs: Vec<NewJob>,
    durability: Durability,
) -> Result<Vec<Result<JobChange, StoreError>>, StoreError> {
    if jobs.iter().all(|job| job.idempotency_key.is_none()) {
        return commit_without_keys(writer, jobs, durability).await;
    }
    let mut write = writer.begin(durability).await?;
    let mut added = Added::default();
    let mut outcomes = Vec::with_capacity(jobs.len());
    // A job alone needs no savepoint: if it fails, nothing else is lost by rolling back.
    let alone = jobs.len() == 1;
    for job in &jobs {
        let room = added.check(&writer.mirror().queue, job);
        let outcome = match room {
            Ok(()) if alone => jobs::create_unbounded(&mut write, job).await,
            Ok(()) => create(&mut write, job).await?,
            Err(full) => Err(full),
        };
        if outcome.is_ok() {
            added.count(job);
        }
        outcomes.push(outcome);
    }

    let created: Vec<(JobSummary, &NewJob)> = outcomes
        .iter()
        .zip(&jobs)
        .filter_map(|(outcome, job)| Some((JobSummary::from(&outcome.as_ref().ok()?.job), job)))
        .collect();
    let Write { tx, lock } = write;
    if created.is_empty() {
        // Nothing to keep; a job refused alone may have written before it failed. Rolled
        // back before the lock goes, so the next writer finds the database free.
        tx.rollback().await?;
        return Ok(outcomes);
    }
    tx.commit().await?;
    let mut mirror = writer.mirror();
    for (summary, job) in created {
        mirror.created(summary, job.requirements.clone());
    }
    drop(mirror);
    drop(lock);
    Ok(outcomes)
}

/// Creates `jobs`, none of which claims an idempotency key, in one transaction of few
/// trips to the writer's thread: `BEGIN`, each job's row and first event, `COMMIT`, as
/// multi-statement queries (see `trips`) of up to [`JOBS_PER_TRIP`] jobs each, where the
/// statement-by-statement path makes four trips for one job. Without a key, the queue
/// bounds (checked here, in memory) are the only refusal a job can meet, so no job needs
/// a savepoint of its own.
async fn commit_without_keys(
    writer: &Writer,
    jobs: Vec<NewJob>,
    durability: Durability,
) -> Result<Vec<Result<JobChange, StoreError>>, StoreError> {
    let lock = Arc::clone(&writer.lock).lock_owned().await;
    let mut added = Added::default();
    // Each job's first event, or why the queue has no room for it.
    let mut firsts = Vec::with_capacity(jobs.len());
    for job in &jobs {
        firsts.push(match added.check(&writer.mirror().queue, job) {
            Ok(()) => {
                added.count(job);
                Ok(jobs::first_status(job))
            }
            Err(full) => Err(full),
        });
    }
    let accepted: Vec<(&NewJob, &NewEvent)> = jobs
        .iter()
        .zip(&firsts)
        .filter_map(|(job, first)| Some((job, first.as_ref().ok()?)))
        .collect();
    if !accepted.is_empty() {
        write_batch(writer, &accepted, durability).await?;
    }
    drop(accepted);

    // Each created job moves into its answer, workflows and all: nothing is copied.
    let mut mirror = writer.mirror();
    let outcomes = firsts
        .into_iter()
        .zip(jobs)
        .map(|(first, mut job)| {
            let status = first?;
            let requirements = std::mem::take(&mut job.requirements);
            let change = jobs::created(job, &status)?;
            mirror.created(JobSummary::from(&change.job), requirements);
            Ok(change)
        })
        .collect();
    drop(mirror);
    drop(lock);
    Ok(outcomes)
}

/// Runs the one transaction that creates `accepted` jobs with their first events, in
/// trips of up to [`JOBS_PER_TRIP`] jobs: the first trip begins it, the last commits it.
async fn write_batch(
    writer: &Writer,
    accepted: &[(&NewJob, &NewEvent)],
    durability: Durability,
) -> Result<(), StoreError> {
    match &writer.trips {
        Some(own) => write_batch_on(&mut *own.lock().await, accepted, durability).await,
        None => {
            let connection = &mut *writer.connection.acquire().await?;
            write_batch_on(connection, accepted, durability).await
        }
    }
}

async fn write_batch_on(
    connection: &mut SqliteConnection,
    accepted: &[(&NewJob, &NewEvent)],
    durability: Durability,
) -> Result<(), StoreError> {
    let trips = accepted.chunks(JOBS_PER_TRIP);
    let last = trips.len() - 1;
    for (index, trip) in trips.enumerate() {
        let begins = (index == 0).then(|| super::begin(durability));
        let query = trip_query(begins, trip, index == last);
        if let Err(error) = query.execute(&mut *connection).await {
            // What ran before the failed statement is still open. (A failed BEGIN left
            // nothing, and this ROLLBACK fails harmlessly.)
            let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
            return Err(error.into());
        }
    }
    Ok(())
}

/// One trip of a batch: `begins` first if given, each job's row and first event (14
/// parameters, then 5), and `COMMIT` if `commits`.
fn trip_query<'q>(
    begins: Option<&str>,
    trip: &'q [(&'q NewJob, &'q NewEvent)],
    commits: bool,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    let mut statements: Vec<String> = begins.into_iter().map(str::to_owned).collect();
    for index in 0..trip.len() {
        let first = index * 19 + 1;
        statements.push(jobs::insert_statement(first));
        statements.push(events::insert_statement(first + 14));
    }
    if commits {
        statements.push("COMMIT".to_owned());
    }
    // Each size is another text, whose prepared statements sqlx would keep (two per job);
    // only the small batches that make up most of them are kept.
    let kept = begins.is_some() && commits && trip.len() <= KEPT_BATCH_TEXTS;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statements.join("; "))).persistent(kept);
    for (job, status) in trip {
        query = events::bind_event(jobs::bind_new(query, job), job.id, 1, status);
    }
    query
}

/// Creates one job inside its savepoint: `Ok(Err(_))` when the job alone was refused and
/// rolled back; `Err(_)` when the transaction itself failed.
async fn create(
    write: &mut Write,
    job: &NewJob,
) -> Result<Result<JobChange, StoreError>, StoreError> {
    sqlx::query("SAVEPOINT accept")
        .execute(&mut **write)
        .await?;
    let outcome = jobs::create_unbounded(write, job).await;
    if outcome.is_err() {
        sqlx::query("ROLLBACK TO accept")
            .execute(&mut **write)
            .await?;
    }
    sqlx::query("RELEASE accept").execute(&mut **write).await?;
    Ok(outcome)
}

/// The jobs a batch added so far, which the in-memory queue counts only once committed.
#[derive(Debug, Default)]
struct Added {
    total: u64,
    per_owner: HashMap<Option<String>, u64>,
}

impl Added {
    /// Whether `job` fits within its queue bounds, counting this batch's jobs.
    fn check(&self, queue: &QueueIndex, job: &NewJob) -> Result<(), StoreError> {
        if let Some(max_queued) = job.max_queued {
            let queued = queue.len() + self.total;
            if queued >= max_queued {
                return Err(StoreError::QueueFull { queued });
            }
        }
        if let Some(max_queued) = job.max_queued_for_owner {
            let added = self.per_owner.get(&job.owner).copied().unwrap_or(0);
            let queued = queue.count_of(job.owner.as_deref()) + added;
            if queued >= max_queued {
                return Err(StoreError::OwnerQueueFull { queued });
            }
        }
        Ok(())
    }

    fn count(&mut self, job: &NewJob) {
        self.total += 1;
        *self.per_owner.entry(job.owner.clone()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::store::{SqliteStore, Store};

    fn job(key: Option<&str>, max_queued: Option<u64>) -> NewJob {
        let now = OffsetDateTime::now_utc();
        let graph = json!({"1": {"class_type": "KSampler", "inputs": {}}});
        let mut job = NewJob::api(graph, now, now + time::Duration::hours(1));
        job.idempotency_key = key.map(str::to_owned);
        job.max_queued = max_queued;
        job
    }

    #[tokio::test]
    async fn a_refused_job_in_a_batch_is_rolled_back_alone() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.create_job(job(Some("taken"), None)).await.unwrap();

        // One batch, as the task builds it from submissions that arrived together: the
        // key reuse and the job past the bound fail, the others commit.
        let batch = [
            job(None, Some(3)),
            job(Some("taken"), None),
            job(None, Some(3)),
            job(None, Some(3)),
        ];
        let outcomes = commit(&store.writer, batch.to_vec(), Durability::PowerSafe)
            .await
            .unwrap();
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(matches!(
            outcomes[1],
            Err(StoreError::IdempotencyKeyReused { .. })
        ));
        assert!(matches!(
            outcomes[3],
            Err(StoreError::QueueFull { queued: 3 })
        ));

        assert_eq!(store.count_queued().await.unwrap(), 3);
        for (job, outcome) in batch.iter().zip(&outcomes) {
            let stored = store.job(job.id).await.unwrap();
            assert_eq!(stored.is_some(), outcome.is_ok(), "job {}", job.id);
        }
        assert_eq!(store.events_after(batch[1].id, 0, 10).await.unwrap(), []);
    }

    #[tokio::test]
    async fn a_batch_without_keys_is_one_transaction_that_still_refuses_past_the_bound() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.create_job(job(None, None)).await.unwrap();

        let batch = [
            job(None, Some(3)),
            job(None, Some(3)),
            job(None, Some(3)),
            job(None, None),
        ];
        let outcomes = commit(&store.writer, batch.to_vec(), Durability::PowerSafe)
            .await
            .unwrap();
        assert!(matches!(
            outcomes[2],
            Err(StoreError::QueueFull { queued: 3 })
        ));
        for index in [0, 1, 3] {
            let change = outcomes[index].as_ref().unwrap();
            assert_eq!(change.job.id, batch[index].id);
            assert_eq!(change.event.seq, 1);
            let events = store.events_after(batch[index].id, 0, 10).await.unwrap();
            assert_eq!(
                events,
                std::slice::from_ref(&change.event),
                "job {index}'s first event as read"
            );
            assert_eq!(
                store.job(batch[index].id).await.unwrap().as_ref(),
                Some(&change.job)
            );
        }
        assert!(store.job(batch[2].id).await.unwrap().is_none());
        assert_eq!(store.count_queued().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_trip_is_still_one_transaction() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let batch: Vec<NewJob> = (0..JOBS_PER_TRIP * 2 + 3)
            .map(|_| job(None, None))
            .collect();
        let outcomes = commit(&store.writer, batch.to_vec(), Durability::PowerSafe)
            .await
            .unwrap();
        for (job, outcome) in batch.iter().zip(&outcomes) {
            let change = outcome.as_ref().unwrap();
            assert_eq!(store.job(job.id).await.unwrap().as_ref(), Some(&change.job));
            let events = store.events_after(job.id, 0, 10).await.unwrap();
            assert_eq!(events, std::slice::from_ref(&change.event));
        }
        assert_eq!(store.count_queued().await.unwrap(), batch.len() as u64);
    }
}
