//! `GET /api/backends`: each configured ComfyUI as the page's backends view shows it: up or
//! down, its version, what waits in its own queue and which Darkroom job it runs now.
//!
//! Backends are probed in parallel, each bounded by a short timeout, so one unreachable
//! server makes the answer slower by at most that bound, never stuck.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::jobs::model::{Job, JobId, JobState, Progress};
use crate::scheduler::BackendSpec;

/// How long one backend may take to answer both probes.
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
    up: bool,
    version: Option<String>,
    /// Prompts ComfyUI runs or holds in its queue (Darkroom's and anyone else's).
    queue_running: Option<usize>,
    queue_pending: Option<usize>,
    /// The Darkroom job on this backend now, if any.
    current_job: Option<CurrentJob>,
    /// Why the probe failed, when the backend is down.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CurrentJob {
    id: JobId,
    state: JobState,
    template: Option<String>,
    progress: Option<Progress>,
}

/// Lists every backend with a fresh probe.
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
    let probes = state
        .backends
        .iter()
        .map(|backend| describe(backend, &in_flight));
    let backends = join_all(probes).await;
    Ok(Json(BackendList { queued, backends }))
}

async fn describe(backend: &BackendSpec, in_flight: &[Job]) -> BackendView {
    let current_job = in_flight
        .iter()
        .find(|job| job.backend_id.as_ref() == Some(&backend.id) && job.state != JobState::Queued)
        .map(|job| CurrentJob {
            id: job.id,
            state: job.state,
            template: job.template.clone(),
            progress: job.progress.clone(),
        });
    let mut url = backend.client.base_url().clone();
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let mut view = BackendView {
        name: backend.id.0.clone(),
        url: url.to_string(),
        up: false,
        version: None,
        queue_running: None,
        queue_pending: None,
        current_job,
        error: None,
    };

    let probe = async {
        let stats = backend.client.system_stats().await?;
        let queue = backend.client.queue().await?;
        Ok::<_, comfy::ComfyError>((stats, queue))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok((stats, queue))) => {
            view.up = true;
            view.version = stats.system.comfyui_version;
            view.queue_running = Some(queue.running.len());
            view.queue_pending = Some(queue.pending.len());
        }
        Ok(Err(error)) => view.error = Some(error.to_string()),
        Err(_) => view.error = Some(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
    view
}
