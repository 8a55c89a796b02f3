//! Leases: one replica drives each backend, and holds the jobs on it.
//!
//! A backend lease is a row naming its holder until a deadline; the holder
//! renews it while it lives, and any replica may take it once it lapses. The
//! jobs on a backend carry their own lease (set by the claim, renewed with the
//! backend's), which a replica taking the backend over adopts once it lapses.
//! A write that names a holder is refused while another replica holds the job:
//! a replica that stalled past its lease cannot undo its successor's work.

use time::OffsetDateTime;

use super::Connection;
use crate::jobs::model::{BackendId, Job, JobId, JobState, ReplicaId};
use crate::store::rows::{JOB_COLUMNS, JobRow, from_micros, to_micros};
use crate::store::{Lease, StoreError};

/// The states in which a job is on a backend and has a lease.
const ON_BACKEND: [JobState; 4] = [
    JobState::Dispatched,
    JobState::Running,
    JobState::Collecting,
    JobState::Canceling,
];

/// Takes the backend when it is free, lapsed at `at`, or already ours.
pub(super) async fn acquire_backend(
    connection: &mut Connection,
    backend_id: &BackendId,
    lease: &Lease,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let taken = sqlx::query(
        "INSERT INTO backend_leases (backend_id, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (backend_id) DO UPDATE \
         SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE backend_leases.holder = excluded.holder OR backend_leases.expires_at <= $4",
    )
    .bind(backend_id.0.as_str())
    .bind(lease.holder.0.as_str())
    .bind(to_micros(lease.expires_at))
    .bind(to_micros(at))
    .execute(&mut *connection)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Extends our lease; `false` when another replica has taken the backend.
/// A lease that lapsed without anyone taking it is still ours to renew.
pub(super) async fn renew_backend(
    connection: &mut Connection,
    backend_id: &BackendId,
    lease: &Lease,
) -> Result<bool, StoreError> {
    let renewed = sqlx::query(
        "UPDATE backend_leases SET expires_at = $3 WHERE backend_id = $1 AND holder = $2",
    )
    .bind(backend_id.0.as_str())
    .bind(lease.holder.0.as_str())
    .bind(to_micros(lease.expires_at))
    .execute(&mut *connection)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Gives the backend and our jobs on it up at once, so the next replica need
/// not wait for the leases to lapse.
pub(super) async fn release_backend(
    connection: &mut Connection,
    backend_id: &BackendId,
    holder: &ReplicaId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM backend_leases WHERE backend_id = $1 AND holder = $2")
        .bind(backend_id.0.as_str())
        .bind(holder.0.as_str())
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "UPDATE jobs SET lease_holder = NULL, lease_expires_at = NULL \
         WHERE backend_id = $1 AND lease_holder = $2",
    )
    .bind(backend_id.0.as_str())
    .bind(holder.0.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn backend_lease(
    connection: &mut Connection,
    backend_id: &BackendId,
) -> Result<Option<Lease>, StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT holder, expires_at FROM backend_leases WHERE backend_id = $1")
            .bind(backend_id.0.as_str())
            .fetch_optional(&mut *connection)
            .await?;
    row.map(|(holder, expires_at)| {
        Ok(Lease {
            holder: ReplicaId(holder),
            expires_at: from_micros(expires_at)?,
        })
    })
    .transpose()
}

/// Takes every job on the backend that is ours, unheld, or whose holder's
/// lease lapsed at `at`, and returns all the backend's jobs we now hold,
/// oldest first.
pub(super) async fn adopt_jobs(
    connection: &mut Connection,
    backend_id: &BackendId,
    lease: &Lease,
    at: OffsetDateTime,
) -> Result<Vec<Job>, StoreError> {
    let [dispatched, running, collecting, canceling] = ON_BACKEND.map(JobState::as_str);
    sqlx::query(
        "UPDATE jobs SET lease_holder = $1, lease_expires_at = $2 \
         WHERE backend_id = $3 AND state IN ($4, $5, $6, $7) \
           AND (lease_holder IS NULL OR lease_holder = $1 OR lease_expires_at <= $8)",
    )
    .bind(lease.holder.0.as_str())
    .bind(to_micros(lease.expires_at))
    .bind(backend_id.0.as_str())
    .bind(dispatched)
    .bind(running)
    .bind(collecting)
    .bind(canceling)
    .bind(to_micros(at))
    .execute(&mut *connection)
    .await?;

    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE backend_id = $1 AND lease_holder = $2 AND state IN ($3, $4, $5, $6) \
         ORDER BY created_at, id"
    );
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(backend_id.0.as_str())
        .bind(lease.holder.0.as_str())
        .bind(dispatched)
        .bind(running)
        .bind(collecting)
        .bind(canceling)
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(Job::try_from).collect()
}

/// Extends the lease of every job we hold on the backend; returns how many.
pub(super) async fn renew_jobs(
    connection: &mut Connection,
    backend_id: &BackendId,
    lease: &Lease,
) -> Result<u64, StoreError> {
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = $3 WHERE backend_id = $1 AND lease_holder = $2",
    )
    .bind(backend_id.0.as_str())
    .bind(lease.holder.0.as_str())
    .bind(to_micros(lease.expires_at))
    .execute(&mut *connection)
    .await?;
    Ok(renewed.rows_affected())
}

/// Why a write fenced by `holder` matched nothing although the job exists:
/// another replica holds it.
pub(super) async fn lease_lost(connection: &mut Connection, job_id: JobId) -> StoreError {
    let holder: Result<Option<Option<String>>, _> =
        sqlx::query_scalar("SELECT lease_holder FROM jobs WHERE id = $1")
            .bind(job_id.to_string())
            .fetch_optional(&mut *connection)
            .await;
    match holder {
        Ok(Some(holder)) => StoreError::LeaseLost {
            job_id,
            holder: ReplicaId(holder.unwrap_or_default()),
        },
        Ok(None) => StoreError::JobNotFound(job_id),
        Err(error) => error.into(),
    }
}
