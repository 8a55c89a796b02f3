//! `GET /metrics`: Prometheus metrics in the text exposition format (OpenMetrics).
//! Gauges are read now: job counts from the store, backends from the scheduler's board.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{ApiError, AppState};
use crate::jobs::model::JobState;
use crate::store::JobQuery;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric.
///
/// # Errors
///
/// Store faults while counting jobs.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut counts = Vec::new();
    for state_name in JobState::ALL {
        let query = JobQuery {
            states: vec![*state_name],
            limit: 1,
            ..JobQuery::default()
        };
        counts.push((*state_name, state.store.list_jobs(&query).await?.total));
    }
    let queued = state.store.count_queued().await?;
    let backends = state.scheduler.backends();
    let text = state
        .scheduler
        .context()
        .metrics
        .render(&counts, queued, &backends)
        .map_err(|error| ApiError::internal(&error))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
