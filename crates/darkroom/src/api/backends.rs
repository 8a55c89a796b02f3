//! `GET /api/backends` and drain control: each configured ComfyUI as operators and the
//! page's backends view see it: its state (starting, up, degraded, down, draining), version,
//! what waits in its own queue, the Darkroom jobs on it, the models it offers and last
//! loaded, its recent errors and, for a managed backend, its process.
//!
//! State, capabilities and jobs come from the scheduler's board; only the ComfyUI queue is
//! asked now, in parallel and bounded by a short timeout, so one unreachable server makes
//! the answer slower by at most that bound, never stuck.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use futures_util::future::join_all;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::jobs::model::{BackendId, Job, JobId, JobState, Progress};
use crate::scheduler::BackendSpec;
use crate::scheduler::board::{BackendState, BackendStatus, RecentError};

/// How long one backend may take to answer the queue probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct BackendList {
    /// Jobs waiting in Darkroom's own queue, not yet handed to any backend.
    queued: u64,
    backends: Vec<BackendView>,
}

#[derive(Debug, Serialize)]
pub struct BackendView {
    name: String,
    /// The base URL, without credentials.
    url: String,
    state: BackendState,
    /// Up or draining: it answers and is probed.
    up: bool,
    draining: bool,
    version: Option<String>,
    weight: u32,
    tags: Vec<String>,
    /// Prompts Darkroom keeps inside this ComfyUI at once.
    max_prompts: usize,
    /// Darkroom jobs posted to it (or being posted) now.
    prompts: usize,
    /// Prompts ComfyUI runs or holds in its queue (Darkroom's and anyone else's).
    queue_running: Option<usize>,
    queue_pending: Option<usize>,
    /// The Darkroom job it runs now, if any; `jobs` lists every one on it.
    current_job: Option<CurrentJob>,
    jobs: Vec<CurrentJob>,
    /// Model files of the last run it started: most likely still in memory.
    loaded_models: Vec<String>,
    /// Model files it offers, by loader input (`ckpt_name`, ...).
    models: BTreeMap<String, BTreeSet<String>>,
    node_classes: Option<usize>,
    recent_errors: Vec<RecentError>,
    /// The latest recent error, while the backend is not up.
    error: Option<String>,
    managed: Option<ManagedView>,
}

#[derive(Debug, Serialize)]
pub struct ManagedView {
    pid: Option<u32>,
    restarts: u64,
    log_file: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurrentJob {
    id: JobId,
    state: JobState,
    template: Option<String>,
    attempt: u32,
    progress: Option<Progress>,
}

/// Lists every backend.
///
/// # Errors
///
/// Store faults while reading the jobs in flight.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BackendList>, ApiError> {
    let mut in_flight = state.store.unfinished_jobs().await?;
    // Another key's job is not this caller's to see, even running.
    in_flight.retain(|job| caller.may_see(job.owner.as_deref()));
    let queued = state.store.count_queued().await?;
    let statuses = state.scheduler.backends();
    let views = state.backends.iter().filter_map(|backend| {
        let status = statuses.iter().find(|status| status.id == backend.id)?;
        Some(describe(backend, status, &in_flight))
    });
    let backends = join_all(views).await;
    Ok(Json(BackendList { queued, backends }))
}

/// `POST /api/backends/{name}/drain`: no new work; jobs on it run to their end.
///
/// # Errors
///
/// `not_found` for an unknown backend.
pub async fn drain(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<BackendView>, ApiError> {
    set_draining(&state, name, true).await
}

/// `POST /api/backends/{name}/undrain`: takes work again.
///
/// # Errors
///
/// `not_found` for an unknown backend.
pub async fn undrain(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<BackendView>, ApiError> {
    set_draining(&state, name, false).await
}

async fn set_draining(
    state: &AppState,
    name: String,
    draining: bool,
) -> Result<Json<BackendView>, ApiError> {
    let id = BackendId(name);
    let not_found = || ApiError::not_found(format!("no backend is named {:?}", id.0));
    let backend = state
        .backends
        .iter()
        .find(|backend| backend.id == id)
        .ok_or_else(not_found)?;
    let status = state
        .scheduler
        .set_draining(&id, draining)
        .ok_or_else(not_found)?;
    let in_flight = state.store.unfinished_jobs().await?;
    Ok(Json(describe(backend, &status, &in_flight).await))
}

async fn describe(backend: &BackendSpec, status: &BackendStatus, in_flight: &[Job]) -> BackendView {
    let jobs: Vec<CurrentJob> = in_flight
        .iter()
        .filter(|job| job.backend_id.as_ref() == Some(&backend.id) && job.state != JobState::Queued)
        .map(|job| CurrentJob {
            id: job.id,
            state: job.state,
            template: job.template.clone(),
            attempt: job.attempt,
            progress: job.progress.clone(),
        })
        .collect();
    let current_job = jobs
        .iter()
        .find(|job| job.state == JobState::Running)
        .or_else(|| jobs.first())
        .cloned();
    let mut url = backend.client.base_url().clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let state = status.state();
    let up = matches!(state, BackendState::Up | BackendState::Draining);
    let mut view = BackendView {
        name: backend.id.0.clone(),
        url: url.to_string(),
        state,
        up,
        draining: status.draining,
        version: status.version.clone(),
        weight: status.weight,
        tags: status.tags.clone(),
        max_prompts: status.max_prompts,
        prompts: status.runs.len(),
        queue_running: None,
        queue_pending: None,
        current_job,
        jobs,
        loaded_models: status.loaded.clone(),
        models: status
            .capabilities
            .as_ref()
            .map(|capabilities| capabilities.models())
            .unwrap_or_default(),
        node_classes: status
            .capabilities
            .as_ref()
            .map(|capabilities| capabilities.class_count()),
        recent_errors: status.errors.iter().cloned().collect(),
        error: (!up)
            .then(|| status.errors.back().map(|error| error.message.clone()))
            .flatten(),
        managed: status.managed.then(|| ManagedView {
            pid: status.pid,
            restarts: status.restarts,
            log_file: status
                .log_file
                .as_ref()
                .map(|path| path.display().to_string()),
        }),
    };
    if matches!(
        state,
        BackendState::Up | BackendState::Draining | BackendState::Degraded
    ) && let Ok(Ok(queue)) = tokio::time::timeout(PROBE_TIMEOUT, backend.client.queue()).await
    {
        view.queue_running = Some(queue.running.len());
        view.queue_pending = Some(queue.pending.len());
    }
    view
}
