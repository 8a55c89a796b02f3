//! `GET /api/history` and `GET /api/history/{id}`: past jobs as the page's history shows
//! them: which template, with which parameters, how it ended, and its outputs with a
//! thumbnail link. Filtered by template and status, paged by offset, newest first.
//!
//! This is a summary for people, beside the contract's `Job`: it carries what a person
//! needs to recognise a run and run it again, and no live state (follow the job's events
//! for that).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::jobs::model::{AssetId, Job, JobError, JobId, JobState, JobStatus, OutputType};
use crate::store::JobQuery;

const DEFAULT_LIMIT: u32 = 24;
const MAX_LIMIT: u32 = 100;
/// The thumbnail edge the grid asks for.
const GRID_THUMBNAIL: u32 = 256;

#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    template: Option<String>,
    /// One contract status.
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPage {
    entries: Vec<HistoryEntry>,
    /// Jobs matching the filters over all pages.
    total: u64,
    limit: u32,
    offset: u64,
}

/// One past job.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    id: JobId,
    status: JobStatus,
    state: JobState,
    template: Option<String>,
    /// The parameters as the job recorded them; `null` for a job submitted as a graph.
    parameters: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    completed_at: Option<OffsetDateTime>,
    error: Option<JobError>,
    outputs: Vec<HistoryOutput>,
    /// The first picture's thumbnail, for the grid.
    thumbnail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryOutput {
    id: AssetId,
    name: String,
    #[serde(rename = "type")]
    output_type: OutputType,
    content_type: String,
    size_bytes: u64,
    node_id: String,
    /// Host-relative: the page is served by the same Darkroom.
    content: String,
    thumbnail: Option<String>,
}

/// One page of past jobs.
///
/// # Errors
///
/// `422 invalid_request` for an unknown status or a limit out of range.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    let Query(params) = params.map_err(|rejection| {
        ApiError::invalid_request(format!(
            "bad query: {}",
            rejection.body_text().to_lowercase()
        ))
    })?;
    let mut query = query(&params)?;
    query.owner = caller.listing_owner();
    let page = state.store.list_jobs(&query).await?;

    let mut entries = Vec::with_capacity(page.jobs.len());
    for job in page.jobs {
        entries.push(entry(&state, job).await?);
    }
    Ok(Json(HistoryPage {
        entries,
        total: page.total,
        limit: query.limit,
        offset: query.offset,
    }))
}

/// One past (or running) job.
///
/// # Errors
///
/// `404 not_found`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<HistoryEntry>, ApiError> {
    let job = super::jobs::load(&state, &caller, &id).await?;
    Ok(Json(entry(&state, job).await?))
}

fn query(params: &HistoryParams) -> Result<JobQuery, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let states = match params.status.as_deref().filter(|status| !status.is_empty()) {
        Some(name) => {
            let status: JobStatus = name
                .parse()
                .map_err(|error| ApiError::invalid_request(format!("status: {error}")))?;
            JobState::ALL
                .iter()
                .copied()
                .filter(|state| state.public_status() == status)
                .collect()
        }
        None => Vec::new(),
    };
    Ok(JobQuery {
        states,
        template: params.template.clone().filter(|name| !name.is_empty()),
        limit,
        offset: params.offset.unwrap_or(0),
        ..JobQuery::default()
    })
}

async fn entry(state: &AppState, job: Job) -> Result<HistoryEntry, ApiError> {
    let outputs: Vec<HistoryOutput> = state
        .store
        .outputs(job.id)
        .await?
        .into_iter()
        .map(|output| {
            let thumbnail = crate::thumbnails::is_image(&output.content_type).then(|| {
                format!(
                    "/api/v2/assets/{}/thumbnail?size={GRID_THUMBNAIL}",
                    output.asset_id
                )
            });
            HistoryOutput {
                content: format!("/api/v2/assets/{}/content", output.asset_id),
                id: output.asset_id,
                name: output.name,
                output_type: output.output_type,
                content_type: output.content_type,
                size_bytes: output.size_bytes,
                node_id: output.node_id,
                thumbnail,
            }
        })
        .collect();
    let thumbnail = outputs.iter().find_map(|output| output.thumbnail.clone());
    Ok(HistoryEntry {
        id: job.id,
        status: job.state.public_status(),
        state: job.state,
        template: job.template,
        parameters: job.parameters,
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        error: job.error,
        outputs,
        thumbnail,
    })
}
