//! Jobs and outputs in the contract's `Job` and `Output` shapes.
//!
//! `status` is always the contract's coarse status; Darkroom's finer state travels beside
//! it in `state` (with `backend` and `attempt`), never in its place.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::api::AppState;
use crate::api::links::{self, Origin};
use crate::artifacts::BlobHash;
use crate::jobs::model::{
    AssetId, BackendId, Job, JobError, JobId, JobState, JobStatus, JobSummary, OutputRecord,
    OutputType, Progress,
};
use crate::store::{JobSnapshot, StoreError};

/// The contract's `Job`, plus Darkroom's `state`, `backend` and `attempt`.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: JobId,
    pub status: JobStatus,
    pub state: JobState,
    pub backend: Option<BackendId>,
    pub attempt: u32,
    /// Darkroom's extension: higher runs sooner.
    pub priority: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub queue_position: Option<u64>,
    pub progress: Option<Progress>,
    pub outputs: Vec<OutputView>,
    pub error: Option<JobError>,
    pub metrics: Metrics,
    pub urls: JobUrls,
}

/// Durations in milliseconds; `null` until they can be known.
#[derive(Debug, Serialize)]
pub struct Metrics {
    /// From creation until the run started (or the job ended without running).
    pub queue_ms: Option<i64>,
    /// From the start of the run until the job ended.
    pub execution_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct JobUrls {
    #[serde(rename = "self")]
    pub self_: String,
    pub events: String,
    pub cancel: String,
}

/// The contract's `Output`: a stored file of a job, which is also an asset.
#[derive(Debug, Serialize)]
pub struct OutputView {
    pub node_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub output_type: OutputType,
    pub content_type: String,
    pub size_bytes: u64,
    /// The asset id.
    pub id: AssetId,
    pub hash: BlobHash,
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub url_expires_at: OffsetDateTime,
    pub job_id: JobId,
}

impl OutputView {
    /// Content URLs are served by Darkroom itself and live as long as the job does.
    pub fn new(output: &OutputRecord, job_expires_at: OffsetDateTime, origin: &Origin) -> Self {
        Self {
            node_id: output.node_id.clone(),
            name: output.name.clone(),
            output_type: output.output_type,
            content_type: output.content_type.clone(),
            size_bytes: output.size_bytes,
            id: output.asset_id,
            hash: output.hash.clone(),
            url: origin.absolute(&links::asset_content(output.asset_id)),
            url_expires_at: job_expires_at,
            job_id: output.job_id,
        }
    }
}

/// The whole job as `GET /api/v2/jobs/{id}` shows it.
pub fn render(snapshot: &JobSnapshot, origin: &Origin) -> JobView {
    let job = &snapshot.job;
    let outputs = snapshot
        .outputs
        .iter()
        .map(|output| OutputView::new(output, job.expires_at, origin))
        .collect();
    JobView {
        id: job.id,
        status: job.state.public_status(),
        state: job.state,
        backend: job.backend_id.clone(),
        attempt: job.attempt,
        priority: job.priority,
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        expires_at: job.expires_at,
        queue_position: shown_position(job.state, snapshot.queue_position),
        progress: job.progress.clone(),
        outputs,
        error: job.error.clone(),
        metrics: metrics(job),
        urls: JobUrls {
            self_: links::job(job.id),
            events: links::job_events(job.id),
            cancel: links::job_cancel(job.id),
        },
    }
}

/// A job already read whole, with its outputs and place in the queue read now.
///
/// # Errors
///
/// Store faults while reading the queue position or the outputs.
pub async fn snapshot(state: &AppState, job: &Job) -> Result<JobSnapshot, StoreError> {
    Ok(JobSnapshot {
        job: JobSummary::from(job),
        outputs: state.store.outputs(job.id).await?,
        queue_position: queue_position(state, job).await?,
    })
}

/// How many jobs are ahead: counted in Darkroom's queue; a dispatched job (which the
/// contract shows as queued) is already at its backend, so nothing is ahead of it here.
///
/// # Errors
///
/// Store faults.
pub async fn queue_position(state: &AppState, job: &Job) -> Result<Option<u64>, StoreError> {
    let position = match job.state {
        JobState::Queued => state.store.queue_position(job.id).await?,
        _ => None,
    };
    Ok(shown_position(job.state, position))
}

/// The position shown for a job in `state` whose place in Darkroom's queue is `position`.
pub fn shown_position(state: JobState, position: Option<u64>) -> Option<u64> {
    match state {
        JobState::Queued => position,
        JobState::Dispatched => Some(0),
        _ => None,
    }
}

fn metrics(job: &JobSummary) -> Metrics {
    let millis = |from: OffsetDateTime, to: OffsetDateTime| {
        i64::try_from((to - from).whole_milliseconds()).ok()
    };
    let left_queue = job.started_at.or(job.completed_at);
    Metrics {
        queue_ms: left_queue.and_then(|at| millis(job.created_at, at)),
        execution_ms: job
            .started_at
            .zip(job.completed_at)
            .and_then(|(start, end)| millis(start, end)),
    }
}

/// An output event's stored payload (an `OutputRecord`) in the contract's shape; a
/// payload that does not parse is passed on as it is.
pub fn output_payload(payload: Value, job_expires_at: OffsetDateTime, origin: &Origin) -> Value {
    match serde_json::from_value::<OutputRecord>(payload.clone()) {
        Ok(record) => serde_json::to_value(OutputView::new(&record, job_expires_at, origin))
            .unwrap_or(payload),
        Err(_) => payload,
    }
}
