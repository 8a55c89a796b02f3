//! The HTTP API: one `router()` listing every route, its layers and the fallback.
//! Handlers live in one module per resource.

mod error;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use error::ApiError;

use crate::artifacts::LocalBlobStore;
use crate::config::Config;
use crate::jobs::bus::JobBus;
use crate::scheduler::{BackendSpec, SchedulerHandle};
use crate::store::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: LocalBlobStore,
    pub bus: Arc<JobBus>,
    pub scheduler: SchedulerHandle,
    pub backends: Arc<Vec<BackendSpec>>,
}

/// Every route Darkroom serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v2/health", get(health::health))
        .fallback(error::not_found)
        .with_state(state)
}
