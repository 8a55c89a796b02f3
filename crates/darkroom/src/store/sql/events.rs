//! Job event streams and outputs: appends that number events per job, reads
//! that resume after a sequence number.

use super::Connection;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::leases;
use crate::jobs::model::{EventKind, JobEvent, JobId, OutputRecord, ReplicaId};
use crate::store::rows::{EventRow, OUTPUT_COLUMNS, OutputRow, from_micros, to_micros};
use crate::store::{NewEvent, StoreError};

/// Appends one event. The sequence number comes from bumping the job's own
/// counter in this transaction, so numbers are gapless per job and two
/// appends to one job cannot interleave.
pub(super) async fn append(
    connection: &mut Connection,
    job_id: JobId,
    event: &NewEvent,
) -> Result<JobEvent, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar(NEXT_SEQ_STATEMENT)
        .bind(job_id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
    let seq = seq.ok_or(StoreError::JobNotFound(job_id))?;
    insert(connection, job_id, seq, event).await
}

/// Takes the job's next event number. Binds `$1` the job.
pub(super) const NEXT_SEQ_STATEMENT: &str =
    "UPDATE jobs SET last_event_seq = last_event_seq + 1 WHERE id = $1 RETURNING last_event_seq";

/// The first event of a job whose row was inserted with its counter already at 1: no
/// `UPDATE`, which would rewrite the new row, workflows and all.
pub(super) async fn append_first(
    connection: &mut Connection,
    job_id: JobId,
    event: &NewEvent,
) -> Result<JobEvent, StoreError> {
    insert(connection, job_id, 1, event).await
}

/// Inserts an event under a number already taken from the job's counter (by the same
/// statement that changed the job).
pub(super) async fn insert(
    connection: &mut Connection,
    job_id: JobId,
    seq: i64,
    event: &NewEvent,
) -> Result<JobEvent, StoreError> {
    let statement = insert_statement(1);
    bind_event(
        sqlx::query(sqlx::AssertSqlSafe(statement)),
        job_id,
        seq,
        event,
    )
    .execute(&mut *connection)
    .await?;
    inserted(job_id, seq, event)
}

/// The insert of one event; its parameters are numbered from `$first`, and
/// [`bind_event`] binds them in order.
pub(super) fn insert_statement(first: usize) -> String {
    format!(
        "INSERT INTO job_events (job_id, seq, kind, payload, at) \
         VALUES (${first}, ${}, ${}, ${}, ${})",
        first + 1,
        first + 2,
        first + 3,
        first + 4
    )
}

/// `query` with the parameters of [`insert_statement`] bound.
pub(super) fn bind_event<'q>(
    query: sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments>,
    job_id: JobId,
    seq: i64,
    event: &'q NewEvent,
) -> sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments> {
    query
        .bind(job_id.to_string())
        .bind(seq)
        .bind(event.kind.as_str())
        .bind(Json(&event.payload))
        .bind(to_micros(event.at))
}

/// The event an insert under `seq` wrote, as a later read returns it.
pub(super) fn inserted(job_id: JobId, seq: i64, event: &NewEvent) -> Result<JobEvent, StoreError> {
    Ok(JobEvent {
        job_id,
        seq: u64::try_from(seq).unwrap_or_default(),
        kind: event.kind,
        payload: event.payload.clone(),
        // The store keeps microseconds.
        at: from_micros(to_micros(event.at))?,
    })
}

pub(super) async fn after(
    connection: &mut Connection,
    job_id: JobId,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<JobEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT job_id, seq, kind, payload, at FROM job_events \
         WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(job_id.to_string())
    .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    rows.into_iter().map(JobEvent::try_from).collect()
}

/// An output's asset row, which takes its owner and expiry from the job, so an output
/// cannot outlive its job or belong to someone else. Binds `$1` the asset, `$2` the hash,
/// `$3` the size, `$4` the content type, `$5` the name, `$6` the time, `$7` the job, `$8`
/// the holder; inserts nothing when another replica holds the job.
pub(super) const OUTPUT_ASSET_STATEMENT: &str = "INSERT INTO assets (id, hash, size_bytes, content_type, file_path, owner, job_id, \
     created_at, expires_at) \
     SELECT $1, $2, $3, $4, $5, owner, id, $6, expires_at FROM jobs \
     WHERE id = $7 AND (lease_holder IS NULL OR lease_holder = $8)";

/// The `output` event an output appends.
pub(super) fn output_event(
    output: &OutputRecord,
    at: OffsetDateTime,
) -> Result<NewEvent, StoreError> {
    Ok(NewEvent {
        kind: EventKind::Output,
        payload: serde_json::to_value(output)?,
        at,
    })
}

pub(super) async fn add_output(
    connection: &mut Connection,
    output: &OutputRecord,
    holder: &ReplicaId,
    at: OffsetDateTime,
) -> Result<JobEvent, StoreError> {
    let inserted = sqlx::query(OUTPUT_ASSET_STATEMENT)
        .bind(output.asset_id.to_string())
        .bind(output.hash.as_str())
        .bind(size(output.size_bytes))
        .bind(output.content_type.as_str())
        .bind(output.name.as_str())
        .bind(to_micros(at))
        .bind(output.job_id.to_string())
        .bind(holder.0.as_str())
        .execute(&mut *connection)
        .await?;
    if inserted.rows_affected() == 0 {
        return Err(leases::lease_lost(connection, output.job_id).await);
    }
    let event = append(connection, output.job_id, &output_event(output, at)?).await?;
    insert_output_row(connection, output, event.seq).await?;
    Ok(event)
}

async fn insert_output_row(
    connection: &mut Connection,
    output: &OutputRecord,
    seq: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO job_outputs (asset_id, job_id, seq, node_id, name, output_type, \
         content_type, size_bytes, hash, origin_filename, origin_subfolder, origin_folder) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(output.asset_id.to_string())
    .bind(output.job_id.to_string())
    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
    .bind(output.node_id.as_str())
    .bind(output.name.as_str())
    .bind(output.output_type.as_str())
    .bind(output.content_type.as_str())
    .bind(size(output.size_bytes))
    .bind(output.hash.as_str())
    .bind(output.origin.filename.as_str())
    .bind(output.origin.subfolder.as_str())
    .bind(output.origin.folder.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub(super) async fn outputs(
    connection: &mut Connection,
    job_id: JobId,
) -> Result<Vec<OutputRecord>, StoreError> {
    let sql = format!("SELECT {OUTPUT_COLUMNS} FROM job_outputs WHERE job_id = $1 ORDER BY seq");
    let rows: Vec<OutputRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(job_id.to_string())
        .fetch_all(&mut *connection)
        .await?;
    rows.into_iter().map(OutputRecord::try_from).collect()
}

/// Sizes past `i64::MAX` cannot exist on disk; saturate rather than wrap.
pub(super) fn size(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
