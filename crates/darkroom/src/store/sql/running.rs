//! A job while it is on a backend: the dispatch record of its attempt and
//! its progress snapshots.

use super::Connection;
use time::OffsetDateTime;

use super::jobs::fetch;
use super::{events, leases};
use crate::jobs::model::{EventKind, Job, JobEvent, JobId, JobState, Progress, ReplicaId};
use crate::store::rows::{JOB_COLUMNS, JobRow};
use crate::store::{Dispatch, NewEvent, StoreError};

/// The states a job has progress in.
pub(super) const ACTIVE: [JobState; 3] = [
    JobState::Dispatched,
    JobState::Running,
    JobState::Collecting,
];

/// Records the attempt's backend and prompt id. Binds `$1` the job, `$2` the backend,
/// `$3` the prompt id, `$4` `dispatched`, `$5` the attempt, `$6` the holder.
pub(super) fn dispatch_statement() -> String {
    format!(
        "UPDATE jobs SET backend_id = $2, prompt_id = $3 \
         WHERE id = $1 AND state = $4 AND attempt = $5 \
           AND (lease_holder IS NULL OR lease_holder = $6) \
         RETURNING {JOB_COLUMNS}"
    )
}

/// Sets the progress and takes the event's number, in one statement. Binds `$1` the job,
/// `$2` the progress, `$3` to `$5` the [`ACTIVE`] states, `$6` the holder.
pub(super) const PROGRESS_STATEMENT: &str = "UPDATE jobs SET progress = $2, last_event_seq = last_event_seq + 1 \
     WHERE id = $1 AND state IN ($3, $4, $5) \
     AND (lease_holder IS NULL OR lease_holder = $6) RETURNING last_event_seq";

pub(super) async fn record_dispatch(
    connection: &mut Connection,
    id: JobId,
    dispatch: &Dispatch,
) -> Result<Job, StoreError> {
    let updated: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(dispatch_statement()))
        .bind(id.to_string())
        .bind(dispatch.backend_id.0.as_str())
        .bind(dispatch.prompt_id.0.as_str())
        .bind(JobState::Dispatched.as_str())
        .bind(i64::from(dispatch.attempt))
        .bind(dispatch.holder.0.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    match updated {
        Some(row) => Job::try_from(row),
        None => Err(dispatch_refused(connection, id, dispatch).await),
    }
}

/// Why a dispatch record matched nothing.
pub(super) async fn dispatch_refused(
    connection: &mut Connection,
    id: JobId,
    dispatch: &Dispatch,
) -> StoreError {
    let job = match fetch(connection, id).await {
        Ok(job) => job,
        Err(error) => return error,
    };
    if job.state != JobState::Dispatched {
        return StoreError::StateConflict {
            job_id: id,
            expected: JobState::Dispatched,
            actual: job.state,
        };
    }
    if job.attempt != dispatch.attempt {
        return StoreError::StaleAttempt {
            job_id: id,
            expected: dispatch.attempt,
            actual: job.attempt,
        };
    }
    leases::lease_lost(connection, id).await
}

pub(super) async fn update_progress(
    connection: &mut Connection,
    id: JobId,
    progress: &Progress,
    holder: &ReplicaId,
    at: OffsetDateTime,
) -> Result<JobEvent, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar(PROGRESS_STATEMENT)
        .bind(id.to_string())
        .bind(sqlx::types::Json(progress))
        .bind(ACTIVE[0].as_str())
        .bind(ACTIVE[1].as_str())
        .bind(ACTIVE[2].as_str())
        .bind(holder.0.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    let Some(seq) = seq else {
        return Err(progress_refused(connection, id).await);
    };
    events::insert(connection, id, seq, &progress_event(progress, at)?).await
}

/// The `progress` event a progress write appends.
pub(super) fn progress_event(
    progress: &Progress,
    at: OffsetDateTime,
) -> Result<NewEvent, StoreError> {
    Ok(NewEvent {
        kind: EventKind::Progress,
        payload: serde_json::to_value(progress)?,
        at,
    })
}

/// Why a progress write matched nothing.
pub(super) async fn progress_refused(connection: &mut Connection, id: JobId) -> StoreError {
    match fetch(connection, id).await {
        Ok(job) if ACTIVE.contains(&job.state) => leases::lease_lost(connection, id).await,
        Ok(job) => StoreError::JobNotActive {
            job_id: id,
            state: job.state,
        },
        Err(error) => error,
    }
}
