//! Rows as the database holds them and their conversion to domain records.
//!
//! Engine-neutral on purpose: the structs derive `FromRow` for any sqlx row
//! type, times are BIGINT microseconds since the Unix epoch (UTC) so they
//! sort and compare as numbers everywhere, and JSON travels as `Json<_>`,
//! except JSON a client submitted, which is bound as [`AsSent`].

use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, types::Oid};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::types::Json;
use sqlx::{Encode, Postgres, Sqlite, Type};
use time::OffsetDateTime;

use super::StoreError;
use crate::auth::{ApiKey, KeyLimits};
use crate::jobs::model::{
    Asset, EventKind, Job, JobError, JobEvent, JobSummary, OriginFolder, OutputOrigin,
    OutputRecord, Progress,
};

/// The job columns, in `JobRow` order, for every `SELECT` of a whole job.
pub(crate) const JOB_COLUMNS: &str = "id, state, workflow, original_workflow, original_format, \
     template, parameters, backend_id, prompt_id, attempt, priority, owner, idempotency_key, \
     keep_previews, created_at, dispatched_at, started_at, completed_at, expires_at, \
     progress, error";

pub(crate) const ASSET_COLUMNS: &str =
    "id, hash, size_bytes, content_type, file_path, owner, job_id, created_at, expires_at";

pub(crate) const OUTPUT_COLUMNS: &str = "job_id, asset_id, node_id, name, output_type, \
     content_type, size_bytes, hash, origin_filename, origin_subfolder, origin_folder";

/// JSON a client submitted (a graph, parameters), bound so that it reads back
/// as sent, key order included: as `JSON` in PostgreSQL, whose `JSONB`
/// (what `Json<_>` binds as) sorts keys, and as text in SQLite.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AsSent<'a>(pub &'a Value);

/// PostgreSQL's fixed object id of the built-in `json` type.
const PG_JSON: Oid = Oid(114);

impl Type<Postgres> for AsSent<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(PG_JSON)
    }
}

impl Encode<'_, Postgres> for AsSent<'_> {
    fn encode_by_ref(&self, buffer: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // A `json` value's binary form is its text.
        serde_json::to_writer(&mut **buffer, self.0)?;
        Ok(IsNull::No)
    }
}

impl Type<Sqlite> for AsSent<'_> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for AsSent<'_> {
    fn encode_by_ref(&self, buffer: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode(serde_json::to_string(self.0)?, buffer)
    }
}

/// Microseconds since the epoch; sub-microsecond precision is dropped.
pub(crate) fn to_micros(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|error| StoreError::corrupt("timestamp", error))
}

fn optional_time(micros: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    micros.map(from_micros).transpose()
}

/// Parses a stored name (state, kind, id...) through its `FromStr`.
pub(crate) fn parse<T>(what: &'static str, value: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr,
    T::Err: ToString,
{
    value
        .parse()
        .map_err(|error: T::Err| StoreError::corrupt(what, error.to_string()))
}

fn unsigned<T: TryFrom<i64>>(what: &'static str, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::corrupt(what, format!("out of range: {value}")))
}

/// A whole job row: its summary's columns (parsed once, in `SummaryRow`) and the rest.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    workflow: Json<Value>,
    original_workflow: Json<Value>,
    original_format: String,
    template: Option<String>,
    parameters: Option<Json<Value>>,
    prompt_id: Option<String>,
    idempotency_key: Option<String>,
    keep_previews: bool,
    dispatched_at: Option<i64>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let summary = JobSummary::try_from(row.summary)?;
        Ok(Job {
            id: summary.id,
            state: summary.state,
            workflow: row.workflow.0,
            original_workflow: row.original_workflow.0,
            original_format: parse("workflow format", &row.original_format)?,
            template: row.template,
            parameters: row.parameters.map(|json| json.0),
            backend_id: summary.backend_id,
            prompt_id: row.prompt_id.map(Into::into),
            attempt: summary.attempt,
            priority: summary.priority,
            owner: summary.owner,
            idempotency_key: row.idempotency_key,
            keep_previews: row.keep_previews,
            created_at: summary.created_at,
            dispatched_at: optional_time(row.dispatched_at)?,
            started_at: summary.started_at,
            completed_at: summary.completed_at,
            expires_at: summary.expires_at,
            progress: summary.progress,
            error: summary.error,
        })
    }
}

/// The columns of a [`JobSummary`], in `SummaryRow` order: a status read's, without the
/// workflows.
pub(crate) const SUMMARY_COLUMNS: &str = "id, state, backend_id, attempt, priority, owner, \
     created_at, started_at, completed_at, expires_at, progress, error";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: String,
    state: String,
    backend_id: Option<String>,
    attempt: i64,
    priority: i64,
    owner: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    expires_at: i64,
    progress: Option<Json<Progress>>,
    error: Option<Json<JobError>>,
}

impl TryFrom<SummaryRow> for JobSummary {
    type Error = StoreError;

    fn try_from(row: SummaryRow) -> Result<Self, Self::Error> {
        Ok(JobSummary {
            id: parse("job id", &row.id)?,
            state: parse("job state", &row.state)?,
            backend_id: row.backend_id.map(Into::into),
            attempt: unsigned("attempt", row.attempt)?,
            priority: i32::try_from(row.priority)
                .map_err(|_| StoreError::corrupt("priority", row.priority))?,
            owner: row.owner,
            created_at: from_micros(row.created_at)?,
            started_at: optional_time(row.started_at)?,
            completed_at: optional_time(row.completed_at)?,
            expires_at: from_micros(row.expires_at)?,
            progress: row.progress.map(|json| json.0),
            error: row.error.map(|json| json.0),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    job_id: String,
    seq: i64,
    kind: String,
    payload: Json<Value>,
    at: i64,
}

impl TryFrom<EventRow> for JobEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        Ok(JobEvent {
            job_id: parse("job id", &row.job_id)?,
            seq: unsigned("event seq", row.seq)?,
            kind: parse::<EventKind>("event kind", &row.kind)?,
            payload: row.payload.0,
            at: from_micros(row.at)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AssetRow {
    id: String,
    hash: String,
    size_bytes: i64,
    content_type: String,
    file_path: Option<String>,
    owner: Option<String>,
    job_id: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
}

impl TryFrom<AssetRow> for Asset {
    type Error = StoreError;

    fn try_from(row: AssetRow) -> Result<Self, Self::Error> {
        Ok(Asset {
            id: parse("asset id", &row.id)?,
            hash: parse("blob hash", &row.hash)?,
            size_bytes: unsigned("asset size", row.size_bytes)?,
            content_type: row.content_type,
            file_path: row.file_path,
            owner: row.owner,
            job_id: row
                .job_id
                .as_deref()
                .map(|id| parse("job id", id))
                .transpose()?,
            created_at: from_micros(row.created_at)?,
            expires_at: optional_time(row.expires_at)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OutputRow {
    job_id: String,
    asset_id: String,
    node_id: String,
    name: String,
    output_type: String,
    content_type: String,
    size_bytes: i64,
    hash: String,
    origin_filename: String,
    origin_subfolder: String,
    origin_folder: String,
}

impl TryFrom<OutputRow> for OutputRecord {
    type Error = StoreError;

    fn try_from(row: OutputRow) -> Result<Self, Self::Error> {
        Ok(OutputRecord {
            job_id: parse("job id", &row.job_id)?,
            asset_id: parse("asset id", &row.asset_id)?,
            node_id: row.node_id,
            name: row.name,
            output_type: parse("output type", &row.output_type)?,
            content_type: row.content_type,
            size_bytes: unsigned("output size", row.size_bytes)?,
            hash: parse("blob hash", &row.hash)?,
            origin: OutputOrigin {
                filename: row.origin_filename,
                subfolder: row.origin_subfolder,
                folder: parse::<OriginFolder>("origin folder", &row.origin_folder)?,
            },
        })
    }
}

/// The columns of a scheduling candidate, in `QueuedRow` order.
pub(crate) const QUEUED_COLUMNS: &str = "id, owner, priority, created_at, requirements";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct QueuedRow {
    id: String,
    owner: Option<String>,
    priority: i64,
    created_at: i64,
    requirements: Option<Json<crate::jobs::requirements::Requirements>>,
}

impl TryFrom<QueuedRow> for crate::store::QueuedJob {
    type Error = StoreError;

    fn try_from(row: QueuedRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: parse("job id", &row.id)?,
            owner: row.owner,
            priority: i32::try_from(row.priority)
                .map_err(|_| StoreError::corrupt("priority", row.priority))?,
            created_at: from_micros(row.created_at)?,
            requirements: std::sync::Arc::new(
                row.requirements.map(|json| json.0).unwrap_or_default(),
            ),
        })
    }
}

pub(crate) const KEY_COLUMNS: &str = "id, name, role, hash, shown, requests_per_minute, burst, \
     max_queued, max_streams, created_at, revoked_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    name: String,
    role: String,
    hash: String,
    shown: String,
    requests_per_minute: Option<i64>,
    burst: Option<i64>,
    max_queued: Option<i64>,
    max_streams: Option<i64>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, Self::Error> {
        let limit = |what, value: Option<i64>| value.map(|value| unsigned(what, value)).transpose();
        Ok(ApiKey {
            id: row.id,
            name: row.name,
            role: parse("key role", &row.role)?,
            hash: row.hash,
            shown: row.shown,
            limits: KeyLimits {
                requests_per_minute: limit("requests per minute", row.requests_per_minute)?,
                burst: limit("burst", row.burst)?,
                max_queued: limit("max queued", row.max_queued)?,
                max_streams: limit("max streams", row.max_streams)?,
            },
            created_at: from_micros(row.created_at)?,
            revoked_at: optional_time(row.revoked_at)?,
        })
    }
}
