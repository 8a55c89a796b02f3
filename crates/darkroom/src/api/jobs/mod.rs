//! The jobs resource: submit, read, list, the workflow behind a job, its live events and
//! cancellation. Submission, checks, rendering and the event stream have their own files.

mod events;
mod submit;
pub(crate) mod validate;
mod view;

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use events::events;
pub use submit::{Created, accept, idempotency_key, new_job, priority, submit};
pub use validate::usable_asset;
pub use view::JobView;

use super::links::Origin;
use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::jobs::bus::Notice;
use crate::jobs::model::{EventKind, Job, JobId, JobState, JobStatus, WorkflowFormat};
use crate::store::{JobCursor, JobQuery, JobSnapshot};

/// How long `cancel` waits for the scheduler to acknowledge before answering.
const CANCEL_ACK_WAIT: Duration = Duration::from_secs(2);
const LIST_DEFAULT_LIMIT: u32 = 50;
const LIST_MAX_LIMIT: u32 = 200;

/// `GET /api/v2/jobs/{id}`.
///
/// # Errors
///
/// `404 not_found` for an unknown or malformed id.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    origin: Origin,
) -> Result<Json<JobView>, ApiError> {
    let snapshot = load_status(&state, &caller, &id).await?;
    Ok(Json(view::render(&snapshot, &origin)))
}

/// The status of the job `id` names (without its workflows: the read clients poll), when
/// `caller` may see it; answers as [`load`] does.
///
/// # Errors
///
/// `404 not_found`; store faults.
pub async fn load_status(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<JobSnapshot, ApiError> {
    let not_found = || ApiError::not_found(format!("job {id} not found"));
    let job_id: JobId = id.parse().map_err(|_| not_found())?;
    state
        .store
        .job_snapshot(job_id)
        .await?
        .filter(|snapshot| caller.may_see(snapshot.job.owner.as_deref()))
        .ok_or_else(not_found)
}

/// The job `id` names, when `caller` may see it. A malformed id, a missing job and
/// another key's job all answer alike, so nobody learns which ids exist.
///
/// # Errors
///
/// `404 not_found`; store faults.
pub async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let not_found = || ApiError::not_found(format!("job {id} not found"));
    let id: JobId = id.parse().map_err(|_| not_found())?;
    let job = state.store.job(id).await?.ok_or_else(not_found)?;
    if !caller.may_see(job.owner.as_deref()) {
        return Err(not_found());
    }
    Ok(job)
}

/// `GET /api/v2/jobs/{id}/workflow`: the graph the job runs, or the UI-format original
/// when it was submitted that way.
///
/// # Errors
///
/// `404 not_found`, also for an expired job (its retention is the workflow's).
pub async fn workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = load(&state, &caller, &id).await?;
    if job.state == JobState::Expired {
        return Err(ApiError::not_found(format!("job {id} has expired")));
    }
    let (format, workflow) = match job.original_format {
        WorkflowFormat::Save => ("save", job.original_workflow),
        WorkflowFormat::Api => ("api", job.workflow),
    };
    Ok(Json(json!({"format": format, "workflow": workflow})))
}

/// `POST /api/v2/jobs/{id}/cancel`: idempotent; a final job is returned as it is.
///
/// A queued job is canceled at once. A job on a backend is handed to its driver, which
/// moves it to `canceling` and stops it there; the answer waits briefly for that move so
/// the client sees `canceling` rather than the state before its request.
///
/// # Errors
///
/// `404 not_found`; store faults.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    origin: Origin,
) -> Result<Json<JobView>, ApiError> {
    let mut job = load(&state, &caller, &id).await?;
    if !job.state.is_final() {
        // Subscribed before asking, so the acknowledging event cannot slip past.
        let mut notices = state.bus.subscribe();
        state.scheduler.cancel(&job).await?;
        job = load(&state, &caller, &id).await?;
        if !acknowledged(job.state) {
            let _ = tokio::time::timeout(CANCEL_ACK_WAIT, wait_for_ack(&mut notices, job.id)).await;
            job = load(&state, &caller, &id).await?;
        }
        tracing::info!(job.id = %job.id, job.state = %job.state, "cancel requested");
    }
    let snapshot = view::snapshot(&state, &job).await?;
    Ok(Json(view::render(&snapshot, &origin)))
}

fn acknowledged(state: JobState) -> bool {
    state == JobState::Canceling || state.is_final()
}

async fn wait_for_ack(notices: &mut broadcast::Receiver<Notice>, job_id: JobId) {
    loop {
        match notices.recv().await {
            Ok(Notice::Event(event))
                if event.job_id == job_id && event.kind == EventKind::Status =>
            {
                let state = event.payload.get("state").and_then(Value::as_str);
                if state
                    .and_then(|state| state.parse().ok())
                    .is_some_and(acknowledged)
                {
                    return;
                }
            }
            Ok(_) => {}
            // Missed notices: the caller re-reads the store anyway.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Query of `GET /api/v2/jobs`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Contract statuses, comma-separated.
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of `GET /api/v2/jobs`, newest first.
#[derive(Debug, Serialize)]
pub struct JobList {
    jobs: Vec<JobView>,
    /// Jobs matching the filter, over all pages.
    total: u64,
    limit: u32,
    offset: u64,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// `GET /api/v2/jobs`: Darkroom's listing for the web page and the CLI.
///
/// # Errors
///
/// `422 invalid_request` for an unknown status, a bad limit or cursor.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::invalid_request(format!(
            "bad query: {}",
            rejection.body_text().to_lowercase()
        ))
    })?;
    let mut query = job_query(&params)?;
    query.owner = caller.listing_owner();
    let page = state.store.list_jobs(&query).await?;

    let mut jobs = Vec::with_capacity(page.jobs.len());
    for job in &page.jobs {
        let snapshot = view::snapshot(&state, job).await?;
        jobs.push(view::render(&snapshot, &origin));
    }
    Ok(Json(JobList {
        jobs,
        total: page.total,
        limit: query.limit,
        offset: query.offset,
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

fn job_query(params: &ListParams) -> Result<JobQuery, ApiError> {
    let limit = params.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if !(1..=LIST_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {LIST_MAX_LIMIT}, got {limit}"
        )));
    }
    let after = match &params.cursor {
        Some(cursor) => Some(cursor.parse::<JobCursor>().map_err(|_| {
            ApiError::invalid_request(format!("cursor {cursor:?} is not one this server issued"))
        })?),
        None => None,
    };
    Ok(JobQuery {
        states: states_of(params.status.as_deref())?,
        limit,
        offset: params.offset.unwrap_or(0),
        after,
        ..JobQuery::default()
    })
}

/// Darkroom states behind a comma-separated list of contract statuses.
fn states_of(statuses: Option<&str>) -> Result<Vec<JobState>, ApiError> {
    let Some(statuses) = statuses.filter(|statuses| !statuses.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut states = Vec::new();
    for name in statuses.split(',').map(str::trim) {
        let status: JobStatus = name.parse().map_err(|_| {
            let known: Vec<&str> = JobStatus::ALL
                .iter()
                .map(|status| status.as_str())
                .collect();
            ApiError::invalid_request(format!(
                "unknown status {name:?}; known statuses: {}",
                known.join(", ")
            ))
        })?;
        states.extend(
            JobState::ALL
                .iter()
                .filter(|state| state.public_status() == status),
        );
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_statuses_cover_the_finer_states() {
        let states = states_of(Some("queued,running")).unwrap();
        assert_eq!(
            states,
            vec![
                JobState::Queued,
                JobState::Dispatched,
                JobState::Running,
                JobState::Collecting
            ]
        );
        assert!(states_of(None).unwrap().is_empty());
        let error = states_of(Some("queued,done")).unwrap_err();
        assert!(
            error.message.starts_with("unknown status \"done\""),
            "{}",
            error.message
        );
    }
}
