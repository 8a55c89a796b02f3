//! A job while it is on a backend: the dispatch record of its attempt and
//! its progress snapshots.

use super::Connection;
use time::OffsetDateTime;

use super::jobs::fetch;
use super::{events, leases};
use crate::jobs::model::{EventKind, Job, JobEvent, JobId, JobState, Progress, ReplicaId};
use crate::store::{Dispatch, NewEvent, StoreError};

pub(super) async fn record_dispatch(
    connection: &mut Connection,
    id: JobId,
    dispatch: &Dispatch,
) -> Result<Job, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET backend_id = $2, prompt_id = $3 \
         WHERE id = $1 AND state = $4 AND attempt = $5 \
           AND (lease_holder IS NULL OR lease_holder = $6)",
    )
    .bind(id.to_string())
    .bind(dispatch.backend_id.0.as_str())
    .bind(dispatch.prompt_id.0.as_str())
    .bind(JobState::Dispatched.as_str())
    .bind(i64::from(dispatch.attempt))
    .bind(dispatch.holder.0.as_str())
    .execute(&mut *connection)
    .await?;
    if updated.rows_affected() == 1 {
        return fetch(connection, id).await;
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
    let updated = sqlx::query(
        "UPDATE jobs SET progress = $2 WHERE id = $1 AND state IN ($3, $4, $5) \
         AND (lease_holder IS NULL OR lease_holder = $6)",
    )
    .bind(id.to_string())
    .bind(sqlx::types::Json(progress))
    .bind(ACTIVE[0].as_str())
    .bind(ACTIVE[1].as_str())
    .bind(ACTIVE[2].as_str())
    .bind(holder.0.as_str())
    .execute(&mut *connection)
    .await?;
    if updated.rows_affected() == 0 {
        let job = fetch(connection, id).await?;
        if ACTIVE.contains(&job.state) {
            return Err(leases::lease_lost(connection, id).await);
        }
        return Err(StoreError::JobNotActive {
            job_id: id,
            state: job.state,
        });
    }

    let event = NewEvent {
        kind: EventKind::Progress,
        payload: serde_json::to_value(progress)?,
        at,
    };
    events::append(connection, id, &event).await
}
