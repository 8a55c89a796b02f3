//! A job while it is on a backend: the dispatch record of its attempt and
//! its progress snapshots.

use super::Connection;
use time::OffsetDateTime;

use super::jobs::fetch;
use super::{events, leases};
use crate::jobs::model::{EventKind, Job, JobEvent, JobId, JobState, Progress, ReplicaId};
use crate::store::rows::{JOB_COLUMNS, JobRow};
use crate::store::{Dispatch, NewEvent, StoreError};

pub(super) async fn record_dispatch(
    connection: &mut Connection,
    id: JobId,
    dispatch: &Dispatch,
) -> Result<Job, StoreError> {
    let sql = format!(
        "UPDATE jobs SET backend_id = $2, prompt_id = $3 \
         WHERE id = $1 AND state = $4 AND attempt = $5 \
           AND (lease_holder IS NULL OR lease_holder = $6) \
         RETURNING {JOB_COLUMNS}"
    );
    let updated: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(dispatch.backend_id.0.as_str())
        .bind(dispatch.prompt_id.0.as_str())
        .bind(JobState::Dispatched.as_str())
        .bind(i64::from(dispatch.attempt))
        .bind(dispatch.holder.0.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    if let Some(row) = updated {
        return Job::try_from(row);
    }

    let job = fetch(connection, id).await?;
    if job.state != JobState::Dispatched {
        return Err(StoreError::StateConflict {
            job_id: id,
            expected: JobState::Dispatched,
            actual: job.state,
        });
    }
    if job.attempt != dispatch.attempt {
        return Err(StoreError::StaleAttempt {
            job_id: id,
            expected: dispatch.attempt,
            actual: job.attempt,
        });
    }
    Err(leases::lease_lost(connection, id).await)
}

pub(super) async fn update_progress(
    connection: &mut Connection,
    id: JobId,
    progress: &Progress,
    holder: &ReplicaId,
    at: OffsetDateTime,
) -> Result<JobEvent, StoreError> {
    const ACTIVE: [JobState; 3] = [
        JobState::Dispatched,
        JobState::Running,
        JobState::Collecting,
    ];
    // The progress and the event's number in one statement.
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET progress = $2, last_event_seq = last_event_seq + 1 \
         WHERE id = $1 AND state IN ($3, $4, $5) \
         AND (lease_holder IS NULL OR lease_holder = $6) RETURNING last_event_seq",
    )
    .bind(id.to_string())
    .bind(sqlx::types::Json(progress))
    .bind(ACTIVE[0].as_str())
    .bind(ACTIVE[1].as_str())
    .bind(ACTIVE[2].as_str())
    .bind(holder.0.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    let Some(seq) = seq else {
        let job = fetch(connection, id).await?;
        if ACTIVE.contains(&job.state) {
            return Err(leases::lease_lost(connection, id).await);
        }
        return Err(StoreError::JobNotActive {
            job_id: id,
            state: job.state,
        });
    };

    let event = NewEvent {
        kind: EventKind::Progress,
        payload: serde_json::to_value(progress)?,
        at,
    };
    events::insert(connection, id, seq, &event).await
}
