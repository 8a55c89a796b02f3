//! The queue view of the jobs table: its length, a job's place in it, the
//! atomic claim of its head, and the jobs start-up must reconcile.
//!
//! Queue order is `(priority descending, created_at, id)`. The scheduler takes
//! candidates in that order per owner and shares backends fairly between owners,
//! so the position a client sees is the order within its priority, an estimate
//! when several owners wait.

use super::Connection;
use time::OffsetDateTime;

use super::{jobs, locks};
use crate::jobs::model::{BackendId, Job, JobId, JobState, PromptId};
use crate::store::rows::{JOB_COLUMNS, JobRow, QUEUED_COLUMNS, QueuedRow, parse};
use crate::store::{JobChange, Lease, QueuedJob, StoreError, Transition};

pub(super) async fn count_queued(connection: &mut Connection) -> Result<u64, StoreError> {
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = $1")
        .bind(JobState::Queued.as_str())
        .fetch_one(&mut *connection)
        .await?;
    Ok(u64::try_from(queued).unwrap_or_default())
}

/// Queued jobs of one owner (`None`: the anonymous ones).
pub(super) async fn count_queued_of(
    connection: &mut Connection,
    owner: Option<&str>,
) -> Result<u64, StoreError> {
    // `IS` compares any two values only in SQLite; this form means the same in both.
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs \
         WHERE state = $1 AND (owner = $2 OR (owner IS NULL AND $2 IS NULL))",
    )
    .bind(JobState::Queued.as_str())
    .bind(owner)
    .fetch_one(&mut *connection)
    .await?;
    Ok(u64::try_from(queued).unwrap_or_default())
}

pub(super) async fn position(
    connection: &mut Connection,
    id: JobId,
) -> Result<Option<u64>, StoreError> {
    // The outer row exists only while the job itself is queued.
    let ahead: Option<i64> = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM jobs AS earlier \
                 WHERE earlier.state = me.state \
                   AND (earlier.priority > me.priority \
                        OR (earlier.priority = me.priority \
                            AND (earlier.created_at < me.created_at \
                                 OR (earlier.created_at = me.created_at \
                                     AND earlier.id < me.id))))) \
         FROM jobs AS me WHERE me.id = $1 AND me.state = $2",
    )
    .bind(id.to_string())
    .bind(JobState::Queued.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    Ok(ahead.map(|count| u64::try_from(count).unwrap_or_default()))
}

/// The head is selected with the engine's claim lock: PostgreSQL locks the
/// row and skips rows other claimers hold, so racing replicas take different
/// jobs without waiting; SQLite's write transaction already excludes every
/// other writer. The compare-and-set in `transition` would catch a race anyway.
pub(super) async fn claim_next(
    connection: &mut Connection,
    backend_id: &BackendId,
    lease: &Lease,
    at: OffsetDateTime,
) -> Result<Option<JobChange>, StoreError> {
    let sql = format!(
        "SELECT id FROM jobs WHERE state = $1 ORDER BY priority DESC, created_at, id LIMIT 1{}",
        locks::CLAIM
    );
    let head: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(JobState::Queued.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    let Some(head) = head else {
        return Ok(None);
    };

    let id: JobId = parse("job id", &head)?;
    let change = Transition::new(id, JobState::Queued, JobState::Dispatched, at);
    let claim = jobs::Claim {
        backend_id,
        prompt_id: None,
        lease,
    };
    let claimed = jobs::transition(connection, &change, Some(&claim)).await?;
    tracing::debug!(job.id = %id, backend.id = %backend_id, "claimed queued job");
    Ok(Some(claimed))
}

/// Up to `per_owner` queued jobs of each owner (anonymous jobs count as one owner), each
/// owner's in queue order; all of them in queue order.
pub(super) async fn candidates(
    connection: &mut Connection,
    per_owner: u32,
) -> Result<Vec<QueuedJob>, StoreError> {
    let sql = format!(
        "SELECT {QUEUED_COLUMNS} FROM ( \
           SELECT {QUEUED_COLUMNS}, ROW_NUMBER() OVER ( \
             PARTITION BY owner ORDER BY priority DESC, created_at, id) AS place \
           FROM jobs WHERE state = $1) AS queued \
         WHERE place <= $2 ORDER BY priority DESC, created_at, id"
    );
    let rows: Vec<QueuedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(JobState::Queued.as_str())
        .bind(i64::from(per_owner))
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(QueuedJob::try_from).collect()
}

/// Moves one chosen job to `dispatched` for `backend_id` under `prompt_id`, held under
/// `lease`, if it is still queued: the transition's compare-and-set is the claim, so of two
/// replicas choosing the same job one gets it and the other `None`.
pub(super) async fn claim(
    connection: &mut Connection,
    id: JobId,
    backend_id: &BackendId,
    prompt_id: &PromptId,
    lease: &Lease,
    at: OffsetDateTime,
) -> Result<Option<JobChange>, StoreError> {
    let change = Transition::new(id, JobState::Queued, JobState::Dispatched, at);
    let claim = jobs::Claim {
        backend_id,
        prompt_id: Some(prompt_id),
        lease,
    };
    match jobs::transition(connection, &change, Some(&claim)).await {
        Ok(claimed) => Ok(Some(claimed)),
        Err(StoreError::StateConflict { .. } | StoreError::JobNotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

pub(super) async fn unfinished(connection: &mut Connection) -> Result<Vec<Job>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ($1, $2, $3, $4) \
         ORDER BY created_at, id"
    );
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(JobState::Succeeded.as_str())
        .bind(JobState::Failed.as_str())
        .bind(JobState::Canceled.as_str())
        .bind(JobState::Expired.as_str())
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(Job::try_from).collect()
}
